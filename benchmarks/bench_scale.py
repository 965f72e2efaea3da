"""The structure iteration at the paper's size (issue 16; SPEC §6, §8): master costs that scale.

Line search (bench_line_search). One real event from the PREM Green's-function database in
shared/fixtures/instaseis_prem_100s (`--stations` stations, 3 components): "observed" from the GCMT
source, the forward synthetics s0 from a perturbed source, the trial synthetics s_ε from a source
30 % of the way back (a step toward the data), all written as SPECFEM `*.sem.ascii`. The forward is
measured (not timed: the forward step does it in the event's task), then
  - today's path (the master before issue 16): per event, read the s0 and s_ε ascii, process them
    on the frozen windows, and minimize χ(α) by re-measuring extrapolated segments; run for
    `--baseline-events` copies of the event in a fresh process: wall time and peak RSS, per window;
  - the event task's share of the new path (read s_ε, process, six inner products per window,
    write the .npz): seconds per event, run in each event's own task;
  - the new master: `--events` files of the real event's terms, tiled to `--windows` windows in
    all (≈ 800k: 142 events × 2000 stations), read, summed with the all-event W_c and minimized,
    in a fresh process: wall time and peak RSS (including the interpreter and numpy).
Today's figures are extrapolated per window to the full size for the ratio.

Run: python benchmarks/bench_scale.py [--json FILE] [--stations 100] [--events 142]
     [--windows 800000] [--baseline-events 2]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")      # one core, before numpy/scipy load

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEISFLOWS_EARA_SHARED", REPO.parent / "shared"))
EPS, RANGE, SAMPLES = 0.01, (0.0, 0.03), 61


def _peak_rss_mb() -> float:
    """Peak RSS of this process's own memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent across fork + exec on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------- the real event
