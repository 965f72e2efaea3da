"""A pool job's result (and a job the parent pickles) handed over through shared memory, not
the pool's pipes.

concurrent.futures sends a worker's result through a pipe that the parent's management thread
reads and unpickles; that thread needs the parent's GIL, which the parent's own measuring holds
most of the time, so a worker with 20-30 MB of window segments or adjoint sources to return
sits idle until the parent lets it (measured: 10 % of a worker's time in the units stage and
23 % in the adjoint stage at 1000 stations). Here the worker pickles its result with protocol
5, writes the large buffers (numpy arrays of at least MIN_BYTES) into one file in a RAM-backed
directory (/dev/shm) and returns only the small pickle and the file's name; the parent maps the
file and rebuilds the arrays on the mapped memory (no copy, writable), then removes the name at
once (the memory lives as long as its arrays). The same objects, bit for bit. Where there is no
such directory, or it is full (os.write's ENOSPC: no partial file is left), the result goes
through the pipe as before. A job the parent submits is shipped the same way and received by
the worker (`call_and_ship`); files of results or jobs that were never received are removed
when the pool shuts down (`remove_left`)."""
from __future__ import annotations

import glob
import itertools
import mmap
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass

#: the RAM-backed directory results are written to (none: results go through the pipe)
SHM_DIR = "/dev/shm"
#: buffers smaller than this stay in the pickle (a station's adjoint source is 0.6 MB: through
#: the pipe, 32 of them kept a worker 35-55 ms from its next job)
MIN_BYTES = 1 << 16
#: file name prefix; the parent's pid follows, so the parent can remove what a worker left
PREFIX = "seisflows_eara-result-"

_serial = itertools.count()


@dataclass
class Shipped:
    """A result in transit: its pickle (large buffers out of band), and the file holding those
    buffers end to end with their sizes."""
    data: bytes
    path: str
    sizes: list[int]


def shm_dir() -> str | None:
    """SHM_DIR when it is a writable directory, else None."""
    return SHM_DIR if os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK) else None


def ship(value, parent: int):
    """`value` as a Shipped (its large buffers in a file under shm_dir() named for the `parent`
    pid), or `value` itself when it has none or they cannot be written."""
    where = shm_dir()
    if where is None:
        return value
    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buf: pickle.PickleBuffer) -> bool:
        raw = buf.raw()
        if raw.nbytes >= MIN_BYTES:
            buffers.append(buf)
            return False
        return True
    data = pickle.dumps(value, protocol=5, buffer_callback=out_of_band)
    if not buffers:
        return value
    path = os.path.join(where, f"{PREFIX}{parent}-{os.getpid()}-{next(_serial)}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return value
    try:
        try:
            for buf in buffers:
                view = buf.raw()
                while view.nbytes:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError:         # full: nothing of it is left
        os.remove(path)
        return value
    return Shipped(data, path, [b.raw().nbytes for b in buffers])


def receive(value):
    """The object `ship` was given: a Shipped is unpickled on its mapped file, whose name is
    removed; anything else is returned as is."""
    if not isinstance(value, Shipped):
        return value
    try:
        with open(value.path, "r+b") as fh:
            mem = mmap.mmap(fh.fileno(), sum(value.sizes), access=mmap.ACCESS_WRITE)
    finally:
        os.remove(value.path)
    view, buffers, at = memoryview(mem), [], 0
    for n in value.sizes:
        buffers.append(view[at:at + n])
        at += n
    return pickle.loads(value.data, buffers=buffers)


def call_and_ship(fn: Callable, job, parent: int):
    """ship(fn(receive(job)), parent): what a pool's worker runs (its job may come shipped by
    the parent too)."""
    return ship(fn(receive(job)), parent)


def remove_left(parent: int) -> None:
    """Remove the files of results the `parent` never received (a job failed after writing, the
    parent stopped early)."""
    where = shm_dir()
    if where is None:
        return
    for path in glob.glob(os.path.join(where, f"{PREFIX}{parent}-*")):
        try:
            os.remove(path)
        except OSError:
            pass
