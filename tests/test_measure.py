"""The measurement chain on real data (SPEC §2-4): adjoint by finite differences, windows against
direct TauP, taper continuity, weights, processing against a direct obspy chain, bad input."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import pytest
from obspy.taup import TauPyModel

from conftest import displacement_as_specfem
from seisflows_eara import params
from seisflows_eara.commands.demo import load_kbl_pair
from seisflows_eara.io.specfem_traces import read_synthetics
from seisflows_eara.io.stations import Station, read_stations
from seisflows_eara.measure import COLUMNS, Config, event_from_file, measure_event
from seisflows_eara.measure.measurements import cc_and_lag
from seisflows_eara.processing import (Band, common_axis, filter_and_resample, prepare_observed,
                                       response_prefilter)
from seisflows_eara.weights import cosine_ramp, geographic_weights, quality_weight
from seisflows_eara.weights.geographic import choose_delta0, separations_deg
from seisflows_eara.windows import TravelTimes

DATA = Path(__file__).parent / "data"
DARF = DATA / "pytomo3d_darfield"
OKH = DATA / "pyasdf_okhotsk"
GRC = DATA / "regional_greece"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def darfield():
    ev, sta, obs, inv, syn = load_kbl_pair(DARF)
    m = measure_event(ev, sta, {"IU.KBL": obs}, syn, Config(params.defaults(), 1), inventory=inv)
    return ev, sta, obs, inv, syn, m


@pytest.fixture(scope="module")
def greece():
    ev = event_from_file(str(GRC / "CMTSOLUTION"))
    sta = read_stations(GRC / "STATIONS")
    obs = read_synthetics(str(GRC / "REF_SEIS"), ev.time)
    syn = read_synthetics(str(GRC / "tiny_1d"), ev.time)
    by = {s.code: obs.select(network=s.network, station=s.station) for s in sta}
    m = measure_event(ev, sta, by, syn, Config(params.defaults(), 1), observed_processed=True)
    return ev, sta, by, syn, m


# ---------------------------------------------------------------- adjoint sources
@pytest.mark.parametrize("which", ["darfield", "greece"])
def test_adjoint_matches_finite_differences_on_real_windows(which, request):
    m = request.getfixturevalue(which)[-1]
    p = m.prepared
    assert p.nwin > 0
    rng = np.random.default_rng(1)
    S = p.segments_from_processed(p.process(request.getfixturevalue(which)[-2]))
    from seisflows_eara.misfit import nzcc_misfit_and_adjoint
    from seisflows_eara.windows.ragged import per_sample
    _, adj = nzcc_misfit_and_adjoint(S, p.U, p.taper, p.dt, offsets=p.offsets)
    grad = adj * per_sample(p.wc * p.weights, p.offsets)
    scale = per_sample(np.maximum.reduceat(np.abs(S), p.offsets[:-1]), p.offsets)
    dS = rng.standard_normal(S.shape) * scale * 1e-5 * (p.taper > 0)
    fd = (p.misfit_from_segments(S + dS) - p.misfit_from_segments(S - dS)) / 2
    an = float(np.sum(grad * dS) * p.dt)
    assert abs(fd - an) / abs(an) < 1e-6


def test_full_chain_adjoint_against_finite_differences(greece):
    """Through processing (rotation, filter, resampling) the adjoint source written for SPECFEM
    predicts the misfit change of a perturbation of the raw N/E/Z synthetics."""
    ev, sta, by, syn, m = greece
    p = m.prepared
    rng = np.random.default_rng(3)
    pert = syn.copy()
    for tr in pert:
        tr.data = tr.data.astype(float)
    base = syn.copy()
    dsyn = {}
    for tr in pert:
        code = f"{tr.stats.network}.{tr.stats.station}"
        # smooth random perturbation in the band: filtered noise
        noise = obspy.Trace(rng.standard_normal(tr.stats.npts), header=tr.stats)
        noise.filter("bandpass", freqmin=1 / 40, freqmax=1 / 10, corners=2, zerophase=True)
        d = noise.data / np.abs(noise.data).max() * np.abs(tr.data).max() * 1e-3
        dsyn[(code, tr.stats.channel[-1])] = d
    def shifted(sign):
        st = base.copy()
        for tr in st:
            tr.data = tr.data + sign * dsyn[(f"{tr.stats.network}.{tr.stats.station}",
                                             tr.stats.channel[-1])]
        return st
    chi0 = p.misfit(base)
    fd = (p.misfit(shifted(+1)) - p.misfit(shifted(-1))) / 2
    an = 0.0
    for code, a in m.adjoint.items():
        dt = float(np.diff(m.adjoint_times[code][:2])[0])
        for i, c in enumerate("NEZ"):
            an += float(np.sum(a[i] * dsyn[(code, c)]) * dt)
    assert np.isclose(chi0, m.misfit)
    assert abs(fd - an) / abs(fd) < 0.05


def test_adjoint_files_cover_every_measured_station(greece):
    m = greece[-1]
    assert set(m.adjoint) == {s.code for s in greece[1]}
    for code, a in m.adjoint.items():
        assert a.shape == (3, m.adjoint_times[code].size) and np.all(np.isfinite(a))


# ---------------------------------------------------------------- windows and travel times
@pytest.mark.parametrize("depth", [12.0, 92.4, 607.4])
def test_travel_times_match_direct_taup_far_below_a_sample(depth):
    phases = ["P", "pP", "sP", "PP", "S", "sS", "SS", "ScS"]
    tt = TravelTimes("ak135", depth, phases)
    d = np.random.default_rng(0).uniform(1, 120, 40)
    model = TauPyModel("ak135")
    worst = 0.0
    for i, dist in enumerate(d):
        direct = model.get_travel_times(depth, dist, phases)
        for ph in phases:
            mine = tt.times(ph, np.array([dist]))[0]
            t = [a.time for a in direct if a.name == ph]
            if t:
                worst = max(worst, abs(min(t) - mine))
            else:
                assert np.isnan(mine), (ph, dist)
    assert worst < 0.01     # one sample at 10 Hz is 0.1 s


def test_travel_times_equal_every_segment_evaluated():
    """TravelTimes.times evaluates each ray segment only at the distances inside it: bit for bit
    the minimum over all segments of the dense (stations × segments) Hermite evaluation, with
    the antipodal branch, triplications (PKP) and distances outside every branch (NaN)."""
    d = np.concatenate([np.random.default_rng(1).uniform(0, 180, 500), [0.0, 180.0, 97.0]])
    for depth in (12.0, 600.0):
        tt = TravelTimes("ak135", depth, ["P", "s", "PKP", "SS", "Pdiff"])
        for ph in ("P", "s", "PKP", "SS", "Pdiff"):
            d0, d1, t0, t1, p0, p1 = tt._rays[ph]
            lo, hi, h = np.minimum(d0, d1), np.maximum(d0, d1), d1 - d0
            best = np.full(d.size, np.inf)
            for x in (np.radians(d), 2 * np.pi - np.radians(d)):
                xx = x[:, None]
                inside = (xx >= lo) & (xx <= hi)
                s = np.where(inside, (xx - d0) / h, 0.0)
                v = ((2 * s**3 - 3 * s**2 + 1) * t0 + (s**3 - 2 * s**2 + s) * p0 * h
                     + (-2 * s**3 + 3 * s**2) * t1 + (s**3 - s**2) * p1 * h)
                best = np.minimum(best, np.where(inside, v, np.inf).min(axis=1, initial=np.inf))
            best[~np.isfinite(best)] = np.nan
            got = tt.times(ph, d)
            assert np.array_equal(got, best, equal_nan=True), (depth, ph)
            assert np.isfinite(got).sum() > 5 and (ph != "PKP" or np.isnan(got).sum() > 20)


def test_window_times_follow_taup(darfield):
    ev, sta, *_, m = darfield
    t = m.table[(m.table.category == "sh") & (m.table.status == "ok")].iloc[0]
    dist = t.distance_deg
    ss = min(a.time for a in TauPyModel("ak135").get_travel_times(ev.depth_km, dist, ["SS"]))
    v = params.defaults()
    assert abs(t.win_start - (ss - v["body_window_before"])) < 0.1 + 1e-6
    assert abs(t.win_end - (ss + v["body_window_after"])) < 0.1 + 1e-6
    sw = m.table[m.table.category == "rayleigh_z"].iloc[0]
    dkm = dist * 111.19492664455873
    assert abs(sw.win_start - (dkm / 4.6 - 50)) < 0.1 + 1e-6
    assert abs(sw.win_end - (dkm / 3.3 + 50)) < 0.1 + 1e-6


def test_deep_event_gets_no_surface_windows(tmp_path):
    ev = event_from_file(str(OKH / "quake.xml"))
    assert ev.depth_km > 150
    obs = obspy.read(str(OKH / "TA.POKR..BH?.mseed"))
    inv = obspy.read_inventory(str(OKH / "TA.POKR..BH_.xml"))
    ch = inv[0][0]
    sta = [Station("TA", "POKR", ch.latitude, ch.longitude)]
    # synthetics: the observed displacement itself, as SPECFEM would write it (N, E, Z)
    disp = displacement_as_specfem(obs, inv)
    m = measure_event(ev, sta, {"TA.POKR": obs}, disp, Config(params.defaults(), 1), inventory=inv)
    t = m.table
    surf = t[t.band == "surface"]
    assert len(surf) == 3 and (surf.status == "rejected").all()
    assert surf.reason.str.contains("deeper than 150").all()
    ok = t[t.status == "ok"]
    assert len(ok) > 0 and (ok.nzcc > 0.999).all()     # same data on both sides


# ---------------------------------------------------------------- weights
@pytest.mark.parametrize("lo, hi", [(0.5, 0.7), (10.0, 15.0), (8.0, 10.0)])
def test_cosine_tapers_are_continuous_at_both_ends(lo, hi):
    eps = 1e-9
    assert cosine_ramp(lo - eps, lo, hi) == 0 and cosine_ramp(lo + eps, lo, hi) < 1e-12
    assert cosine_ramp(hi + eps, lo, hi) == 1 and 1 - cosine_ramp(hi - eps, lo, hi) < 1e-12
    assert np.isclose(cosine_ramp((lo + hi) / 2, lo, hi), 0.5)


def test_quality_weight_thresholds():
    f1, f2, f3, w = quality_weight(np.array([0.4, 0.6, 0.9, 0.9]), np.array([20, 20, 12.5, 20.]),
                                   np.array([0, 0, 0, 9.0]), (0.5, 0.7), (10, 15), (8, 10))
    assert f1[0] == 0 and np.isclose(f1[1], 0.5) and f1[2] == 1
    assert np.isclose(f2[2], 0.5) and np.isclose(f3[3], 0.5)
    assert np.allclose(w, f1 * f2 * f3)


def test_geographic_weights_one_colocated_and_delta0():
    w, d0 = geographic_weights([10.0], [20.0], (0.5, 8), 64, 1 / 3)
    assert w.tolist() == [1.0]
    # two stations at the same place and one far away: the pair shares the weight of one station
    w, d0 = geographic_weights([10.0, 10.0, 40.0], [20.0, 20.0, 60.0], (0.5, 8), 64, 1 / 3,
                               delta0=2.0)
    assert np.isclose(w[0], w[1]) and np.isclose(w[2] / w[0], 2.0, rtol=1e-6)
    assert np.isclose(w.mean(), 1.0)
    # a regular network (1.5 deg spacing) with a dense cluster of 30 stations
    rng = np.random.default_rng(2)
    la, lo = np.meshgrid(30 + np.arange(0, 12, 1.5), 100 + np.arange(0, 12, 1.5))
    lat = np.r_[rng.normal(35, 0.2, 30), la.ravel()]
    lon = np.r_[rng.normal(105, 0.2, 30), lo.ravel()]
    w, d0 = geographic_weights(lat, lon, (0.5, 8), 64, 1 / 3)
    assert 0.5 < d0 < 8.0
    _, xs, ratio = choose_delta0(separations_deg(lat, lon), (0.5, 8), 64, 1 / 3)
    k = int(np.argmax(ratio))
    assert d0 > xs[k]                              # on the large-delta0 side of the maximum
    wd = geographic_weights(lat, lon, (0.5, 8), 64, 1 / 3, delta0=d0)[0]
    assert np.isclose(wd.max() / wd.min(), ratio[k] / 3, rtol=0.02)
    assert w[:30].mean() < 0.3 * w[30:].mean()     # the cluster is down-weighted


# ---------------------------------------------------------------- processing
def test_processing_equals_a_direct_obspy_chain(darfield):
    ev, sta, obs, inv, syn, m = darfield
    v = params.defaults()
    baz = m.table.backazimuth.iloc[0]
    band = Band(10.0, 40.0)
    pre = response_prefilter([Band(10, 40), Band(40, 120)], 20.0)
    ours = prepare_observed(obs, inv, baz, pre, v["taper_fraction"], v["response_water_level"])
    axis = common_axis(ours, syn, 10.0, ev.time)
    mine = filter_and_resample(ours, band, axis, 2)
    d = obs.copy()
    d.detrend("demean"); d.detrend("linear"); d.taper(0.05, type="cosine")
    d.remove_response(inventory=inv, output="DISP", pre_filt=pre, water_level=60.0)
    d.rotate("->ZNE", inventory=inv); d.rotate("NE->RT", back_azimuth=baz)
    d.filter("bandpass", freqmin=1 / 40, freqmax=1 / 10, corners=2, zerophase=True)
    d.interpolate(10.0, starttime=axis.starttime, npts=axis.npts)
    for i, c in enumerate("ZRT"):
        ref = d.select(component=c)[0].data
        assert np.allclose(mine[i], ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_vectorized_interpolation_equals_obspy_per_trace(darfield):
    """weighted_average_slopes_rows against obspy's weighted_average_slopes trace by trace: real
    records and white noise (sign changes at most samples), starts on and off the old grid, a
    new axis ending exactly at the last old sample, one of a single sample; an all-zero row gives
    zeros where obspy gives NaN."""
    from obspy.signal.interpolation import weighted_average_slopes
    from seisflows_eara.processing.chain import weighted_average_slopes_rows
    ev, sta, obs, inv, syn, m = darfield
    rng = np.random.default_rng(3)
    n = 400
    data = np.vstack([np.asarray(tr.data[:n], float) for tr in obs[:3]]
                     + [rng.standard_normal(n), np.zeros(n)])
    old_dt, t0 = 0.5, 1.3e9 + 0.25
    starts = t0 + np.array([0.0, 0.05, 3.7, 12.0, 0.0])
    new_dt = 0.1
    npts = np.array([1996, 11, 1, int(round((t0 + (n - 1) * old_dt - starts[3]) / new_dt)) + 1, 500])
    ys = weighted_average_slopes_rows(data, np.full(5, t0), old_dt, starts, new_dt, npts)
    for r in range(4):
        ref = weighted_average_slopes(data[r], t0, old_dt, starts[r], new_dt, int(npts[r]))
        np.testing.assert_array_equal(ys[r], ref)           # the same arithmetic
    with np.errstate(invalid="ignore", divide="ignore"):    # obspy's NaN for an all-zero row
        ref = weighted_average_slopes(data[4], t0, old_dt, starts[4], new_dt, 500)
    assert np.isnan(ref).any() and not np.any(ys[4])
    with pytest.raises(ValueError, match="XX.STA..BHZ: the new axis"):
        weighted_average_slopes_rows(data[:1], np.full(1, t0), old_dt, starts[:1] - 1.0, new_dt,
                                     npts[:1], ["XX.STA..BHZ"])


def test_cross_correlation_lag_sign_and_subsample():
    t = np.arange(2000) * 0.1
    s = np.exp(-((t - 80) / 5) ** 2)
    u = np.exp(-((t - 82.34) / 5) ** 2)         # observed 2.34 s later
    cc, lag = cc_and_lag(s[None], u[None])
    assert abs(lag[0] * 0.1 - 2.34) < 0.01 and cc[0] > 0.999


# ---------------------------------------------------------------- table and bad input
def test_table_columns_and_reasons(greece):
    t = greece[-1].table
    assert list(t.columns) == COLUMNS
    assert (t[t.status == "rejected"].reason.str.len() > 0).all()
    assert (t[t.status == "ok"].reason.fillna("") == "").all()
    assert np.isclose(t.misfit.sum(), greece[-1].misfit)
    ok = t[t.status == "ok"]
    assert np.allclose(ok.weight, ok.w_category * ok.w_geographic * ok.w_quality)


def test_bad_traces_are_rejected_with_reasons(greece):
    ev, sta, by, syn, _ = greece
    by = {k: v.copy() for k, v in by.items()}
    codes = [s.code for s in sta]
    by[codes[0]] = by[codes[0]].select(component="Z")           # missing components
    for tr in by[codes[1]]:
        tr.data[100] = np.nan                                     # NaN
    for tr in by[codes[2]]:
        tr.data[:] = 0.0                                          # all zero
    del by[codes[3]]                                              # no data at all
    short = syn.copy()
    for tr in short.select(station=sta[4].station):
        tr.data = tr.data[:20]                                    # shorter than a window
    m = measure_event(ev, sta, by, short, Config(params.defaults(), 1), observed_processed=True)
    t = m.table
    reason = {c: " ".join(t[(t.network + "." + t.station) == c].reason.astype(str)) for c in codes}
    assert "three components" in reason[codes[0]] or "Z, N, E" in reason[codes[0]] \
        or "components" in reason[codes[0]]
    assert "NaN" in reason[codes[1]]
    assert "flat" in reason[codes[2]]
    assert "no observed data" in reason[codes[3]]
    assert "outside the record" in reason[codes[4]] or "shorter" in reason[codes[4]] \
        or "overlap" in reason[codes[4]]
    assert (t[(t.network + "." + t.station) == codes[5]].status == "ok").any()   # the rest goes on


def test_missing_response_is_rejected(darfield):
    ev, sta, obs, inv, syn, _ = darfield
    empty = obspy.Inventory(networks=[], source="test")
    m = measure_event(ev, sta, {"IU.KBL": obs}, syn, Config(params.defaults(), 1), inventory=empty)
    assert "response" in m.table.reason.iloc[0]


def test_zero_energy_window_is_rejected(greece, monkeypatch):
    """A window with no energy has no NZCC: the row says so, the adjoint is zero, the rest goes on."""
    import seisflows_eara.measure.event as ev_mod
    ev, sta, by, syn, _ = greece
    real = ev_mod.nzcc_misfit_and_adjoint

    def silence_first(S, U, taper, dt, offsets=None):
        U = U.copy()
        U[offsets[0]:offsets[1]] = 0.0          # the first window of the flat layout
        return real(S, U, taper, dt, offsets=offsets)
    monkeypatch.setattr(ev_mod, "nzcc_misfit_and_adjoint", silence_first)
    m = measure_event(ev, sta, by, syn, Config(params.defaults(), 1), observed_processed=True)
    measured = m.table[m.table.nzcc.notna() | m.table.reason.str.contains("zero energy")]
    assert measured.reason.str.contains("zero energy in window").sum() == 1
    assert (m.table.status == "ok").sum() > 5


# ---------------------------------------------------------------- the command
def _cli(*args):
    exe = Path(sys.executable).parent / "seisflows-eara"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


def _measure_greece(out: Path):
    """`seisflows-eara measure` on the Greece event (SPECFEM synthetics), stage 2, into `out`."""
    return _cli("measure", "--config", str(REPO / "parameters.yaml"), "--cmtsolution",
                str(GRC / "CMTSOLUTION"), "--stations", str(GRC / "STATIONS"), "--observed",
                str(GRC / "REF_SEIS"), "--synthetics", str(GRC / "tiny_1d"), "--stage", "2",
                "--output", str(out))


def test_measure_command_on_real_events(tmp_path):
    out = tmp_path / "darfield"
    stations = tmp_path / "STATIONS"
    stations.write_text("KBL IU 34.5408 69.0432 1920.0 0.0\n")
    r = _cli("measure", "--config", str(REPO / "parameters.yaml"), "--cmtsolution",
             str(DARF / "C201009031635A.xml"), "--stations", str(stations), "--observed",
             str(DARF / "IU.KBL.obs.mseed"), "--stationxml", str(DARF / "IU.KBL.xml"),
             "--synthetics", str(DARF / "IU.KBL.syn.mseed"), "--stage", "1", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert "windows kept" in r.stdout and "total misfit" in r.stdout
    t = pd.read_csv(out / "measurements.csv")
    assert list(t.columns) == COLUMNS and (t.status == "ok").sum() >= 5
    adj = np.loadtxt(out / "SEM" / "IU.KBL.MXZ.adj")
    assert adj.shape[1] == 2 and np.abs(adj[:, 1]).max() > 0
    out2 = tmp_path / "greece"
    r = _measure_greece(out2)
    assert r.returncode == 0, r.stderr
    assert len(list((out2 / "SEM").glob("*.adj"))) == 18
    assert (out2 / "SEM" / "STATIONS_ADJOINT").read_text().count("\n") == 6


def test_measure_command_names_a_corrupt_file(tmp_path):
    bad = tmp_path / "obs"
    bad.mkdir()
    (bad / "IU.KBL.BHZ.mseed").write_bytes(b"\x00garbage" * 100)
    stations = tmp_path / "STATIONS"
    stations.write_text("KBL IU 34.5408 69.0432 1920.0 0.0\n")
    r = _cli("measure", "--config", str(REPO / "parameters.yaml"), "--cmtsolution",
             str(DARF / "C201009031635A.xml"), "--stations", str(stations), "--observed", str(bad),
             "--synthetics", str(DARF / "IU.KBL.syn.mseed"), "--stage", "1", "--output",
             str(tmp_path / "o"))
    # a bad file never stops the event (issue 17): exit 0, the file and the station named in rows
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(tmp_path / "o" / "measurements.csv", keep_default_na=False)
    assert (t.status == "rejected").all() and t.files.str.contains("IU.KBL.BHZ.mseed").any()
    assert t.reason.str.contains("IU.KBL.BHZ.mseed").all()      # file row and station row


@pytest.mark.parametrize("kind", ["cc_traveltime", "multitaper"])
def test_misfit_parameter_swaps_in_pyadjoint_on_the_same_windows(greece, kind):
    ev, sta, by, syn, nz = greece
    v = params.defaults()
    v["misfit"] = kind
    m = measure_event(ev, sta, by, syn, Config(v, 1), observed_processed=True)
    a, b = nz.table, m.table
    assert (a.win_start.fillna(-1).values == b.win_start.fillna(-1).values).all()
    ok = (a.status == "ok") & (b.status == "ok")
    assert ok.sum() >= 5
    assert np.allclose(a.w_geographic[ok], b.w_geographic[ok])
    assert not np.allclose(a.misfit[ok], b.misfit[ok])       # a different measure
    assert np.isclose(b.misfit.sum(), m.misfit) and m.misfit > 0
    assert np.isclose(m.prepared.misfit(syn), m.misfit)


def test_pyadjoint_adjoint_orientation_matches_finite_differences():
    from seisflows_eara.misfit.alternatives import pyadjoint_misfit_and_adjoint
    t = np.arange(800) * 0.1
    s = np.exp(-((t - 40) / 6) ** 2) * np.sin(2 * np.pi * t / 12)
    u = 0.8 * np.exp(-((t - 41.5) / 6) ** 2) * np.sin(2 * np.pi * (t - 1.5) / 12)
    d = np.exp(-((t - 40) / 6) ** 2) * np.sin(2 * np.pi * t / 12 + 0.3) * 1e-4
    args = (np.array([800]), 0.1, "waveform", np.array([10.0]), np.array([40.0]), 0.1)
    _, adj = pyadjoint_misfit_and_adjoint(s[None], u[None], *args)
    fd = (pyadjoint_misfit_and_adjoint((s + d)[None], u[None], *args)[0]
          - pyadjoint_misfit_and_adjoint((s - d)[None], u[None], *args)[0]) / 2
    assert np.isclose(fd[0], np.sum(adj * d) * 0.1, rtol=1e-6)


def test_measure_command_keeps_the_table_in_asdf(tmp_path):
    """measurements.h5: the table as ASDF auxiliary data (lossless CSV) with the event as QuakeML."""
    import pyasdf
    from seisflows_eara.io.asdf_table import DATA_TYPE, read_table_asdf
    out = tmp_path / "greece"
    r = _measure_greece(out)
    assert r.returncode == 0, r.stderr
    csv = pd.read_csv(out / "measurements.csv")
    table, par = read_table_asdf(out / "measurements.h5", csv.event.iloc[0], 2)
    assert list(table.columns) == list(csv.columns) and len(table) == len(csv)
    ok = csv.status == "ok"
    np.testing.assert_allclose(table.nzcc[ok], csv.nzcc[ok], rtol=1e-5)
    assert par["stage"] == 2 and par["windows_kept"] == int(ok.sum()) and par["format"] == "csv"
    assert par["misfit"] == pytest.approx(csv.misfit.sum(), rel=1e-4)
    with pyasdf.ASDFDataSet(str(out / "measurements.h5"), mode="r") as ds:
        assert DATA_TYPE in ds.auxiliary_data.list() and len(ds.events) == 1


def test_interpolation_of_a_short_axis_in_a_long_record_equals_obspy(darfield):
    """weighted_average_slopes_rows computes slopes only where the new axes reach: a 60-s axis in
    the middle of the 105-min KBL record gives obspy's numbers exactly (and at both record ends)."""
    from obspy.signal.interpolation import weighted_average_slopes
    from seisflows_eara.processing.chain import weighted_average_slopes_rows
    ev, sta, obs, inv, syn, m = darfield
    data = np.vstack([np.asarray(tr.data, float) for tr in obs])
    dt, t0 = obs[0].stats.delta, obs[0].stats.starttime.timestamp
    end = t0 + (data.shape[1] - 1) * dt
    for starts, k in ((t0 + np.array([3000.013, 3000.5, 3001.0]), 600),
                      (np.array([t0, t0 + 1.0, end - 60.0]), 600)):
        ys = weighted_average_slopes_rows(data, np.full(3, t0), dt, starts, 0.1, np.full(3, k))
        for r in range(3):
            ref = weighted_average_slopes(data[r], t0, dt, starts[r], 0.1, k)
            np.testing.assert_array_equal(ys[r], ref)


def test_cached_bandpass_design_is_obspys_bandpass_bit_for_bit(darfield):
    """processing.bandpass.zerophase_bandpass = obspy.signal.filter.bandpass(zerophase=True) on a
    real record, bit for bit, in its own path and in the cases it hands to obspy (upper corner at
    Nyquist: obspy's high-pass with a warning)."""
    import warnings
    from obspy.signal.filter import bandpass
    from seisflows_eara.processing.bandpass import zerophase_bandpass
    obs = darfield[2]
    x = np.stack([tr.data.astype(np.float64) for tr in obs])
    df = obs[0].stats.sampling_rate
    for fmin, fmax, corners in ((1 / 40, 1 / 10, 2), (1 / 300, 1 / 100, 4), (0.5, df / 2, 2)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = bandpass(x, fmin, fmax, df=df, corners=corners, zerophase=True, axis=-1)
            got = zerophase_bandpass(x, fmin, fmax, df=df, corners=corners)
        assert np.array_equal(got, want), (fmin, fmax, corners)
