"""Running `seisflows-eara direction` phases from a job: under the run's MPI launcher with R ranks
(`<mpiexec> -n R python -m seisflows_eara.direction ...`), or in this process as one serial rank
when there is no launcher, one rank, or no mpi4py. Pure: no SeisFlows here; the system plugin
decides where the job runs."""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
from typing import Callable, Sequence

from seisflows_eara.direction.comm import DirectionJobError, SerialComm


def mpi_available() -> bool:
    return importlib.util.find_spec("mpi4py") is not None


def uses_mpi(ranks: int, mpiexec: str | None) -> bool:
    return ranks > 1 and bool(mpiexec) and mpi_available()


def run_phase(argv: Sequence[str], ranks: int, mpiexec: str | None, log: str) -> dict | None:
    """One phase of the command: an MPI launch of `ranks` ranks (output in `log`), or in-process
    (exceptions propagate with their messages: event, slice, file)."""
    argv = [str(a) for a in argv]
    if not uses_mpi(ranks, mpiexec):
        from seisflows_eara.commands.direction import _args, run
        parser = argparse.ArgumentParser(prog="seisflows-eara direction")
        _args(parser)
        return run(parser.parse_args(argv), SerialComm())
    cmd = (f"{mpiexec} -n {int(ranks)} {shlex.quote(sys.executable)} -m seisflows_eara.direction "
           + " ".join(shlex.quote(a) for a in argv))
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    with open(log, "w") as f:
        f.write(cmd + "\n")
        f.flush()
        rc = subprocess.run(cmd, shell=True, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        with open(log) as f:
            text = f.read().splitlines()
        lines = [ln for ln in text if ln.startswith("error:")] or text[-5:]
        raise DirectionJobError(f"`{cmd}` exited with {rc}; log {log}:\n" + "\n".join(lines[:5]))
    return None


Phase = tuple[str, object]


def run_phases(phases: Sequence[Phase], ranks: int, mpiexec: str | None, log_dir: str,
               smoother: Callable[..., None] | None = None) -> None:
    """Phases in order: ("direction", argv) runs the command, ("xsmooth_sem", kwargs) calls
    `smoother(**kwargs)` (SPECFEM's MPI smoothing, run by the solver plugin)."""
    for i, (kind, arg) in enumerate(phases):
        if kind == "direction":
            run_phase(arg, ranks, mpiexec, os.path.join(log_dir, f"phase{i}.log"))
        elif kind == "xsmooth_sem":
            if smoother is None:
                raise DirectionJobError("smoothing_program xsmooth_sem: no smoother given")
            smoother(**arg)
        else:
            raise ValueError(f"unknown phase {kind!r}")
