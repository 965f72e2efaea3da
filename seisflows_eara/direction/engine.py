"""Slice-parallel structure direction (SPEC §6 steps 1-4, paper eq. C1-C4), like SPECFEM's own
tomography tools: each rank holds a contiguous block of the mesh's slices and reads and writes only
those slices' files — mesh, model and every event's kernels (events streamed one at a time) — so
its memory follows its slices, not the mesh. The method is exactly the single-process one
(seisflows_eara.optimize.structure), in phases separated by files:

  (a) gradient   per slice: damping of each event (source 50 km, receivers 10 km: the few
                 centres are read by every rank), Σ_e, chain rule into the EARA parameters, Σ_e H;
                 P = 1/max(H'/max H', δ) with max H' over ALL slices (reduction); g and Pg saved.
  (b) smoothing  xsmooth_sem (SPECFEM, MPI, run by the caller between the phases) or the Python
                 operator: a slice's targets with the source points of every slice within the
                 Gaussian's reach (its own and its neighbours', read from their files, filtered).
  (c) direction  TISO/isotropic masks, PR-CG with Powell and descent restarts (inner products are
                 reductions), max|d| = 1 (reduction), trial model m + εd per slice.

Inner products and norms treat points as today's single-process code does: a sum over every
local (unassembled) GLL point of every slice — points on element and slice boundaries appear once
per element that holds them, exactly as in the concatenated arrays of read_fields/read_mesh. A
reduction adds per-slice partial sums in slice order (direction.comm), so results do not depend on
the rank count. Everything is written under `<output>.tmp/`; rank 0 renames it to `<output>` after
the last barrier, so the output folder is complete or absent, and a re-run recomputes it from the
same inputs bit for bit.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from seisflows_eara.direction.comm import collective, my_slices, slice_max, slice_sum
from seisflows_eara.direction.slices import (SliceInputError, count_slices, load_slice,
                                             read_slice_fields, save_slice)
from seisflows_eara.kernels import KernelSum, damping_mask, geographic_to_xyz, precondition, \
    preconditioner
from seisflows_eara.kernels.precondition import nonnegative_hessian
from seisflows_eara.kernels.smoothing import TRUNCATE_SIGMA, estimated_pairs, smooth_at, \
    smoothing_reach, unique_rows
from seisflows_eara.model.gll import gll_filename, read_gll, write_gll
from seisflows_eara.model.mesh import read_mesh
from seisflows_eara.model.parametrization import INVERTED, KERNEL_FILES, MODEL_FILES, TISO, \
    kernels_to_gradient, reference, tiso_mask, update_model
from seisflows_eara.optimize.pcg import PrSums, pr_coefficients, pr_sums

#: kernel files read per event and slice (the six primary TISO kernels and the Hessian)
KERNEL_NAMES = tuple(sorted(set(KERNEL_FILES) | {"hess"}))
#: measured cost of one source-target pair of the Python smoother (s; 2-core machine, one rank)
SMOOTH_SECONDS_PER_PAIR = 6.0e-8
SMOOTHING = ("python", "xsmooth_sem", "none")


@dataclass
class EventInput:
    name: str
    kernels: str          # folder of proc*_reg1_<name>_kernel.bin
    source: str           # CMTSOLUTION (or QuakeML)


@dataclass
class DirectionInputs:
    events: list[EventInput]
    stations: str
    model: str
    mesh: str
    values: dict                        # EARA parameters (seisflows_eara.params)
    smoothing_km: tuple[float, float]
    smoothing: str = "python"           # python | xsmooth_sem | none
    previous: tuple[str, str] | None = None    # (gradient, direction) folders of iteration i−1
    trial_step: float | None = None     # None: structure_trial_step
    info: dict = field(default_factory=dict)   # copied into direction.json (stage, iteration…)


# ------------------------------------------------------------------------------ small helpers
def _mesh_slice(mesh: str, s: int):
    try:
        return read_mesh(mesh, iproc=s)
    except (OSError, ValueError) as e:
        raise SliceInputError(f"mesh {mesh}: slice {s}: {e}") from None


def _geometry(msh, values: dict) -> dict[str, np.ndarray]:
    """What the parametrization needs of the mesh, per local point (as the single-process code:
    STW105 side by element centre, TISO by point depth)."""
    return dict(radius=msh.radius, element_radius=msh.element_radius(),
                tiso=tiso_mask(msh.depth, values["tiso_max_depth"]).astype(float))


def _keep(tiso: np.ndarray) -> dict[str, np.ndarray]:
    return {k: (tiso if k in TISO else ~tiso) for k in INVERTED}


def _model_slice(model: str, s: int, npoint: int) -> dict[str, np.ndarray]:
    m = read_slice_fields(model, s, MODEL_FILES, npoint, f"model {model}")
    return {k: np.asarray(v, np.float64) for k, v in m.items()}


def event_centres(events: list[EventInput], stations: str) -> tuple[dict, np.ndarray]:
    """{event: source (3,) km} and the receivers (n, 3) km: the damping centres (tiny data).
    The centroid is read by seisflows_eara.measure.event_from_file, as everywhere else."""
    from seisflows_eara.io.stations import read_stations
    from seisflows_eara.measure import event_from_file
    rec = read_stations(stations)
    rxyz = geographic_to_xyz(np.array([r.latitude for r in rec]),
                             np.array([r.longitude for r in rec]),
                             np.array([r.burial / 1000.0 for r in rec]))
    src = {}
    for ev in events:
        try:
            e = event_from_file(ev.source)
        except (OSError, ValueError) as err:
            raise SliceInputError(f"event {ev.name}: cannot read {ev.source}: {err}") from None
        src[ev.name] = geographic_to_xyz(e.latitude, e.longitude, e.depth_km)[0]
    return src, rxyz


def _fresh(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


# ------------------------------------------------------------------------------ phase (a)
def _sum_slice(inp: DirectionInputs, work: str, s: int, src: dict, rxyz: np.ndarray):
    """Slice s of phase (a): Σ_e damped kernels (events streamed), chain rule, Σ_e H; saves
    work/geometry and work/summed; returns (max H', the slice's box summary)."""
    v = inp.values
    msh = _mesh_slice(inp.mesh, s)
    xyz = msh.xyz
    geom = _geometry(msh, v)
    volume, npoint = msh.volume, msh.npoint
    box = (xyz.min(0).tolist(), xyz.max(0).tolist(), float(volume.sum()),
           int(np.unique(msh.point_index).size))
    del msh
    tree = cKDTree(xyz)
    total, hess = KernelSum(), KernelSum()
    for ev in inp.events:
        k = read_slice_fields(ev.kernels, s, KERNEL_NAMES, npoint, f"event {ev.name}: kernels",
                              kernel=True)
        mask = damping_mask(xyz, src[ev.name], rxyz, v["source_damping_radius_km"],
                            v["receiver_damping_radius_km"], tree)
        try:
            total.add(ev.name, {n: a for n, a in k.items() if n != "hess"}, weight=mask)
            hess.add(ev.name, {"hess": k["hess"]})
        except ValueError as e:
            raise SliceInputError(f"slice {s}: {e} (in {ev.kernels})") from None
        del k, mask
    del tree
    save_slice(os.path.join(work, "geometry"), s, {**geom, "xyz": xyz, "volume": volume})
    del xyz, volume
    h = hess.fields["hess"]
    hp = nonnegative_hessian(h, v["hessian_rule"])
    if not np.all(np.isfinite(hp)):
        raise SliceInputError(f"slice {s}: the summed pseudo-Hessian is not finite")
    hmax = float(hp.max())
    del hp
    model = read_slice_fields(inp.model, s, MODEL_FILES, npoint, f"model {inp.model}")
    tiso = geom["tiso"] > 0.5
    g = _pointwise(npoint, lambda c: kernels_to_gradient(
        {k: a[c] for k, a in total.fields.items()}, {k: np.asarray(a[c], np.float64)
                                                     for k, a in model.items()},
        reference(geom["radius"][c], geom["element_radius"][c]), tiso[c], v["density_scaling"]))
    save_slice(os.path.join(work, "summed"), s, {**{f"g_{k}": a for k, a in g.items()}, "hess": h})
    return hmax, box


def gradient_phase(comm, inp: DirectionInputs, work: str, slices: list[int]) -> dict:
    """Damp, sum, parametrize (per slice, events streamed), precondition with the global max H'.
    Writes work/geometry, work/gradient_raw (g_, pg_ fields) and, for xsmooth_sem, float32 kernel
    files work/sem_in/proc*_reg1_{g,pg}_<par>_kernel.bin; returns the job's global facts."""
    v = inp.values

    def sum_slices():
        src, rxyz = event_centres(inp.events, inp.stations)
        hmax, boxes = {}, {}
        for s in slices:            # one slice's arrays at a time (freed when _sum_slice returns)
            hmax[s], boxes[s] = _sum_slice(inp, work, s, src, rxyz)
        return hmax, boxes

    hmax_part, boxes_part = collective(comm, sum_slices)
    hmax = slice_max(comm, hmax_part)
    boxes = {}
    for part in comm.allgather(boxes_part):
        boxes.update(part)
    if not hmax > 0:
        raise SliceInputError("the summed pseudo-Hessian is zero on every slice: no kernel run "
                              "contributed (check APPROXIMATE_HESS_KL and the adjoint sources)")

    def precondition_slices():
        for s in slices:
            z = load_slice(os.path.join(work, "summed"), s)
            p = preconditioner(z["hess"], v["hessian_threshold"], v["hessian_rule"], hmax=hmax)
            g = {k: z[f"g_{k}"] for k in INVERTED}
            pg = precondition(g, p)
            fields = {**{f"g_{k}": a for k, a in g.items()},
                      **{f"pg_{k}": a for k, a in pg.items()}}
            save_slice(os.path.join(work, "gradient_raw"), s, fields)
            if inp.smoothing == "xsmooth_sem":
                sem = os.path.join(work, "sem_in")
                os.makedirs(sem, exist_ok=True)
                for name, a in fields.items():
                    write_gll(os.path.join(sem, gll_filename(s, 1, f"{name}_kernel")), a)
            os.remove(os.path.join(work, "summed", f"proc{s:06d}.npz"))
    collective(comm, precondition_slices)
    return dict(hessian_max=hmax, boxes={int(k): b for k, b in boxes.items()})


