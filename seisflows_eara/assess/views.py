"""Map views and cross-sections of derived model fields (SPEC §7): the glue between
assess.fields (what to show) and assess.sections (where), for `seisflows-eara plot model|psf`.

Relative fields (δlnVs, δlnVp) are taken after interpolation against the layer mean at the
target's depth: the area mean (fields.area_mean) of the interpolated absolute field on a
latitude/longitude grid of spacing `mean_grid_deg` at that depth, so a map and a section of one
model share one 1-D average.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from seisflows_eara.assess.fields import area_mean, base_field, derived_field, relative_to_mean
from seisflows_eara.assess.sections import (GllInterpolator, GreatCircle, cross_section,
                                            depth_slice, map_grid)


def _bases(names: Sequence[str], model: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {b: derived_field(b, model) for b in {base_field(n) for n in names}}


def layer_means(interp: GllInterpolator, fields: Mapping[str, np.ndarray],
                depths_km: Sequence[float], mean_grid_deg: float) -> dict[str, np.ndarray]:
    """{name: (ndepth,)} area mean of each field at each depth over the mesh (module doc)."""
    lat, lon = map_grid(interp.extent(), mean_grid_deg)
    la = np.repeat(lat, lon.size)
    out: dict[str, list[float]] = {k: [] for k in fields}
    for z in depths_km:
        for k, a in depth_slice(interp, fields, z, lat, lon).items():
            out[k].append(float(area_mean(a.ravel(), la)))
    return {k: np.asarray(v) for k, v in out.items()}


def _relative_names(names: Sequence[str]) -> dict[str, str]:
    return {n: base_field(n) for n in names if base_field(n) != n}


def map_views(names: Sequence[str], model: Mapping[str, np.ndarray], interp: GllInterpolator,
              depths_km: Sequence[float], lat: np.ndarray, lon: np.ndarray,
              mean_grid_deg: float) -> dict[str, list[np.ndarray]]:
    """{name: [(nlat, nlon) per depth]} for raw or derived `names` (fields.DERIVED)."""
    bases = _bases(names, model)
    rel = _relative_names(names)
    means = layer_means(interp, {b: bases[b] for b in set(rel.values())}, depths_km, mean_grid_deg)
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i, z in enumerate(depths_km):
        vals = depth_slice(interp, bases, z, lat, lon)
        for n in names:
            out[n].append(relative_to_mean(vals[rel[n]], means[rel[n]][i]) if n in rel else vals[n])
    return out


def section_view(names: Sequence[str], model: Mapping[str, np.ndarray], interp: GllInterpolator,
                 path: GreatCircle, depths_km: np.ndarray, mean_grid_deg: float
                 ) -> dict[str, np.ndarray]:
    """{name: (ndepth, npath)} along the great circle `path`."""
    bases = _bases(names, model)
    rel = _relative_names(names)
    means = layer_means(interp, {b: bases[b] for b in set(rel.values())}, depths_km, mean_grid_deg)
    vals = cross_section(interp, bases, path, depths_km)
    return {n: relative_to_mean(vals[rel[n]], means[rel[n]][:, None]) if n in rel else vals[n]
            for n in names}
