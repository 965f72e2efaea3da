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

Direction (bench_direction). `seisflows-eara direction` under `mpiexec -n 2` on the real 4-slice
fixture (shared/fixtures/specfem3d_globe_tiny_4slices, 2 slices = 460,000 GLL points per rank),
with 1 and 64 events (the real kernels, sources 0.5° apart), smoothing left out (production runs
SPECFEM's xsmooth_sem, the same program in both paths): per-rank peak RSS (VmHWM) per point, CPU
seconds of the busiest rank per point per event (slope between the two runs; the rest is the
per-iteration part: mesh, model, PR-CG, trial model), extrapolated to 441 slices × 142 events on
441 ranks (290 M points); against SPECFEM's xsum_preconditioned_kernels (64 events) +
xadd_model_tiso_cg on the one-slice fixture (CPU seconds of the MPI singletons) when SPECFEM_BIN
holds them (else skipped with the reason).

Run: python benchmarks/bench_scale.py [--json FILE] [--part all|line_search|direction]
     [--stations 100] [--events 142] [--windows 800000] [--baseline-events 2]
     [--direction-ranks 2] [--direction-events 1 64]
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


# ---------------------------------------------------------------- direction (issue 16 items 2-3)
#: one rank of the benchmarked direction job: the command, then this rank's peak RSS and times
_RANK = r"""
import json, os, sys, time
t0 = time.perf_counter()
from seisflows_eara.cli import main
import numpy, scipy.spatial, obspy                      # what every rank imports anyway
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
rss_imports = hwm()
t1, c1 = time.perf_counter(), time.process_time()
rc = main(["direction", *sys.argv[2:]])
rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0"))
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
    json.dump(dict(peak_rss_mb=hwm(), rss_after_imports_mb=rss_imports,
                   seconds=time.perf_counter() - t1, cpu_seconds=time.process_time() - c1,
                   import_seconds=t1 - t0), f)
sys.exit(rc)
"""
#: full size (SPEC §8): crust/mantle GLL points of EARA's mesh, slices, events
FULL_POINTS, FULL_SLICES, FULL_EVENTS = 290e6, 441, 142


def _direction_world(root: Path, events: int) -> dict:
    """The 4-slice fixture decompressed, `events` events: the real kernels (links) with their
    sources moved 0.5° apart (different damping), a parameters.yaml."""
    import lzma
    import shutil
    src = SHARED / "fixtures" / "specfem3d_globe_tiny_4slices"
    for sub in ("DATABASES_MPI", "MODEL_GLL"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / sub).glob("*.xz")):
            with lzma.open(f) as fin, open(root / sub / f.name[:-3], "wb") as fout:
                shutil.copyfileobj(fin, fout)
    cmt = (src / "DATA" / "CMTSOLUTION").read_text().splitlines()
    lines = []
    for e in range(events):
        lat, lon = 36.98 + 0.5 * (e % 8), 22.87 + 0.5 * (e // 8)
        text = "\n".join(f"latitude:       {lat:.4f}" if ln.startswith("latitude:")
                         else f"longitude:      {lon:.4f}" if ln.startswith("longitude:")
                         else ln for ln in cmt) + "\n"
        (root / f"E{e:03d}.cmt").write_text(text)
        lines.append(f"E{e:03d} {src / 'KERNELS'} {root / f'E{e:03d}.cmt'}\n")
    (root / "events.txt").write_text("".join(lines))
    (root / "parameters.yaml").write_text("smoothing_program: python\n")
    return dict(stations=str(src / "DATA" / "STATIONS"), mesh=str(root / "DATABASES_MPI"),
                model=str(root / "MODEL_GLL"), events=str(root / "events.txt"),
                config=str(root / "parameters.yaml"))


def _direction_job(w: dict, root: Path, ranks: int, events: int, tag: str) -> dict:
    """`mpiexec -n ranks` of the direction command on the first `events` events (no smoothing:
    production smoothing is SPECFEM's xsmooth_sem, the same in both paths); per-rank figures."""
    import shutil
    report = root / f"report_{tag}"
    report.mkdir()
    ev = root / f"events_{tag}.txt"
    ev.write_text("".join(open(w["events"]).readlines()[:events]))
    argv = ["--config", w["config"], "--events-file", str(ev), "--stations", w["stations"],
            "--model", w["model"], "--mesh", w["mesh"], "--output", str(root / f"out_{tag}"),
            "--smoothing", "none"]
    cmd = [sys.executable, "-c", _RANK, str(report), *argv]
    if ranks > 1 or shutil.which("mpiexec"):
        cmd = ["mpiexec", "-n", str(ranks), *cmd]
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"direction job failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    ranks_out = [json.loads(f.read_text()) for f in sorted(report.glob("rank*.json"))]
    return dict(wall=wall, seconds=max(r["seconds"] for r in ranks_out),
                cpu_seconds=max(r["cpu_seconds"] for r in ranks_out),
                peak_rss_mb=max(r["peak_rss_mb"] for r in ranks_out),
                rss_after_imports_mb=max(r["rss_after_imports_mb"] for r in ranks_out))


def _specfem_tools(events: int) -> dict | str:
    """xsum_preconditioned_kernels (N events) + xadd_model_tiso_cg on the one-slice fixture, MPI
    singletons (benchmarks/bench_structure.py's set-up), or the reason they cannot run."""
    bin_dir = os.environ.get("SPECFEM_BIN")
    if not bin_dir:
        return "SPECFEM_BIN is not set"
    if not all((Path(bin_dir) / p).exists() for p in ("xsum_preconditioned_kernels",
                                                      "xadd_model_tiso_cg")):
        return f"{bin_dir} has no xsum_preconditioned_kernels / xadd_model_tiso_cg"
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_structure as bs
    bs.SPECFEM_BIN = Path(bin_dir)
    if not Path("/usr/bin/time").exists():
        return "/usr/bin/time missing"
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    r = {}
    with tempfile.TemporaryDirectory(prefix="bench_specfem_") as tmp:
        root = bs._setup(Path(tmp), events)
        for key, args in (("sum", ["xsum_preconditioned_kernels"]),
                          ("direction", ["xadd_model_tiso_cg", "0.03"])):
            t0 = time.perf_counter()
            p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", str(Path(bin_dir) / args[0]),
                                *args[1:]], cwd=root, capture_output=True, text=True, env=env)
            if p.returncode != 0:
                return (f"{args[0]} failed on the one-slice fixture: {p.stdout[-300:]} "
                        f"{p.stderr[-300:]}")
            user, sys_, rss = p.stderr.strip().splitlines()[-1].split()
            r[key] = float(user) + float(sys_)              # CPU seconds (an MPI singleton)
            r[f"{key}_wall"] = time.perf_counter() - t0
            r[f"{key}_rss"] = float(rss) / 1024.0
    from seisflows_eara.model.mesh import read_mesh
    return dict(r, points=int(read_mesh(str(SHARED / "fixtures" / "specfem3d_globe_tiny" /
                                             "DATABASES_MPI"), iproc=0).npoint))