# ------------------------------------------------------------------------------ phase (b)
def smoothing_estimate_hours(boxes: dict, slices: list[int], sigma: tuple[float, float],
                             truncate: float = TRUNCATE_SIGMA) -> float:
    """Hours of the Python smoother for `slices` on one rank: merged target points × the points
    within the truncated Gaussian (slice density), times SMOOTH_SECONDS_PER_PAIR."""
    pairs = sum(estimated_pairs(boxes[s][3], boxes[s][3] / boxes[s][2], *sigma, truncate)
                for s in slices)
    return pairs * SMOOTH_SECONDS_PER_PAIR / 3600.0


def python_smoothing_phase(comm, inp: DirectionInputs, work: str, slices: list[int],
                           boxes: dict, truncate: float = TRUNCATE_SIGMA) -> None:
    """Gaussian smoothing (kernels.smoothing) of g and Pg, slice by slice: targets = the slice's
    points, sources = the points of every slice within the reach (slice order, so the result is
    the same for any rank count). Refuses when the estimate exceeds python_smoothing_max_hours."""
    sh, sv = inp.smoothing_km
    hours = smoothing_estimate_hours(boxes, slices, (sh, sv), truncate)
    limit = float(inp.values.get("python_smoothing_max_hours", np.inf))

    def check_cost():
        if hours > limit:
            raise ValueError(f"the Python smoother would take ~{hours:.3g} h on this rank "
                             f"({len(slices)} slice(s), σ = {sh:g}/{sv:g} km) > "
                             f"python_smoothing_max_hours = {limit:g}: use smoothing_program: "
                             "xsmooth_sem (SPECFEM's MPI program), or more ranks")
        if hours > 0.25 * limit:
            warnings.warn(f"the Python smoother will take ~{hours:.3g} h on this rank; "
                          "smoothing_program: xsmooth_sem is SPECFEM's MPI program for large "
                          "meshes")
    collective(comm, check_cost)
    allboxes = {s: (np.array(b[0]), np.array(b[1])) for s, b in boxes.items()}
    geo_dir, raw_dir = os.path.join(work, "geometry"), os.path.join(work, "gradient_raw")
    cache: dict[int, tuple] = {}

    def source(j: int):
        if j not in cache:
            gj = load_slice(geo_dir, j)
            cache[j] = (gj["xyz"], gj["volume"], load_slice(raw_dir, j))
        return cache[j]

    def smooth_slices():
        for s in slices:
            xyz_s = load_slice(geo_dir, s)["xyz"]
            r = np.linalg.norm(xyz_s, axis=1)
            reach = smoothing_reach(sh, sv, float(r.min()) - truncate * sv, truncate)
            lo_s, hi_s = allboxes[s]
            tree = cKDTree(unique_rows(xyz_s)[0])
            parts = []
            for j in sorted(allboxes):
                lo_j, hi_j = allboxes[j]
                gap = np.maximum(0.0, np.maximum(lo_j - hi_s, lo_s - hi_j))
                if np.linalg.norm(gap) > reach:
                    continue
                xj, vj, fj = source(j)
                near = np.all((xj >= lo_s - reach) & (xj <= hi_s + reach), axis=1)
                if j != s:     # the slice's own points are all sources; neighbours' within reach
                    idx = np.nonzero(near)[0]
                    near[idx] = np.isfinite(tree.query(xj[idx], distance_upper_bound=reach)[0])
                parts.append((xj[near], vj[near], {k: a[near] for k, a in fj.items()}))
            names = list(parts[0][2])
            sm = smooth_at({k: np.concatenate([p[2][k] for p in parts]) for k in names},
                           np.concatenate([p[0] for p in parts]),
                           np.concatenate([p[1] for p in parts]), xyz_s, sh, sv, truncate)
            save_slice(os.path.join(work, "gradient_smooth"), s, sm)
            for j in [j for j in cache if j not in slices]:
                del cache[j]          # neighbours' points: one target slice at a time
    collective(comm, smooth_slices)


