"""`seisflows-eara estimate`: core-hours, Slurm jobs and storage per iteration of a run, before it
starts (cost model: seisflows_eara.system.cost).

Every input comes from parameters.yaml and the SPECFEM files it points at, unless given on the
command line: events (CMTSOLUTION files in path_specfem_data, else ntask), stations (its STATIONS),
cores per event (NPROC_XI · NPROC_ETA · NCHUNKS of its Par_file, else nproc), record length and the
seismogram format (Par_file), time step and mesh size (a values_from_mesher.h given with
--mesher-header; else SPECFEM's empirical step for NEX and no mesh size), the schedule
(stage_source_iterations, stage_structure_iterations), events_per_job and the estimate_* costs.
Relative paths in parameters.yaml are taken from the folder that holds it.
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import re

from seisflows_eara import params
from seisflows_eara.cli import COMMANDS
from seisflows_eara.io.stations import read_stations
from seisflows_eara.system import cost


def _flag(par: dict[str, str], key: str, default: bool) -> bool:
    """A Fortran logical of the Par_file (.true./.false.)."""
    return par.get(key, f".{str(default).lower()}.").strip().lower() == ".true."


def read_par_file(path: str) -> dict[str, str]:
    """KEY = value lines of a SPECFEM Par_file (comments dropped), keys upper-case."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0]
            if "=" in line:
                key, val = line.split("=", 1)
                out[key.strip().upper()] = val.strip()
    return out


def _par_number(par: dict[str, str], key: str, path: str) -> float:
    try:
        return float(par[key].lower().replace("d", "e"))
    except (KeyError, ValueError) as e:
        raise params.ParameterError(f"{path}: no numeric {key} ({e})") from e


def read_mesher_header(path: str) -> dict[str, float]:
    """DT, total elements and points of the whole mesh from SPECFEM's values_from_mesher.h."""
    try:
        text = open(path).read()
    except OSError as e:
        raise params.ParameterError(f"cannot read --mesher-header {path}: {e}") from e
    found = {}
    for key, pattern in (("dt", r"time step of the solver will be DT =\s*([\d.Ee+-]+)"),
                         ("elements", r"exact total number of spectral elements in entire mesh =\s*!?\s*([\d.Ee+-]+)"),
                         ("points", r"approximate total number of points in entire mesh =\s*!?\s*([\d.Ee+-]+)"),
                         ("nex", r"NEX_XI_VAL =\s*(\d+)")):
        m = re.search(pattern, text)
        if m:
            found[key] = float(m.group(1))
    if "dt" not in found or "elements" not in found:
        raise params.ParameterError(f"{path} is not a SPECFEM3D_GLOBE values_from_mesher.h (no DT or "
                                    "total number of spectral elements)")
    return found