def bench_direction(ranks: int = 2, events: tuple[int, int] = (1, 64)) -> dict:
    """Per-rank peak RSS per GLL point and seconds per point per event of the direction job under
    `mpiexec -n ranks` on the 4-slice fixture with events[0] and events[1] (replicated) events;
    extrapolated to 441 slices x 142 events on 441 ranks; SPECFEM's tools where SPECFEM_BIN has
    them. Returns the `direction` JSON section."""
    from seisflows_eara.direction.comm import my_slices
    from seisflows_eara.model.mesh import read_mesh
    with tempfile.TemporaryDirectory(prefix="bench_direction_") as tmp:
        root = Path(tmp)
        w = _direction_world(root, max(events))
        sizes = [read_mesh(w["mesh"], iproc=s).npoint for s in range(4)]
        per_rank = max(sum(sizes[s] for s in my_slices(4, r, ranks)) for r in range(ranks))
        runs = {n: _direction_job(w, root, ranks, n, f"e{n}") for n in events}
    n0, n1 = events
    # CPU seconds of the busiest rank (the 2 cores are shared with other work: wall times vary)
    per_event = (runs[n1]["cpu_seconds"] - runs[n0]["cpu_seconds"]) / (n1 - n0)
    fixed = runs[n0]["cpu_seconds"] - n0 * per_event      # mesh, model, PR-CG, trial model
    s_pt_ev = per_event / per_rank
    full_pts = FULL_POINTS / FULL_SLICES
    hours = (fixed / per_rank * full_pts + FULL_EVENTS * s_pt_ev * full_pts) / 3600.0
    peak = max(r["peak_rss_mb"] for r in runs.values())
    imports = max(r["rss_after_imports_mb"] for r in runs.values())
    slice_pts = max(sizes)
    out = {"ranks": ranks, "slices": 4, "points_per_rank": per_rank, "points_per_slice": slice_pts,
           "events": list(events), "peak_rss_mb_per_rank": peak,
           "rss_after_imports_mb": imports,
           "bytes_per_point_per_rank": peak * 2 ** 20 / per_rank,
           "bytes_per_point_above_imports_per_slice": (peak - imports) * 2 ** 20 / slice_pts,
           "seconds_per_point_per_event": s_pt_ev, "fixed_seconds": fixed,
           "seconds": {str(n): r["seconds"] for n, r in runs.items()},
           "cpu_seconds": {str(n): r["cpu_seconds"] for n, r in runs.items()},
           "full_size_points_per_rank": full_pts,
           "full_size_hours_441_ranks": hours,
           "full_size_peak_rss_mb_per_rank": imports + (peak - imports) * full_pts / slice_pts}
    print(f"direction, mpiexec -n {ranks} on 4 slices ({per_rank} points per rank): "
          f"{runs[n0]['cpu_seconds']:.1f} s CPU for {n0} event(s), {runs[n1]['cpu_seconds']:.1f} s "
          f"for {n1} (wall {runs[n0]['seconds']:.1f}, {runs[n1]['seconds']:.1f} s) -> "
          f"{s_pt_ev * 1e9:.0f} ns per point per event; peak RSS {peak:.0f} MB per rank "
          f"({out['bytes_per_point_per_rank']:.0f} B per point; "
          f"{out['bytes_per_point_above_imports_per_slice']:.0f} B per point of a slice above "
          f"{imports:.0f} MB of imports)")
    print(f"direction at full size: {FULL_EVENTS} events on {FULL_SLICES} ranks of "
          f"{full_pts:.0f} points: {hours * 60:.2f} min, "
          f"~{out['full_size_peak_rss_mb_per_rank']:.0f} MB "
          f"per rank (smoothing excluded: SPECFEM's xsmooth_sem in both paths)")
    sf = _specfem_tools(n1)
    if isinstance(sf, str):
        print(f"direction vs SPECFEM's xsum_preconditioned_kernels + xadd_model_tiso_cg: skipped "
              f"({sf})")
        out["specfem"] = {"skipped": sf}
    else:
        sf_s = sf["sum"] / sf["points"] / n1                 # xsum: per event; add_model: once
        sf_h = (sf["direction"] / sf["points"] + FULL_EVENTS * sf_s) * full_pts / 3600.0
        out["specfem"] = dict(sf, seconds_per_point_per_event=sf_s, full_size_hours_441_ranks=sf_h,
                              ratio_ours_to_specfem=hours / sf_h)
        print(f"direction, SPECFEM's tools ({n1} events, one-slice fixture, "
              f"{sf['points']} points, one rank): sum {sf['sum']:.1f} s CPU "
              f"({sf['sum_rss']:.0f} MB), "
              f"add_model {sf['direction']:.1f} s CPU ({sf['direction_rss']:.0f} MB) -> "
              f"{sf_s * 1e9:.0f} ns per point per event; full size "
              f"{out['specfem']['full_size_hours_441_ranks'] * 60:.2f} min; ours / SPECFEM = "
              f"{out['specfem']['ratio_ours_to_specfem']:.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--stations", type=int, default=100, help="stations of the real event")
    ap.add_argument("--events", type=int, default=142)
    ap.add_argument("--windows", type=int, default=800_000)
    ap.add_argument("--baseline-events", type=int, default=2)
    ap.add_argument("--part", choices=("all", "line_search", "direction"), default="all")
    ap.add_argument("--direction-ranks", type=int, default=2)
    ap.add_argument("--direction-events", type=int, nargs=2, default=[1, 64])
    ap.add_argument("--_part", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._part:
        with open(a._part[1]) as f:
            print(json.dumps(PARTS[a._part[0]](json.load(f))))
        return
    figures = {}
    if a.part in ("all", "line_search"):
        figures["line_search"] = bench_line_search(a.stations, a.events, a.windows,
                                                   a.baseline_events)
    if a.part in ("all", "direction"):
        figures["direction"] = bench_direction(a.direction_ranks, tuple(a.direction_events))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
