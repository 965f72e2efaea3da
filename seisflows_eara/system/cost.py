"""Cost model of an EARA run: core-hours, Slurm jobs and storage per iteration (SPEC §8).

Compute. The schedule of seisflows_eara.schedule.plan (stage_source_iterations,
stage_structure_iterations) is walked step by step. Each per-event simulation costs, in forward
runs of ``minutes_per_forward`` on ``cores_per_event`` cores:

    forward, perturbed_forward, trial_forward, final_forward   1
    source_adjoint (SIMULATION_TYPE 2: adjoint wavefield only)   source_adjoint_cost  (≈ 1)
    kernel (SIMULATION_TYPE 3: reconstructed forward + adjoint)  kernel_cost          (≈ 2)

so a source iteration costs 2 + a_s forwards per event and a structure iteration 2 + a_k (both
are 3 solver runs), plus one final forward. The mesher runs once per event whenever the model
changes (the first model, each trial model m + εd, each accepted model): 1 + 2 N_structure runs,
each ``mesher_cost`` forwards. Line-search retries (extra trial forwards) are not counted.

    core-hours = events · cores_per_event · minutes_per_forward / 60 · Σ (step costs)

Jobs. Every per-event step (simulations and the source line search) is submitted as
ceil(events / events_per_job) bundled jobs; the master steps run inside the one master job.

Storage per structure iteration (bytes; a source iteration has no kernels or saved wavefields),
with N_t = 100 · (floor(record / (100 dt)) + 1) samples per trace (SPECFEM's NSTEP, rounded up to
a multiple of 100; one sample per time step), traces = events · stations · 3 components:
  synthetics       2 sets (forward + trial or perturbed forward) · traces · N_t · bytes/sample of the
                   output format (SPECFEM two-column ascii: 37 B per line; ASDF: float32, 4 B)
  adjoint sources  traces · N_t · 34 B (two-column ascii "%14.6f %18.8e" as SPECFEM reads them)
  kernels          events · kernel files · (125 · elements · 4 B + 8 B per file and process:
                   Fortran record markers); 13 files for TISO kernels with the Hessian
  saved wavefields the last frame SPECFEM's save_forward_arrays writes for every event between its
                   forward and kernel runs: 4 B · [9 · points (displacement, velocity,
                   acceleration) + 5·125 · elements (deviatoric strain) + 5·N_SLS·125 · elements
                   (attenuation memory, N_SLS = 3, when ATTENUATION)]; UNDO_ATTENUATION snapshots
                   come on top and are not modelled
With no mesh size (elements) the last two are unknown (None).

Storage of the whole run, kept and deleted (`storage_budget`, issue 18 item 4), all events:
  synthetics of measured forwards   kept: per forward, traces · N_t · bytes/sample (as above)
  synthetics of trial forwards      deleted after their line search (keep_trial_synthetics)
  adjoint sources (.adj)            kept: one set per event (each measured forward rewrites it)
  adjoint store (compact)           per measured forward and station, 8 B per window sample
                                    (window seconds · sampling_rate; measure.adjoint_store); the
                                    full per-category arrays it replaces: categories · 3 · N_t · 8 B
  frozen measurements               per measured forward and station, observed and synthetic
                                    window segments (16 B per window sample) + one solver time axis
                                    per event (8 B · N_t); both deleted after the iteration's line
                                    search (keep_frozen_measurements), the final forward's kept
  measurement tables                kept: per measured forward, windows per station · 210 B per row
  prepared observed data            kept: per stage and station, Z/R/T in two bands for the record
                                    (measured: 344 B per record second, real IU.KBL file)
  event kernels                     deleted after the direction (keep_event_kernels)
  saved forward wavefields          deleted after the kernel step (keep_wavefields: one per event
                                    stays, each structure forward overwrites it)
  directions                        kept: per structure iteration the per-slice gradient and
                                    direction (24 float64 per GLL point) and the trial model
  models                            kept: per structure iteration 6 GLL files (float32)

The time step, when no values_from_mesher.h gives it, is SPECFEM3D_GLOBE's empirical step for
the surface element count (get_timestep_and_layers.f90, table below, with its 5 % margin);
regional meshes may get a smaller one from its auto_time_stepping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from seisflows_eara.schedule import plan

#: SPECFEM3D_GLOBE get_timestep_and_layers.f90: (largest NEX_MAX, DT in s) for 90° chunks
SPECFEM_DT_TABLE = ((80, 0.252), (96, 0.252 * 0.90), (160, 0.252), (256, 0.225), (320, 0.16),
                    (480, 0.11), (512, 0.1125), (640, 0.09), (864, 0.0667), (1152, 0.05),
                    (1248, 0.0462))
#: its safety margin on the stable step ("DT = DT * (1 - 0.05)")
SPECFEM_DT_MARGIN = 0.05
#: SPECFEM3D_GLOBE rounds the number of time steps up to a multiple of this
NSTEP_MULTIPLE = 100
#: GLL points per element edge (NGLLX = 5 in SPECFEM3D_GLOBE)
NGLL = 5
#: standard linear solids of SPECFEM's attenuation (N_SLS)
N_SLS = 3
#: bytes per sample: SPECFEM ascii seismogram line (time and value columns; 40700 B for 1100
#: samples in the fixture run), our ascii adjoint source line, a float32 sample
BYTES_ASCII_SEISMOGRAM = 37
BYTES_ASCII_ADJOINT = 34
BYTES_FLOAT32 = 4
#: Fortran unformatted sequential record markers around one kernel array (two int32)
FORTRAN_RECORD_MARKERS = 8
#: reg1 kernel files with ANISOTROPIC_KL + SAVE_TRANSVERSE_KL_ONLY + APPROXIMATE_HESS_KL: alpha,
#: beta, bulk_beta, alphav, alphah, betav, betah, bulk_c, bulk_betav, bulk_betah, eta, rho, hess
TISO_KERNEL_FILES = 13
COMPONENTS = 3

STEP_COSTS = {"forward": "forward", "perturbed_forward": "forward", "trial_forward": "forward",
              "final_forward": "forward", "source_adjoint": "source_adjoint", "kernel": "kernel"}
#: per-event steps that are not simulations (they still run as bundled jobs)
EVENT_STEPS_WITHOUT_SOLVER = frozenset({"source_update"})


def specfem_dt(nex: int) -> float:
    """SPECFEM3D_GLOBE's empirical time step (s) for NEX_MAX elements along a chunk side."""
    if nex < 1:
        raise ValueError(f"NEX must be >= 1, got {nex}")
    for limit, dt in SPECFEM_DT_TABLE:
        if nex <= limit:
            return dt * (1.0 - SPECFEM_DT_MARGIN)
    last_limit, last_dt = SPECFEM_DT_TABLE[-1]
    return last_dt * last_limit / (2.0 * nex) * (1.0 - SPECFEM_DT_MARGIN)


