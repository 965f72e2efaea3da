"""Kernel damping around the source and the receivers (SPEC §6 step 1; paper §2.2).

Each event kernel is multiplied by  Π (1 − exp(−(d/R)²))  over the source (R = source radius,
EARA 50 km) and every receiver (R = receiver radius, 10 km), d = straight-line distance from the
GLL point: ~0 at the source and receivers, 1 a few radii away. Spherical Earth of radius 6371 km,
as SPECFEM's non-dimensional mesh coordinates."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

R_EARTH_KM = 6371.0


def geographic_to_xyz(lat: np.ndarray, lon: np.ndarray, depth_km: np.ndarray) -> np.ndarray:
    """(n, 3) Cartesian km of geographic (geocentric) points."""
    lat, lon = np.radians(np.atleast_1d(lat)), np.radians(np.atleast_1d(lon))
    r = R_EARTH_KM - np.atleast_1d(np.asarray(depth_km, float))
    return np.stack([r * np.cos(lat) * np.cos(lon), r * np.cos(lat) * np.sin(lon), r * np.sin(lat)],
                    axis=1)


def _damp(points: np.ndarray, centres: np.ndarray, radius: float, tree: cKDTree | None,
          out: np.ndarray) -> None:
    """out *= Π_c (1 − exp(−(d/radius)²)) for the points within 4 radii of any centre."""
    if radius <= 0 or len(centres) == 0:
        return
    tree = tree or cKDTree(points)
    for c in centres:
        idx = tree.query_ball_point(c, 4.0 * radius)
        if idx:
            d2 = np.sum((points[idx] - c) ** 2, axis=1)
            out[idx] *= 1.0 - np.exp(-d2 / radius ** 2)


def damping_mask(points: np.ndarray, source: np.ndarray, receivers: np.ndarray,
                 source_radius_km: float, receiver_radius_km: float,
                 tree: cKDTree | None = None) -> np.ndarray:
    """The multiplicative damping of one event's kernel at `points` (n, 3) km. Beyond 4 radii the
    factor is 1 to within exp(−16) ≈ 1e-7, so only nearby points are touched (cKDTree)."""
    tree = tree or cKDTree(points)
    out = np.ones(points.shape[0])
    _damp(points, np.atleast_2d(source), source_radius_km, tree, out)
    _damp(points, np.atleast_2d(receivers), receiver_radius_km, tree, out)
    return out
