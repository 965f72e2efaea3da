"""Measurement-chain throughput (SPEC §8): ours vs Pyatoa 0.2.2 on the same data, same run.

1. The real IU.KBL pair (Darfield 2010: raw counts + StationXML, SPECFEM3D_GLOBE synthetic):
   processing + windows + adjoint sources for one 3-component station, Pyatoa's Manager.flow
   (pyflex windows, pyadjoint cc_traveltime) against seisflows_eara.measure.measure_event.
   Records: the first 70 min of the synthetic (through the surface waves at 120°).
2. One event at 2000 stations (3 components, 22-min records) from the real PREM Green's-function
   database in shared/fixtures/instaseis_prem_100s: "observed" from the GCMT source, "synthetics"
   from a perturbed one. Wall time on one core and peak memory of the whole chain (the process
   peak RSS: also printed as it was before the measurement, which it includes).

3. Prepared observed data (issue 18): the real raw IU.KBL record (40 sps, 105 min, counts) and
   its StationXML replicated to N stations (each replica's response gain scaled by 1 + 1e-7 k so
   no two share a cached response evaluation: the worst case), with the KBL synthetic:
   (a) the observed preparation per station, ours (measure.prepare_event) against obspy's
   per-trace Stream path (detrend, taper, remove_response, rotate, filter per band, each band
   stored with pyasdf as pypaw does) on a subset, and the prepared file's bytes per station
   against the layout before (whole record, record's rate, float64, on that subset);
   (b) a forward's measurement from the prepared file against from the raw files (miniSEED per
   station + one StationXML, read inside the timing as `seisflows-eara measure` reads them), and
   against the raw path as it was when issue 18 was filed (obspy's remove_response per trace on
   the whole record at its rate; one run); (c) that forward with 2 worker processes
   (measure_event(workers=2)) against 1, at N stations and at an event's size
   (--parallel-stations, default 1000: the parallel.* keys; those at N are parallel_small.*),
   and the preparation with 2 against 1; (d)
   benchmarks/bench_storage.py's adjoint-part bytes per station per forward, before and after
   the compact store. Each timed run is a fresh process (as a forward task is: nothing warmed,
   its memory touched for the first time), the configurations interleaved, the best of
   --repeats; ratios of the same run; extrapolated to 142 x 2000.

Run: python benchmarks/bench_measure.py [--stations 2000] [--pyatoa-repeats 3]
     python benchmarks/bench_measure.py --only prepared [--prepared-stations 200]
         [--parallel-stations 1000] [--json F]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")      # one core, before numpy/scipy load

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import obspy  # noqa: E402

from seisflows_eara import params  # noqa: E402
from seisflows_eara.commands.demo import load_kbl_pair, replicate_kbl  # noqa: E402
from seisflows_eara.io.stations import Station  # noqa: E402
from seisflows_eara.measure import Config, EventInfo, event_from_file, measure_event  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEISFLOWS_EARA_SHARED", REPO.parent / "shared"))


def _kbl():
    """The IU.KBL pair, trimmed to 70 min after the synthetic's start (surface waves at 120°)."""
    d = REPO / "tests" / "data" / "pytomo3d_darfield"
    _, _, obs, inv, syn = load_kbl_pair(d)
    syn.trim(syn[0].stats.starttime, syn[0].stats.starttime + 4200.0)
    return d, obs, inv, syn


def _pyatoa_inputs(obs, syn):
    """Pyatoa 0.2.2 cannot align a 40 Hz record with a 6.19 Hz synthetic that starts between two
    of its samples: we hand it the observed record already anti-alias filtered and interpolated
    onto the synthetic's grid (work our chain does itself, so the comparison favours Pyatoa)."""
    o = obs.copy()
    o.filter("lowpass", freq=0.4 * syn[0].stats.sampling_rate, corners=8, zerophase=True)
    o.interpolate(syn[0].stats.sampling_rate, starttime=syn[0].stats.starttime,
                  npts=syn[0].stats.npts)
    return o, syn.copy()


