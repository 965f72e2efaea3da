"""Mesh coordinates and GLL volumes from SPECFEM3D_GLOBE `proc*_reg1_solver_data.bin`.

Record order (save_arrays_solver.f90 with the fixture's README): nspec, nglob, xstore, ystore,
zstore (nglob float32, Cartesian, radius 1 = Earth's surface), ibool (125·nspec int32, 1-based),
idoubling, ispec_is_tiso (nspec int32), then the inverse Jacobian xix, xiy, xiz, etax, etay, etaz,
gammax, gammay, gammaz (125·nspec float32 each). The volume of a GLL point is
w_i w_j w_k |J| with J = 1 / det(∂(ξ,η,γ)/∂(x,y,z)); Σ over points = the slice volume.
"""
from __future__ import annotations

import glob
import lzma
import os
from dataclasses import dataclass

import numpy as np

R_EARTH_KM = 6371.0
NGLL = 5
#: Gauss-Lobatto-Legendre weights of the 5 points on [-1, 1]
GLL_WEIGHTS = np.array([1 / 10, 49 / 90, 32 / 45, 49 / 90, 1 / 10])


@dataclass
class Mesh:
    """Per local GLL point (SPECFEM file order, all processes concatenated)."""
    xyz: np.ndarray            # (npoint, 3) km
    volume: np.ndarray         # (npoint,) km³
    ispec_is_tiso: np.ndarray  # (npoint,) bool, element flag broadcast to its points
    element: np.ndarray        # (npoint,) element index (global over processes)
    sizes: list[int]

    @property
    def radius(self) -> np.ndarray:
        return np.linalg.norm(self.xyz, axis=1)

    @property
    def depth(self) -> np.ndarray:
        return R_EARTH_KM - self.radius

    def element_radius(self) -> np.ndarray:
        """Radius of the centre of each point's element (which side of a discontinuity)."""
        r = self.radius
        mean = np.bincount(self.element, weights=r) / np.bincount(self.element)
        return mean[self.element]

    def latlon(self) -> tuple[np.ndarray, np.ndarray]:
        x, y, z = self.xyz.T
        return (np.degrees(np.arctan2(z, np.hypot(x, y))), np.degrees(np.arctan2(y, x)))


def _records(raw: bytes, path: str) -> list[memoryview]:
    out, i, mv = [], 0, memoryview(raw)
    while i < len(raw):
        n = int.from_bytes(raw[i:i + 4], "little", signed=True)
        if n < 0 or i + 8 + n > len(raw) or raw[i + 4 + n:i + 8 + n] != raw[i:i + 4]:
            raise ValueError(f"{path}: broken Fortran record at byte {i}")
        out.append(mv[i + 4:i + 4 + n])
        i += n + 8
    return out


def _read_one(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    rec = _records(raw, path)
    if len(rec) < 17:
        raise ValueError(f"{path}: {len(rec)} records, a solver_data.bin has at least 17")
    nspec = int(np.frombuffer(rec[0], "<i4")[0])
    nglob = int(np.frombuffer(rec[1], "<i4")[0])
    xyz = np.stack([np.frombuffer(rec[k], "<f4") for k in (2, 3, 4)], axis=1).astype(float)
    ibool = np.frombuffer(rec[5], "<i4").astype(np.int64) - 1
    tiso = np.frombuffer(rec[7], "<i4") != 0
    if xyz.shape[0] != nglob or ibool.size != NGLL ** 3 * nspec or tiso.size != nspec:
        raise ValueError(f"{path}: record sizes do not match nspec={nspec}, nglob={nglob}")
    inv = np.stack([np.frombuffer(rec[k], "<f4").astype(float) for k in range(8, 17)], axis=1)
    jac = 1.0 / np.abs(np.linalg.det(inv.reshape(-1, 3, 3)))
    w = GLL_WEIGHTS
    w3 = (w[None, None, :] * w[None, :, None] * w[:, None, None]).reshape(-1)   # i fastest
    volume = np.tile(w3, nspec) * jac * R_EARTH_KM ** 3
    return xyz[ibool] * R_EARTH_KM, volume, np.repeat(tiso, NGLL ** 3), np.repeat(
        np.arange(nspec), NGLL ** 3)


def read_mesh(path: str, region: int = 1) -> Mesh:
    """Mesh of one region: `path` is a solver_data.bin[.xz] file or a folder (all processes)."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, f"proc*_reg{region}_solver_data.bin*")))
        files = [f for f in files if f.endswith((".bin", ".bin.xz"))]
        if not files:
            raise FileNotFoundError(f"no proc*_reg{region}_solver_data.bin in {path}")
    else:
        files = [path]
    parts = [_read_one(f) for f in files]
    offset, elems = 0, []
    for p in parts:
        elems.append(p[3] + offset)
        offset += int(p[3].max()) + 1
    return Mesh(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]), np.concatenate(elems),
                [p[0].shape[0] for p in parts])
