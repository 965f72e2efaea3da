"""`seisflows-eara plot misfit|histograms|waveforms|model|psf` and `seisflows-eara psf-model`:
assessment figures from a workflow's files (SPEC §7, paper Figs 3-10).

  plot misfit OUTPUT        output/misfit_history.csv -> misfit per category and stage (Fig. 3)
  plot histograms OUTPUT    output/measurements/<step>/*.csv, initial vs final (Fig. 8)
  plot waveforms            observed / initial / final synthetics of stations, windows (Fig. 10)
  plot model MODEL --mesh   map views and a great-circle section of derived fields (Figs 4-7)
  plot psf --mesh --model   PSF input (built with --build) and responses from kernels (Fig. 9)
  psf-model                 only write the PSF perturbation model (GLL) for a PSF kernel run
OUTPUT is a workflow's output folder (or its working directory holding output/). Figures are PNG,
or PDF when the --output name ends in .pdf. File names in errors say what is missing.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seisflows_eara import params
from seisflows_eara.cli import COMMANDS

#: measured simulation tasks, whose folders under output/measurements hold tables
MEASURED_TASKS = ("forward", "final_forward")
_STEP = re.compile(r"^stage(\d+)_(?:(source|structure)(\d+)|(final))_(\w+)$")
_KIND_RANK = {"source": 0, "structure": 1, "final": 2}
#: stations drawn by `plot waveforms` when none is named (those with the most kept windows)
DEFAULT_WAVEFORM_STATIONS = 3


class PlotInputError(ValueError):
    """A workflow file a figure needs is missing or malformed (the message names it)."""


# ------------------------------------------------------------------------------ locating files
def _values(config: str | None, near: str | None = None) -> dict[str, Any]:
    """parameters.yaml given, else the one in/above `near` (a workdir), else the defaults."""
    if config:
        return params.load_parameters(config)
    for d in ([Path(near), Path(near).parent] if near else []):
        if (d / "parameters.yaml").is_file():
            return params.load_parameters(d / "parameters.yaml")
    return params.defaults()


def output_folder(path: str) -> Path:
    """A workflow output folder: `path` itself or `path`/output."""
    p = Path(path)
    for cand in (p, p / "output"):
        if (cand / "misfit_history.csv").is_file() or (cand / "measurements").is_dir():
            return cand
    raise PlotInputError(f"{path}: no misfit_history.csv or measurements/ here or in {p / 'output'} "
                         "(give a workflow's output folder or working directory)")


def step_order(name: str) -> tuple[int, int, int, str] | None:
    """Sort key of a step folder name ('stage1_structure03_forward'); None if not a step."""
    m = _STEP.match(name.replace("/", "_"))
    if not m:
        return None
    stage, kind, it, final, task = m.groups()
    kind = kind or final
    return int(stage), _KIND_RANK[kind], int(it or 0), task


def measured_steps(output: Path) -> list[str]:
    """Step folders of output/measurements with tables of measured forwards, in run order."""
    root = output / "measurements"
    names = [d.name for d in root.iterdir() if d.is_dir() and glob.glob(str(d / "*.csv"))] \
        if root.is_dir() else []
    keyed = [(step_order(n), n) for n in names]
    out = [n for k, n in sorted((k, n) for k, n in keyed if k) if step_order(n)[3] in MEASURED_TASKS]
    if not out:
        raise PlotInputError(f"{root}: no measurement tables of forward steps "
                             "(<step>/<event>.csv)")
    return out


def load_tables(output: Path, step: str) -> pd.DataFrame:
    """All events' measurement tables of one step."""
    folder = output / "measurements" / step.replace("/", "_")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise PlotInputError(f"{folder}: no measurement tables (<event>.csv)")
    parts = []
    for f in files:
        try:
            parts.append(pd.read_csv(f, keep_default_na=False, na_values=[""]))
        except Exception as e:
            raise PlotInputError(f"cannot read measurement table {f}: {e}") from e
    return pd.concat(parts, ignore_index=True)


