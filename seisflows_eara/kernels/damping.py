"""Kernel damping around the source and the receivers (SPEC §6 step 1; paper §2.2).

Each event kernel is multiplied by  Π_c (1 − exp(−(d_c/R_c)²))  over the source (R = the
source_damping_radius_km parameter, EARA 50 km) and every receiver (receiver_damping_radius_km,
10 km); d_c is the straight-line distance from the GLL point: 0 at a source/receiver, 1 − e⁻⁹ ≈
0.9999 at three radii. Positions follow SPECFEM3D_GLOBE's own placement (locate_sources.f90,
locate_receivers.f90, rthetaphi_xyz.f90): geographic latitude -> geocentric with (1 − f)²,
f = 1/299.8 (always, unless ASSUME_PERFECT_SPHERE), on a sphere of R_EARTH = 6371 km (the unit of
the mesh coordinates, r = 0.546…1 in the fixture), minus the depth / burial.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from seisflows_eara.model.mesh import R_EARTH_KM

#: SPECFEM3D_GLOBE's FLATTENING_F (constants.h.in), used for geographic -> geocentric latitude
SPECFEM_FLATTENING = 1.0 / 299.8
#: distance in radii beyond which 1 − exp(−(d/R)²) equals 1 in float32 (exp(−x²) < eps32)
DAMPING_REACH = float(np.sqrt(-np.log(np.finfo(np.float32).eps)))


def geocentric_latitude(lat_deg: np.ndarray, flattening: float = SPECFEM_FLATTENING) -> np.ndarray:
    """Geocentric latitude (degrees) of geographic `lat_deg`: tan φc = (1 − f)² tan φ."""
    return np.degrees(np.arctan((1.0 - flattening) ** 2 * np.tan(np.radians(lat_deg))))


def geographic_to_xyz(lat: np.ndarray, lon: np.ndarray, depth_km: np.ndarray,
                      geocentric: bool = True) -> np.ndarray:
    """(n, 3) Cartesian km (the mesh's frame) of points at geographic latitude/longitude (degrees)
    and depth below the sphere (km; burial for stations, CMT depth for sources). `geocentric`
    converts the latitude as SPECFEM does; False treats it as geocentric already."""
    lat = np.atleast_1d(np.asarray(lat, float))
    lat = geocentric_latitude(lat) if geocentric else lat
    lat, lon = np.radians(lat), np.radians(np.atleast_1d(np.asarray(lon, float)))
    r = R_EARTH_KM - np.atleast_1d(np.asarray(depth_km, float))
    return np.stack(np.broadcast_arrays(r * np.cos(lat) * np.cos(lon), r * np.cos(lat) * np.sin(lon),
                                        r * np.sin(lat)), axis=1)


def _damp(tree: cKDTree, centres: np.ndarray, radius: float, out: np.ndarray) -> None:
    """out[p] *= Π_c (1 − exp(−(d_pc/radius)²)) over the centres within DAMPING_REACH radii."""
    centres = np.atleast_2d(np.asarray(centres, float))
    if radius <= 0 or centres.shape[0] == 0:
        return
    if centres.shape[1] != 3 or not np.all(np.isfinite(centres)):
        raise ValueError(f"damping centres must be finite (n, 3) km, got shape {centres.shape}")
    pairs = cKDTree(centres).sparse_distance_matrix(tree, DAMPING_REACH * radius,
                                                    output_type="ndarray")   # keeps d = 0
    np.multiply.at(out, pairs["j"], 1.0 - np.exp(-(pairs["v"] / radius) ** 2))


def damping_mask(points: np.ndarray, source: np.ndarray, receivers: np.ndarray,
                 source_radius_km: float, receiver_radius_km: float,
                 tree: cKDTree | None = None) -> np.ndarray:
    """Multiplicative damping of one event's kernels at `points` (n, 3) km for the source (3,)
    and receivers (m, 3) in km (`geographic_to_xyz`). Pass a cKDTree of `points` to reuse it."""
    points = np.asarray(points, float)
    tree = tree if tree is not None else cKDTree(points)
    out = np.ones(points.shape[0])
    _damp(tree, source, source_radius_km, out)
    _damp(tree, receivers, receiver_radius_km, out)
    return out


def damp(kernels: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """Every kernel times the mask (SPEC §6 step 1)."""
    return {name: np.asarray(k, float) * mask for name, k in kernels.items()}
