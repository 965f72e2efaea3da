"""SPECFEM3D_GLOBE binary model and kernel files (SPEC §6; fixtures/specfem3d_globe_tiny README).

Each `proc<NNNNNN>_reg<R>_<name>.bin` is one Fortran unformatted sequential record: a 4-byte
little-endian length, float32 values ordered (i, j, k, ispec) with i fastest, the same length
(written by SPECFEM's `write(IOUT) array`; read the same way by its mesher for MODEL = GLL).
Kernels are `<name>_kernel.bin`. Two views of a folder:
  read_model / read_kernels -> {name: [float32 array per process]} (files as they are);
  read_fields               -> GllFields, one float64 array per name over all processes
                               (process order, aligned with `read_mesh(folder)`).
Writes are atomic per file (temporary name in the folder, then os.replace): the float32 values
round-trip bit-exactly.
"""
from __future__ import annotations

import glob
import lzma
import os
import re
from dataclasses import dataclass, field

import numpy as np

from seisflows_eara.io.atomic import atomic_open

_MARK = np.dtype("<i4")


def gll_filename(iproc: int, region: int, name: str) -> str:
    """'proc000000_reg1_vsv.bin' (kernels: name 'betav_kernel')."""
    return f"proc{iproc:06d}_reg{region}_{name}.bin"


def read_gll(path: str | os.PathLike) -> np.ndarray:
    """The float32 values (1-D, file order) of one file: memory-mapped (read-only) for plain files,
    decompressed for `.xz`. The record markers must frame exactly the rest of the file."""
    path = os.fspath(path)
    if path.endswith(".xz"):
        try:
            with lzma.open(path) as f:
                raw = np.frombuffer(f.read(), np.uint8)
        except lzma.LZMAError as e:
            raise ValueError(f"{path}: not a valid .xz file ({e})") from e
    elif os.path.getsize(path) == 0:
        raw = np.zeros(0, np.uint8)
    else:
        raw = np.memmap(path, np.uint8, mode="r")
    if raw.size < 8:
        raise ValueError(f"{path}: {raw.size} bytes, not a Fortran record")
    n = int(raw[:4].view(_MARK)[0])
    if n + 8 != raw.size or int(raw[4 + n:8 + n].view(_MARK)[0]) != n or n % 4:
        raise ValueError(f"{path}: Fortran record markers do not match the file size "
                         f"({raw.size} bytes, leading marker {n}); not a single float32 record")
    return raw[4:4 + n].view("<f4")


def write_gll(path: str | os.PathLike, values: np.ndarray) -> None:
    """Write one float32 record atomically (temporary file in the folder, then rename)."""
    v = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{path}: refusing to write non-finite values")
    mark = np.array([v.nbytes], _MARK).tobytes()
    with atomic_open(path, "wb") as f:
        f.write(mark)
        f.write(v.tobytes())
        f.write(mark)


@dataclass
class GllFields:
    """Named fields on the GLL points of one region, all processes concatenated."""
    fields: dict[str, np.ndarray]
    sizes: list[int] = field(default_factory=list)      # points per process
    region: int = 1

    def __getitem__(self, name: str) -> np.ndarray:
        return self.fields[name]

    def like(self, fields: dict[str, np.ndarray]) -> "GllFields":
        return GllFields(fields, list(self.sizes), self.region)


def _procs(directory: str, region: int, name: str) -> list[str]:
    """Files of `name` for processes 0..N-1 (plain or .xz; N discovered from the folder)."""
    pat = re.compile(rf"proc(\d{{6}})_reg{region}_{re.escape(name)}\.bin(\.xz)?$")
    found = sorted((int(m.group(1)), f) for f in glob.glob(os.path.join(
        glob.escape(directory), f"proc*_reg{region}_{name}.bin*")) if (m := pat.match(os.path.basename(f))))
    dup = sorted({i for i, _ in found if [j for j, _ in found].count(i) > 1})
    if dup:
        raise FileNotFoundError(f"{directory}: both .bin and .bin.xz of {name} for processes {dup}")
    if not found:
        raise FileNotFoundError(f"no {gll_filename(0, region, name)} (or other processes) in {directory}")
    if [i for i, _ in found] != list(range(len(found))):
        raise FileNotFoundError(f"{directory}: process files of {name} are not 0..N-1: "
                                f"{[i for i, _ in found]}")
    return [f for _, f in found]