def default_histogram_steps(steps: list[str]) -> dict[str, str]:
    """initial (first), after source inversion (first structure forward of the first stage, when
    source iterations preceded it) and final (last) — the three series of paper Fig. 8."""
    out = {"initial": steps[0]}
    first = step_order(steps[0])
    after = next((s for s in steps if step_order(s)[:2] == (first[0], 1)), None)
    if first[1] == 0 and after and after != steps[-1]:
        out["after source inversion"] = after
    if steps[-1] != steps[0]:
        out["final"] = steps[-1]
    return out


def _figure_path(arg: str | None, default: Path) -> str:
    path = Path(arg) if arg else default
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


# ------------------------------------------------------------------------------ misfit, histograms
def plot_misfit(output_dir: str, path: str | None = None):
    from seisflows_eara.assess.figures import misfit_curves
    out = output_folder(output_dir)
    csv = out / "misfit_history.csv"
    try:
        history = pd.read_csv(csv)
    except Exception as e:
        raise PlotInputError(f"cannot read {csv}: {e}") from e
    if history.empty:
        raise PlotInputError(f"{csv} has no rows yet")
    return misfit_curves(history, _figure_path(path, out / "figures" / "misfit.png"))


def plot_histograms(output_dir: str, steps: list[str] | None = None, path: str | None = None):
    from seisflows_eara.assess.figures import measurement_histograms
    out = output_folder(output_dir)
    chosen = {s: s for s in steps} if steps else default_histogram_steps(measured_steps(out))
    tables = {f"{label} ({step})" if label != step else step: load_tables(out, step)
              for label, step in chosen.items()}
    return measurement_histograms(tables, _figure_path(path, out / "figures" / "histograms.png"))


# ------------------------------------------------------------------------------ waveforms
def resolve_workdir(workdir: str, event: str) -> dict[str, str]:
    """Files of one event in a SeisFlows working directory: parameters.yaml, STATIONS, observed
    (path_data/<event>), initial and final synthetics (first and last measured step under
    scratch/traces/<step>/<event>/syn), initial CMTSOLUTION (path_specfem_data/CMTSOLUTION_<event>)
    and the last one of output/sources/<event>/history.csv."""
    import yaml
    w = Path(workdir)
    cfg = w / "parameters.yaml"
    if not cfg.is_file():
        raise PlotInputError(f"{cfg} not found (give --workdir a SeisFlows working directory)")
    raw = yaml.safe_load(cfg.read_text()) or {}

    def path(key: str, default: Path) -> Path:
        v = raw.get(key)
        return Path(v) if v and os.path.isabs(v) else (w / v if v else default)
    specfem_data, data = path("path_specfem_data", w / "specfem_data"), path("path_data", w / "data")
    output = path("path_output", w / "output")
    found = []
    for syn in (w / "scratch" / "traces").glob(f"**/{event}/syn"):
        key = step_order(str(syn.parent.parent.relative_to(w / "scratch" / "traces")))
        if key and key[3] in MEASURED_TASKS:
            found.append((key, str(syn)))
    if not found:
        raise PlotInputError(f"no synthetics of event {event} under {w / 'scratch' / 'traces'}"
                             "/<step>/<event>/syn")
    found.sort()
    cmt0 = specfem_data / f"CMTSOLUTION_{event}"
    history = output / "sources" / event / "history.csv"
    cmt1 = cmt0
    if history.is_file():
        rows = pd.read_csv(history)
        if len(rows):
            cmt1 = history.parent / str(rows.file.iloc[-1])
    files = dict(config=str(cfg), stations=str(specfem_data / "STATIONS"), observed=str(data / event),
                 initial=found[0][1], final=found[-1][1], cmtsolution=str(cmt0),
                 final_cmtsolution=str(cmt1))
    for k, v in files.items():
        if not os.path.exists(v):
            raise PlotInputError(f"event {event}: {k} {v} not found")
    return files


