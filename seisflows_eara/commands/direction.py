"""`seisflows-eara direction`: one structure direction outside SeisFlows, MPI-aware.

Kernel folders of N events + their CMTSOLUTIONs + STATIONS + the current GLL model + the mesh
(DATABASES_MPI) + the previous iteration's state -> OUTPUT/gradient/ (g, Pg per slice),
OUTPUT/direction/ (d normalized to max|d| = 1 and the raw PR-CG direction, per slice),
OUTPUT/trial_model_eps<ε>/ (m + ε d, GLL files) and OUTPUT/direction.json (β, restart reason,
Powell ratios, g·d, ...). Run as `mpiexec -n R seisflows-eara direction ...` with any R from 1 to
the number of slices (mpi4py, the `[mpi]` extra); without MPI it runs as one rank. The method and
file layout: seisflows_eara.direction.engine.

Phases (--phase): all (Python smoothing or none), gradient + finish around SPECFEM's xsmooth_sem
(which reads OUTPUT.tmp/work/sem_in and writes OUTPUT.tmp/work/sem_out), steepest (β = 0 from an
existing gradient folder), update (m + α d of a direction folder into a new model folder).
"""
from __future__ import annotations

import argparse
import os
import sys

from seisflows_eara import params
from seisflows_eara.cli import COMMANDS
from seisflows_eara.direction import comm as comms
from seisflows_eara.direction import engine

PHASES = ("all", "gradient", "finish", "steepest", "update")


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="parameters.yaml (EARA keys; defaults otherwise)")
    p.add_argument("--phase", choices=PHASES, default="all")
    p.add_argument("--event", nargs=3, action="append", default=[],
                   metavar=("NAME", "KERNELS", "CMTSOLUTION"),
                   help="one event: name, folder of its proc*_reg1_*_kernel.bin, its source")
    p.add_argument("--events-file",
                   help="lines 'NAME KERNELS_FOLDER CMTSOLUTION' (instead of --event)")
    p.add_argument("--stations", help="STATIONS (receivers of the damping)")
    p.add_argument("--model", required=True,
                   help="folder of the current GLL model proc*_reg1_<par>.bin")
    p.add_argument("--mesh", required=True,
                   help="DATABASES_MPI with proc*_reg1_solver_data.bin[.xz]")
    p.add_argument("--output", required=True, help="folder written (complete or not at all)")
    p.add_argument("--previous-gradient", help="gradient/ folder of the previous iteration")
    p.add_argument("--previous-direction", help="direction/ folder of the previous iteration")
    p.add_argument("--structure-index", type=int, default=1,
                   help="structure iteration over the whole run (picks the smoothing lengths)")
    p.add_argument("--smoothing", choices=engine.SMOOTHING,
                   help="default: smoothing_program of the config")
    p.add_argument("--smoothing-km", nargs=2, type=float, metavar=("H", "V"),
                   help="Gaussian σ (km), default from the config and --structure-index")
    p.add_argument("--trial-step", type=float, help="ε (default structure_trial_step)")
    p.add_argument("--stage", type=int, default=1)
    p.add_argument("--iteration", type=int, default=1)
    p.add_argument("--gradient", help="steepest: the gradient/ folder to restart from")
    p.add_argument("--direction", help="update: the direction/ folder of d")
    p.add_argument("--alpha", type=float, help="update: the step α")
    p.add_argument("--serial", action="store_true", help="one rank even under mpiexec")


def _events(a: argparse.Namespace) -> list[engine.EventInput]:
    rows = [tuple(e) for e in a.event]
    if a.events_file:
        with open(a.events_file) as f:
            for n, line in enumerate(f, 1):
                parts = line.split()
                if not parts or parts[0].startswith("#"):
                    continue
                if len(parts) != 3:
                    raise params.ParameterError(f"{a.events_file}:{n}: expected 'NAME KERNELS "
                                                f"CMTSOLUTION', got {line.strip()!r}")
                rows.append(tuple(parts))
    if not rows:
        raise params.ParameterError("no events: give --event NAME KERNELS CMTSOLUTION or "
                                    "--events-file")
    return [engine.EventInput(*r) for r in rows]


def inputs_from_args(a: argparse.Namespace, values: dict) -> engine.DirectionInputs:
    smoothing = a.smoothing or values["smoothing_program"]
    sigma = tuple(a.smoothing_km) if a.smoothing_km else \
        params.smoothing_for_iteration(values, a.structure_index)
    prev = None
    if a.previous_gradient or a.previous_direction:
        if not (a.previous_gradient and a.previous_direction):
            raise params.ParameterError("--previous-gradient and --previous-direction go together")
        prev = (a.previous_gradient, a.previous_direction)
    if not a.stations:
        raise params.ParameterError("--stations is required")
    return engine.DirectionInputs(
        _events(a), a.stations, a.model, a.mesh, values, sigma, smoothing, prev, a.trial_step,
        dict(stage=a.stage, iteration=a.iteration, structure_index=a.structure_index))


def run(a: argparse.Namespace, comm=None) -> dict | None:
    """The phase of `a` on `comm` (default: MPI's world, or one serial rank)."""
    comm = comm or comms.world(a.serial)
    values = params.load_parameters(a.config)
    step = float(values["structure_trial_step"] if a.trial_step is None else a.trial_step)
    if a.phase == "update":
        if not a.direction or a.alpha is None:
            raise params.ParameterError("--phase update needs --direction and --alpha")
        engine.run_update(comm, a.model, a.direction, a.alpha, a.output, a.mesh, values)
        return None
    if a.phase == "steepest":
        if not a.gradient:
            raise params.ParameterError("--phase steepest needs --gradient")
        return engine.run_steepest(comm, a.gradient, a.mesh, a.model, values, a.output, step,
                                   dict(stage=a.stage, iteration=a.iteration))
    inp = inputs_from_args(a, values)
    if a.phase == "gradient":
        return engine.run_gradient(comm, inp, a.output)
    if a.phase == "finish":
        return engine.run_finish(comm, inp, a.output)
    return engine.run_direction(comm, inp, a.output)


def _run(a: argparse.Namespace) -> int:
    try:
        comm = comms.world(a.serial)
        info = run(a, comm)
    except (comms.DirectionJobError, engine.SliceInputError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if comm.rank == 0 and info and "beta" in info:
        why = f" ({info['reason']})" if info["reason"] else ""
        print(f"{os.path.basename(a.output.rstrip('/'))}: β = {info['beta']:.6g}{why}, "
              f"g·d = {info['descent']:.6g}, {info['slices']} slices on {info['ranks']} rank(s); "
              f"trial model {info['trial_model']}")
    return 0


COMMANDS.append(("direction",
                 "structure direction from event kernels, slice-parallel (mpiexec -n R)",
                 _args, _run))