# ------------------------------------------------------------------------------ phase (c)
def _read_gradient(work: str, smoothing: str, s: int) -> dict[str, np.ndarray]:
    """g_, pg_ fields of slice s after phase (b)."""
    if smoothing == "python":
        return load_slice(os.path.join(work, "gradient_smooth"), s)
    if smoothing == "none":
        return load_slice(os.path.join(work, "gradient_raw"), s)
    out = {}
    for k in INVERTED:
        for p in ("g", "pg"):
            path = os.path.join(work, "sem_out", gll_filename(s, 1, f"{p}_{k}_kernel_smooth"))
            try:
                out[f"{p}_{k}"] = read_gll(path).astype(np.float64)
            except (OSError, ValueError) as e:
                raise SliceInputError(f"xsmooth_sem output: slice {s}: {path}: {e}") from None
    return out


def direction_phase(comm, slices: list[int], values: dict, out: str,
                    gradient_of, geometry_of, previous: tuple[str, str] | None,
                    model: str, trial_step: float, trial_name: str) -> dict:
    """PR-CG direction (eq. C1-C3) over the slices and the trial model m + ε d.
    `gradient_of(s)` gives slice s's {g_<par>, pg_<par>} (masked here), `geometry_of(s)` its
    radius/element_radius/tiso. Writes out/gradient, out/direction (d_<par> normalized,
    raw_<par> the recursion's), out/<trial_name>/ (GLL files); returns the step's record."""
    gdir, ddir = os.path.join(out, "gradient"), os.path.join(out, "direction")

    def sums():
        parts = {}
        for s in slices:
            z = gradient_of(s)
            keep = _keep(geometry_of(s)["tiso"] > 0.5)
            g = {k: np.where(keep[k], z[f"g_{k}"], 0.0) for k in INVERTED}
            pg = {k: np.where(keep[k], z[f"pg_{k}"], 0.0) for k in INVERTED}
            save_slice(gdir, s, {**{f"g_{k}": a for k, a in g.items()},
                                 **{f"pg_{k}": a for k, a in pg.items()}})
            prev = None
            if previous is not None:
                what = "previous iteration's state"
                prev = (load_slice(previous[0], s, "g_", what),
                        load_slice(previous[0], s, "pg_", what),
                        load_slice(previous[1], s, "raw_", what))
            parts[s] = pr_sums(g, pg, prev, _dot)
        return parts

    parts = collective(comm, sums)
    names = ("g_pg", "g_d0", "g0_pg0", "dg_pg")
    total = PrSums(*(slice_sum(comm, {s: getattr(p, n) for s, p in parts.items()}) for n in names))
    if previous is not None:
        for k in INVERTED:
            total.pg_pg0[k] = slice_sum(comm, {s: p.pg_pg0[k] for s, p in parts.items()})
            total.pg0_pg0[k] = slice_sum(comm, {s: p.pg0_pg0[k] for s, p in parts.items()})
    beta, reason, ratios = pr_coefficients(total, previous is not None,
                                           values["powell_threshold"])

    def raw_direction():
        mx = {}
        for s in slices:
            pg = load_slice(gdir, s, "pg_")
            if beta == 0.0:
                d = {k: -pg[k] for k in INVERTED}
            else:
                d0 = load_slice(previous[1], s, "raw_")
                d = {k: beta * d0[k] + -pg[k] for k in INVERTED}
            save_slice(ddir, s, {f"raw_{k}": a for k, a in d.items()})
            mx[s] = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in d.values())
        return mx

    dmax = slice_max(comm, collective(comm, raw_direction))
    scale = 1.0 / dmax if dmax > 0 else 1.0
    trial = os.path.join(out, trial_name)

    def normalize_and_trial():
        for s in slices:
            raw = load_slice(ddir, s, "raw_")
            d = {k: a * scale for k, a in raw.items()}
            save_slice(ddir, s, {**{f"d_{k}": a for k, a in d.items()},
                                 **{f"raw_{k}": a for k, a in raw.items()}})
            write_trial_slice(model, s, d, trial_step, geometry_of(s), values, trial)
    collective(comm, normalize_and_trial)
    descent = scale * (beta * total.g_d0 - total.g_pg) if beta != 0.0 else -scale * total.g_pg
    return dict(beta=beta, restarted=beta == 0.0, reason=reason, powell_ratio=ratios,
                scale=scale, max_raw_direction=dmax, descent=descent, trial_step=trial_step,
                gradient=gdir, direction=ddir, trial_model=trial)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b of one slice by numpy's pairwise summation: the same bits whatever the BLAS threads
    (np.vdot's sum order depends on them)."""
    return float(np.add.reduce(np.multiply(a, b), axis=None))


#: points per block of the pointwise maps (chain rule, model update): bounds their temporaries
POINT_BLOCK = 1 << 16


def _pointwise(n: int, fn, dtype=np.float64) -> dict[str, np.ndarray]:
    """{name: array of n} from `fn(block slice)` -> {name: values of the block}, block by block
    (the maps are pointwise, so the result is the whole-array one, bit for bit)."""
    out: dict[str, np.ndarray] = {}
    for a in range(0, n, POINT_BLOCK):
        c = slice(a, min(a + POINT_BLOCK, n))
        for k, vals in fn(c).items():
            out.setdefault(k, np.empty(n, dtype))[c] = vals
    return out


def write_trial_slice(model: str, s: int, d: dict[str, np.ndarray], alpha: float, geom: dict,
                      values: dict, folder: str) -> None:
    """Slice s of the model at x + α d (δln relative to STW105, SPEC §6) as GLL float32 files."""
    n = geom["radius"].size
    m = read_slice_fields(model, s, MODEL_FILES, n, f"model {model}")
    tiso = geom["tiso"] > 0.5
    new = _pointwise(n, lambda c: update_model(
        {k: np.asarray(a[c], np.float64) for k, a in m.items()},
        {k: v[c] * alpha for k, v in d.items()},
        reference(geom["radius"][c], geom["element_radius"][c]), tiso[c],
        values["density_scaling"]), np.float32)
    os.makedirs(folder, exist_ok=True)
    for name in MODEL_FILES:
        write_gll(os.path.join(folder, gll_filename(s, 1, name)), new[name])


# ------------------------------------------------------------------------------ the job
def _publish(comm, tmp: str, final: str) -> None:
    """Collective: barrier, rank 0 replaces `final` by the complete `tmp`, barrier."""
    comm.barrier()
    if comm.rank == 0:
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    comm.barrier()


def _start(comm, tmp: str) -> None:
    if comm.rank == 0:
        _fresh(tmp)
    comm.barrier()


def _abort(comm, tmp: str) -> None:
    comm.barrier()
    if comm.rank == 0 and os.path.isdir(tmp):
        shutil.rmtree(tmp)


def trial_name(step: float) -> str:
    return f"trial_model_eps{step:.6g}"


def run_gradient(comm, inp: DirectionInputs, output: str) -> dict:
    """Phase (a) into `<output>.tmp/work` (then the caller runs xsmooth_sem on work/sem_in)."""
    tmp = output.rstrip("/") + ".tmp"
    _start(comm, tmp)
    work = os.path.join(tmp, "work")
    try:
        nslices = count_slices(inp.mesh)
        slices = my_slices(nslices, comm.rank, comm.size)
        facts = gradient_phase(comm, inp, work, slices)
    except BaseException:
        _abort(comm, tmp)
        raise
    if comm.rank == 0:
        with open(os.path.join(work, "facts.json"), "w") as f:
            json.dump(dict(facts, nslices=nslices), f)
    comm.barrier()
    return facts


def run_finish(comm, inp: DirectionInputs, output: str, facts: dict | None = None) -> dict:
    """Phases (b, Python smoothing) and (c) from `<output>.tmp/work`; publishes `<output>`."""
    tmp = output.rstrip("/") + ".tmp"
    work = os.path.join(tmp, "work")
    v = inp.values
    try:
        if facts is None:
            with open(os.path.join(work, "facts.json")) as f:
                facts = json.load(f)
            facts["boxes"] = {int(k): b for k, b in facts["boxes"].items()}
        nslices = count_slices(inp.mesh)
        slices = my_slices(nslices, comm.rank, comm.size)
        if inp.smoothing == "python":
            python_smoothing_phase(comm, inp, work, slices, facts["boxes"])
        step = float(v["structure_trial_step"] if inp.trial_step is None else inp.trial_step)
        geo = os.path.join(work, "geometry")
        info = direction_phase(
            comm, slices, v, tmp, lambda s: _read_gradient(work, inp.smoothing, s),
            lambda s: load_slice(geo, s), inp.previous, inp.model, step, trial_name(step))
    except BaseException:
        _abort(comm, tmp)
        raise
    info = _final_paths(info, tmp, output)
    info.update(inp.info, model=inp.model, mesh=inp.mesh, smoothing_km=list(inp.smoothing_km),
                smoothing=inp.smoothing, hessian_max=facts["hessian_max"], slices=nslices,
                ranks=comm.size, events=[e.name for e in inp.events],
                previous=list(inp.previous) if inp.previous else None)
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(work)
        with open(os.path.join(tmp, "direction.json"), "w") as f:
            json.dump(info, f, indent=1, default=float)
    _publish(comm, tmp, output)
    return info


def run_direction(comm, inp: DirectionInputs, output: str) -> dict:
    """The whole step with Python smoothing (or none): (a), (b), (c); returns the record."""
    if inp.smoothing == "xsmooth_sem":
        raise ValueError("smoothing xsmooth_sem runs between run_gradient and run_finish")
    facts = run_gradient(comm, inp, output)
    return run_finish(comm, inp, output, facts)


def _final_paths(info: dict, tmp: str, output: str) -> dict:
    out = dict(info)
    for k in ("gradient", "direction", "trial_model"):
        out[k] = os.path.join(output, os.path.relpath(info[k], tmp))
    return out


def run_steepest(comm, gradient: str, mesh: str, model: str, values: dict, output: str,
                 trial_step: float, info: dict | None = None) -> dict:
    """β = 0 restart (a rejected line search): d = −Pg of an existing gradient folder,
    normalized, and its trial model; published as `<output>` (direction/, trial_model_eps*/)."""
    tmp = output.rstrip("/") + ".tmp"
    _start(comm, tmp)
    try:
        nslices = count_slices(mesh)
        slices = my_slices(nslices, comm.rank, comm.size)
        geo = _GeometryCache(mesh, values)
        rec = direction_phase(comm, slices, values, tmp, lambda s: load_slice(gradient, s),
                              geo, None, model, trial_step, trial_name(trial_step))
    except BaseException:
        _abort(comm, tmp)
        raise
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(os.path.join(tmp, "gradient"))      # the same as `gradient`
    rec = _final_paths(rec, tmp, output)
    rec.update(info or {}, gradient=gradient, slices=nslices, ranks=comm.size,
               reason="line search failed: steepest descent")
    if comm.rank == 0:
        with open(os.path.join(tmp, "direction.json"), "w") as f:
            json.dump(rec, f, indent=1, default=float)
    _publish(comm, tmp, output)
    return rec


class _GeometryCache:
    """geometry_of(s) from the mesh, the last slice kept (phase (c) asks twice per slice)."""

    def __init__(self, mesh: str, values: dict) -> None:
        self.mesh, self.values, self._last = mesh, values, (None, None)

    def __call__(self, s: int) -> dict:
        if self._last[0] != s:
            self._last = (s, _geometry(_mesh_slice(self.mesh, s), self.values))
        return self._last[1]


def run_update(comm, model: str, direction: str, alpha: float, output: str, mesh: str,
               values: dict) -> None:
    """m + α d per slice (d from a direction folder's d_<par>) as a new GLL folder, published
    complete or not at all."""
    tmp = output.rstrip("/") + ".tmp"
    _start(comm, tmp)
    try:
        slices = my_slices(count_slices(mesh), comm.rank, comm.size)
        geo = _GeometryCache(mesh, values)

        def update():
            for s in slices:
                d = load_slice(direction, s, "d_", f"direction {direction}")
                write_trial_slice(model, s, d, alpha, geo(s), values, tmp)
        collective(comm, update)
    except BaseException:
        _abort(comm, tmp)
        raise
    _publish(comm, tmp, output)