def bench_kbl(repeats: int) -> tuple[float, float]:
    d, obs, inv, syn = _kbl()
    ev = event_from_file(str(d / "C201009031635A.xml"))
    ch = inv[0][0]
    sta = [Station("IU", "KBL", ch.latitude, ch.longitude)]
    cfg = Config(params.defaults(), 1)
    measure_event(ev, sta, {"IU.KBL": obs}, syn, cfg, inventory=inv)          # warm TauP
    t = time.perf_counter()
    for _ in range(repeats):
        measure_event(ev, sta, {"IU.KBL": obs}, syn, cfg, inventory=inv)
    ours = (time.perf_counter() - t) / repeats

    from pyatoa import Config as PConfig, Manager
    logging.getLogger("pyatoa").setLevel(logging.WARNING)
    qev = obspy.read_events(str(d / "C201009031635A.xml"))[0]
    pcfg = PConfig(min_period=10, max_period=40, rotate_to_rtz=True, unit_output="DISP",
                   pyflex_preset="default", adj_src_type="cc_traveltime", save_to_ds=False)
    t = time.perf_counter()
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o, y = _pyatoa_inputs(obs, syn)
            mgr = Manager(config=pcfg, event=qev, st_obs=o, st_syn=y, inv=inv)
            mgr.flow()
    theirs = (time.perf_counter() - t) / repeats
    return ours, theirs


def bench_many(nsta: int) -> tuple[float, int, int, int]:
    import instaseis
    db = instaseis.open_db(str(SHARED / "fixtures" / "instaseis_prem_100s" / "100s_db_bwd_displ_only"))
    cmt = obspy.read_events(str(REPO / "specfem_data" / "CMTSOLUTION_200801060514A"))[0]
    org = next(o for o in cmt.origins if str(o.origin_type) == "centroid")
    mt = cmt.focal_mechanisms[0].moment_tensor.tensor
    true = instaseis.Source(latitude=org.latitude, longitude=org.longitude, depth_in_m=org.depth,
                            m_rr=mt.m_rr, m_tt=mt.m_tt, m_pp=mt.m_pp, m_rt=mt.m_rt, m_rp=mt.m_rp,
                            m_tp=mt.m_tp, origin_time=org.time)
    pert = instaseis.Source(latitude=org.latitude + 0.1, longitude=org.longitude,
                            depth_in_m=org.depth, m_rr=mt.m_rr * 1.2, m_tt=mt.m_tt, m_pp=mt.m_pp,
                            m_rt=mt.m_rt, m_rp=mt.m_rp * 0.8, m_tp=mt.m_tp,
                            origin_time=org.time + 2.0)
    rng = np.random.default_rng(0)
    lat = rng.uniform(org.latitude - 30, org.latitude + 30, nsta)
    lon = rng.uniform(org.longitude - 30, org.longitude + 30, nsta)
    stations = [Station("XX", f"S{i:04d}", float(a), float(b)) for i, (a, b) in enumerate(zip(lat, lon))]
    obs, syn = {}, obspy.Stream()
    t = time.perf_counter()
    for s in stations:
        rec = instaseis.Receiver(latitude=s.latitude, longitude=s.longitude, network="XX",
                                 station=s.station)
        o = db.get_seismograms(source=true, receiver=rec, kind="displacement", components="ZNE", dt=1.0)
        y = db.get_seismograms(source=pert, receiver=rec, kind="displacement", components="ZNE", dt=1.0)
        for tr in y:
            tr.stats.channel = "MX" + tr.stats.channel[-1]
        obs[s.code] = o
        syn += y
    print(f"  (instaseis: {nsta} stations x 2 sources in {time.perf_counter() - t:.0f} s, not timed)")
    v = params.defaults()
    # the 100-s database carries no energy at 8-40 s: measure in its own band, same chain
    v["stage_body_bands"] = [[100.0, 300.0]] * 3
    v["stage_surface_bands"] = [[100.0, 300.0]] * 3
    ev = EventInfo("200801060514A", org.time, org.latitude, org.longitude, org.depth / 1000)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    m = measure_event(ev, stations, obs, syn, Config(v, 1), observed_processed=True)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return wall, int((m.table.status == "ok").sum()), rss0, rss


def _replicas(nsta: int):
    """KBL raw record, StationXML and synthetic as `nsta` stations XX.K0000... (module doc)."""
    ev, stations, by, invs, syns = replicate_kbl(REPO / "tests" / "data" / "pytomo3d_darfield",
                                                 nsta)
    syns.trim(syns[0].stats.starttime, syns[0].stats.starttime + 4200.0)
    return ev, stations, by, invs, syns