def run_estimate(config: str, **cli) -> tuple[cost.CostEstimate, dict]:
    """The estimate and the inputs it used (with where each came from)."""
    values = params.load_parameters(config)
    here = os.path.dirname(os.path.abspath(config))
    data = values.get("path_specfem_data")
    data = os.path.join(here, data) if data and not os.path.isabs(data) else data
    par_path = os.path.join(data, "Par_file") if data else None
    par = read_par_file(par_path) if par_path and os.path.exists(par_path) else None
    used: dict = {}

    def pick(name, option, default_fn, what):
        if cli.get(option) is not None:
            used[name] = (cli[option], "command line")
        else:
            value, src = default_fn()
            if value is None:
                raise params.ParameterError(f"{what} unknown: give --{option.replace('_', '-')} "
                                            f"({src})")
            used[name] = (value, src)
        return used[name][0]

    def events():
        if data and os.path.isdir(data):
            n = len(glob.glob(os.path.join(data, f"{values.get('source_prefix') or 'CMTSOLUTION'}_*")))
            if n:
                return n, f"source files in {data}"
        return values.get("ntask"), "ntask in parameters.yaml"

    def stations():
        path = os.path.join(data, "STATIONS") if data else None
        if path and os.path.exists(path):
            return len(read_stations(path)), path
        return None, "no STATIONS in path_specfem_data"

    def cores():
        if par:
            n = 1
            for k in ("NPROC_XI", "NPROC_ETA", "NCHUNKS"):
                n *= int(_par_number(par, k, par_path))
            return n, par_path
        return values.get("nproc"), "nproc in parameters.yaml"

    def record():
        return (_par_number(par, "RECORD_LENGTH_IN_MINUTES", par_path), par_path) if par \
            else (None, "no Par_file in path_specfem_data")

    header = read_mesher_header(cli["mesher_header"]) if cli.get("mesher_header") else None

    def dt():
        if header:
            return header["dt"], cli["mesher_header"]
        if par:
            nex = int(max(_par_number(par, "NEX_XI", par_path), _par_number(par, "NEX_ETA", par_path)))
            return cost.specfem_dt(nex), f"SPECFEM's empirical step for NEX {nex}"
        return None, "no Par_file or --mesher-header"

    def elements():
        return ((int(header["elements"]), cli["mesher_header"]) if header
                else (None, "no --mesher-header"))

    def fmt():
        if "synthetic_format" in values:      # the solver's parameter (what it collects)
            return values["synthetic_format"], "synthetic_format in parameters.yaml"
        if par and _flag(par, "OUTPUT_SEISMOS_ASDF", False) \
                and not _flag(par, "OUTPUT_SEISMOS_ASCII_TEXT", False):
            return "asdf", par_path
        return ("ascii", par_path) if par else (values.get("syn_data_format", "ascii"),
                                                 "syn_data_format in parameters.yaml")

    def param(key):
        return lambda: (values[key], f"{key} in parameters.yaml")

    n_events = pick("events", "events", events, "number of events")
    n_sta = pick("stations", "stations", stations, "number of stations")
    ncores = pick("cores_per_event", "cores_per_event", cores, "cores per event")
    minutes = pick("minutes_per_forward", "minutes_per_forward",
                   param("estimate_minutes_per_forward"), "minutes per forward")
    a_k = pick("kernel_cost", "kernel_cost", param("estimate_kernel_cost"), "kernel cost")
    a_s = pick("source_adjoint_cost", "source_adjoint_cost", param("estimate_source_adjoint_cost"),
               "source-adjoint cost")
    a_m = pick("mesher_cost", "mesher_cost", param("estimate_mesher_cost"), "mesher cost")
    per_job = pick("events_per_job", "events_per_job", param("events_per_job"), "events per job")
    rec = pick("record_minutes", "record_minutes", record, "record length")
    step = pick("dt", "dt", dt, "time step")
    nelem = cli.get("elements")
    if nelem is not None:
        used["elements"] = (nelem, "command line")
    else:
        nelem, src = elements()
        used["elements"] = (nelem, src)
    points = cli.get("points") or (int(header["points"]) if header and "points" in header else None)
    form = pick("format", "format", fmt, "seismogram format")
    for name in ("events", "stations", "cores_per_event", "events_per_job"):
        if not isinstance(used[name][0], int) or used[name][0] < 1:
            raise params.ParameterError(f"{name} = {used[name][0]!r} ({used[name][1]}): must be an "
                                        "integer >= 1")
    inp = cost.CostInputs(
        events=n_events, stations=n_sta, cores_per_event=ncores, minutes_per_forward=float(minutes),
        kernel_cost=float(a_k), source_adjoint_cost=float(a_s), mesher_cost=float(a_m),
        events_per_job=per_job, record_seconds=float(rec) * 60.0, dt=float(step),
        synthetic_bytes_per_sample=cost.BYTES_FLOAT32 if form == "asdf" else cost.BYTES_ASCII_SEISMOGRAM,
        elements=None if nelem is None else int(nelem), points=points,
        attenuation=_flag(par, "ATTENUATION", True) if par else True)
    return cost.estimate(values, inp), used


def _total(items: list, which: str) -> float | None:
    """Sum of the items' kept or deleted bytes (None if any is unknown)."""
    values = [getattr(b, which) for b in items]
    return None if any(v is None for v in values) else float(sum(values))


