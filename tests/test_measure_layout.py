"""The flat (ragged) window layout and the batched processing give the numbers of a direct
computation on real data: each station processed alone with obspy's Stream/Trace methods, each
window measured alone (its own arrays, no padding), the adjoint sources taken back through obspy
trace by trace. Table, misfit and adjoint sources agree to ~1e-12."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import obspy
import pytest
from scipy.signal.windows import tukey

import seisflows_eara.measure.event as event_mod
import seisflows_eara.processing.chain as chain_mod
import seisflows_eara.windows.ragged as ragged
from seisflows_eara import params
from seisflows_eara.io.specfem_traces import read_synthetics
from seisflows_eara.io.stations import Station, read_stations
from seisflows_eara.measure import Config, event_from_file, measure_event
from seisflows_eara.measure.measurements import cc_and_lag, snr_db
from seisflows_eara.misfit import nzcc_misfit_and_adjoint
from seisflows_eara.processing import prepare_observed, response_prefilter
from seisflows_eara.weights import categorical_weights, geographic_weights, quality_weight

DATA = Path(__file__).parent / "data"
DARF = DATA / "pytomo3d_darfield"
GRC = DATA / "regional_greece"
TOL = 1e-12


# ---------------------------------------------------------------- the direct computation
def _direct_observed(obs, inv, baz, cfg: Config, processed: bool) -> obspy.Stream:
    v = cfg.values
    if processed:
        o = obs.copy()
        o.rotate("NE->RT", back_azimuth=baz)
        return o
    nyq = 0.5 * min(tr.stats.sampling_rate for tr in obs)
    pre = response_prefilter([cfg.band("body"), cfg.band("surface")], nyq)
    return prepare_observed(obs, inv, baz, pre, v["taper_fraction"], v["response_water_level"],
                            target_rate=v["sampling_rate"])


def _direct_synthetic(syn, baz, cfg: Config) -> obspy.Stream:
    s = syn.copy()
    s.detrend("demean")
    s.taper(cfg["taper_fraction"], type="cosine")
    s.rotate("NE->RT", back_azimuth=baz)
    return s


def _direct_band(st, band, axis, cfg: Config) -> np.ndarray:
    st = st.copy()
    st.filter("bandpass", freqmin=band.freqs[0], freqmax=band.freqs[1],
              corners=cfg["filter_corners"], zerophase=True)
    out = []
    for c in "ZRT":
        tr = st.select(component=c)[0]
        tr.interpolate(1.0 / axis.dt, starttime=axis.starttime, npts=axis.npts)
        out.append(tr.data)
    return np.array(out)


def _direct(m, stations, observed, synthetics, cfg: Config, inv=None, processed=True):
    """Per-window measurements, weights, misfit and per-category adjoint sources, computed window
    by window and station by station with obspy's methods."""
    p = m.prepared
    v = cfg.values
    obs_b, syn_b = {}, {}
    for k, axis in p.axes.items():
        st = stations[k]
        baz = p.baz[k]
        o = _direct_observed(observed[st.code], inv, baz, cfg, processed)
        s = _direct_synthetic(synthetics.select(network=st.network, station=st.station), baz, cfg)
        for b in {d.window.band for d in p.windows if d.station == k}:
            obs_b[(k, b)] = _direct_band(o, cfg.band(b), axis, cfg)
            syn_b[(k, b)] = _direct_band(s, cfg.band(b), axis, cfg)
    n = len(p.windows)
    chi, cc, lag, snr = (np.zeros(n) for _ in range(4))
    adj = []
    for i, d in enumerate(p.windows):
        c = "ZRT".index(d.window.component)
        u = obs_b[(d.station, d.window.band)][c, d.i0:d.i1]
        s = syn_b[(d.station, d.window.band)][c, d.i0:d.i1]
        w = tukey(d.i1 - d.i0, 2 * v["window_taper_fraction"])
        x, a = nzcc_misfit_and_adjoint(s, u, w, p.dt)
        chi[i] = x
        adj.append(a)
        cc_i, lag_i = cc_and_lag((s * w)[None], (u * w)[None])
        cc[i], lag[i] = cc_i[0], lag_i[0]
        snr[i] = snr_db(obs_b[(d.station, d.window.band)][c], d.noise, (d.i0, d.i1))
    dts = lag * p.dt
    *_, wq = quality_weight(cc, snr, dts, tuple(v["quality_cc"]), tuple(v["quality_snr"]),
                            tuple(v["quality_dt"]))
    wq = np.where(np.isfinite(chi), wq, 0.0)
    cats = np.array([d.window.category for d in p.windows])
    wc = categorical_weights(cats, wq)
    st_idx = np.array([d.station for d in p.windows])
    used = sorted(set(st_idx[wq > 0]))
    wgeo = np.zeros(len(stations))
    g, _ = geographic_weights(np.array([stations[k].latitude for k in used]),
                              np.array([stations[k].longitude for k in used]),
                              tuple(v["geographic_delta0_scan"]), v["geographic_scan_points"],
                              v["geographic_ratio_fraction"])
    wgeo[used] = g
    wg = wgeo[st_idx]
    weight = wc * wg * wq
    misfit = float(np.sum(np.where(weight > 0, weight * np.nan_to_num(chi), 0.0)))
    # adjoint sources, one (category, station, band) at a time, back through obspy
    groups = {}
    for i, d in enumerate(p.windows):
        key = (d.window.category, d.station, d.window.band)
        z = groups.setdefault(key, np.zeros((3, p.axes[d.station].npts)))
        z["ZRT".index(d.window.component), d.i0:d.i1] += adj[i] * wq[i] * wg[i]
    by_cat = {}
    for (cat, k, b), zrt in groups.items():
        code = stations[k].code
        times = p.solver_times[code]
        band = cfg.band(b)
        st = obspy.Stream([obspy.Trace(
            np.interp(times, p.axes[k].times, zrt[j], left=0.0, right=0.0),
            header=dict(delta=float(times[1] - times[0]), channel=f"MX{c}"))
            for j, c in enumerate("ZRT")])
        st.filter("bandpass", freqmin=band.freqs[0], freqmax=band.freqs[1],
                  corners=v["filter_corners"], zerophase=True)
        st.rotate("RT->NE", back_azimuth=p.baz[k])
        st.taper(v["taper_fraction"], type="cosine")
        res = np.array([st.select(component=c)[0].data for c in "NEZ"])
        res -= res.mean(axis=1, keepdims=True)
        by_cat.setdefault(cat, {})
        by_cat[cat][code] = by_cat[cat].get(code, 0.0) + res
    return dict(nzcc=1.0 - chi, cc=cc, dt=dts, snr=snr, weight=weight, misfit=misfit,
                by_cat=by_cat, wc={c: float(wc[cats == c][0]) for c in np.unique(cats)},
                syn=syn_b)