def _obspy_prepare(st, inv, baz, cfg, ds=None) -> None:
    """obspy's per-trace Stream path for the same observed processing (the baseline of (a)),
    each band stored in the pyasdf data set `ds` as pypaw stores its processed data (ours stores
    its bands in ASDF too)."""
    from seisflows_eara.processing import response_prefilter
    v = cfg.values
    pre = response_prefilter([cfg.band("body"), cfg.band("surface")], 20.0)
    d = st.copy()
    d.detrend("demean")
    d.detrend("linear")
    d.taper(v["taper_fraction"], type="cosine")
    d.remove_response(inventory=inv, output="DISP", pre_filt=pre,
                      water_level=v["response_water_level"])
    d.rotate("->ZNE", inventory=inv)
    d.rotate("NE->RT", back_azimuth=baz)
    for b in ("body", "surface"):
        f = d.copy()
        f.filter("bandpass", freqmin=cfg.band(b).freqs[0], freqmax=cfg.band(b).freqs[1],
                 corners=v["filter_corners"], zerophase=True)
        if ds is not None:
            ds.add_waveforms(f, tag=f"prepared_{b}")


@contextlib.contextmanager
def _layout_before():
    """The observed chain as it was before issue 18 item 2 (the whole record, at the record's
    rate, float64): to measure the prepared file's bytes per station before."""
    import seisflows_eara.measure.event as E
    saved = E.prepare_observed, E._windowable_span
    po = E.prepare_observed
    E.prepare_observed = lambda *a, **k: po(*a, **dict(k, target_rate=None))
    E._windowable_span = lambda *a: None
    try:
        yield
    finally:
        E.prepare_observed, E._windowable_span = saved


@contextlib.contextmanager
def _raw_path_before():
    """The raw path as it was when issue 18 was filed: obspy's Trace.remove_response per trace,
    on the whole record at the record's rate (the baseline of (b)'s second ratio)."""
    import seisflows_eara.processing.chain as C

    def per_trace(traces, inventory, output="DISP", pre_filt=None, water_level=60.0,
                  taper_fraction=0.05, max_samples=None, target_rate=None):
        for tr in traces:
            tr.remove_response(inventory=inventory, output=output, pre_filt=pre_filt,
                               water_level=water_level, taper_fraction=taper_fraction)
    saved = C.remove_response_traces
    C.remove_response_traces = per_trace
    try:
        with _layout_before():
            yield
    finally:
        C.remove_response_traces = saved


def _timed(fn):
    t = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t


def _digest(m) -> str:
    """sha256 of a measurement's table and adjoint sources (the 'same result' checks)."""
    import hashlib
    h = hashlib.sha256(m.table.to_csv(index=False).encode())
    for code in sorted(m.adjoint):
        h.update(code.encode())
        h.update(np.ascontiguousarray(m.adjoint[code]).tobytes())
    return h.hexdigest()


def _paths(tmp: str, nsta: int) -> dict[str, str]:
    d = os.path.join(tmp, f"bench_measure_{nsta}")
    return {"dir": d, "raw": os.path.join(d, "raw"), "xml": os.path.join(d, "stations.xml"),
            "prepared": os.path.join(d, "event.prepared.h5")}


def _write_raw(nsta: int, tmp: str) -> dict[str, str]:
    """The replicated raw records (miniSEED, one file per station) and StationXML on disk: what
    a forward from raw reads each time."""
    import shutil
    f = _paths(tmp, nsta)
    shutil.rmtree(f["dir"], ignore_errors=True)
    os.makedirs(f["raw"])
    _, stations, by, inv, _ = _replicas(nsta)
    for s in stations:
        by[s.code].write(os.path.join(f["raw"], f"{s.code}.mseed"), format="MSEED")
    inv.write(f["xml"], format="STATIONXML")
    return f