def _final_on_initial_axis(t0: np.ndarray, t1: np.ndarray, s1: np.ndarray, shift: float
                           ) -> np.ndarray:
    """Final synthetics (times after the final centroid) on the initial measurement's axis."""
    return np.vstack([np.interp(t0, t1 + shift, c, left=0.0, right=0.0) for c in s1])


def _window_labels(w0: pd.DataFrame, w1: pd.DataFrame) -> pd.DataFrame:
    """Initial windows labelled 'phases NZCC initial → final' (final matched by component,
    category and phases)."""
    final = {(r.component, r.category, r.phases): r.nzcc for r in w1.itertuples()}
    w = w0.copy()
    labels = []
    for r in w.itertuples():
        nz = final.get((r.component, r.category, r.phases), np.nan)
        if np.isfinite(r.nzcc):
            labels.append(f"{r.phases} NZCC {r.nzcc:.2f}" + (f" → {nz:.2f}" if np.isfinite(nz) else ""))
        else:
            labels.append("")
    w["label"] = labels
    return w


def plot_waveforms(config: str, cmtsolution: str, stations: str, observed: str, initial: str,
                   final: str, output: str, final_cmtsolution: str | None = None,
                   stationxml: str | None = None, station_codes: list[str] | None = None,
                   stage: int | None = None, max_stations: int = DEFAULT_WAVEFORM_STATIONS
                   ) -> list[str]:
    """One figure per station and band: observed (black), initial (blue) and final (red)
    synthetics processed in the bands of `stage` (default the last), windows of the initial
    measurement shaded with NZCC initial → final (Fig. 10). Returns the figure paths."""
    from obspy import Stream

    from seisflows_eara.assess.figures import waveform_comparison
    from seisflows_eara.io.specfem_traces import read_synthetics
    from seisflows_eara.io.stations import read_stations
    from seisflows_eara.io.waveforms import read_inventory, read_observed
    from seisflows_eara.measure import Config, event_from_file, measure_event
    values = params.load_parameters(config)
    stage = stage or params.stage_count(values)
    ev0 = event_from_file(cmtsolution)
    ev1 = event_from_file(final_cmtsolution) if final_cmtsolution else ev0
    sta = read_stations(stations)
    obs, asdf_inv = read_observed(observed, ev0.time)
    inv = read_inventory(stationxml) if stationxml else None
    if inv is None and os.path.isdir(observed) and glob.glob(os.path.join(observed, "*.xml")):
        inv = read_inventory(observed)
    inv = inv or asdf_inv
    by: dict[str, Stream] = defaultdict(Stream)
    for tr in obs:
        by[f"{tr.stats.network}.{tr.stats.station}"] += tr
    if station_codes:
        unknown = sorted(set(station_codes) - {s.code for s in sta})
        if unknown:
            raise PlotInputError(f"stations {unknown} are not in {stations}")
        sta = [s for s in sta if s.code in station_codes]
    cfg = Config(values, stage)
    kw = dict(inventory=inv, observed_processed=inv is None, keep_processed=True)
    m0 = measure_event(ev0, sta, dict(by), read_synthetics(initial, ev0.time), cfg, **kw)
    m1 = measure_event(ev1, sta, dict(by), read_synthetics(final, ev1.time), cfg, **kw)
    ok = m0.table[m0.table.status == "ok"]
    codes = station_codes or list(
        (ok.network + "." + ok.station).value_counts().index[:max_stations])
    if not codes:
        raise PlotInputError(f"event {ev0.name}: no kept windows at any station of {stations}")
    shift = float(ev1.time - ev0.time)
    paths = []
    os.makedirs(output, exist_ok=True)
    for code in codes:
        net, st = code.split(".")
        for band in ("body", "surface"):
            if (code, band) not in m0.processed or (code, band) not in m1.processed:
                continue
            t0, o0, s0 = m0.processed[(code, band)]
            t1, _, s1 = m1.processed[(code, band)]
            sel = (m0.table.network == net) & (m0.table.station == st) & (m0.table.band == band)
            sel1 = (m1.table.network == net) & (m1.table.station == st) & (m1.table.band == band)
            b = cfg.band(band)
            path = os.path.join(output, f"waveforms_{ev0.name}_{code}_{band}.png")
            waveform_comparison(t0, o0, {"initial": s0, "final": _final_on_initial_axis(t0, t1, s1, shift)},
                                _window_labels(m0.table[sel], m1.table[sel1]),
                                f"{ev0.name} at {code}, {band} waves {b.min_period:g}-{b.max_period:g} s "
                                f"(stage {stage} band)", path, colors=["tab:blue", "tab:red"])
            paths.append(path)
    if not paths:
        raise PlotInputError(f"event {ev0.name}: no processed traces at {codes}")
    return paths