def _check(m, ref, synthetics):
    p = m.prepared
    n = len(p.windows)
    t = m.table.iloc[-n:]                       # window rows follow the rejected rows, in order
    assert list(t.category) == [d.window.category for d in p.windows]
    assert list(t.station) == [m.prepared.stations[d.station].station for d in p.windows]
    np.testing.assert_allclose(t.nzcc, ref["nzcc"], rtol=0, atol=TOL)
    np.testing.assert_allclose(t.cc_max, ref["cc"], rtol=0, atol=TOL)
    np.testing.assert_allclose(t.dt, ref["dt"], rtol=0, atol=TOL * 1e3)   # s; lags up to ~1e3 s
    np.testing.assert_allclose(t.snr_db, ref["snr"], rtol=TOL, atol=0)
    np.testing.assert_allclose(t.weight, ref["weight"], rtol=TOL, atol=TOL * ref["weight"].max())
    assert m.misfit == pytest.approx(ref["misfit"], rel=TOL)
    assert set(m.adjoint_by_category) == set(ref["by_cat"])
    for cat, per in ref["by_cat"].items():
        assert set(m.adjoint_by_category[cat]) == set(per)
        for code, a in per.items():
            np.testing.assert_allclose(m.adjoint_by_category[cat][code], a, rtol=0,
                                       atol=TOL * np.abs(a).max())
    for code, a in m.adjoint.items():
        want = sum(ref["wc"][cat] * per[code] for cat, per in ref["by_cat"].items() if code in per)
        np.testing.assert_allclose(a, want, rtol=0, atol=TOL * np.abs(want).max())
    # the frozen-window re-measure reads the same segments
    S = np.concatenate([ref["syn"][(d.station, d.window.band)]["ZRT".index(d.window.component),
                                                               d.i0:d.i1] for d in p.windows])
    np.testing.assert_allclose(p.segments(synthetics), S, rtol=0,
                               atol=TOL * np.abs(S).max())
    assert p.misfit(synthetics) == pytest.approx(m.misfit, rel=TOL)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 2 stations and of a few thousand samples: every batching boundary is crossed."""
    monkeypatch.setattr(event_mod, "STATION_BLOCK", 2)
    monkeypatch.setattr(chain_mod, "BLOCK_SAMPLES", 4000)
    monkeypatch.setattr(ragged, "BLOCK_SAMPLES", 3000)


@pytest.mark.parametrize("blocks", ["default", "small"])
def test_layout_matches_direct_computation_greece(blocks, request):
    """Six stations, two real SPECFEM3D_GLOBE runs (observed: full-physics reference)."""
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    ev = event_from_file(str(GRC / "CMTSOLUTION"))
    sta = read_stations(GRC / "STATIONS")
    obs = read_synthetics(str(GRC / "REF_SEIS"), ev.time)
    syn = read_synthetics(str(GRC / "tiny_1d"), ev.time)
    by = {s.code: obs.select(network=s.network, station=s.station) for s in sta}
    cfg = Config(params.defaults(), 2)
    m = measure_event(ev, sta, by, syn, cfg, observed_processed=True)
    assert len(m.prepared.windows) >= 20 and len({d.station for d in m.prepared.windows}) >= 5
    assert len(set(m.prepared.lengths)) > 3          # windows of many lengths share the arrays
    _check(m, _direct(m, sta, by, syn, cfg), syn)


def test_layout_matches_direct_computation_raw_data(small_blocks):
    """IU.KBL: raw counts + StationXML, float32 SPECFEM synthetic, body and surface windows."""
    ev = event_from_file(str(DARF / "C201009031635A.xml"))
    obs = obspy.read(str(DARF / "IU.KBL.obs.mseed"))
    inv = obspy.read_inventory(str(DARF / "IU.KBL.xml"))
    syn = obspy.read(str(DARF / "IU.KBL.syn.mseed"))
    assert syn[0].data.dtype == np.float32
    for tr in syn:
        tr.stats.location = ""
    ch = inv[0][0]
    sta = [Station("IU", "KBL", ch.latitude, ch.longitude)]
    cfg = Config(params.defaults(), 1)
    m = measure_event(ev, sta, {"IU.KBL": obs}, syn, cfg, inventory=inv)
    assert {d.window.band for d in m.prepared.windows} == {"body", "surface"}
    _check(m, _direct(m, sta, {"IU.KBL": obs}, syn, cfg, inv=inv, processed=False), syn)


# ---------------------------------------------------------------- the layout itself
def test_segment_sums_and_blocks_cover_every_window():
    lengths = np.array([5, 0, 3, 0, 0, 7, 1, 0])
    off = ragged.offsets_from_lengths(lengths)
    x = np.arange(off[-1], dtype=float) ** 2
    want = [x[off[i]:off[i + 1]].sum() for i in range(lengths.size)]
    np.testing.assert_array_equal(ragged.segment_sums(x, off), want)
    seen = []
    for idx, width in ragged.blocks(lengths, max_samples=8):
        assert width == lengths[idx].max()
        assert len(idx) == 1 or len(idx) * width <= 8
        seen += list(idx)
    assert sorted(seen) == list(range(lengths.size))
    rows = ragged.gather(x, off, np.array([0, 5]), 7)
    out = np.zeros_like(x)
    ragged.scatter(rows, off, np.array([0, 5]), out)
    np.testing.assert_array_equal(out[off[0]:off[1]], x[off[0]:off[1]])
    np.testing.assert_array_equal(out[off[5]:off[6]], x[off[5]:off[6]])


def test_cc_lags_stay_inside_each_window():
    """A window padded beside a longer one is correlated over its own lags only: with u, v > 0 and
    s = −v (the correlation is negative at every lag) the padded lags (zero) must not win, as they
    did with padded rows; the best lag is an extreme one, with a one-sample overlap."""
    u = 1.5 + np.sin(np.arange(300) / 11.0)
    v = 1.5 + np.cos(np.arange(300) / 5.0)
    long = np.sin(np.arange(2000) / 7.0)
    flat_s = np.concatenate([-v, long])
    flat_u = np.concatenate([u, np.roll(long, 5)])
    cc, lag = cc_and_lag(flat_s, flat_u, np.array([300, 2000]))
    alone = cc_and_lag((-v)[None], u[None])
    assert cc[0] == pytest.approx(alone[0][0], abs=TOL) and lag[0] == pytest.approx(alone[1][0])
    assert abs(lag[0]) == 299 and cc[0] < 0
    alone = cc_and_lag(long[None], np.roll(long, 5)[None])
    assert cc[1] == pytest.approx(alone[0][0], abs=TOL) and lag[1] == pytest.approx(alone[1][0])


def test_prepared_event_pickled_with_padded_rows_still_loads():
    """A frozen measurement pickled by the earlier layout (rows padded to the longest window)
    re-measures the same misfit after loading (runs resumed across the upgrade)."""
    import pickle

    from seisflows_eara.measure import PreparedEvent
    ev = event_from_file(str(GRC / "CMTSOLUTION"))
    sta = read_stations(GRC / "STATIONS")
    obs = read_synthetics(str(GRC / "REF_SEIS"), ev.time)
    syn = read_synthetics(str(GRC / "tiny_1d"), ev.time)
    by = {s.code: obs.select(network=s.network, station=s.station) for s in sta}
    p = measure_event(ev, sta, by, syn, Config(params.defaults(), 1), observed_processed=True).prepared
    old = dict(p.__dict__)
    L = int(p.lengths.max())
    old["U"] = ragged.gather(p.U, p.offsets, np.arange(p.nwin), L)
    old["taper"] = ragged.gather(p.taper, p.offsets, np.arange(p.nwin), L)
    for key in ("offsets", "_taper", "station_index"):
        del old[key]
    q = PreparedEvent.__new__(PreparedEvent)
    q.__setstate__(old)
    q = pickle.loads(pickle.dumps(q))
    np.testing.assert_array_equal(q.U, p.U)
    np.testing.assert_array_equal(q.taper, p.taper)
    assert q.misfit(syn) == p.misfit(syn)


def test_scale_segments_equals_the_per_sample_product(monkeypatch):
    """ragged.scale_segments: x *= per_sample(values) run by run (runs of 50 samples here), the
    same products as the whole-event temporary."""
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 40, 300)
    offsets = ragged.offsets_from_lengths(lengths)
    x = rng.standard_normal(int(offsets[-1]))
    w = rng.uniform(0, 2, lengths.size)
    want = x * ragged.per_sample(w, offsets)
    monkeypatch.setattr(ragged, "BLOCK_SAMPLES", 50)
    assert len(list(ragged.runs(offsets))) > 50
    ragged.scale_segments(x, w, offsets)
    assert np.array_equal(x, want)


def test_flat_builder_equals_concatenate_whatever_the_first_estimate():
    """ragged.FlatBuilder: parts appended in order give np.concatenate's array, when the first
    part's share underestimates the whole (the buffer grows, doubled) and when it is exact."""
    rng = np.random.default_rng(8)
    parts = [rng.standard_normal(int(n)) for n in rng.integers(0, 500, 40)]
    want = np.concatenate(parts)
    for shares in (np.linspace(0.5, 1.0, 40), np.cumsum([p.size for p in parts]) / want.size):
        b = ragged.FlatBuilder()
        for p, share in zip(parts, shares):
            b.add(p, float(share))
        assert np.array_equal(b.array(), want)
    assert ragged.FlatBuilder().array().size == 0