def _child(kind: str, nsta: int, workers: int, n_obspy: int, tmp: str) -> dict:
    """One timed run in a fresh process, as a forward task's process runs it (nothing warmed,
    the memory it touches fresh): obspy's per-trace preparation of n_obspy stations, our
    preparation, or a forward's measurement from the raw files or from the prepared file (the
    observed input read inside the timing: miniSEED + StationXML, or the prepared ASDF file)."""
    from seisflows_eara.commands.measure import _observed
    from seisflows_eara.measure import observed_parameters, prepare_event, read_prepared
    from obspy.geodetics import gps2dist_azimuth
    f = _paths(tmp, nsta)
    ev, stations, by, inv, syn = _replicas(nsta)
    cfg = Config(params.defaults(), 1)
    out: dict = {"kind": kind, "workers": workers}
    if kind == "obspy":
        baz = gps2dist_azimuth(ev.latitude, ev.longitude, stations[0].latitude,
                               stations[0].longitude)[2]
        import pyasdf
        path = os.path.join(f["dir"], "obspy.h5")

        def run():
            with pyasdf.ASDFDataSet(path, mode="w", compression=None) as ds:
                for s in stations[:n_obspy]:
                    _obspy_prepare(by[s.code], inv, baz, cfg, ds)
        _, t = _timed(run)
        os.remove(path)
        out["per_station_s"] = t / n_obspy
        return out
    if kind == "prepare":       # from the raw files (read before the timing), as `prepare` does
        path = f["prepared"] if workers == 1 else f["prepared"] + f".{workers}"
        obs, inventory, notes = _observed(f["raw"], f["xml"], ev)
        _, t = _timed(lambda: prepare_event(ev, stations, obs, cfg, path, inventory=inventory,
                                            file_notes=notes, workers=workers))
        out.update(per_station_s=t / nsta, bytes_per_station=os.path.getsize(path) / nsta)
        if workers != 1:
            os.remove(path)
        return out
    by = inv = None         # the in-memory records freed: a forward reads its files
    want = observed_parameters(cfg, event=ev, stations=stations)
    if kind in ("raw", "raw_before"):
        def run():
            obs, inventory, notes = _observed(f["raw"], f["xml"], ev)
            with _raw_path_before() if kind == "raw_before" else contextlib.nullcontext():
                return measure_event(ev, stations, obs, syn, cfg, inventory=inventory,
                                     file_notes=notes, workers=workers)
    else:
        def run():
            return measure_event(ev, stations, {}, syn, cfg, workers=workers,
                                 prepared=read_prepared(f["prepared"], want))
    m, t = _timed(run)
    out.update(per_station_s=t / nsta, digest=_digest(m))
    return out


def _in_child(kind: str, nsta: int, workers: int, n_obspy: int, tmp: str) -> dict:
    import json
    import subprocess
    import sys
    cmd = [sys.executable, __file__, "--child", kind, "--prepared-stations", str(nsta),
           "--workers", str(workers), "--obspy-stations", str(n_obspy), "--tmp", tmp]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_parallel(nsta: int, tmp: str, repeats: int = 2) -> dict:
    """(c) at an event's size (`--parallel-stations`, EARA's events have up to 2000 stations):
    the raw records written and prepared once (untimed figure), then a forward's measurement
    from the prepared file with 1 and 2 workers, each run a fresh process, interleaved, the best
    of `repeats` of each."""
    import shutil
    f = _write_raw(nsta, tmp)
    _in_child("prepare", nsta, 1, 1, tmp)
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(repeats):
        for w in (1, 2):
            runs[w].append(_in_child("prepared", nsta, w, 1, tmp))
    shutil.rmtree(f["dir"], ignore_errors=True)
    best = {w: min(r["per_station_s"] for r in rs) for w, rs in runs.items()}
    return {"parallel.stations": nsta,
            "parallel.runs_per_station_s": {str(w): [r["per_station_s"] for r in rs]
                                            for w, rs in runs.items()},
            "parallel.forward_per_station_s_1_worker": best[1],
            "parallel.forward_per_station_s_2_workers": best[2],
            "parallel.speedup_2_workers": best[1] / best[2],
            "parallel.same_result": len({r["digest"] for rs in runs.values() for r in rs}) == 1}


