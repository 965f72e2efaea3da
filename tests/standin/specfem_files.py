"""Minimal readers/writers of SPECFEM3D_GLOBE binary files for the stand-in solver (test code,
independent of the package under test so the two check each other).

Layout (shared/fixtures/specfem3d_globe_tiny/README.md): Fortran unformatted sequential records,
4-byte little-endian length, data, the same length. solver_data.bin: nspec, nglob, xstore, ystore,
zstore (nglob, non-dimensional), ibool (125·nspec, 1-based), idoubling, ispec_is_tiso, then
xix, xiy, xiz, etax, etay, etaz, gammax, gammay, gammaz (125·nspec each)."""
from __future__ import annotations

import lzma
import os
from types import SimpleNamespace

import numpy as np

R_EARTH_KM = 6371.0
GLL5 = np.array([1 / 10, 49 / 90, 32 / 45, 49 / 90, 1 / 10])   # 5-point GLL weights on [-1, 1]


def _records(raw: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(raw):
        n = int(np.frombuffer(raw, "<i4", 1, i)[0])
        out.append(raw[i + 4:i + 4 + n])
        if int(np.frombuffer(raw, "<i4", 1, i + 4 + n)[0]) != n:
            raise ValueError("bad Fortran record marker")
        i += n + 8
    return out


def _read(path) -> bytes:
    path = os.fspath(path)
    if path.endswith(".xz"):
        return lzma.open(path).read()
    return open(path, "rb").read()


def read_gll(path) -> np.ndarray:
    recs = _records(_read(path))
    return np.frombuffer(recs[0], "<f4").copy()


def write_gll(path, values) -> None:
    v = np.ascontiguousarray(values, "<f4")
    n = np.array([v.nbytes], "<i4").tobytes()
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(n + v.tobytes() + n)
    os.replace(tmp, path)


def read_mesh(path) -> SimpleNamespace:
    """xyz (km) and volume (w_i w_j w_k |J|, km³) per local GLL point, in file order."""
    recs = _records(_read(path))
    nglob = int(np.frombuffer(recs[1], "<i4")[0])
    xyz_g = np.stack([np.frombuffer(recs[k], "<f4") for k in (2, 3, 4)], axis=1) * R_EARTH_KM
    ibool = np.frombuffer(recs[5], "<i4") - 1
    assert xyz_g.shape[0] == nglob
    inv = np.stack([np.frombuffer(recs[k], "<f4").astype(float) for k in range(8, 17)], axis=1)
    det_inv = np.linalg.det(inv.reshape(-1, 3, 3))
    w = (GLL5[:, None, None] * GLL5[None, :, None] * GLL5[None, None, :]).T.reshape(-1)  # i fastest
    nspec = ibool.size // 125
    wv = np.tile(w, nspec)
    volume = wv / np.abs(det_inv) * R_EARTH_KM ** 3
    return SimpleNamespace(xyz=xyz_g[ibool], volume=volume, ibool=ibool, nspec=nspec)