def _write_ascii(folder: Path, stream, t0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for tr in stream:
        t = float(tr.stats.starttime - t0) + tr.stats.delta * np.arange(tr.stats.npts)
        np.savetxt(folder / f"{tr.stats.network}.{tr.stats.station}.{tr.stats.channel}.sem.ascii",
                   np.column_stack([t, tr.data]), fmt="%.6f %.9e")


def make_event(root: Path, nsta: int) -> dict:
    """Observed, s0 and s_ε of one instaseis event at nsta stations; the forward's measurement
    (PreparedEvent pickled like the preprocess plugin does) and the files of both runs."""
    import instaseis
    import obspy
    from seisflows_eara import params
    from seisflows_eara.io.stations import Station
    from seisflows_eara.measure import Config, EventInfo, measure_event
    db = instaseis.open_db(str(SHARED / "fixtures" / "instaseis_prem_100s" /
                               "100s_db_bwd_displ_only"))
    cmt = obspy.read_events(str(REPO / "specfem_data" / "CMTSOLUTION_200801060514A"))[0]
    org = next(o for o in cmt.origins if str(o.origin_type) == "centroid")
    mt = cmt.focal_mechanisms[0].moment_tensor.tensor

    def source(f: float):      # f = 0: the true source; f = 1: the perturbed start
        return instaseis.Source(latitude=org.latitude + 0.3 * f, longitude=org.longitude,
                                depth_in_m=org.depth, m_rr=mt.m_rr * (1 + 0.2 * f), m_tt=mt.m_tt,
                                m_pp=mt.m_pp, m_rt=mt.m_rt, m_rp=mt.m_rp * (1 - 0.2 * f),
                                m_tp=mt.m_tp, origin_time=org.time + 4.0 * f)
    rng = np.random.default_rng(0)
    lat = rng.uniform(org.latitude - 30, org.latitude + 30, nsta)
    lon = rng.uniform(org.longitude - 30, org.longitude + 30, nsta)
    stations = [Station("XX", f"S{i:04d}", float(a), float(b))
                for i, (a, b) in enumerate(zip(lat, lon))]
    obs, s0, st = {}, obspy.Stream(), obspy.Stream()
    for s in stations:
        rec = instaseis.Receiver(latitude=s.latitude, longitude=s.longitude, network="XX",
                                 station=s.station)
        obs[s.code] = db.get_seismograms(source=source(0.0), receiver=rec, kind="displacement",
                                         components="ZNE", dt=1.0)
        for f, out in ((1.0, s0), (0.7, st)):
            y = db.get_seismograms(source=source(f), receiver=rec, kind="displacement",
                                   components="ZNE", dt=1.0)
            for tr in y:
                tr.stats.channel = "MX" + tr.stats.channel[-1]
            out += y
    v = params.defaults()
    v["stage_body_bands"] = [[100.0, 300.0]] * 3       # the 100-s database's own band
    v["stage_surface_bands"] = [[100.0, 300.0]] * 3
    ev = EventInfo("200801060514A", org.time, org.latitude, org.longitude, org.depth / 1000)
    m = measure_event(ev, stations, obs, s0, Config(v, 1), observed_processed=True)
    _write_ascii(root / "s0", s0, org.time)
    _write_ascii(root / "strial", st, org.time)
    with open(root / "prepared.pkl", "wb") as f:
        pickle.dump(m.prepared, f)
    p = m.prepared
    cats = p.categories[p.weights > 0]
    wc = {str(c): 1.0 / n for c, n in zip(*np.unique(cats, return_counts=True))}
    return dict(prepared=str(root / "prepared.pkl"), s0=str(root / "s0"),
                strial=str(root / "strial"), wc=wc, windows=int((p.weights > 0).sum()),
                windows_all=int(p.nwin), samples=int(p.offsets[-1]))


# ---------------------------------------------------------------- the three parts (child processes)
def _today(args: dict) -> dict:
    """The master's line search before issue 16 (plugins/optimize.py at 22b6448), for
    `copies` events: every event's frozen windows loaded, s0 and s_ε re-read and re-processed,
    χ(α) re-measured on the extrapolated segments."""
    from seisflows_eara.io.specfem_traces import read_synthetics
    from seisflows_eara.optimize.linesearch import extrapolated_line_search
    rss0 = _peak_rss_mb()
    t, c = time.perf_counter(), time.process_time()
    prepared = {}
    for k in range(args["copies"]):
        with open(args["prepared"], "rb") as f:
            prepared[f"E{k}"] = pickle.load(f)
    seg0, segt, measures = [], [], []
    for prep in prepared.values():
        prep.wc = np.array([args["wc"].get(str(c), 0.0) for c in prep.categories])
        seg0.append(prep.segments_from_processed(prep.process(
            read_synthetics(args["s0"], prep.event.time))))
        segt.append(prep.segments_from_processed(prep.process(
            read_synthetics(args["strial"], prep.event.time))))
        measures.append(prep.misfit_from_segments)
    diffs = [(s0, (st - s0) / EPS) for s0, st in zip(seg0, segt)]

    def chi(alpha: float) -> float:
        return float(sum(m(s0 + alpha * ds) for (s0, ds), m in zip(diffs, measures)))
    r = extrapolated_line_search(chi, RANGE, SAMPLES)
    return dict(seconds=time.perf_counter() - t, cpu_seconds=time.process_time() - c,
                peak_rss_mb=_peak_rss_mb(), rss_after_imports_mb=rss0, alpha=r.alpha,
                misfit=r.misfit, misfit0=r.misfit0)


def _event_task(args: dict) -> dict:
    """The trial-forward task's share: read s_ε, process on the frozen windows, terms, write."""
    from seisflows_eara.io.specfem_traces import read_synthetics
    from seisflows_eara.optimize import reduced
    t, c = time.perf_counter(), time.process_time()
    with open(args["prepared"], "rb") as f:
        p = pickle.load(f)
    st = p.segments(read_synthetics(args["strial"], p.event.time))
    terms = reduced.event_terms("E", p.synthetic, st, p.U, p.taper, p.dt, p.offsets, p.weights,
                                p.categories, EPS)
    reduced.write_terms(args["output"], terms)
    return dict(seconds=time.perf_counter() - t, cpu_seconds=time.process_time() - c,
                peak_rss_mb=_peak_rss_mb(),
                bytes_per_window=os.path.getsize(args["output"]) / max(terms.nwin, 1))


def _master(args: dict) -> dict:
    """The new master: the events' terms files -> closed-form χ(α) -> α."""
    from seisflows_eara.optimize import reduced
    rss0 = _peak_rss_mb()
    t, c = time.perf_counter(), time.process_time()
    terms = reduced.concatenate([reduced.read_terms(f) for f in args["files"]])
    t_read = time.perf_counter() - t
    r = reduced.line_search(terms, args["wc"], RANGE, SAMPLES)
    return dict(seconds=time.perf_counter() - t, cpu_seconds=time.process_time() - c,
                read_seconds=t_read,
                peak_rss_mb=_peak_rss_mb(), rss_after_imports_mb=rss0, windows=terms.nwin,
                events=len(terms.events), alpha=r.alpha, misfit=r.misfit, misfit0=r.misfit0)


PARTS = {"today": _today, "event_task": _event_task, "master": _master}


def _child(part: str, args: dict) -> dict:
    """Run one part in a fresh interpreter (its own peak RSS)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(args, f)
    out = subprocess.run([sys.executable, __file__, "--_part", part, f.name], check=True,
                         capture_output=True, text=True)
    os.unlink(f.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tile_terms(path: str, per_event: int, events: int, folder: Path) -> list[str]:
    """`events` terms files of `per_event` windows each, the real event's windows repeated."""
    from seisflows_eara.optimize import reduced
    t = reduced.read_terms(path)
    idx = np.resize(np.arange(t.nwin), per_event)
    files = []
    for k in range(events):
        e = reduced.WindowTerms({n: v[idx] for n, v in t.products.items()}, t.weight[idx],
                                t.category[idx], t.categories, np.zeros(per_event, np.int32),
                                (f"E{k:03d}",), t.trial_step)
        files.append(str(folder / f"E{k:03d}.npz"))
        reduced.write_terms(files[-1], e)
    return files


def bench_line_search(stations: int = 100, events: int = 142, windows: int = 800_000,
                      baseline_events: int = 2) -> dict:
    """The line-search figures (module docstring); returns the `line_search` JSON section."""
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        ev = make_event(root, stations)
        print(f"  (one instaseis event, {stations} stations: {ev['windows']} windows of weight > 0 "
              f"of {ev['windows_all']}, made and measured in {time.perf_counter() - t:.0f} s, not "
              "timed)")
        today = _child("today", dict(ev, copies=baseline_events))
        task = _child("event_task", dict(ev, output=str(root / "E.npz")))
        per_event = int(round(windows / events))
        files = _tile_terms(str(root / "E.npz"), per_event, events, root / "terms")
        master = _child("master", dict(files=files, wc=ev["wc"]))
    nw_today = baseline_events * ev["windows"]
    s_per_w = today["seconds"] / nw_today
    out = {"windows": master["windows"], "events": master["events"],
           "seconds": master["seconds"], "peak_rss_mb": master["peak_rss_mb"],
           "read_seconds": master["read_seconds"],
           "rss_after_imports_mb": master["rss_after_imports_mb"],
           "event_task_seconds": task["seconds"],
           "event_task_seconds_per_window": task["seconds"] / ev["windows"],
           "terms_bytes_per_window": task["bytes_per_window"],
           "baseline_events": baseline_events, "baseline_windows": nw_today,
           "baseline_seconds": today["seconds"], "baseline_peak_rss_mb": today["peak_rss_mb"],
           "baseline_seconds_per_window": s_per_w,
           "baseline_seconds_extrapolated": s_per_w * master["windows"],
           "cpu_seconds": master["cpu_seconds"], "baseline_cpu_seconds": today["cpu_seconds"],
           "baseline_cpu_seconds_per_window": today["cpu_seconds"] / nw_today,
           "baseline_cpu_seconds_extrapolated": today["cpu_seconds"] / nw_today * master["windows"],
           "event_task_cpu_seconds": task["cpu_seconds"],
           "event_task_peak_rss_mb": task["peak_rss_mb"],
           "baseline_rss_mb_per_window": (today["peak_rss_mb"] - today["rss_after_imports_mb"])
           / nw_today,
           "stations_of_the_real_event": stations}
    out["baseline_rss_gb_extrapolated"] = out["baseline_rss_mb_per_window"] * out["windows"] / 1024
    out["speedup_extrapolated"] = out["baseline_seconds_extrapolated"] / out["seconds"]
    out["cpu_speedup_extrapolated"] = out["baseline_cpu_seconds_extrapolated"] / out["cpu_seconds"]
    print(f"line search, today's master ({baseline_events} events, {nw_today} windows): "
          f"{today['seconds']:.1f} s ({today['cpu_seconds']:.1f} s CPU), "
          f"peak RSS {today['peak_rss_mb']:.0f} MB -> "
          f"{s_per_w * 1e3:.2f} ms per window; at {out['windows']} windows "
          f"{out['baseline_seconds_extrapolated'] / 3600:.1f} h and "
          f"{out['baseline_rss_gb_extrapolated']:.0f} GB")
    print(f"line search, event task (trial forward's share): {task['seconds']:.2f} s for "
          f"{ev['windows']} windows, {task['bytes_per_window']:.0f} B per window on disk")
    print(f"line search, new master: {out['windows']} windows of {out['events']} events in "
          f"{out['seconds']:.2f} s ({out['cpu_seconds']:.2f} s CPU; reading "
          f"{out['read_seconds']:.2f} s), peak RSS "
          f"{out['peak_rss_mb']:.0f} MB (after imports {out['rss_after_imports_mb']:.0f} MB); "
          f"{out['speedup_extrapolated']:.0f}x faster than today's extrapolated")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--stations", type=int, default=100, help="stations of the real event")
    ap.add_argument("--events", type=int, default=142)
    ap.add_argument("--windows", type=int, default=800_000)
    ap.add_argument("--baseline-events", type=int, default=2)
    ap.add_argument("--_part", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._part:
        with open(a._part[1]) as f:
            print(json.dumps(PARTS[a._part[0]](json.load(f))))
        return
    figures = {"line_search": bench_line_search(a.stations, a.events, a.windows,
                                                a.baseline_events)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
