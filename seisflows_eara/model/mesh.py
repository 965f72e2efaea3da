"""Mesh of one SPECFEM3D_GLOBE region from `proc<NNNNNN>_reg<R>_solver_data.bin` (SPEC §6).

Record order, checked against `save_arrays_solver` (src/meshfem3D/save_arrays_solver.f90 of
SPECFEM3D_GLOBE v7.0.x, fork lanucara/specfem3d_globe_cineca 49bb9d37) and the fixture (28 records
for a transversely isotropic crust/mantle with absorbing boundaries):
  nspec, nglob (int32); xstore, ystore, zstore (float32 × nglob, Cartesian, non-dimensional:
  radius 1 = R_EARTH = 6371 km); ibool (int32 × 125·nspec, 1-based, Fortran order (i,j,k,ispec));
  idoubling, ispec_is_tiso (int32 × nspec); xix, xiy, xiz, etax, etay, etaz, gammax, gammay,
  gammaz (float32 × 125·nspec: the inverse Jacobian ∂(ξ,η,γ)/∂(x,y,z)); then the non-dimensional
  material arrays rho, kappav, [muv], [kappah, muh, eta_aniso if TRANSVERSE_ISOTROPY], [rho_vp,
  rho_vs if ABSORBING_CONDITIONS]; then rmassx, rmassy (regional absorbing), rmassz (float32 × nglob).

Local GLL points (the order of every model/kernel file) are (i, j, k, ispec) with i fastest, so
`ibool` maps to numpy as shape (nspec, NGLL, NGLL, NGLL) indexed [ispec, k, j, i]. Volume weight of
a local point: w_i w_j w_k |J| with J = 1/det(inverse Jacobian) — the quadrature SPECFEM uses for
its integrals (xsmooth_sem's `jacobian * wgll_cube`); Σ over the points is the region's volume.
"""
from __future__ import annotations

import glob
import lzma
import os
import re
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import legendre

#: SPECFEM3D_GLOBE's R_EARTH_KM: the unit of its non-dimensional coordinates (constants.h.in)
R_EARTH_KM = 6371.0
#: SPECFEM3D_GLOBE's RHOAV (kg/m³) and GRAV (m³ kg⁻¹ s⁻²): scales of its non-dimensional materials
RHOAV = 5514.3
GRAV = 6.67384e-11
#: records before the material arrays: nspec, nglob, x, y, z, ibool, idoubling, ispec_is_tiso, 9 ∂ξ/∂x
_N_FIXED = 17
#: names of the per-point material records, by how many there are (save_arrays_solver.f90)
_MATERIALS = {3: ("rho", "kappav", "muv"),
              5: ("rho", "kappav", "muv", "rho_vp", "rho_vs"),
              6: ("rho", "kappav", "muv", "kappah", "muh", "eta_aniso"),
              8: ("rho", "kappav", "muv", "kappah", "muh", "eta_aniso", "rho_vp", "rho_vs")}