@dataclass(frozen=True)
class CostInputs:
    events: int
    stations: int
    cores_per_event: int
    minutes_per_forward: float
    kernel_cost: float
    source_adjoint_cost: float
    mesher_cost: float
    events_per_job: int
    record_seconds: float
    dt: float
    synthetic_bytes_per_sample: int = BYTES_ASCII_SEISMOGRAM
    elements: int | None = None
    points: int | None = None           # unique GLL points; None: (NGLL-1)^3 per element
    attenuation: bool = True
    kernel_files: int = TISO_KERNEL_FILES


@dataclass
class CostEstimate:
    solver_runs: dict[str, int]               # per event, by step task
    mesher_runs: int                          # per event
    forward_equivalents: float                # per event
    core_hours: float
    core_hours_per_stage: list[float]
    jobs: int
    iterations: int
    samples_per_trace: int
    storage: dict[str, float | None] = field(default_factory=dict)   # bytes per iteration
    #: the whole run's files, kept and deleted (storage_budget)
    budget: list["StorageItem"] = field(default_factory=list)


def estimate(values: dict[str, Any], inp: CostInputs) -> CostEstimate:
    """The cost of the schedule in `values` (params.py keys) for the run described by `inp`."""
    steps = plan(values)
    weight = {"forward": 1.0, "source_adjoint": inp.source_adjoint_cost, "kernel": inp.kernel_cost}
    runs: dict[str, int] = {}
    per_stage = [0.0] * len(values["stage_body_bands"])     # forward equivalents per event
    model, meshed, meshers = 0, None, 0
    for s in steps:
        if s.task == "model_update":          # assumed accepted: the next forward has a new model
            model += 1
        if s.task not in STEP_COSTS:
            continue
        runs[s.task] = runs.get(s.task, 0) + 1
        per_stage[s.stage - 1] += weight[STEP_COSTS[s.task]]
        used = ("trial", model) if s.task == "trial_forward" else model
        if used != meshed:                     # the solver re-runs the mesher for a new model
            meshers, meshed = meshers + 1, used
            per_stage[s.stage - 1] += inp.mesher_cost
    fe = sum(per_stage)
    hours = inp.events * inp.cores_per_event * inp.minutes_per_forward / 60.0
    per_stage_hours = [h * hours for h in per_stage]
    event_steps = sum(1 for s in steps if s.task in STEP_COSTS or s.task in EVENT_STEPS_WITHOUT_SOLVER)
    jobs = event_steps * math.ceil(inp.events / inp.events_per_job) + 1
    iterations = sum(values["stage_source_iterations"]) + sum(values["stage_structure_iterations"])
    nt = NSTEP_MULTIPLE * (int(inp.record_seconds / (NSTEP_MULTIPLE * inp.dt)) + 1)
    traces = inp.events * inp.stations * COMPONENTS
    storage: dict[str, float | None] = {
        "synthetics": 2.0 * traces * nt * inp.synthetic_bytes_per_sample,
        "adjoint_sources": float(traces * nt * BYTES_ASCII_ADJOINT),
        "kernels": None, "saved_wavefields": None}
    if inp.elements is not None:
        gll = NGLL ** 3 * inp.elements
        storage["kernels"] = float(inp.events * inp.kernel_files * (
            gll * BYTES_FLOAT32 + FORTRAN_RECORD_MARKERS * inp.cores_per_event))
        points = inp.points if inp.points is not None else (NGLL - 1) ** 3 * inp.elements
        floats = 9 * points + 5 * gll + (5 * N_SLS * gll if inp.attenuation else 0)
        storage["saved_wavefields"] = float(inp.events * floats * BYTES_FLOAT32)
    return CostEstimate(runs, meshers, fe, fe * hours, per_stage_hours, jobs, iterations, nt, storage,
                        storage_budget(values, inp))


