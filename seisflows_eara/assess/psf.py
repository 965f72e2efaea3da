"""Point-spread-function (PSF) tests (SPEC §7, paper Appendix D and Fig. 9; Fichtner & Trampert
2011).

Input: Gaussian spheres δln p = s_c A exp(−(d_c/R)²) (d_c the straight-line distance to centre c,
R = psf_radius_km, the convention of the kernel damping, kernels.damping) added to one inverted
parameter p (psf_parameter, EARA: Vsv) of the final model, with centres on a latitude/longitude
grid of spacing psf_spacing_deg anchored at the mesh centre, at psf_depths_km, signs s_c = ±1 in
a checkerboard over (latitude, longitude, depth) or all +1. The perturbed model is the inversion's
own model map (model.parametrization.update_model) with the other inverted parameters (vc, vsv,
vsh, η without p) fixed and density scaled to Vs, applied in the transversely isotropic
parametrization at every point (the paper perturbs Vsv at 700 and 900 km too).
Response: a kernel run in the perturbed model with the final model's synthetics as data gives the
gradient g ≈ −H δm, so the PSF is −g, per parameter (Vsv, Vsh, Vc in the paper), from SPECFEM's
transverse kernels with the same parametrization (model.parametrization.gradient_from_kernels).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from seisflows_eara.assess.sections import GllInterpolator
from seisflows_eara.kernels.damping import DAMPING_REACH, geographic_to_xyz
from seisflows_eara.model.gll import concatenate
from seisflows_eara.model.mesh import Mesh
from seisflows_eara.model.parametrization import (MODEL_FILES, TISO, derived, gradient_from_kernels,
                                                  mesh_reference, update_model)


def psf_centres(interp: GllInterpolator, spacing_deg: float, depths_km: list[float],
                pattern: str) -> pd.DataFrame:
    """Centres inside the mesh: columns lat, lon (geographic, deg), depth_km, i, j, k (grid
    indices from the mesh centre), sign, x, y, z (km, mesh frame)."""
    if pattern not in ("checkerboard", "positive"):
        raise ValueError(f"PSF pattern {pattern!r}: expected checkerboard or positive")
    ext = interp.extent()
    ii = np.arange(np.floor((ext.lat_min - ext.lat_centre) / spacing_deg),
                   np.ceil((ext.lat_max - ext.lat_centre) / spacing_deg) + 1)
    jj = np.arange(np.floor((ext.lon_min - ext.lon_centre) / spacing_deg),
                   np.ceil((ext.lon_max - ext.lon_centre) / spacing_deg) + 1)
    i, j, k = (a.ravel() for a in np.meshgrid(ii, jj, np.arange(len(depths_km)), indexing="ij"))
    lat = ext.lat_centre + i * spacing_deg
    lon = ext.lon_centre + j * spacing_deg
    depth = np.asarray(depths_km, float)[k]
    keep = np.abs(lat) < 90.0
    xyz = np.full((len(lat), 3), np.nan)
    xyz[keep] = geographic_to_xyz(lat[keep], lon[keep], depth[keep])
    keep[keep] = interp.inside(xyz[keep])
    if not keep.any():
        raise ValueError(f"no PSF centre at {list(depths_km)} km lies inside the mesh "
                         f"(depth range 0-{ext.max_depth_km:.0f} km)")
    sign = (-1.0) ** (i + j + k) if pattern == "checkerboard" else np.ones(len(lat))
    return pd.DataFrame(dict(lat=lat, lon=lon, depth_km=depth, i=i.astype(int), j=j.astype(int),
                             k=k.astype(int), sign=sign, x=xyz[:, 0], y=xyz[:, 1],
                             z=xyz[:, 2]))[keep].reset_index(drop=True)


def gaussian_perturbation(points_xyz: np.ndarray, centres: pd.DataFrame, amplitude: float,
                          radius_km: float) -> np.ndarray:
    """Σ_c s_c A exp(−(d_c/R)²) at `points_xyz` (n, 3) km; pairs beyond DAMPING_REACH radii (where
    the Gaussian is below float32 resolution) are skipped."""
    pts = np.asarray(points_xyz, float)
    c = centres[["x", "y", "z"]].to_numpy(float)
    out = np.zeros(len(pts))
    pairs = cKDTree(c).sparse_distance_matrix(cKDTree(pts), DAMPING_REACH * radius_km,
                                              output_type="ndarray")
    np.add.at(out, pairs["j"], centres["sign"].to_numpy(float)[pairs["i"]] * amplitude
              * np.exp(-(pairs["v"] / radius_km) ** 2))
    return out


def _model_arrays(model: Mapping[str, Any]) -> dict[str, np.ndarray]:
    missing = [k for k in MODEL_FILES if k not in model]
    if missing:
        raise KeyError(f"model has no {missing} (has {sorted(model)})")
    return concatenate({k: model[k] for k in MODEL_FILES})


def perturbed_model(model: Mapping[str, Any], mesh: Mesh, dln: np.ndarray, parameter: str,
                    density_scaling: float) -> dict[str, np.ndarray]:
    """GLL fields (vpv, vph, vsv, vsh, eta, rho) of `model` with δln `parameter` = `dln` and the
    other TISO parameters fixed (module doc)."""
    if parameter not in TISO:
        raise ValueError(f"PSF parameter {parameter!r}: expected one of {list(TISO)}")
    cur = _model_arrays(model)
    ref = mesh_reference(mesh)
    tiso = np.ones(cur["vsv"].shape, bool)
    now = {**cur, **derived(cur)}
    dx = {k: np.zeros(tiso.shape) for k in ("vc", "vsv", "vsh", "eta", "vp", "vs")}
    dx[parameter] = np.asarray(dln, float) * now[parameter] / ref[parameter]
    return update_model(cur, dx, ref, tiso, density_scaling)


def psf_response(kernels: Mapping[str, Any], model: Mapping[str, Any], mesh: Mesh,
                 density_scaling: float) -> dict[str, np.ndarray]:
    """−∂χ/∂x (kernel density) for vc, vsv, vsh, eta at every point: the PSF (module doc)."""
    ref = mesh_reference(mesh)
    cur = _model_arrays(model)
    g = gradient_from_kernels(kernels, cur, ref, np.ones(cur["vsv"].shape, bool), density_scaling)
    return {k: -g[k] for k in TISO}


def build_psf(model: Mapping[str, Any], mesh: Mesh, interp: GllInterpolator, v: Mapping[str, Any]
              ) -> tuple[dict[str, np.ndarray], np.ndarray, pd.DataFrame]:
    """The PSF input of parameters `v` (psf_* keys, density_scaling) on `mesh`: perturbed GLL
    model, the δln field on the GLL points, and the centres."""
    centres = psf_centres(interp, v["psf_spacing_deg"], v["psf_depths_km"], v["psf_pattern"])
    dln = gaussian_perturbation(mesh.xyz, centres, v["psf_amplitude"], v["psf_radius_km"])
    return perturbed_model(model, mesh, dln, v["psf_parameter"], v["density_scaling"]), dln, centres