def bench_prepared(nsta: int, n_obspy: int, tmp: str, repeats: int = 2) -> dict[str, float]:
    """Section 3 of the module doc. Every figure is the best of `repeats` runs, each in a fresh
    process, the configurations interleaved (the machine's state drifts alike for all)."""
    import shutil
    from seisflows_eara.measure import prepare_event
    ev, stations, by, inv, _ = _replicas(n_obspy)
    cfg = Config(params.defaults(), 1)
    before = os.path.join(tmp, "bench.prepared.before.h5")
    with _layout_before():
        prepare_event(ev, stations, by, cfg, before, inventory=inv)
    size_before = os.path.getsize(before) / n_obspy
    os.remove(before)
    del ev, stations, by, inv
    f = _write_raw(nsta, tmp)
    load0 = os.getloadavg()[0]
    configs = [("obspy", 1), ("prepare", 1), ("prepare", 2), ("prepared", 1), ("prepared", 2),
               ("raw", 1), ("raw_before", 1)]
    runs: dict[tuple[str, int], list[dict]] = {c: [] for c in configs}
    for r in range(repeats):
        for kind, w in configs:
            if kind == "raw_before" and r:      # minutes at 200 stations, and steady: once
                continue
            runs[(kind, w)].append(_in_child(kind, nsta, w, n_obspy, tmp))
    best = {c: min(r["per_station_s"] for r in rs) for c, rs in runs.items()}
    digests = {c: {r.get("digest") for r in rs} for c, rs in runs.items()}
    shutil.rmtree(f["dir"], ignore_errors=True)
    prep_per, obspy_per = best[("prepare", 1)], best[("obspy", 1)]
    fwd_per, raw_per = best[("prepared", 1)], best[("raw", 1)]
    prep2_per, fwd2_per = best[("prepare", 2)], best[("prepared", 2)]
    size = runs[("prepare", 1)][0]["bytes_per_station"]
    n = 142 * 2000 / 3600
    return {"stations": nsta, "repeats": repeats,
            "load_average_1min": [load0, os.getloadavg()[0]],
            "runs_per_station_s": {f"{k}.{w}": [r["per_station_s"] for r in rs]
                                   for (k, w), rs in runs.items()},
            "prepare.per_station_s": prep_per,
            "prepare.obspy_per_station_s": obspy_per, "prepare.obspy_stations": n_obspy,
            "prepare.speedup": obspy_per / prep_per,
            "prepare.bytes_per_station": size,
            "prepare.bytes_per_station_before": size_before,
            "parallel.prepare_per_station_s_2_workers": prep2_per,
            "parallel.prepare_speedup_2_workers": prep_per / prep2_per,
            "forward.prepared_per_station_s": fwd_per, "forward.raw_per_station_s": raw_per,
            "forward.speedup": raw_per / fwd_per,
            "forward.raw_before_per_station_s": best[("raw_before", 1)],
            "forward.speedup_vs_raw_before": best[("raw_before", 1)] / fwd_per,
            "forward.same_table": len(digests[("prepared", 1)] | digests[("raw", 1)]) == 1,
            "parallel.forward_per_station_s_2_workers": fwd2_per,
            "parallel.speedup_2_workers": fwd_per / fwd2_per,
            "parallel.same_result": len(digests[("prepared", 1)] | digests[("prepared", 2)]) == 1,
            "parallel.stations": nsta,
            "extrapolated.prepare_core_hours_142x2000_per_stage": prep_per * n,
            "extrapolated.obspy_prepare_core_hours_142x2000_per_stage": obspy_per * n,
            "extrapolated.forward_core_hours_142x2000_per_forward": fwd_per * n,
            "extrapolated.raw_forward_core_hours_142x2000_per_forward": raw_per * n,
            "extrapolated.prepared_TB_142x2000_per_stage": size * 142 * 2000 / 1e12,
            "extrapolated.prepared_TB_142x2000_per_stage_before":
                size_before * 142 * 2000 / 1e12}


