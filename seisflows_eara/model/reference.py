"""The STW105 reference model (Kustowski et al. 2008), EARA's reference for δln m (SPEC §6).

Values in the units of SPECFEM GLL files: velocities km/s, density g/cm³, η dimensionless.
Knots at a discontinuity appear twice in the table; a point exactly on a discontinuity takes the
value of the side its element lies on (pass the element-centre radius as `side_radius`).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

PARAMETERS = ("rho", "vpv", "vph", "vsv", "vsh", "eta")


@lru_cache(maxsize=1)
def stw105_table() -> np.ndarray:
    """(n, 7) radius (km), rho (g/cm³), vpv, vph, vsv, vsh (km/s), eta."""
    with resources.files("seisflows_eara.data").joinpath("STW105.txt").open() as f:
        t = np.loadtxt(f, comments="#")
    out = t[:, :7].copy()
    out[:, 0] /= 1000.0
    out[:, 1:6] /= 1000.0
    return out


def stw105_at(radius_km: np.ndarray, side_radius: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """STW105 interpolated linearly in radius between knots within each layer."""
    t = stw105_table()
    r = np.asarray(radius_km, float)
    side = r if side_radius is None else np.asarray(side_radius, float)
    knots = t[:, 0]
    # discontinuities: repeated radii; index of the layer each point belongs to, by its side
    disc = knots[1:][np.diff(knots) == 0]
    layer = np.searchsorted(disc, side, side="right")
    lo_r = np.concatenate([[knots[0]], disc])
    hi_r = np.concatenate([disc, [knots[-1]]])
    rc = np.clip(r, lo_r[layer], hi_r[layer])
    out = {}
    starts = np.concatenate([[0], np.nonzero(np.diff(knots) == 0)[0] + 1])
    ends = np.concatenate([starts[1:], [len(knots)]])
    for j, name in enumerate(PARAMETERS):
        v = np.empty_like(r)
        for li, (a, b) in enumerate(zip(starts, ends)):
            sel = layer == li
            if np.any(sel):
                v[sel] = np.interp(rc[sel], knots[a:b], t[a:b, j + 1])
        out[name] = v
    return out