def gll_points_weights(ngll: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Lobatto-Legendre points and weights on [-1, 1] (n points: ±1 and the roots of P'_{n-1})."""
    p = legendre.Legendre.basis(ngll - 1)
    x = np.concatenate([[-1.0], np.sort(p.deriv().roots().real), [1.0]])
    w = 2.0 / (ngll * (ngll - 1) * p(x) ** 2)
    return x, w


@dataclass
class Mesh:
    """One region's mesh; point arrays follow the local GLL order of the model/kernel files, all
    processes concatenated in process order (`sizes` points each)."""
    nspec: int                 # elements (all processes)
    nglob: int                 # global points (all processes; shared points of two processes twice)
    ibool: np.ndarray          # (nspec, ngll, ngll, ngll) [ispec, k, j, i] -> index into xyz_glob
    xyz_glob: np.ndarray       # (nglob, 3) km
    jacobian: np.ndarray       # (npoint,) |J| in km³ per unit reference-cube volume
    gll_weights: np.ndarray    # (npoint,) w_i w_j w_k
    element_is_tiso: np.ndarray  # (nspec,) bool, SPECFEM's ispec_is_tiso
    idoubling: np.ndarray      # (nspec,) int
    sizes: list[int]           # local points per process
    materials: dict[str, np.ndarray] = field(default_factory=dict)  # non-dimensional, per point
    files: list[str] = field(default_factory=list)

    @property
    def ngll(self) -> int:
        return self.ibool.shape[1]

    @property
    def npoint(self) -> int:
        return self.ibool.size

    @property
    def point_index(self) -> np.ndarray:
        """(npoint,) index into xyz_glob of every local point."""
        return self.ibool.reshape(-1)

    @property
    def xyz(self) -> np.ndarray:
        """(npoint, 3) km, aligned with the GLL model arrays."""
        return self.xyz_glob[self.point_index]

    @property
    def volume(self) -> np.ndarray:
        """(npoint,) km³ quadrature weight of every local point."""
        return self.gll_weights * self.jacobian

    @property
    def radius_km(self) -> np.ndarray:
        return np.linalg.norm(self.xyz, axis=1)

    radius = radius_km

    @property
    def depth(self) -> np.ndarray:
        return R_EARTH_KM - self.radius_km

    @property
    def element(self) -> np.ndarray:
        """(npoint,) element of every local point."""
        return np.repeat(np.arange(self.nspec), self.ngll ** 3)

    @property
    def ispec_is_tiso(self) -> np.ndarray:
        """(npoint,) SPECFEM's element flag broadcast to the element's points."""
        return np.repeat(self.element_is_tiso, self.ngll ** 3)

    def element_centres(self) -> np.ndarray:
        """(nspec, 3) km: volume-weighted centre of every element."""
        v = self.volume.reshape(self.nspec, -1)
        return np.einsum("ep,epc->ec", v, self.xyz.reshape(self.nspec, -1, 3)) / v.sum(1)[:, None]

    def element_radius(self) -> np.ndarray:
        """(npoint,) radius of the centre of each point's element: the side of a discontinuity a
        point on it belongs to (SPEC §6, STW105 by layer)."""
        r = np.linalg.norm(self.element_centres(), axis=1)
        return np.repeat(r, self.ngll ** 3)

    def element_depth(self) -> np.ndarray:
        """(npoint,) depth of each point's element centre, km."""
        return R_EARTH_KM - self.element_radius()

    def latlon(self) -> tuple[np.ndarray, np.ndarray]:
        """Geocentric latitude and longitude (degrees) of the local points."""
        x, y, z = self.xyz.T
        return np.degrees(np.arctan2(z, np.hypot(x, y))), np.degrees(np.arctan2(y, x))

    def database_model(self) -> dict[str, np.ndarray]:
        """vpv, vph, vsv, vsh (km/s), eta, rho (g/cm³) from the mesh's own material records: the
        model the solver used, in the units of the GLL model files (SPECFEM's scaling: ρ·RHOAV,
        velocities · R_EARTH·sqrt(π G RHOAV))."""
        m = self.materials
        if not {"rho", "kappav", "muv"} <= set(m):
            raise ValueError(f"{self.files}: no material records (read_mesh(..., materials=True))")
        vscale = R_EARTH_KM * np.sqrt(np.pi * GRAV * RHOAV)          # km/s
        rho = m["rho"].astype(float)
        kv, mv = m["kappav"].astype(float), m["muv"].astype(float)
        kh, mh = m.get("kappah", kv).astype(float), m.get("muh", mv).astype(float)
        return {"vpv": np.sqrt((kv + 4.0 / 3.0 * mv) / rho) * vscale,
                "vph": np.sqrt((kh + 4.0 / 3.0 * mh) / rho) * vscale,
                "vsv": np.sqrt(mv / rho) * vscale, "vsh": np.sqrt(mh / rho) * vscale,
                "eta": m.get("eta_aniso", np.ones_like(rho)).astype(float),
                "rho": rho * RHOAV / 1000.0}


def _raw(path: str) -> np.ndarray:
    if path.endswith(".xz"):
        with lzma.open(path) as f:
            return np.frombuffer(f.read(), np.uint8)
    return np.memmap(path, np.uint8, mode="r")


def _records(raw: np.ndarray, path: str) -> list[np.ndarray]:
    """The payloads of a Fortran unformatted sequential file (4-byte little-endian markers)."""
    out, i, n_all = [], 0, raw.size
    while i < n_all:
        if i + 4 > n_all:
            raise ValueError(f"{path}: truncated Fortran record marker at byte {i}")
        n = int(raw[i:i + 4].view("<i4")[0])
        if n < 0 or i + 8 + n > n_all or int(raw[i + 4 + n:i + 8 + n].view("<i4")[0]) != n:
            raise ValueError(f"{path}: broken Fortran record at byte {i} (record {len(out) + 1})")
        out.append(raw[i + 4:i + 4 + n])
        i += n + 8
    return out


def _read_one(path: str, materials: bool) -> dict:
    rec = _records(_raw(path), path)
    if len(rec) < _N_FIXED:
        raise ValueError(f"{path}: {len(rec)} records; a solver_data.bin has at least {_N_FIXED}")
    nspec, nglob = int(rec[0].view("<i4")[0]), int(rec[1].view("<i4")[0])
    ibool = rec[5].view("<i4")
    ngll = round((ibool.size / max(nspec, 1)) ** (1.0 / 3.0))
    npoint = ngll ** 3 * nspec
    sizes = [r.size for r in rec]
    want = [4, 4] + [4 * nglob] * 3 + [4 * npoint, 4 * nspec, 4 * nspec] + [4 * npoint] * 9
    if sizes[:_N_FIXED] != want:
        raise ValueError(f"{path}: record sizes {sizes[:_N_FIXED]} do not match nspec={nspec}, "
                         f"nglob={nglob} (expected {want})")
    xyz = np.stack([rec[k].view("<f4") for k in (2, 3, 4)], axis=1).astype(float) * R_EARTH_KM
    inv = np.stack([rec[k].view("<f4").astype(float) for k in range(8, 17)], axis=1)
    jac = np.abs(1.0 / np.linalg.det(inv.reshape(-1, 3, 3))) * R_EARTH_KM ** 3
    _, w = gll_points_weights(ngll)
    w3 = (w[:, None, None] * w[None, :, None] * w[None, None, :]).reshape(-1)   # [k, j, i]
    out = dict(nspec=nspec, nglob=nglob, xyz=xyz, jac=jac, w=np.tile(w3, nspec),
               ibool=ibool.astype(np.int64).reshape(nspec, ngll, ngll, ngll) - 1,
               idoubling=rec[6].view("<i4").copy(), tiso=rec[7].view("<i4") != 0, materials={})
    if out["ibool"].min() < 0 or out["ibool"].max() >= nglob:
        raise ValueError(f"{path}: ibool outside 1..nglob={nglob}")
    if materials:
        nmat = next((i for i, s in enumerate(sizes[_N_FIXED:]) if s != 4 * npoint), len(sizes) - _N_FIXED)
        if nmat not in _MATERIALS:
            raise ValueError(f"{path}: {nmat} per-point material records; known layouts have "
                             f"{sorted(_MATERIALS)} (anisotropic meshes are not supported)")
        out["materials"] = {name: rec[_N_FIXED + i].view("<f4").copy()
                            for i, name in enumerate(_MATERIALS[nmat])}
    return out


def mesh_files(directory: str, region: int = 1) -> list[str]:
    """`proc*_reg<region>_solver_data.bin[.xz]` of every process in `directory`, in process order."""
    pat = re.compile(rf"proc(\d+)_reg{region}_solver_data\.bin(\.xz)?$")
    found = sorted((int(m.group(1)), f) for f in glob.glob(os.path.join(directory, "proc*"))
                   if (m := pat.match(os.path.basename(f))))
    if not found:
        raise FileNotFoundError(f"no proc*_reg{region}_solver_data.bin[.xz] in {directory}")
    if [i for i, _ in found] != list(range(len(found))):
        raise FileNotFoundError(f"{directory}: solver_data files of processes {[i for i, _ in found]}, "
                                "expected 0..N-1 once each")
    return [f for _, f in found]


def read_mesh(path: str | os.PathLike, iproc: int | None = None, region: int = 1,
              materials: bool = False) -> Mesh:
    """The mesh of one region. `path` is a solver_data.bin[.xz] file or a DATABASES_MPI folder;
    in a folder `iproc` picks one process, None (default) concatenates all processes in order
    (matching `read_fields`/`read_model` arrays). `materials` also keeps the material records."""
    path = os.fspath(path)
    if os.path.isdir(path):
        files = mesh_files(path, region)
        if iproc is not None:
            if not 0 <= iproc < len(files):
                raise FileNotFoundError(f"{path}: no process {iproc} of region {region} "
                                        f"({len(files)} processes)")
            files = [files[iproc]]
    elif os.path.exists(path):
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: no such mesh file or folder")
    parts = [_read_one(f, materials) for f in files]
    offsets = np.cumsum([0] + [p["nglob"] for p in parts])
    mats = {k: np.concatenate([p["materials"][k] for p in parts]) for k in parts[0]["materials"]}
    return Mesh(nspec=sum(p["nspec"] for p in parts), nglob=int(offsets[-1]),
                ibool=np.concatenate([p["ibool"] + o for p, o in zip(parts, offsets)]),
                xyz_glob=np.concatenate([p["xyz"] for p in parts]),
                jacobian=np.concatenate([p["jac"] for p in parts]),
                gll_weights=np.concatenate([p["w"] for p in parts]),
                element_is_tiso=np.concatenate([p["tiso"] for p in parts]),
                idoubling=np.concatenate([p["idoubling"] for p in parts]),
                sizes=[p["ibool"].size for p in parts], materials=mats, files=files)
