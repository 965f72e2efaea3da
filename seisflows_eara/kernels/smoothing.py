"""Gaussian smoothing of kernels (SPEC §6 step 4).

On a cluster the smoothing runs SPECFEM3D_GLOBE's own program (`xsmooth_sem_command`). Its
operator (src/tomography/postprocess_sensitivity_kernels/smooth_sem.F90, smooth_weights_vec.F90):
  K̃(x0) = Σ_j w(x0, x_j) V_j K_j / Σ_j w(x0, x_j) V_j,
  w = exp(−d_h²/(2σ_h²) − d_v²/(2σ_v²)),  d_h = r_j·θ (arc at the source point's radius),
  d_v = r_j − r0, V_j = w_i w_j w_k |J| (the GLL volume weight), j over all local GLL points.
`gaussian_smooth` is the same operator in Python, for runs without SPECFEM tools (tests, demo,
stand-in solver). Two exact reductions make it affordable: the Gaussian depends only on position,
so local points sharing a global point are summed first (Σ V_j K_j per position) and targets are
evaluated once per position; and pairs beyond `truncate` σ (default: where the Gaussian falls below
float32 resolution; SPECFEM's search radius 3σ + 4 elements is wider still) are skipped.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
from scipy.spatial import cKDTree

#: default truncation in σ: exp(−t²/2) equals the float32 resolution (SPECFEM stores float32)
TRUNCATE_SIGMA = float(np.sqrt(-2.0 * np.log(np.finfo(np.float32).eps)))
#: target points per block of the pair computation (bounds the memory of one block)
BLOCK_POINTS = 2048


def xsmooth_sem_command(sigma_h_km: float, sigma_v_km: float, kernel_name: str,
                        input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                        use_gpu: bool = False, binary: str = "xsmooth_sem",
                        launcher: list[str] | None = None) -> list[str]:
    """Argument list of `xsmooth_sem SIGMA_H SIGMA_V KERNEL_NAME INPUT_DIR OUTPUT_DIR` (σ in km;
    reads INPUT_DIR/proc*_reg1_<KERNEL_NAME>.bin and LOCAL_PATH's solver_data.bin, writes
    OUTPUT_DIR/proc*_reg1_<KERNEL_NAME>_smooth.bin; run with NPROCTOT MPI processes from the run
    folder, whose DATA/Par_file it reads). SPECFEM3D_GLOBE v7.0.x takes exactly these five
    arguments (smooth_sem.F90: NARGS = 5); newer versions take a sixth, USE_GPU (`use_gpu`)."""
    if not (sigma_h_km > 0 and sigma_v_km > 0):
        raise ValueError(f"smoothing lengths must be positive, got {sigma_h_km}, {sigma_v_km} km")
    args = [binary, f"{sigma_h_km:g}", f"{sigma_v_km:g}", kernel_name, os.fspath(input_dir),
            os.fspath(output_dir)]
    if use_gpu:
        args.append(".true.")
    return (list(launcher) if launcher else []) + args


def smoothed_filename(iproc: int, kernel_name: str, region: int = 1) -> str:
    """Name of xsmooth_sem's output file."""
    return f"proc{iproc:06d}_reg{region}_{kernel_name}_smooth.bin"


def _pair_weights(r0: np.ndarray, r1: np.ndarray, chord: np.ndarray, sh2: float,
                  sv2: float) -> np.ndarray:
    """exp(−(r1 θ)²/sh2 − (r1 − r0)²/sv2) from the radii of target and source and their chord:
    sin²(θ/2) = (chord² − (r1 − r0)²) / (4 r0 r1), exact and without acos's loss at small θ."""
    dv = r1 - r0
    theta = 2.0 * np.arcsin(np.sqrt(np.clip((chord * chord - dv * dv) / (4.0 * r0 * r1), 0.0, 1.0)))
    return np.exp(-(r1 * theta) ** 2 / sh2 - dv * dv / sv2)


