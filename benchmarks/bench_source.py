"""Source line search throughput (SPEC §5; issue 6 item 7): one event, 2000 stations.

The line search evaluates the misfit of the eq. (B3) extrapolated synthetics at 29 points (EARA:
9 random + 20 Bayesian-optimization steps). Here on the real PREM Green's-function database of
shared/fixtures/instaseis_prem_100s: "observed" from the Greece 2008 GCMT source, s0 from a
perturbed source (as in tests/test_source_recovery.py), s_ε from the trial source along the
descent computed (provider src_frechet) on a subset of the stations; 2000 stations uniform in a
±30° box, 3 components, records 1484 s, processed at the default 10 samples/s, bands 60-200 s
(body) and 60-250 s (surface). Timed on one core (OMP/BLAS threads 1):
  precompute   ExtrapolatedMisfit: s0 and s_ε processed once on the extended axes, correlations;
  29 evals     the misfit at 29 (α, Δ) points;
  line search  bayesian_line_search with the EARA parameters (29 evaluations + the library's GP);
  baseline     the measurement core re-processing the combined synthetics for one (α, Δ)
               (PreparedEvent.misfit(stream, time_shift)), measured once in the same run, ×29.

Run: python benchmarks/bench_source.py [--stations 2000] [--gradient-stations 200]
"""
from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEISFLOWS_EARA_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO / "tests"))

from seisflows_eara import params  # noqa: E402
from seisflows_eara.io.cmtsolution import read_cmtsolution  # noqa: E402
from seisflows_eara.io.stations import Station  # noqa: E402
from seisflows_eara.measure import Config, measure_event  # noqa: E402
from seisflows_eara.source import (ExtrapolatedMisfit, bayesian_line_search, event_info,  # noqa: E402
                                   prepare_trial)
from seisflows_eara.source.instaseis_provider import InstaseisProvider  # noqa: E402
from test_source_recovery import _perturbed  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stations", type=int, default=2000)
    ap.add_argument("--gradient-stations", type=int, default=200)
    a = ap.parse_args()
    prov = InstaseisProvider(SHARED / "fixtures" / "instaseis_prem_100s" / "100s_db_bwd_displ_only",
                             1.0, 250.0)
    true = read_cmtsolution(REPO / "specfem_data" / "CMTSOLUTION_200801060514A")
    start = _perturbed(true, 10.0)
    rng = np.random.default_rng(0)
    lat = rng.uniform(true.latitude - 30, true.latitude + 30, a.stations)
    lon = rng.uniform(true.longitude - 30, true.longitude + 30, a.stations)
    stations = [Station("XX", f"S{i:04d}", float(x), float(y)) for i, (x, y) in enumerate(zip(lat, lon))]
    t = time.perf_counter()
    obs_st = prov.synthetics(true, stations)
    observed = {}
    for s in stations:
        o = obs_st.select(network=s.network, station=s.station)
        for tr in o:
            tr.stats.channel = "LX" + tr.stats.channel[-1]
        observed[s.code] = o
    s0 = prov.synthetics(start, stations)
    print(f"(instaseis: {a.stations} stations x 2 sources in {time.perf_counter() - t:.0f} s, not timed)")
    v = params.defaults()
    v["stage_body_bands"] = [[60.0, 200.0]] * 3
    v["stage_surface_bands"] = [[60.0, 250.0]] * 3
    t = time.perf_counter()
    m = measure_event(event_info(start), stations, observed, s0, Config(v, 1), observed_processed=True)
    p = m.prepared
    nwin = len(p.windows)
    print(f"(measurement: {nwin} windows, {int(p.lengths.sum())} window samples at "
          f"{v['sampling_rate']:g}/s, {time.perf_counter() - t:.0f} s, not timed)")
    sub = stations[:a.gradient_stations]
    g = prov.frechet(start, sub, {s.code: m.adjoint[s.code] for s in sub if s.code in m.adjoint},
                     m.adjoint_times)
    trial, _ = prepare_trial(start, g, v)
    s_eps = prov.synthetics(trial, stations)

    rss0 = rss_mb()
    t = time.perf_counter()
    em = ExtrapolatedMisfit(p, s0, s_eps, v["source_trial_step"], tuple(v["source_time_shift_bounds"]))
    t_pre = time.perf_counter() - t
    rss1 = rss_mb()
    pts = np.column_stack([rng.uniform(*v["source_step_bounds"], 29),
                           rng.uniform(*v["source_time_shift_bounds"], 29)])
    t = time.perf_counter()
    vals = [em(x, y) for x, y in pts]
    t_eval = time.perf_counter() - t
    t = time.perf_counter()
    ls = bayesian_line_search(em, v["source_step_bounds"], v["source_time_shift_bounds"],
                              v["source_bo_initial_points"], v["source_bo_iterations"],
                              v["source_bo_seed"], start.event_name,
                              v["source_bo_refinements"])
    t_ls = time.perf_counter() - t
    # baseline: the measurement core on the combined synthetics of one point
    x, y = pts[0]
    comb = s0.copy()
    for tr, te in zip(comb, s_eps):
        tr.data = tr.data + x / v["source_trial_step"] * (te.data - tr.data)
    t = time.perf_counter()
    ref = p.misfit(comb, time_shift=float(y))
    t_core = time.perf_counter() - t
    print(f"one event, {a.stations} stations, {nwin} windows:")
    print(f"  precompute (s0, s_eps processed once + correlations): {t_pre:.1f} s, "
          f"+{max(rss1 - rss0, 0):.0f} MB peak RSS")
    print(f"  29 misfit evaluations: {t_eval * 1e3:.1f} ms ({t_eval / 29 * 1e6:.0f} us each)")
    print(f"  Bayesian line search (reference + 9 + 20 evaluations, bayes_opt GP): {t_ls:.2f} s "
          f"-> alpha {ls.alpha:.4f}, t'-t0 {ls.origin_time_change:+.2f} s, misfit "
          f"{ls.misfit0:.4f} -> {ls.misfit:.4f}")
    print(f"  precompute + line search: {t_pre + t_ls:.1f} s (target < 10 s)")
    print(f"  baseline, measurement core re-processing: {t_core:.1f} s per evaluation, "
          f"x29 = {29 * t_core:.0f} s; ratio {29 * t_core / (t_pre + t_ls):.0f}x; "
          f"same misfit: {vals[0]:.8f} vs {ref:.8f} (rel {abs(vals[0] / ref - 1):.1e})")
    print(f"  peak RSS of the run {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
