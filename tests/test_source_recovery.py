"""Source inversion on real physics without SPECFEM (issue 6, item 5): the real AxiSEM PREM
Green's-function database of ../shared/fixtures/instaseis_prem_100s read by instaseis.

1. The provider's src_frechet (adjoint sources of the measurement core × strain Green's functions
   and location/time derivatives) against finite differences of the re-measured misfit.
2. The eq. (B3) misfit of ExtrapolatedMisfit against the measurement core on shifted, extrapolated
   synthetics.
3. Recovery: "observed" = synthetics of a real GCMT solution (Darfield 2010, QuakeML fixture) at
   real stations plus a ring; start from a perturbed source (axes rotated 10°, ×1.2, centroid
   moved 9.8 km, origin +2 s); 3 full iterations (gradient -> trial forward at ε -> BO on
   extrapolated synthetics -> update) with the EARA line-search parameters.
Bands suited to the 100-s database (its spectrum falls by 20× from 150 s to 50 s): body 60-200 s,
surface 60-250 s; processed at 1 Hz (the database's own sampling is 24.7 s).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import obspy
import pytest

from conftest import shared_fixture
from seisflows_eara import params
from seisflows_eara.io.cmtsolution import (CMTSource, SourceHistory, from_obspy_event,
                                           read_cmtsolution, write_cmtsolution)
from seisflows_eara.io.stations import Station, read_stations
from seisflows_eara.measure import Config, measure_event
from seisflows_eara.source import (ExtrapolatedMisfit, centroid_offset, event_info, homogeneity_ratio,
                                   invert_source, line_search_update, move_centroid, prepare_trial,
                                   update_from_files)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
#: instaseis output sampling (s) = processing rate: resampling between them is the identity
DT = 1.0
#: central-difference step of the provider's location derivatives (m)
LOCATION_STEP = 250.0


def _values() -> dict:
    v = params.defaults()
    v["sampling_rate"] = 1.0 / DT
    v["stage_body_bands"] = [[60.0, 200.0]] * 3
    v["stage_surface_bands"] = [[60.0, 250.0]] * 3
    return v


@pytest.fixture(scope="module")
def provider():
    from seisflows_eara.source.instaseis_provider import InstaseisProvider
    db = shared_fixture("instaseis_prem_100s") / "100s_db_bwd_displ_only"
    return InstaseisProvider(db, DT, LOCATION_STEP)


def _ring(src: CMTSource, distances, step_deg: int) -> list[Station]:
    """Synthetic stations on circles around the epicentre (spherical trigonometry)."""
    out = []
    la, lo = np.radians(src.latitude), np.radians(src.longitude)
    for d in distances:
        for az in range(0, 360, step_deg):
            a, dd = np.radians(az + d / 3.0), np.radians(d)
            la2 = np.arcsin(np.sin(la) * np.cos(dd) + np.cos(la) * np.sin(dd) * np.cos(a))
            lo2 = lo + np.arctan2(np.sin(a) * np.sin(dd) * np.cos(la), np.cos(dd) - np.sin(la) * np.sin(la2))
            out.append(Station("XR", f"D{int(d):02d}{az // 10:02d}", round(float(np.degrees(la2)), 4),
                               round(float((np.degrees(lo2) + 180.0) % 360.0 - 180.0), 4)))
    return out


def _perturbed(true: CMTSource, rotation_deg: float) -> CMTSource:
    """Principal axes rotated about an oblique axis, ×1.2, centroid 6 km E, 6 km S, 5 km deeper,
    origin +2 s — as SPECFEM would read it."""
    ax = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    k = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    th = np.radians(rotation_deg)
    r = np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * k @ k
    m = 1.2 * r @ true.tensor @ r.T
    lat, lon, depth = move_centroid(true.latitude, true.longitude, true.depth, 6000.0, -6000.0, 5000.0)
    return true.with_values(moment=[m[0, 0], m[1, 1], m[2, 2], m[0, 1], m[0, 2], m[1, 2]],
                            latitude=lat, longitude=lon, depth=depth,
                            time_shift=true.time_shift + 2.0).rounded()


def errors(true: CMTSource, src: CMTSource) -> dict[str, float]:
    """Per-parameter errors: angle between the moment tensors (deg, Frobenius), scalar-moment ratio,
    centroid offset (km: horizontal, depth, 3-D), centroid-time error (s)."""
    a, b = true.tensor.ravel(), src.tensor.ravel()
    ang = np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))
    off = centroid_offset(true, src) / 1000.0
    return dict(mt_angle_deg=float(ang), m0_ratio=src.scalar_moment / true.scalar_moment,
                horizontal_km=float(np.hypot(off[0], off[1])), depth_km=float(off[2]),
                location_km=float(np.linalg.norm(off)),
                time_s=float(src.centroid_time - true.centroid_time))


class Setup:
    """Observed data of `true` at `stations`, and the measurement of any source against them."""

    def __init__(self, provider, true: CMTSource, stations: list[Station], trim: float = 0.0):
        self.provider, self.true, self.stations = provider, true, stations
        obs = provider.synthetics(true, stations)
        self.observed = {}
        for s in stations:
            o = obs.select(network=s.network, station=s.station).copy()
            for tr in o:
                tr.stats.channel = "LX" + tr.stats.channel[-1]
                if trim:
                    tr.trim(tr.stats.starttime + trim, tr.stats.endtime - trim)
            self.observed[s.code] = o
        self.values = _values()
        self.cfg = Config(self.values, 1)

    def forward(self, src: CMTSource) -> obspy.Stream:
        return self.provider.synthetics(src, self.stations)

    def measure(self, src: CMTSource, syn: obspy.Stream):
        return measure_event(event_info(src), self.stations, self.observed, syn, self.cfg,
                             observed_processed=True)

    def frechet(self, src: CMTSource, m):
        return self.provider.frechet(src, self.stations, m.adjoint, m.adjoint_times)


@pytest.fixture(scope="module")
def darfield() -> CMTSource:
    return from_obspy_event(obspy.read_events(str(DATA / "pytomo3d_darfield" / "C201009031635A.xml"))[0])


@pytest.fixture(scope="module")
def fd_case(provider, darfield):
    """Small case for the derivative checks: 16 ring stations at 20° and 30° (windows end before
    the records' end tapers), observed trimmed by 20 s so the core can shift synthetics ±5 s."""
    stations = _ring(darfield, (20.0, 30.0), 45)
    setup = Setup(provider, darfield, stations, trim=20.0)
    start = _perturbed(darfield, 10.0)
    syn = setup.forward(start)
    m = setup.measure(start, syn)
    g = setup.frechet(start, m)
    return setup, start, syn, m, g


def test_provider_src_frechet_against_finite_differences(fd_case):
    """∂χ/∂M (6), ∂χ/∂X (3) and ∂χ/∂t_shift from the adjoint sources agree with central differences
    of the misfit re-measured on the frozen windows: < 1e-3 of each block's norm."""
    setup, start, syn, m, g = fd_case
    p = m.prepared
    assert m.misfit > 0 and (m.table.status == "ok").sum() > 50

    def chi(src):
        return p.misfit(setup.forward(src))

    assert homogeneity_ratio(g, start) < 1e-10       # NZCC: Σ M ∂χ/∂M = 0 exactly
    h = 1e-3 * start.scalar_moment
    fd_m = np.array([(chi(start.with_values(moment=start.moment_tensor + h * e)) -
                      chi(start.with_values(moment=start.moment_tensor - h * e))) / (2 * h)
                     for e in np.eye(6)])
    hx = 500.0

    def moved(offset):
        lat, lon, depth = move_centroid(start.latitude, start.longitude, start.depth, *offset)
        return start.with_values(latitude=lat, longitude=lon, depth=depth)
    fd_x = np.array([(chi(moved(hx * e)) - chi(moved(-hx * e))) / (2 * hx) for e in np.eye(3)])
    ht = 0.2
    fd_t = (p.misfit(syn, time_shift=ht) - p.misfit(syn, time_shift=-ht)) / (2 * ht)
    err_m = np.abs(fd_m - g.moment).max() / np.linalg.norm(g.moment)
    err_x = np.abs(fd_x - g.location).max() / np.linalg.norm(g.location)
    err_t = abs(fd_t - g.time_shift) / abs(g.time_shift)
    print(f"\nsrc_frechet vs FD: moment {err_m:.2e}, location {err_x:.2e}, time {err_t:.2e}")
    assert err_m < 1e-3 and err_x < 1e-3 and err_t < 1e-3


def test_extrapolated_misfit_matches_the_measurement_core(fd_case):
    """χ(α, Δ) from the precomputed correlations = the core re-measuring s0 + (α/ε)(s_ε − s0)
    delayed by Δ: to rounding at whole samples, to the interpolation (< 1e-4) in between; the
    Fourier-shift segments path agrees likewise."""
    setup, start, syn, m, g = fd_case
    v = setup.values
    trial, _ = prepare_trial(start, g, v)
    s_eps = setup.forward(trial)
    eps = v["source_trial_step"]
    em = ExtrapolatedMisfit(m.prepared, syn, s_eps, eps, tuple(v["source_time_shift_bounds"]),
                            keep_traces=True)

    def core(alpha, shift):
        st = syn.copy()
        for tr, te in zip(st, s_eps):
            assert tr.id == te.id
            tr.data = tr.data + alpha / eps * (te.data - tr.data)
        return m.prepared.misfit(st, time_shift=shift)

    assert em(0.0, 0.0) == pytest.approx(m.misfit, rel=1e-12)
    for a, t in ((0.01, 0.0), (0.03, -2.0), (0.05, 4.0), (0.0, -5.0)):
        assert em(a, t) == pytest.approx(core(a, t), rel=1e-10)
    for a, t in ((0.02, 2.37), (0.045, -4.61), (0.013, 0.5)):
        c = core(a, t)
        assert em(a, t) == pytest.approx(c, rel=1e-4)
        assert m.prepared.misfit_from_segments(em.segments(a, t)) == pytest.approx(c, rel=1e-4)
    with pytest.raises(ValueError, match="outside the bounds"):
        em(0.01, 5.5)
    # W_c per event (eq. 9) even when the PreparedEvent carries the structure misfit's all-event W_c
    other = copy.copy(m.prepared)
    other.set_weights(m.prepared.weights, m.prepared.categories, wc=np.full(len(other.windows), 0.123))
    assert ExtrapolatedMisfit(other, syn, s_eps, eps, (-1.0, 1.0))(0.0, 0.0) == \
        pytest.approx(m.misfit, rel=1e-12)
    # another misfit on the same windows (pyadjoint cc_traveltime): the segments path
    cc = copy.copy(m.prepared)
    cc.cfg = Config({**v, "misfit": "cc_traveltime"}, 1)
    em_cc = ExtrapolatedMisfit(cc, syn, s_eps, eps, (-2.0, 2.0))
    st = syn.copy()
    for tr, te in zip(st, s_eps):
        tr.data = tr.data + 3.0 * (te.data - tr.data)
    assert em_cc(3.0 * eps, -1.0) == pytest.approx(cc.misfit(st, time_shift=-1.0), rel=1e-6)


def test_line_search_failure_names_event_and_keeps_source(fd_case, tmp_path):
    """Trial synthetics missing a station: the event keeps its source (written as its next
    CMTSOLUTION, recorded in the history), the reason names the event and the station; with the
    complete synthetics the same files give an accepted step."""
    setup, start, syn, m, g = fd_case
    trial, _ = prepare_trial(start, g, setup.values)
    s_eps = setup.forward(trial)
    write_cmtsolution(tmp_path / "start", start)
    write_cmtsolution(tmp_path / "trial", trial)
    history = SourceHistory(tmp_path / "history")
    broken = s_eps.copy()
    gone = setup.stations[3]
    for tr in broken.select(network=gone.network, station=gone.station):
        broken.remove(tr)
    up = line_search_update(start.event_name, m.prepared, syn, broken, start, trial, setup.values)
    assert up.status == "failed" and up.source is start
    assert f"event {start.event_name}" in up.reason and gone.code in up.reason
    out = update_from_files(start.event_name, m.prepared, syn, broken, tmp_path / "start",
                            tmp_path / "trial", tmp_path / "next", setup.values, history, "it01")
    assert out["status"] == "failed" and read_cmtsolution(tmp_path / "next") == start
    assert history.rows()[-1]["status"] == "failed" and gone.code in history.rows()[-1]["reason"]
    out = update_from_files(start.event_name, m.prepared, syn, s_eps, tmp_path / "start",
                            tmp_path / "trial", tmp_path / "next", setup.values, history, "it01")
    assert out["status"] == "updated" and out["misfit"] < out["misfit0"] == pytest.approx(m.misfit)
    assert read_cmtsolution(tmp_path / "next") != start
    assert [r["status"] for r in history.rows()] == ["updated"]


def _run_recovery(provider, true, stations, rotation_deg, tmp_path):
    setup = Setup(provider, true, stations)
    start = _perturbed(true, rotation_deg)
    history = SourceHistory(tmp_path / true.event_name)
    records, final, final_misfit = invert_source(start, setup.forward, setup.measure, setup.frechet,
                                                 setup.values, 3, history)
    sources = [start] + [r.update.source for r in records]
    synthetics = [setup.forward(s) for s in sources]
    p0 = setup.measure(start, synthetics[0]).prepared
    frozen0 = [p0.misfit(s) for s in synthetics]               # iteration 0's windows and weights
    own = [r.update.line_search for r in records]
    actual = [rec_m.prepared.misfit(synthetics[i + 1]) for i, rec_m in
              enumerate(setup.measure(r.source, synthetics[i]) for i, r in enumerate(records))]
    report = dict(event=true.event_name, stations=len(stations), rotation_deg=rotation_deg,
                  iterations=[dict(iteration=r.iteration, misfit_remeasured=r.misfit,
                                   misfit_initial_windows=frozen0[i],
                                   misfit_after_step_same_windows=actual[i],
                                   predicted=own[i].misfit, alpha=own[i].alpha,
                                   origin_time_change=own[i].origin_time_change,
                                   sigma_m=r.step.sigma_m, sigma_x_m=r.step.sigma_x,
                                   status=r.update.status, errors_before=errors(true, r.source))
                              for i, r in enumerate(records)],
                  final=dict(misfit_remeasured=final_misfit, misfit_initial_windows=frozen0[-1],
                             errors=errors(true, final)))
    print("\n" + json.dumps(report, indent=1))
    return records, sources, frozen0, actual, report, history


def test_source_inversion_recovers_a_perturbed_gcmt_source(provider, darfield, tmp_path):
    """Darfield 2010 (GCMT), 9 real stations of specfem_data/STATIONS + 36 ring stations at 15°,
    25°, 35°; start: axes rotated 10° (10.7° between tensors), ×1.2, centroid 9.8 km off, +2 s.
    Every iteration lowers the misfit (on its own windows, and on the initial windows), and the
    moment-tensor angle, centroid location and time errors shrink. The scalar moment is invisible
    to NZCC (Σ M ∂χ/∂M = 0) and stays ×1.2."""
    stations = read_stations(REPO / "specfem_data" / "STATIONS") + _ring(darfield, (15.0, 25.0, 35.0), 30)
    records, sources, frozen0, actual, report, history = _run_recovery(
        provider, darfield, stations, 10.0, tmp_path)
    assert [r.update.status for r in records] == ["updated"] * 3
    for r, after in zip(records, actual):
        assert after < r.misfit                      # the step lowered the misfit it was chosen on
    assert all(b < a for a, b in zip(frozen0, frozen0[1:]))
    e0, e3 = errors(darfield, sources[0]), errors(darfield, sources[-1])
    assert e3["mt_angle_deg"] < 0.5 * e0["mt_angle_deg"]
    assert e3["location_km"] < 0.5 * e0["location_km"]
    assert abs(e3["time_s"]) < 0.2 * abs(e0["time_s"])
    assert abs(e3["m0_ratio"] - 1.2) < 0.05
    assert [r["tag"] for r in history.rows()] == ["it00", "it01", "it02", "it03"]
    assert read_cmtsolution(history.path("it03")) == sources[-1]


@pytest.mark.slow
def test_source_inversion_greece_large_rotation(provider, tmp_path):
    """Greece 2008 (the SPECFEM example's GCMT CMTSOLUTION), 9 real + 72 ring stations, axes
    rotated 10° (18° between tensors): the moment tensor dominates the misfit (χ 0.16 for the
    tensor alone against 0.03 for the centroid), and one α for both blocks overshoots the centroid
    (for a quadratic misfit α_M ≈ χ_M while α_X ≈ 2χ_X); misfit, tensor and time still improve."""
    true = read_cmtsolution(REPO / "specfem_data" / "CMTSOLUTION_200801060514A")
    stations = read_stations(REPO / "specfem_data" / "STATIONS") + _ring(true, (12.0, 20.0, 28.0, 35.0), 20)
    records, sources, frozen0, actual, report, _ = _run_recovery(provider, true, stations, 10.0,
                                                                 tmp_path)
    assert [r.update.status for r in records] == ["updated"] * 3
    assert all(b < a for a, b in zip(frozen0, frozen0[1:]))
    e0, e3 = errors(true, sources[0]), errors(true, sources[-1])
    assert e3["mt_angle_deg"] < 0.75 * e0["mt_angle_deg"]
    assert abs(e3["time_s"]) < 0.2 * abs(e0["time_s"])


def test_extrapolated_misfit_when_records_end_at_the_measurement_axis(provider, darfield):
    """Synthetics that end where the measurement axis ends (the axis covers only the span the
    windows can use, so the records are first cut to it): the core cannot delay the raw trace (no
    extrapolation); the eq. (B3) misfit is still defined (the processed record is zero beyond its
    ends) and matches at Δ = 0."""
    setup = Setup(provider, darfield, _ring(darfield, (20.0,), 90))
    syn = setup.forward(darfield)
    first = setup.measure(darfield, syn).prepared
    axes = first.axes
    for k, ax in axes.items():
        st = first.stations[k]
        for tr in syn.select(network=st.network, station=st.station):
            tr.trim(ax.starttime, ax.starttime + ax.dt * (ax.npts - 1))
    m = setup.measure(darfield, syn)
    assert all(ax.npts >= 0.9 * axes[k].npts for k, ax in m.prepared.axes.items())
    with pytest.raises(ValueError, match="not inside the record"):
        m.prepared.misfit(syn, time_shift=3.0)
    em = ExtrapolatedMisfit(m.prepared, syn, syn, 0.01, (-5.0, 5.0))
    assert em(0.03, 0.0) == pytest.approx(m.misfit, abs=1e-12)
    assert em(0.0, 3.0) > em(0.0, 0.0)
