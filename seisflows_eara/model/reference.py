"""The STW105 reference model (Kustowski et al. 2008), EARA's reference for δln m (SPEC §6).

Table: seisflows_eara/data/STW105.txt (see data/README.md). Values come back in the units of
SPECFEM GLL files: velocities km/s, density g/cm³, η dimensionless. Between knots the table is
interpolated linearly in radius within its layer. Knots repeated at one radius are discontinuities
(value below, then above). A point within `DISCONTINUITY_TOL_KM` of a discontinuity takes the side
given by `above` (per point) or by the radius of its element's centre (`side_radius`); with neither,
it takes the upper side. Every other point takes the layer its own radius lies in.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from seisflows_eara.model.mesh import R_EARTH_KM

PARAMETERS = ("rho", "vpv", "vph", "vsv", "vsh", "eta")
#: how close (km) a point must be to a discontinuity to count as on it: SPECFEM stores mesh
#: coordinates in float32 of R_EARTH units, so points on a discontinuity are off by ~ulp(1)·R
DISCONTINUITY_TOL_KM = 8 * float(np.finfo(np.float32).eps) * R_EARTH_KM


@lru_cache(maxsize=1)
def stw105_table() -> np.ndarray:
    """(n, 7): radius (km), rho (g/cm³), vpv, vph, vsv, vsh (km/s), eta — from the package table
    (radius m, density kg/m³, velocities m/s)."""
    with resources.files("seisflows_eara.data").joinpath("STW105.txt").open() as f:
        t = np.loadtxt(f, comments="#")
    if t.ndim != 2 or t.shape[1] < 7 or np.any(np.diff(t[:, 0]) < 0):
        raise ValueError("seisflows_eara/data/STW105.txt: expected ≥ 7 columns, radius increasing")
    out = t[:, :7].copy()
    out[:, :6] /= 1000.0
    return out


def discontinuities() -> np.ndarray:
    """Radii (km) where the table repeats a knot."""
    r = stw105_table()[:, 0]
    return r[1:][np.diff(r) == 0]


def layer_of(radius_km: np.ndarray, side_radius: np.ndarray | None = None,
             above: np.ndarray | None = None) -> np.ndarray:
    """Index of the STW105 layer (0 = innermost) each point belongs to (see module doc)."""
    r = np.asarray(radius_km, float)
    disc = discontinuities()
    layer = np.searchsorted(disc, r, side="right")
    # the nearest discontinuity of every point
    idx = np.searchsorted(disc, r)
    lo, hi = np.clip(idx - 1, 0, disc.size - 1), np.clip(idx, 0, disc.size - 1)
    j = np.where(np.abs(disc[lo] - r) <= np.abs(disc[hi] - r), lo, hi)
    on = np.abs(disc[j] - r) <= DISCONTINUITY_TOL_KM
    if above is not None:
        up = np.broadcast_to(np.asarray(above, bool), r.shape)
    elif side_radius is not None:
        up = np.broadcast_to(np.asarray(side_radius, float), r.shape) >= disc[j]
    else:
        up = np.ones(r.shape, bool)
    return np.where(on, j + up.astype(int), layer)


def stw105_at(radius_km: np.ndarray, side_radius: np.ndarray | None = None,
              above: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """STW105 rho, vpv, vph, vsv, vsh, eta at `radius_km` (any shape); `side_radius` (the radius
    of each point's element centre) or `above` (bool) choose the side on a discontinuity."""
    t = stw105_table()
    r = np.asarray(radius_km, float)
    if np.any(r < -DISCONTINUITY_TOL_KM) or np.any(r > t[-1, 0] + DISCONTINUITY_TOL_KM):
        raise ValueError(f"radius outside STW105 (0…{t[-1, 0]} km): {r.min()}…{r.max()} km")
    layer = layer_of(r, side_radius, above)
    starts = np.concatenate([[0], np.nonzero(np.diff(t[:, 0]) == 0)[0] + 1])
    ends = np.append(starts[1:], t.shape[0])
    out = {name: np.empty(r.shape) for name in PARAMETERS}
    for li, (a, b) in enumerate(zip(starts, ends)):
        sel = layer == li
        if np.any(sel):
            for j, name in enumerate(PARAMETERS):
                out[name][sel] = np.interp(r[sel], t[a:b, 0], t[a:b, j + 1])
    return out
