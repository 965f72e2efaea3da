"""The ranks of a direction job: mpi4py's COMM_WORLD when the job runs under `mpiexec -n R` with
mpi4py installed (the `[mpi]` extra), otherwise one serial rank.

Reductions are made per slice, not per rank: every rank contributes {slice: value}, the values of
all slices are gathered and combined in slice order on every rank. A sum or max over the mesh is
then the same number, bit for bit, whatever the rank count and the slice-to-rank split.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable


class DirectionJobError(RuntimeError):
    """A rank of the direction job failed; every rank raises it with all ranks' messages."""


class SerialComm:
    """One rank (no MPI): the same interface as MpiComm."""
    rank, size = 0, 1

    def allgather(self, obj: Any) -> list[Any]:
        return [obj]

    def bcast(self, obj: Any) -> Any:
        return obj

    def barrier(self) -> None:
        pass


class MpiComm:
    def __init__(self, comm) -> None:
        self._c = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def allgather(self, obj: Any) -> list[Any]:
        return self._c.allgather(obj)

    def bcast(self, obj: Any) -> Any:
        return self._c.bcast(obj, root=0)

    def barrier(self) -> None:
        self._c.Barrier()


def _under_mpiexec() -> bool:
    """Environment variables every common MPI launcher sets for its ranks."""
    return any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK",
                                         "PMIX_RANK", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS"))


def world(serial: bool = False) -> SerialComm | MpiComm:
    """COMM_WORLD (mpi4py, under an MPI launcher) or a serial rank; `serial` forces the latter."""
    if serial or not _under_mpiexec():
        return SerialComm()
    try:
        from mpi4py import MPI
    except Exception:          # not installed, or no MPI library for its wheel
        if int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1"))) > 1:
            raise DirectionJobError("launched with several MPI ranks but mpi4py is not installed "
                                    "(pip install 'seisflows_eara[mpi]'); each rank would redo "
                                    "the whole job") from None
        return SerialComm()
    launched = _launcher_size()
    if launched > 1 and MPI.COMM_WORLD.Get_size() != launched:
        raise DirectionJobError(
            f"the launcher started {launched} ranks but mpi4py's MPI library "
            f"({MPI.Get_library_version().splitlines()[0].strip()}) sees "
            f"{MPI.COMM_WORLD.Get_size()}: mpiexec and mpi4py belong to different MPIs; use the "
            "mpiexec of the MPI mpi4py loads (each rank would otherwise redo the whole job)")
    return MpiComm(MPI.COMM_WORLD)


def _launcher_size() -> int:
    """Number of ranks the launcher says it started (0 when it does not say)."""
    for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"):
        if os.environ.get(k, "").isdigit():
            return int(os.environ[k])
    return 0


def my_slices(nslices: int, rank: int, size: int) -> list[int]:
    """Contiguous block of slices of `rank` (sizes differ by at most one)."""
    if not 1 <= size <= nslices:
        raise DirectionJobError(f"{size} ranks for {nslices} slices: run with 1 to {nslices} ranks")
    base, extra = divmod(nslices, size)
    start = rank * base + min(rank, extra)
    return list(range(start, start + base + (rank < extra)))


def check_errors(comm, error: BaseException | None) -> None:
    """Collective: raise DirectionJobError on every rank when any rank had an error (so no rank
    waits forever in a later collective)."""
    msgs = comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
    bad = [(r, m) for r, m in enumerate(msgs) if m is not None]
    if bad:
        text = "; ".join(m if comm.size == 1 else f"rank {r}: {m}" for r, m in bad)
        raise DirectionJobError(text) from error


def collective(comm, work: Callable[[], Any]) -> Any:
    """Run `work()` on this rank; then check every rank's error (check_errors)."""
    try:
        out, err = work(), None
    except Exception as e:        # reported to every rank, re-raised below
        out, err = None, e
    check_errors(comm, err)
    return out


def slice_sum(comm, partial: dict[int, float]) -> float:
    """Σ over all slices of the per-slice partial sums, added in slice order (math.fsum)."""
    merged: dict[int, float] = {}
    for part in comm.allgather(partial):
        merged.update(part)
    return math.fsum(merged[s] for s in sorted(merged))


def slice_max(comm, partial: dict[int, float]) -> float:
    merged = [v for part in comm.allgather(partial) for v in part.values()]
    return max(merged) if merged else -math.inf