#: float64 bytes per window sample of the compact adjoint store (measure.adjoint_store) and of
#: the old full arrays
BYTES_FLOAT64 = 8
#: frozen measurement: observed and synthetic window segments, float64 each
FROZEN_BYTES_PER_WINDOW_SAMPLE = 16
#: one row of output/measurements/<step>/<event>.csv (35 columns; 206 B per window row of the
#: real IU.KBL table)
BYTES_PER_TABLE_ROW = 210
#: prepared observed ASDF file per station and second of observed record (Z/R/T, body and
#: surface band, float64, cut to the windowable span; measured: 2.17 MB for the 6310-s IU.KBL
#: record)
PREPARED_BYTES_PER_RECORD_SECOND = 344
#: float64 arrays per GLL point of a direction's gradient/ and direction/ .npz files (g, pg, d, raw
#: of vc, vsv, vsh, eta, vp, vs)
DIRECTION_FLOATS_PER_POINT = 24
#: GLL files of a model (vpv, vph, vsv, vsh, eta, rho)
MODEL_FILES = 6


@dataclass(frozen=True)
class StorageItem:
    """One kind of file of a run: bytes kept at the end and bytes the run deletes (whole run)."""
    name: str
    kept: float | None
    deleted: float | None
    note: str = ""


def storage_budget(values: dict[str, Any], inp: CostInputs) -> list[StorageItem]:
    """Everything a run writes, kept or deleted (module doc), for the schedule in `values` (with
    keep_trial_synthetics, keep_wavefields, keep_event_kernels, sampling_rate, categories,
    estimate_window_seconds_per_station, estimate_windows_per_station); None where the mesh size
    is unknown."""
    from seisflows_eara.params import defaults
    values = {**defaults(), **values}
    steps = plan(values)
    measured = sum(1 for s in steps if s.task in ("forward", "final_forward"))
    trials = sum(1 for s in steps if s.task in ("perturbed_forward", "trial_forward"))
    structure = sum(1 for s in steps if s.task == "kernel")
    stages = len(values["stage_body_bands"])
    nt = NSTEP_MULTIPLE * (int(inp.record_seconds / (NSTEP_MULTIPLE * inp.dt)) + 1)
    traces = inp.events * inp.stations * COMPONENTS
    per_forward = float(traces * nt * inp.synthetic_bytes_per_sample)
    # windows of one station: at most the record per category
    samples = min(values["estimate_window_seconds_per_station"],
                  len(values["categories"]) * inp.record_seconds) * values["sampling_rate"]
    es = inp.events * inp.stations
    keep = {k: bool(values.get(k, False)) for k in (
        "keep_trial_synthetics", "keep_wavefields", "keep_event_kernels", "keep_frozen_measurements")}
    finals = sum(1 for s in steps if s.task == "final_forward")    # no line search follows

    def split(total: float | None, kept: bool) -> tuple[float | None, float | None]:
        return (total, 0.0) if kept else (0.0, total)

    def frozen(per_forward: float) -> tuple[float, float]:
        """Removed after the iteration's line search; the final forward's stay."""
        if keep["keep_frozen_measurements"]:
            return measured * per_forward, 0.0
        return finals * per_forward, (measured - finals) * per_forward
    items = [
        StorageItem("synthetics of measured forwards", measured * per_forward, 0.0,
                    f"{measured} forwards"),
        StorageItem("synthetics of trial forwards", *split(trials * per_forward,
                                                          keep["keep_trial_synthetics"]),
                    f"{trials} trial forwards"),
        StorageItem("adjoint sources (.adj)", float(traces * nt * BYTES_ASCII_ADJOINT), 0.0,
                    "one set per event, rewritten"),
        StorageItem("adjoint store (compact)", *frozen(es * samples * BYTES_FLOAT64),
                    "full arrays before: " + _bytes(measured * es * len(values["categories"])
                                                    * COMPONENTS * nt * BYTES_FLOAT64)),
        StorageItem("frozen measurements", *frozen(es * samples * FROZEN_BYTES_PER_WINDOW_SAMPLE
                                                   + inp.events * nt * BYTES_FLOAT64)),
        StorageItem("measurement tables", measured * es * values["estimate_windows_per_station"]
                    * BYTES_PER_TABLE_ROW, 0.0),
        StorageItem("prepared observed data", stages * es * inp.record_seconds
                    * PREPARED_BYTES_PER_RECORD_SECOND, 0.0, f"{stages} stages"),
    ]
    if inp.elements is None:
        items += [StorageItem(n, None, None, "mesh size unknown") for n in (
            "event kernels", "saved forward wavefields", "directions", "models")]
        return items
    gll = NGLL ** 3 * inp.elements
    gll_file = gll * BYTES_FLOAT32 + FORTRAN_RECORD_MARKERS * inp.cores_per_event
    kernels = float(structure * inp.events * inp.kernel_files * gll_file)
    points = inp.points if inp.points is not None else (NGLL - 1) ** 3 * inp.elements
    floats = 9 * points + 5 * gll + (5 * N_SLS * gll if inp.attenuation else 0)
    wavefield = float(inp.events * floats * BYTES_FLOAT32)
    items += [
        StorageItem("event kernels", *split(kernels, keep["keep_event_kernels"]),
                    f"{structure} structure iterations"),
        StorageItem("saved forward wavefields", *((wavefield, 0.0) if keep["keep_wavefields"]
                                                  else (0.0, structure * wavefield)),
                    "one per event at a time"),
        StorageItem("directions", float(structure * (gll * DIRECTION_FLOATS_PER_POINT * BYTES_FLOAT64
                                                     + MODEL_FILES * gll_file)), 0.0,
                    "gradient, direction, trial model"),
        StorageItem("models", float(structure * MODEL_FILES * gll_file), 0.0),
    ]
    return items


def _bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"
