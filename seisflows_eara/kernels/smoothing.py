"""Gaussian smoothing of kernels (SPEC §6 step 4).

On a cluster the smoothing runs SPECFEM3D_GLOBE's own program (`xsmooth_sem_command`). Its
operator (src/tomography/postprocess_sensitivity_kernels/smooth_sem.F90, smooth_weights_vec.F90):
  K̃(x0) = Σ_j w(x0, x_j) V_j K_j / Σ_j w(x0, x_j) V_j,
  w = exp(−d_h²/(2σ_h²) − d_v²/(2σ_v²)),  d_h = r_j·θ (arc at the source point's radius),
  d_v = r_j − r0, V_j = w_i w_j w_k |J| (the GLL volume weight), j over all local GLL points.
`gaussian_smooth` is the same operator in Python, for runs without SPECFEM tools (tests, demo,
stand-in solver). Two exact reductions make it affordable: the Gaussian depends only on position,
so local points sharing a global point are summed first (Σ V_j K_j per position) and targets are
evaluated once per position; and pairs with d_h²/σh² + d_v²/σv² > truncate² are left out
(`TRUNCATE_SIGMA` = 3 by default for speed; `TRUNCATE_FLOAT32` reproduces xsmooth_sem, whose
search radius of 3σ + 4 elements takes in every point where the Gaussian exceeds exp(−86)).
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
from scipy.spatial import cKDTree

#: truncation (Mahalanobis distance, in σ) beyond which exp(−t²/2) is below float32 resolution:
#: with it the operator is xsmooth_sem's to its own float32 precision (≈ 9 min at 50/25 km on the
#: 920 000-point fixture mesh on one core; xsmooth_sem: 16 min)
TRUNCATE_FLOAT32 = float(np.sqrt(-2.0 * np.log(np.finfo(np.float32).eps)))
#: default truncation: 3 σ (≈ 80 s at 50/25 km on the fixture mesh; the truncated Gaussian, still
#: normalised, differs from xsmooth_sem by ≤ 2.2 % of max |K̃| there; 4 σ: 0.1 %, 160 s)
TRUNCATE_SIGMA = 3.0
#: target points per block of the pair computation (bounds the memory of one block)
BLOCK_POINTS = 2048
#: largest relative stretch of horizontal distances by the radial scaling of a band (search only)
_BAND_DISTORTION = 0.05


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


def _band_pairs(tgt: np.ndarray, src: np.ndarray, r_tgt: np.ndarray, r_src: np.ndarray,
                sigma_h: float, sigma_v: float, truncate: float, block: int):
    """Yield, per block of targets, (the block's target indices, pair rows into the block, source
    indices, Mahalanobis q = d_h²/σh² + d_v²/σv² ≤ truncate²) of all pairs within `truncate`,
    d_h = r_src θ; every target is in exactly one block. Radial bands of targets: in a band about radius
    R_b the points are mapped to p̂ (R_b + k (r − R_b)), which turns the ellipsoidal support into
    (nearly) a sphere for the KD-tree; k is limited so horizontal distances stretch by at most
    _BAND_DISTORTION, and the query radius bounds that stretch, so no pair is missed."""
    ext = truncate * sigma_v                                        # |d_v| ≤ ext in the support
    width = 2.0 * ext
    rmin = float(min(r_src.min(), r_tgt.min()))
    dmax = _BAND_DISTORTION * rmin / (width / 2 + ext)
    k = 1.0 + float(np.clip(sigma_h / sigma_v - 1.0, -min(dmax, 0.5), dmax))
    lo_all, hi_all = float(r_tgt.min()), float(r_tgt.max())
    for lo in np.arange(lo_all, hi_all + width / 2, width):
        hi = lo + width
        t_idx = np.nonzero((r_tgt >= lo) & ((r_tgt < hi) | (hi > hi_all)))[0]
        s_idx = np.nonzero((r_src >= lo - ext) & (r_src <= hi + ext))[0]
        if t_idx.size == 0 or s_idx.size == 0:
            continue
        rb = (lo + hi) / 2
        rho_t = rb + k * (r_tgt[t_idx] - rb)
        rho_s = rb + k * (r_src[s_idx] - rb)
        pt = tgt[t_idx] * (rho_t / r_tgt[t_idx])[:, None]
        ps = src[s_idx] * (rho_s / r_src[s_idx])[:, None]
        # scaled chord² = k² d_v² + 4 ρ0 ρ1 sin²(θ/2) ≤ k² d_v² + (ρ0 ρ1 / r1²) d_h²
        c = float(rho_t.max() * np.max(rho_s / r_src[s_idx] ** 2))
        reach = truncate * max(k * sigma_v, np.sqrt(c) * sigma_h)
        src_tree = cKDTree(ps)
        order = cKDTree(pt).indices                                  # spatially compact blocks
        for a in range(0, order.size, block):
            rows = order[a:a + block]
            pairs = cKDTree(pt[rows]).sparse_distance_matrix(src_tree, reach, output_type="ndarray")
            b, j = pairs["i"], pairs["j"]
            i = rows[b]
            r0, r1 = r_tgt[t_idx[i]], r_src[s_idx[j]]
            p0, p1 = rho_t[i], rho_s[j]
            dv = r1 - r0
            sin2 = np.clip((pairs["v"] ** 2 - (p1 - p0) ** 2) / (4.0 * p0 * p1), 0.0, 1.0)
            dh = r1 * 2.0 * np.arcsin(np.sqrt(sin2))
            q = (dh / sigma_h) ** 2 + (dv / sigma_v) ** 2
            keep = q <= truncate ** 2
            yield t_idx[rows], b[keep], s_idx[j[keep]], q[keep]


def smooth_points(values: Mapping[str, np.ndarray], xyz: np.ndarray, volume: np.ndarray,
                  sigma_h_km: float, sigma_v_km: float, targets: np.ndarray | None = None,
                  truncate: float = TRUNCATE_SIGMA, block: int = BLOCK_POINTS,
                  normalise: bool = True) -> dict[str, np.ndarray]:
    """Σ_j w V_j f_j / Σ_j w V_j at `targets` (default: the points) for sources at `xyz` (n, 3) km
    with volume weights `volume` (n,) and values {name: (n,)}; w = exp(−q/2) with
    q = d_h²/σh² + d_v²/σv², pairs with q > truncate² left out; `normalise` False: Σ_j w V_j f_j."""
    if not (sigma_h_km > 0 and sigma_v_km > 0 and truncate > 0):
        raise ValueError(f"smoothing lengths and truncation must be positive "
                         f"({sigma_h_km}, {sigma_v_km} km, {truncate} σ)")
    xyz, volume = np.asarray(xyz, float), np.asarray(volume, float)
    targets = xyz if targets is None else np.asarray(targets, float)
    r_src, r_tgt = np.linalg.norm(xyz, axis=1), np.linalg.norm(targets, axis=1)
    vf = {k: np.asarray(v, float) * volume for k, v in values.items()}
    num = {k: np.zeros(targets.shape[0]) for k in values}
    norm = np.zeros(targets.shape[0])
    for rows, i, j, q in _band_pairs(targets, xyz, r_tgt, r_src, sigma_h_km, sigma_v_km, truncate,
                                     block):
        w = np.exp(-0.5 * q)
        norm[rows] = np.bincount(i, weights=w * volume[j], minlength=rows.size)
        for k in values:
            num[k][rows] = np.bincount(i, weights=w * vf[k][j], minlength=rows.size)
    if not normalise:
        return num
    if np.any(norm <= 0):
        raise ValueError(f"{int(np.sum(norm <= 0))} targets have no source point within "
                         f"{truncate} σ (targets outside the mesh?)")
    return {k: v / norm for k, v in num.items()}


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
    return smooth_at(fields, xyz, volume, None, sigma_h_km, sigma_v_km, truncate, block)


def smooth_at(fields: Mapping[str, np.ndarray], xyz: np.ndarray, volume: np.ndarray,
              targets: np.ndarray | None, sigma_h_km: float, sigma_v_km: float,
              truncate: float = TRUNCATE_SIGMA, block: int = BLOCK_POINTS
              ) -> dict[str, np.ndarray]:
    """SPECFEM's smoothing of local-point `fields` (sources at `xyz`, weights `volume`) evaluated
    at the local points `targets` (n_t, 3) km (None: at `xyz`): local points sharing a position are
    merged exactly (Σ V K per position) for sources and targets alike. A slice's targets with the
    sources of its slice and of its neighbours within the smoothing reach give the slice's part
    of the whole-mesh result (seisflows_eara.direction)."""
    uniq, inverse = unique_rows(xyz)
    vol_u = np.bincount(inverse, weights=volume, minlength=uniq.shape[0])
    mean_u = {k: np.bincount(inverse, weights=np.asarray(v, float) * volume, minlength=uniq.shape[0])
              / vol_u for k, v in fields.items()}
    if targets is None:
        t_uniq, t_inverse = None, inverse
    else:
        t_uniq, t_inverse = unique_rows(np.asarray(targets, float))
    sm = smooth_points(mean_u, uniq, vol_u, sigma_h_km, sigma_v_km, targets=t_uniq,
                       truncate=truncate, block=block)
    return {k: v[t_inverse] for k, v in sm.items()}


def unique_rows(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(xyz, axis=0, return_inverse=True) — the same rows in the same (lexicographic)
    order and the same inverse — by a numeric lexsort (np.unique's structured-dtype sort is ~20x
    slower on a million points)."""
    xyz = np.asarray(xyz)
    if xyz.shape[0] == 0:
        return xyz.copy(), np.zeros(0, np.intp)
    order = np.lexsort(xyz.T[::-1])
    srt = xyz[order]
    new = np.empty(srt.shape[0], bool)
    new[0] = True
    new[1:] = np.any(srt[1:] != srt[:-1], axis=1)
    inverse = np.empty(srt.shape[0], np.intp)
    inverse[order] = np.cumsum(new) - 1
    return srt[new], inverse


