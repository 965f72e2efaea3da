"""Gaussian smoothing of kernels (SPEC §6 step 4).

On a cluster the smoothing runs SPECFEM's own program (`xsmooth_sem_command`); its weights are
exp(−d_h²/(2σ_h²) − d_v²/(2σ_v²)) with d_h the arc at the target's radius and d_v the radial
difference, normalized by Σ weight·volume (smooth_sem.F90, smooth_weights_vec.F90).
`gaussian_smooth` is the same operator in Python for runs without SPECFEM tools (tests, demo):
sources are the volume-weighted element means at the element centres (one per element), targets
every GLL point, truncated at 3σ — an approximation whose error grows as σ approaches the element
size."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def xsmooth_sem_command(sigma_h_km: float, sigma_v_km: float, kernel_name: str, input_dir: str,
                        output_dir: str, use_gpu: bool = False) -> list[str]:
    """Arguments of SPECFEM3D_GLOBE's `xsmooth_sem SIGMA_H SIGMA_V KERNEL_NAME INPUT_DIR OUTPUT_DIR`
    (v7.0.x takes exactly these five; newer versions add USE_GPU)."""
    args = ["xsmooth_sem", f"{sigma_h_km:g}", f"{sigma_v_km:g}", kernel_name, input_dir, output_dir]
    if use_gpu:
        args.append(".true.")
    return args


def _weights(targets: np.ndarray, sources: np.ndarray, sh2: float, sv2: float) -> np.ndarray:
    r0 = np.linalg.norm(targets, axis=-1)
    r1 = np.linalg.norm(sources, axis=-1)
    cos = np.clip(np.sum(targets * sources, axis=-1) / (r0 * r1), -1.0, 1.0)
    dh = r0 * np.arccos(cos)
    dv = r1 - r0
    return np.exp(-dh ** 2 / sh2 - dv ** 2 / sv2)


def gaussian_smooth(fields: dict[str, np.ndarray], xyz: np.ndarray, volume: np.ndarray,
                    element: np.ndarray, sigma_h_km: float, sigma_v_km: float,
                    chunk: int = 4096) -> dict[str, np.ndarray]:
    """Smooth every field (values per GLL point) with the Gaussian above."""
    nel = int(element.max()) + 1
    vol_e = np.bincount(element, weights=volume, minlength=nel)
    centre = np.stack([np.bincount(element, weights=volume * xyz[:, i], minlength=nel)
                       for i in range(3)], axis=1) / vol_e[:, None]
    means = {k: np.bincount(element, weights=volume * v, minlength=nel) / vol_e
             for k, v in fields.items()}
    sh2, sv2 = 2.0 * sigma_h_km ** 2, 2.0 * sigma_v_km ** 2
    reach = 3.0 * max(sigma_h_km, sigma_v_km) + float(np.max(
        np.linalg.norm(xyz - centre[element], axis=1)))
    tree = cKDTree(centre)
    out = {k: np.empty(xyz.shape[0]) for k in fields}
    for a in range(0, xyz.shape[0], chunk):
        pts = xyz[a:a + chunk]
        nbrs = tree.query_ball_point(pts, reach)
        lens = np.fromiter((len(n) for n in nbrs), int, len(nbrs))
        rows = np.repeat(np.arange(len(nbrs)), lens)
        cols = np.concatenate([np.asarray(n, int) for n in nbrs])
        w = _weights(pts[rows], centre[cols], sh2, sv2) * vol_e[cols]
        norm = np.bincount(rows, weights=w, minlength=len(nbrs))
        for k in fields:
            out[k][a:a + chunk] = np.bincount(rows, weights=w * means[k][cols],
                                              minlength=len(nbrs)) / norm
    return out