def smooth_points(values: Mapping[str, np.ndarray], xyz: np.ndarray, volume: np.ndarray,
                  sigma_h_km: float, sigma_v_km: float, targets: np.ndarray | None = None,
                  truncate: float = TRUNCATE_SIGMA, block: int = BLOCK_POINTS,
                  normalise: bool = True) -> dict[str, np.ndarray]:
    """Σ_j w V_j f_j / Σ_j w V_j at `targets` (default: the points) for sources at `xyz` (n, 3) km
    with volume weights `volume` (n,) and values {name: (n,)}; `normalise` False: Σ_j w V_j f_j."""
    if not (sigma_h_km > 0 and sigma_v_km > 0 and truncate > 0):
        raise ValueError(f"smoothing lengths and truncation must be positive "
                         f"({sigma_h_km}, {sigma_v_km} km, {truncate} σ)")
    xyz, volume = np.asarray(xyz, float), np.asarray(volume, float)
    targets = xyz if targets is None else np.asarray(targets, float)
    sh2, sv2 = 2.0 * sigma_h_km ** 2, 2.0 * sigma_v_km ** 2
    smax, rmin = max(sigma_h_km, sigma_v_km), float(np.linalg.norm(xyz, axis=1).min())
    # chord² ≤ d_v² + (r0/r1) d_h² and r0/r1 ≤ 1 + d_v/r1: a sphere of this radius holds the support
    reach = truncate * smax * np.sqrt(1.0 + truncate * sigma_v_km / max(rmin, smax))
    src_tree = cKDTree(xyz)
    r_src, r_tgt = np.linalg.norm(xyz, axis=1), np.linalg.norm(targets, axis=1)
    vf = {k: np.asarray(v, float) * volume for k, v in values.items()}
    out = {k: np.empty(targets.shape[0]) for k in values}
    for a in range(0, targets.shape[0], block):
        tgt = targets[a:a + block]
        pairs = cKDTree(tgt).sparse_distance_matrix(src_tree, reach, output_type="ndarray")
        i, j = pairs["i"], pairs["j"]
        w = _pair_weights(r_tgt[a:a + block][i], r_src[j], pairs["v"], sh2, sv2)
        norm = np.bincount(i, weights=w * volume[j], minlength=tgt.shape[0]) if normalise else 1.0
        for k in values:
            out[k][a:a + block] = np.bincount(i, weights=w * vf[k][j], minlength=tgt.shape[0]) / norm
    return out


def gaussian_smooth(fields: Mapping[str, np.ndarray], xyz: np.ndarray, volume: np.ndarray,
                    element: np.ndarray | None, sigma_h_km: float, sigma_v_km: float,
                    truncate: float = TRUNCATE_SIGMA, block: int = BLOCK_POINTS
                    ) -> dict[str, np.ndarray]:
    """SPECFEM's Gaussian smoothing (module doc) of fields on local GLL points `xyz` (n, 3) km with
    volume weights `volume` (Mesh.xyz, Mesh.volume). Local points at one position are merged
    exactly first; `element` is not needed (kept for callers that pass Mesh.element)."""
    xyz = np.asarray(xyz, float)
    volume = np.asarray(volume, float)
    for k, v in fields.items():
        if np.shape(v) != volume.shape:
            raise ValueError(f"field {k}: {np.shape(v)} values for {volume.shape[0]} points")
    uniq, inverse = np.unique(xyz, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    vol_u = np.bincount(inverse, weights=volume, minlength=uniq.shape[0])
    mean_u = {k: np.bincount(inverse, weights=np.asarray(v, float) * volume, minlength=uniq.shape[0])
              / vol_u for k, v in fields.items()}
    sm = smooth_points(mean_u, uniq, vol_u, sigma_h_km, sigma_v_km, truncate=truncate, block=block)
    return {k: v[inverse] for k, v in sm.items()}


def smooth_mesh(fields: Mapping[str, np.ndarray], mesh, sigma_h_km: float, sigma_v_km: float,
                truncate: float = TRUNCATE_SIGMA) -> dict[str, np.ndarray]:
    """`gaussian_smooth` on a `seisflows_eara.model.Mesh` (global points from its ibool)."""
    idx = mesh.point_index
    vol = mesh.volume
    vol_g = np.bincount(idx, weights=vol, minlength=mesh.nglob)
    used = vol_g > 0
    for k, v in fields.items():
        if np.shape(v) != vol.shape:
            raise ValueError(f"field {k}: {np.shape(v)} values for {vol.shape[0]} points of {mesh.files}")
    mean_g = {k: np.bincount(idx, weights=np.asarray(v, float) * vol, minlength=mesh.nglob)[used]
              / vol_g[used] for k, v in fields.items()}
    sm = smooth_points(mean_g, mesh.xyz_glob[used], vol_g[used], sigma_h_km, sigma_v_km,
                       truncate=truncate)
    pos = np.cumsum(used) - 1
    return {k: v[pos[idx]] for k, v in sm.items()}