def read_fields(directory: str, names: list[str], region: int = 1,
                kernel: bool = False) -> GllFields:
    """Read `names` (model parameters, or kernels when `kernel`) of every process in `directory`."""
    out, sizes = {}, None
    for name in names:
        files = _procs(directory, region, f"{name}_kernel" if kernel else name)
        parts = [read_gll(f) for f in files]
        s = [p.size for p in parts]
        if sizes is not None and s != sizes:
            raise ValueError(f"{directory}: {name} has {s} points per process, other fields {sizes}")
        sizes = s
        out[name] = np.concatenate(parts).astype(np.float64)
    return GllFields(out, sizes or [], region)


def write_fields(directory: str, model: GllFields, kernel: bool = False) -> None:
    """Write every field of `model` as per-process files in `directory` (atomic per file)."""
    os.makedirs(directory, exist_ok=True)
    bounds = np.cumsum([0] + list(model.sizes))
    for name, values in model.fields.items():
        if values.size != bounds[-1]:
            raise ValueError(f"{name}: {values.size} values for {bounds[-1]} GLL points")
        for i in range(len(model.sizes)):
            fname = gll_filename(i, model.region, f"{name}_kernel" if kernel else name)
            write_gll(os.path.join(directory, fname), values[bounds[i]:bounds[i + 1]])


def _file_name(name: str, kernel: bool) -> str:
    return f"{name}_kernel" if kernel and not name.endswith("_kernel") else name


def read_model(directory: str | os.PathLike, names: list[str] | tuple[str, ...], region: int = 1,
               kernel: bool = False) -> dict[str, list[np.ndarray]]:
    """{name: [float32 values of process 0, 1, ...]}; the number of processes comes from the files
    and must be the same for every name, as must the points per process."""
    directory = os.fspath(directory)
    out: dict[str, list[np.ndarray]] = {}
    for name in names:
        out[name] = [read_gll(f) for f in _procs(directory, region, _file_name(name, kernel))]
        sizes = [a.size for a in out[name]]
        first = [a.size for a in next(iter(out.values()))]
        if sizes != first:
            raise ValueError(f"{directory}: {name} has {sizes} points per process, "
                             f"{next(iter(out))} {first}")
    return out


def read_kernels(directory: str | os.PathLike, names: list[str] | tuple[str, ...],
                 region: int = 1) -> dict[str, list[np.ndarray]]:
    """`read_model` for `<name>_kernel.bin` files ('betav' or 'betav_kernel' both name them)."""
    return read_model(directory, names, region, kernel=True)


def write_model(directory: str | os.PathLike, model: dict[str, list[np.ndarray] | np.ndarray],
                region: int = 1, kernel: bool = False) -> None:
    """Write {name: [array per process]} (a bare array is process 0) as float32 GLL files,
    atomically per file."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    for name, parts in model.items():
        if isinstance(parts, np.ndarray):
            parts = [parts]
        for iproc, values in enumerate(parts):
            write_gll(os.path.join(directory, gll_filename(iproc, region, _file_name(name, kernel))),
                      values)


def write_kernels(directory: str | os.PathLike, kernels: dict[str, list[np.ndarray] | np.ndarray],
                  region: int = 1) -> None:
    """`write_model` for `<name>_kernel.bin` files."""
    write_model(directory, kernels, region, kernel=True)


def concatenate(model: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """{name: one float64 array over all processes} (the layout of `read_mesh(folder)`)."""
    return {k: np.concatenate([np.asarray(a, float) for a in v]) if isinstance(v, (list, tuple))
            else np.asarray(v, float) for k, v in model.items()}


def split(fields: dict[str, np.ndarray], sizes: list[int]) -> dict[str, list[np.ndarray]]:
    """Inverse of `concatenate`: per-process pieces of `sizes` points."""
    bounds = np.cumsum([0] + list(sizes))
    out = {}
    for k, v in fields.items():
        if v.size != bounds[-1]:
            raise ValueError(f"{k}: {v.size} values for {bounds[-1]} GLL points")
        out[k] = [v[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    return out
