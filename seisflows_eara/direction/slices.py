"""Per-slice files of a direction job: every rank reads and writes only its own slices.

SPECFEM3D_GLOBE writes models, kernels and meshes per MPI slice (`proc<NNNNNN>_reg1_<name>.bin`,
unassembled: a point on a slice boundary has a value in every slice and element that holds it).
The job keeps that layout: a slice's mesh, model and each event's kernels are read from their own
files, and what the job writes is one file per slice (`proc<NNNNNN>.npz`, float64).
"""
from __future__ import annotations

import glob
import os
import re

import numpy as np

from seisflows_eara.io.atomic import atomic_open
from seisflows_eara.model.gll import gll_filename, read_gll
from seisflows_eara.model.mesh import mesh_files


class SliceInputError(ValueError):
    """A slice file is missing or broken; the message names the event, slice and file."""


def count_slices(mesh: str, region: int = 1) -> int:
    """Slices of the mesh folder (its solver_data files; names only, nothing read)."""
    return len(mesh_files(mesh, region))


def gll_path(directory: str, iproc: int, name: str, region: int = 1) -> str:
    """The slice's file of `name` (`.bin`, or `.bin.xz` when only that exists)."""
    path = os.path.join(directory, gll_filename(iproc, region, name))
    return path if os.path.exists(path) or not os.path.exists(path + ".xz") else path + ".xz"


def read_slice_fields(directory: str, iproc: int, names, npoint: int, what: str,
                      region: int = 1, kernel: bool = False) -> dict[str, np.ndarray]:
    """{name: float32 values} of slice `iproc` (memory-mapped where possible); `what` (e.g.
    "event EV1: kernels") opens the error message, which names the slice and file."""
    out = {}
    for name in names:
        path = gll_path(directory, iproc, f"{name}_kernel" if kernel else name, region)
        try:
            values = read_gll(path)
        except FileNotFoundError:
            raise SliceInputError(f"{what}: slice {iproc}: file {path} is missing") from None
        except (OSError, ValueError) as e:
            raise SliceInputError(f"{what}: slice {iproc}: file {path} is unreadable or "
                                  f"truncated ({e})") from None
        if values.size != npoint:
            raise SliceInputError(f"{what}: slice {iproc}: file {path} has {values.size} values, "
                                  f"the slice's mesh {npoint} GLL points")
        out[name] = values
    return out


def slice_file(folder: str, iproc: int) -> str:
    return os.path.join(folder, f"proc{iproc:06d}.npz")


def save_slice(folder: str, iproc: int, fields: dict[str, np.ndarray]) -> None:
    """One slice's float64 fields as proc<NNNNNN>.npz, written atomically."""
    os.makedirs(folder, exist_ok=True)
    with atomic_open(slice_file(folder, iproc), "wb") as f:     # streamed: no copy in memory
        np.savez(f, **{k: np.asarray(v, np.float64) for k, v in fields.items()})


def load_slice(folder: str, iproc: int, prefix: str = "", what: str = "") -> dict[str, np.ndarray]:
    """Fields of proc<NNNNNN>.npz whose names start with `prefix` (prefix removed)."""
    path = slice_file(folder, iproc)
    try:
        with np.load(path) as z:
            return {k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)}
    except FileNotFoundError:
        raise SliceInputError(f"{what or folder}: slice {iproc}: file {path} is missing") from None
    except (OSError, ValueError) as e:
        raise SliceInputError(f"{what or folder}: slice {iproc}: file {path} is unreadable ({e})") \
            from None


def saved_slices(folder: str) -> list[int]:
    """Slices with a proc<NNNNNN>.npz in `folder`."""
    pat = re.compile(r"proc(\d{6})\.npz$")
    return sorted(int(m.group(1)) for f in glob.glob(os.path.join(folder, "proc*.npz"))
                  if (m := pat.search(f)))