# ------------------------------------------------------------------------------ model, PSF
def gll_names(directory: str, region: int = 1) -> list[str]:
    """Model field names of the process-0 files in a GLL folder (kernels excluded)."""
    pat = re.compile(rf"^proc000000_reg{region}_(\w+?)\.bin(\.xz)?$")
    names = sorted({m.group(1) for f in os.listdir(directory) if (m := pat.match(f))
                    and not m.group(1).endswith("_kernel") and not m.group(1).startswith("solver_data")})
    if not names:
        raise PlotInputError(f"{directory}: no proc000000_reg{region}_<name>.bin GLL files")
    return names


def _read_model(directory: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
    from seisflows_eara.model import read_fields
    return read_fields(directory, names or gll_names(directory)).fields


def _mesh(mesh_dir: str):
    from seisflows_eara.model import read_mesh
    return read_mesh(mesh_dir)


def plot_model(model_dir: str, mesh_dir: str, output: str, fields: list[str] | None = None,
               depths: list[float] | None = None, section: list[float] | None = None,
               perturbation: bool = False, config: str | None = None, mesh=None,
               title: str | None = None) -> tuple[Any, Any]:
    """Map views (at `depths`, default assess_slice_depths_km) and a great-circle section (default
    west-east through the mesh centre) of `fields` (default dlnvs, xi, vs; any GLL name too).
    `perturbation`: the folder holds δln fields (a direction, a PSF input): shown in %.
    Writes `output` and `<stem>_section<suffix>`; returns both figures."""
    from seisflows_eara.assess.fields import LABELS, PERCENT, discontinuity_mask
    from seisflows_eara.assess.figures import model_maps, model_section
    from seisflows_eara.assess.sections import (GllInterpolator, default_section, great_circle,
                                                map_grid)
    from seisflows_eara.assess.views import map_views, section_view
    v = _values(config, model_dir)
    model = _read_model(model_dir)
    mesh = mesh or _mesh(mesh_dir)
    sizes = {k: a.size for k, a in model.items()}
    if set(sizes.values()) != {mesh.npoint}:
        raise PlotInputError(f"{model_dir}: fields have {sizes} points, the mesh in {mesh_dir} "
                             f"{mesh.npoint}")
    if fields is None:
        fields = sorted(model) if perturbation else ["dlnvs", "xi", "vs"]
    interp = GllInterpolator(mesh.xyz, mesh.ngll)
    ext = interp.extent()
    depths = list(depths or v["assess_slice_depths_km"])
    depths = [z for z in depths if z < ext.max_depth_km] or depths
    lat, lon = map_grid(ext, v["assess_grid_spacing_deg"])
    step, mean_deg = v["assess_depth_step_km"], v["assess_mean_grid_deg"]
    rel = list(fields) if perturbation else [f for f in fields if f in PERCENT]
    labels = {f: (f"δln{f} (%)" if perturbation else LABELS.get(f, f)) for f in fields}
    scale = {f: 100.0 for f in rel}
    maps = map_views(fields, model, interp, depths, lat, lon, mean_deg)
    masked = discontinuity_mask(np.asarray(depths), v["assess_mask_depths_km"],
                                v["assess_mask_halfwidth_km"])
    name = title or os.path.basename(os.path.normpath(model_dir))
    f1 = model_maps(maps, lat, lon, depths, labels, rel, masked, name, _figure_path(output, Path(output)),
                    scale)
    ends = section or default_section(ext)
    path = great_circle(*ends, v["assess_grid_spacing_deg"])
    z0, z1 = v["assess_section_depths_km"]
    zs = np.arange(z0, min(z1, ext.max_depth_km) + step / 2, step)
    sec = section_view(fields, model, interp, path, zs, mean_deg)
    p = Path(output)
    f2 = model_section(sec, path.distance_deg, zs, labels, rel, v["assess_mask_depths_km"],
                       v["assess_mask_halfwidth_km"],
                       f"{name}: ({ends[0]:.1f}°, {ends[1]:.1f}°) → ({ends[2]:.1f}°, {ends[3]:.1f}°)",
                       str(p.with_name(f"{p.stem}_section{p.suffix or '.png'}")), scale)
    return f1, f2


def build_psf_model(model_dir: str, mesh_dir: str, output: str, config: str | None = None,
                    mesh=None) -> dict[str, Any]:
    """Write the PSF input of parameters.yaml's psf_* keys for the final model in `model_dir`:
    output/model (GLL model to run kernels in), output/perturbation (δln<parameter> on the GLL
    points) and output/centres.csv."""
    from seisflows_eara.assess.psf import build_psf
    from seisflows_eara.assess.sections import GllInterpolator
    from seisflows_eara.model import write_fields
    from seisflows_eara.model.gll import GllFields
    from seisflows_eara.model.parametrization import MODEL_FILES
    from seisflows_eara.io.atomic import atomic_open
    v = _values(config, model_dir)
    mesh = mesh or _mesh(mesh_dir)
    model = _read_model(model_dir, list(MODEL_FILES))
    interp = GllInterpolator(mesh.xyz, mesh.ngll)
    new, dln, centres = build_psf(model, mesh, interp, v)
    out = Path(output)
    write_fields(str(out / "model"), GllFields(new, list(mesh.sizes)))
    write_fields(str(out / "perturbation"), GllFields({f"dln{v['psf_parameter']}": dln},
                                                        list(mesh.sizes)))
    with atomic_open(out / "centres.csv", "w") as f:
        centres.to_csv(f, index=False, float_format="%.6f")
    return dict(centres=len(centres), model=str(out / "model"),
                perturbation=str(out / "perturbation"), max_abs=float(np.abs(dln).max()))


def plot_psf(mesh_dir: str, model_dir: str, output: str, perturbation_dir: str | None = None,
             kernels: list[str] | None = None, config: str | None = None, mesh=None):
    """Paper Fig. 9 at psf_depths_km: the input δln<psf_parameter> and, with kernel folders of a
    PSF run (summed over events), the responses −g in Vsv, Vsh and Vc."""
    from seisflows_eara.assess.figures import psf_maps
    from seisflows_eara.assess.psf import psf_response
    from seisflows_eara.assess.sections import GllInterpolator, depth_slice, map_grid
    from seisflows_eara.model import read_fields
    from seisflows_eara.model.parametrization import KERNEL_FILES, MODEL_FILES
    v = _values(config, model_dir)
    mesh = mesh or _mesh(mesh_dir)
    par = v["psf_parameter"]
    interp = GllInterpolator(mesh.xyz, mesh.ngll)
    ext = interp.extent()
    lat, lon = map_grid(ext, v["assess_grid_spacing_deg"])
    depths = [z for z in v["psf_depths_km"] if z < ext.max_depth_km]
    fields: dict[str, np.ndarray] = {}
    if perturbation_dir:
        fields["input"] = read_fields(perturbation_dir, [f"dln{par}"]).fields[f"dln{par}"]
    responses = {}
    if kernels:
        model = _read_model(model_dir, list(MODEL_FILES))
        total: dict[str, np.ndarray] = {}
        for k in kernels:
            kk = read_fields(k, list(KERNEL_FILES), kernel=True).fields
            for name, a in kk.items():
                total[name] = total.get(name, 0.0) + a
        responses = psf_response(total, model, mesh, v["density_scaling"])
        fields.update({f"{p}": responses[p] for p in ("vsv", "vsh", "vc")})
    if not fields:
        raise PlotInputError("plot psf needs the PSF input (--perturbation or --build) and/or "
                             "kernel folders of a PSF run (--kernels)")
    slices = {k: [] for k in fields}
    for z in depths:
        for k, a in depth_slice(interp, fields, z, lat, lon).items():
            slices[k].append(a)
    inputs = slices.pop("input", [np.full((lat.size, lon.size), np.nan)] * len(depths))
    return psf_maps(inputs, slices, lat, lon, depths, par if par in slices else "vsv",
                    f"input δln{par} (%)", _figure_path(output, Path(output)))


# ------------------------------------------------------------------------------ command line
def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="plot_command", required=True)
    a = sub.add_parser("misfit", help="misfit per category and stage (paper Fig. 3)")
    a.add_argument("output_dir", help="workflow output folder (or working directory)")
    a.add_argument("--output", help="figure file (default OUTPUT/figures/misfit.png)")
    a = sub.add_parser("histograms", help="δt, NZCC, CC histograms, initial vs final (Fig. 8)")
    a.add_argument("output_dir", help="workflow output folder (or working directory)")
    a.add_argument("--steps", nargs="+", help="measurement step folders to compare (default: "
                   "initial, after source inversion, final)")
    a.add_argument("--output", help="figure file (default OUTPUT/figures/histograms.png)")
    a = sub.add_parser("waveforms", help="observed / initial / final waveforms (Fig. 10)")
    a.add_argument("--workdir", help="SeisFlows working directory: finds every file of --event")
    a.add_argument("--event", help="event name (with --workdir)")
    for name, h in (("config", "parameters.yaml"), ("cmtsolution", "initial CMTSOLUTION"),
                    ("final-cmtsolution", "final CMTSOLUTION (default: the initial)"),
                    ("stations", "STATIONS"), ("observed", "observed data folder or file"),
                    ("stationxml", "StationXML (default: *.xml beside the observed data)"),
                    ("initial", "initial synthetics (folder of *.sem.ascii or SPECFEM's synthetic.h5)"),
                    ("final", "final synthetics")):
        a.add_argument(f"--{name}", help=h)
    a.add_argument("--station", action="append", help="NET.STA (repeat; default: the stations "
                   "with most kept windows)")
    a.add_argument("--stage", type=int, help="stage whose bands are used (default: the last)")
    a.add_argument("--output", required=True, help="folder for the figures")
    a = sub.add_parser("model", help="map views and a cross-section of a GLL model (Figs 4-7)")
    a.add_argument("model_dir", help="GLL model folder (proc*_reg1_<name>.bin[.xz])")
    a.add_argument("--mesh", required=True, help="DATABASES_MPI folder (solver_data.bin[.xz])")
    a.add_argument("--config", help="parameters.yaml (default: beside the model or the defaults)")
    a.add_argument("--fields", help="comma-separated: dlnvs, dlnvp, xi, vs, vp or GLL names "
                   "(default dlnvs,xi,vs)")
    a.add_argument("--depths", help="comma-separated depths in km (default assess_slice_depths_km)")
    a.add_argument("--section", nargs=4, type=float, metavar=("LAT1", "LON1", "LAT2", "LON2"),
                   help="great-circle section end points (default: west-east through the centre)")
    a.add_argument("--perturbation", action="store_true",
                   help="the folder holds δln fields (a direction, a PSF input)")
    a.add_argument("--title", help="figure title (default: the model folder's name)")
    a.add_argument("--output", required=True, help="figure file; the section goes to <stem>_section")
    a = sub.add_parser("psf", help="point-spread-function input and responses (Fig. 9)")
    _psf_common(a)
    a.add_argument("--build", help="first write the PSF perturbation model into this folder")
    a.add_argument("--perturbation", help="perturbation folder written by psf-model / --build")
    a.add_argument("--kernels", nargs="+", help="kernel folders of the PSF run (summed)")
    a.add_argument("--output", required=True, help="figure file")


