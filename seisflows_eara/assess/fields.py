"""Derived fields of a GLL model for assessment figures (SPEC §7, paper §3 and Figs 4-7).

  Vs² = (2 Vsv² + Vsh²) / 3            (Voigt average, the isotropic S speed of the paper's maps)
  Vp² = (Vpv² + 4 Vph²) / 5            (Voigt average)
  ξ_S = (Vsh − Vsv) / Vs               (S-wave radial anisotropy, paper Fig. 5)
  δlnVs = (Vs − <Vs>(z)) / <Vs>(z)     (relative to the layer mean <·>(z), the 1-D average of the
                                        3-D model: paper Figs 4, 6, 7 "EARA2024_AVG")
The layer mean at depth z is the area-weighted average over the sphere of radius R − z inside the
mesh, sampled on a latitude/longitude grid (cos-latitude weights, `area_mean`): a field constant
on spheres gives δln = 0 at every depth, discontinuities included.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

#: derived quantities `derived_field` knows besides the raw GLL names
DERIVED = ("vs", "vp", "xi", "dlnvs", "dlnvp")
#: what each field is, with its unit, for colour-bar labels
LABELS = {"vs": "Vs (km/s)", "vp": "Vp (km/s)", "xi": "(Vsh − Vsv)/Vs (%)",
          "dlnvs": "δlnVs (%)", "dlnvp": "δlnVp (%)", "vsv": "Vsv (km/s)", "vsh": "Vsh (km/s)",
          "vpv": "Vpv (km/s)", "vph": "Vph (km/s)", "rho": "ρ (g/cm³)", "eta": "η",
          "vc": "Vc (km/s)"}
#: fields shown in percent (relative quantities)
PERCENT = ("xi", "dlnvs", "dlnvp")


def vs_voigt(vsv: np.ndarray, vsh: np.ndarray) -> np.ndarray:
    """Vs = sqrt((2 Vsv² + Vsh²)/3)."""
    return np.sqrt((2.0 * np.asarray(vsv) ** 2 + np.asarray(vsh) ** 2) / 3.0)


def vp_voigt(vpv: np.ndarray, vph: np.ndarray) -> np.ndarray:
    """Vp = sqrt((Vpv² + 4 Vph²)/5)."""
    return np.sqrt((np.asarray(vpv) ** 2 + 4.0 * np.asarray(vph) ** 2) / 5.0)


def radial_anisotropy(vsv: np.ndarray, vsh: np.ndarray) -> np.ndarray:
    """(Vsh − Vsv)/Vs with the Voigt Vs (dimensionless)."""
    return (np.asarray(vsh) - np.asarray(vsv)) / vs_voigt(vsv, vsh)


def area_mean(values: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Area-weighted mean over the last axis of samples on a latitude/longitude grid at one
    depth: weights cos(latitude) (the area of a grid cell on the sphere), NaN (outside the mesh)
    ignored. `values` (..., n) and `lat_deg` (n,) (or broadcastable)."""
    v = np.asarray(values, float)
    w = np.broadcast_to(np.cos(np.radians(np.asarray(lat_deg, float))), v.shape)
    ok = np.isfinite(v)
    total = np.sum(np.where(ok, w, 0.0), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(np.where(ok, w * v, 0.0), axis=-1) / total


def relative_to_mean(values: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """δln f = (f − <f>)/<f>."""
    return (np.asarray(values, float) - mean) / mean


def derived_field(name: str, model: Mapping[str, np.ndarray]) -> np.ndarray:
    """A raw field of `model` (a GLL file of that name: it wins, so a folder of perturbations
    holding 'vs' is shown as it is), else `name` of DERIVED that needs no layer mean (vs, vp, xi)."""
    if name in model:
        return np.asarray(model[name], float)
    if name == "vs":
        return vs_voigt(model["vsv"], model["vsh"])
    if name == "vp":
        return vp_voigt(model["vpv"], model["vph"])
    if name == "xi":
        return radial_anisotropy(model["vsv"], model["vsh"])
    raise KeyError(f"field {name!r}: not in the model (has {sorted(model)}) and not one of "
                   f"{list(DERIVED)}")


def base_field(name: str) -> str:
    """The absolute field a relative one is taken of: dlnvs -> vs, dlnvp -> vp."""
    return {"dlnvs": "vs", "dlnvp": "vp"}.get(name, name)


def discontinuity_mask(depth_km: np.ndarray, discontinuities_km: list[float] | np.ndarray,
                       halfwidth_km: float) -> np.ndarray:
    """True where a depth lies within `halfwidth_km` of any discontinuity (paper: ±60 km around
    410 and 660 km mask artefacts of the fixed discontinuity topography)."""
    d = np.asarray(depth_km, float)[..., None]
    return np.any(np.abs(d - np.asarray(discontinuities_km, float)) <= halfwidth_km, axis=-1)