def _size(nbytes: float | None, unknown: str = "unknown (give --elements or --mesher-header)"
          ) -> str:
    if nbytes is None:
        return unknown
    if nbytes == 0:
        return "0"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes:.0f} B"


def report(config: str, est: cost.CostEstimate, used: dict) -> str:
    u = {k: v[0] for k, v in used.items()}
    runs = ", ".join(f"{n} {k}" for k, n in est.solver_runs.items())
    stages = ", ".join(f"stage {i + 1}: {h / 1e6:.3g} M" for i, h in enumerate(est.core_hours_per_stage))
    per_job = math.ceil(u["events"] / u["events_per_job"])
    s = est.storage
    lines = [
        f"EARA cost estimate for {config}",
        f"  run: {u['events']} events x {u['stations']} stations, {u['cores_per_event']} cores per "
        f"event, {u['minutes_per_forward']:g} min per forward; kernel = {u['kernel_cost']:g}, "
        f"source adjoint = {u['source_adjoint_cost']:g}, mesher = {u['mesher_cost']:g} forwards",
        f"  schedule: {est.iterations} iterations; solver runs per event: {runs} "
        f"(+ {est.mesher_runs} mesher runs) = {est.forward_equivalents:.4g} forward equivalents",
        f"  core-hours: {est.core_hours / 1e6:.3g} M ({stages})",
        f"  jobs: {est.jobs} ({per_job} jobs of <= {u['events_per_job']} events per per-event step,"
        " + 1 master job)",
        f"  storage per structure iteration ({u['events'] * u['stations'] * cost.COMPONENTS:,} traces x "
        f"{est.samples_per_trace:,} samples, dt {u['dt']:.4g} s, {u['format']}):",
        f"    synthetics (forward + trial/perturbed)  {_size(s['synthetics'])}",
        f"    adjoint sources                         {_size(s['adjoint_sources'])}",
        f"    event kernels                           {_size(s['kernels'])}",
        f"    saved forward wavefields (scratch)      {_size(s['saved_wavefields'])}",
        "  storage of the whole run, all events (kept at the end / deleted during the run):",
        *[f"    {b.name:<34s} {_size(b.kept, 'unknown'):>10s} / {_size(b.deleted, 'unknown'):>10s}"
          + (f"  ({b.note})" if b.note else "") for b in est.budget],
        f"    {'total':<34s} {_size(_total(est.budget, 'kept'), 'unknown'):>10s} / "
        f"{_size(_total(est.budget, 'deleted'), 'unknown'):>10s}",
        "  inputs: " + "; ".join(f"{k} = {v[0]} ({v[1]})" for k, v in used.items()),
    ]
    return "\n".join(lines)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="parameters.yaml")
    for name, kind, help_ in (
            ("events", int, "number of events"), ("stations", int, "stations per event"),
            ("cores-per-event", int, "MPI processes of one simulation"),
            ("minutes-per-forward", float, "wall minutes of one forward simulation"),
            ("kernel-cost", float, "kernel run in forward runs"),
            ("source-adjoint-cost", float, "source-adjoint run in forward runs"),
            ("mesher-cost", float, "mesher run in forward runs"),
            ("events-per-job", int, "events bundled in one Slurm job"),
            ("record-minutes", float, "seismogram length"), ("dt", float, "solver time step (s)"),
            ("elements", int, "spectral elements of the whole mesh"),
            ("points", int, "unique GLL points of the whole mesh (default 64 per element)")):
        p.add_argument(f"--{name}", type=kind, help=help_)
    p.add_argument("--format", choices=("ascii", "asdf"), help="synthetics format")
    p.add_argument("--mesher-header", help="OUTPUT_FILES/values_from_mesher.h of this mesh")


def _run(a: argparse.Namespace) -> int:
    cli = {k: v for k, v in vars(a).items() if k not in ("config", "command")}
    est, used = run_estimate(a.config, **cli)
    print(report(a.config, est, used))
    return 0


COMMANDS.append(("estimate", "core-hours, Slurm jobs and storage per iteration of a run",
                 _args, _run))