def _psf_common(a: argparse.ArgumentParser) -> None:
    a.add_argument("--mesh", required=True, help="DATABASES_MPI folder (solver_data.bin[.xz])")
    a.add_argument("--model", required=True, help="final GLL model folder")
    a.add_argument("--config", help="parameters.yaml (psf_* keys; default: the defaults)")


def _csv(text: str | None, cast=str) -> list | None:
    return [cast(x) for x in text.split(",") if x.strip()] if text else None


def _run(a: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt
    try:
        cmd = a.plot_command
        if cmd == "misfit":
            plot_misfit(a.output_dir, a.output)
            done = a.output or str(output_folder(a.output_dir) / "figures" / "misfit.png")
        elif cmd == "histograms":
            plot_histograms(a.output_dir, a.steps, a.output)
            done = a.output or str(output_folder(a.output_dir) / "figures" / "histograms.png")
        elif cmd == "waveforms":
            files = resolve_workdir(a.workdir, a.event) if a.workdir else {}
            if a.workdir and not a.event:
                raise PlotInputError("--workdir needs --event")
            for k in ("config", "cmtsolution", "final_cmtsolution", "stations", "observed",
                      "initial", "final", "stationxml"):
                if getattr(a, k) is not None:
                    files[k] = getattr(a, k)
            missing = [k for k in ("config", "cmtsolution", "stations", "observed", "initial", "final")
                       if k not in files]
            if missing:
                raise PlotInputError(f"plot waveforms needs --{', --'.join(missing)} (or --workdir "
                                     "and --event)")
            paths = plot_waveforms(files["config"], files["cmtsolution"], files["stations"],
                                   files["observed"], files["initial"], files["final"], a.output,
                                   files.get("final_cmtsolution"), files.get("stationxml"),
                                   a.station, a.stage)
            done = ", ".join(paths)
        elif cmd == "model":
            plot_model(a.model_dir, a.mesh, a.output, _csv(a.fields), _csv(a.depths, float),
                       a.section, a.perturbation, a.config, title=a.title)
            done = a.output
        else:
            pert = a.perturbation
            if a.build:
                r = build_psf_model(a.model, a.mesh, a.build, a.config)
                print(f"PSF model: {r['centres']} Gaussians, max |δln| {r['max_abs']:.3g} -> "
                      f"{r['model']}")
                pert = r["perturbation"]
            plot_psf(a.mesh, a.model, a.output, pert, a.kernels, a.config)
            done = a.output
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        plt.close("all")
    print(f"figure(s): {done}")
    return 0


def _psf_args(p: argparse.ArgumentParser) -> None:
    _psf_common(p)
    p.add_argument("--output", required=True, help="folder for model/, perturbation/, centres.csv")


def _psf_run(a: argparse.Namespace) -> int:
    try:
        r = build_psf_model(a.model, a.mesh, a.output, a.config)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"PSF model: {r['centres']} Gaussians, max |δln| {r['max_abs']:.3g}; GLL model for the "
          f"kernel run in {r['model']}, input in {r['perturbation']}")
    return 0


COMMANDS.append(("plot", "assessment figures: misfit, histograms, waveforms, model, psf", _args, _run))
COMMANDS.append(("psf-model", "write the point-spread-function perturbation model (GLL)",
                 _psf_args, _psf_run))