def _storage(nsta: int, tmp: str) -> dict:
    """benchmarks/bench_storage.py's figures (adjoint parts per station per forward, before and
    after the compact store) on the same number of replicated stations."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_storage
    return dict(bench_storage.storage_figures(nsta, tmp))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stations", type=int, default=2000)
    ap.add_argument("--pyatoa-repeats", type=int, default=2)
    ap.add_argument("--only", choices=("all", "prepared"), default="all")
    ap.add_argument("--prepared-stations", type=int, default=200)
    ap.add_argument("--parallel-stations", type=int, default=1000,
                    help="stations of (c) at an event's size (0: only at --prepared-stations); "
                         "its figures replace the parallel.* keys, those at "
                         "--prepared-stations stay as parallel_small.*")
    ap.add_argument("--obspy-stations", type=int, default=20,
                    help="stations of the obspy baseline of (a) (per-station time)")
    ap.add_argument("--json", help="write the figures of section 3 to this JSON file")
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--repeats", type=int, default=2,
                    help="fresh-process runs per configuration of section 3 (the best counts)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        import json
        print(json.dumps(_child(a.child, a.prepared_stations, a.workers, a.obspy_stations,
                                a.tmp)))
        return
    r = bench_prepared(a.prepared_stations, a.obspy_stations, a.tmp, a.repeats)
    r.update(_storage(a.prepared_stations, a.tmp))
    if a.parallel_stations and a.parallel_stations != a.prepared_stations:
        for k in [k for k in r if k.startswith("parallel.") and "prepare" not in k]:
            r["parallel_small." + k[len("parallel."):]] = r.pop(k)
        r.update(bench_parallel(a.parallel_stations, a.tmp, a.repeats))
    print(f"Prepared observed data, {r['stations']} replicated raw KBL stations (40 sps, 105 min), "
          f"load average {r['load_average_1min'][0]:.1f} -> {r['load_average_1min'][1]:.1f}:")
    print(f"  (a) preparation per station: ours {r['prepare.per_station_s']:.3f} s, obspy per-trace "
          f"{r['prepare.obspy_per_station_s']:.3f} s ({r['prepare.obspy_stations']} stations) -> "
          f"{r['prepare.speedup']:.1f}x; with 2 worker processes "
          f"{r['parallel.prepare_per_station_s_2_workers']:.3f} s "
          f"({r['parallel.prepare_speedup_2_workers']:.2f}x)")
    print(f"      prepared file per station: {r['prepare.bytes_per_station'] / 1e6:.2f} MB (before: "
          f"whole record, record's rate, float64: {r['prepare.bytes_per_station_before'] / 1e6:.2f}"
          f" MB; {r['prepare.bytes_per_station_before'] / r['prepare.bytes_per_station']:.1f}x)")
    print(f"  (b) forward per station: from prepared {r['forward.prepared_per_station_s']:.3f} s, "
          f"from raw {r['forward.raw_per_station_s']:.3f} s -> {r['forward.speedup']:.1f}x "
          f"(same table: {r['forward.same_table']}); from raw the way it was filed (obspy's "
          f"remove_response per trace, whole record at 40 sps) "
          f"{r['forward.raw_before_per_station_s']:.3f} s -> "
          f"{r['forward.speedup_vs_raw_before']:.1f}x")
    for key in ("parallel_small", "parallel"):
        if f"{key}.speedup_2_workers" in r:
            print(f"  (c) forward from prepared at {r[f'{key}.stations']} stations with 2 workers: "
                  f"{r[f'{key}.forward_per_station_s_2_workers']:.4f} s per station -> "
                  f"{r[f'{key}.speedup_2_workers']:.2f}x (same result: "
                  f"{r[f'{key}.same_result']})")
    if "storage.bytes_per_station_before" in r:
        print(f"  (d) adjoint parts per station per forward: "
              f"{r['storage.bytes_per_station_before'] / 1e3:.1f} kB before, "
              f"{r['storage.bytes_per_station_after'] / 1e3:.1f} kB after")
    print(f"  142 events x 2000 stations: preparation {r['extrapolated.prepare_core_hours_142x2000_per_stage']:.0f}"
          f" core-hours per stage (obspy per-trace: "
          f"{r['extrapolated.obspy_prepare_core_hours_142x2000_per_stage']:.0f}), "
          f"{r['extrapolated.prepared_TB_142x2000_per_stage']:.2f} TB per stage (before "
          f"{r['extrapolated.prepared_TB_142x2000_per_stage_before']:.2f}); a measured forward "
          f"{r['extrapolated.forward_core_hours_142x2000_per_forward']:.0f} core-hours from prepared "
          f"data vs {r['extrapolated.raw_forward_core_hours_142x2000_per_forward']:.0f} from raw "
          f"(x 40 forwards: {40 * r['extrapolated.forward_core_hours_142x2000_per_forward']:.0f} vs "
          f"{40 * r['extrapolated.raw_forward_core_hours_142x2000_per_forward']:.0f})")
    if a.json:
        import json
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    if a.only == "prepared":
        return
    # the many-station event first: the process peak RSS before it is then only the input traces
    wall, nwin, rss0, rss = bench_many(a.stations)
    ours, theirs = bench_kbl(a.pyatoa_repeats)
    print("IU.KBL, one 3-component station, processing + windows + adjoint sources:")
    print(f"  seisflows_eara {ours:.3f} s   Pyatoa 0.2.2 {theirs:.3f} s   "
          f"ratio {theirs / ours:.1f}x  ({3 / ours:.1f} vs {3 / theirs:.1f} traces/s)")
    print(f"{a.stations} stations x 3 components, one event: {wall:.1f} s on one core "
          f"({3 * a.stations / wall:.0f} traces/s), {nwin} windows kept, peak RSS {rss / 1024:.0f} MB "
          f"(before the measurement, with the input traces: {rss0 / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