def smoothing_reach(sigma_h_km: float, sigma_v_km: float, r_min_km: float,
                    truncate: float = TRUNCATE_SIGMA) -> float:
    """Straight-line distance (km) beyond which no source point enters a target's Gaussian: a
    pair kept by the truncation has d_h ≤ tσh, |d_v| ≤ tσv, and chord² = d_v² + 4 r0 r1 sin²(θ/2)
    ≤ d_v² + (r0/r1) d_h² with r0/r1 ≤ 1 + tσv/r_min."""
    ratio = 1.0 + truncate * sigma_v_km / max(r_min_km, 1.0)
    return truncate * float(np.sqrt(sigma_v_km ** 2 + ratio * sigma_h_km ** 2)) * (1 + 1e-9) + 1e-6


def estimated_pairs(n_targets: int, density_per_km3: float, sigma_h_km: float,
                    sigma_v_km: float, truncate: float = TRUNCATE_SIGMA) -> float:
    """Source-target pairs of the Python smoother: targets × the points in the truncated
    Gaussian's ellipsoid (4/3 π (tσh)² tσv at the given density of merged points)."""
    return n_targets * density_per_km3 * 4.0 / 3.0 * np.pi * truncate ** 3 * sigma_h_km ** 2 \
        * sigma_v_km


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
