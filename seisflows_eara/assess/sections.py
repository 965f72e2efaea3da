"""Map views and great-circle cross-sections of fields on the GLL points of a regional mesh
(SPEC §7, paper Figs 4-7, 9).

Fields live on the local GLL points of SPECFEM's model files (Mesh.xyz order, element by element).
They are evaluated at any (latitude, longitude, depth) as the spectral-element method represents
them: the target is located in its element (candidates from a scipy cKDTree of element centres;
Newton iterations on the element's own mapping x(ξ, η, γ) = Σ_a x_a ℓ_a, the degree-(ngll − 1)
Lagrange interpolation of its GLL points, as SPECFEM's locate routines do), then
f = Σ_a f_a ℓ_a(ξ, η, γ). Fields linear in position are reproduced to rounding (test), a point on a
discontinuity takes the upper side (as model.reference), and nothing overshoots between elements.
Targets outside the mesh get NaN: the lateral bounds of a one-chunk mesh are great circles, i.e.
straight lines in a gnomonic projection about the chunk's centre, so the convex hull of the
projected points is the chunk; radially the mesh spans its GLL radii.
Latitudes are geographic and converted to the mesh's geocentric frame as SPECFEM does
(kernels.damping.geographic_to_xyz); depths are below the sphere of radius R_EARTH_KM.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.spatial import ConvexHull, cKDTree, geometric_slerp

from seisflows_eara.kernels.damping import SPECFEM_FLATTENING, geographic_to_xyz
from seisflows_eara.model.mesh import R_EARTH_KM, gll_points_weights
from seisflows_eara.model.reference import DISCONTINUITY_TOL_KM

#: relative tolerance of the inside-the-mesh tests (float32 mesh coordinates)
INSIDE_TOL = 8 * float(np.finfo(np.float32).eps)
#: Newton iterations, step tolerance and clip (reference coordinates) of the point location
NEWTON_ITERATIONS = 12
NEWTON_TOL = 1e-10
NEWTON_CLIP = 2.0
#: a target is in an element when |ξ|, |η|, |γ| <= 1 + REF_TOL and the mapped point misses it by
#: less than REF_TOL × the element's size
REF_TOL = 1e-6
#: rounds of candidate elements (nearest centres) tried per target
CANDIDATES = (8, 27, 64)
#: targets per vectorized block (bounds memory: block × ngll³ × 3 floats per array)
BLOCK_TARGETS = 4096
#: the default section spans this fraction of the mesh's half-width on each side of its centre
#: (keeps the section's ends off the chunk edges, where the interpolation has one-sided support)
DEFAULT_SECTION_FRACTION = 0.9


def _lagrange(nodes: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lagrange polynomials of `nodes` and their derivatives at x (P,): two (P, n) arrays."""
    n = len(nodes)
    diff = x[:, None] - nodes[None, :]
    val = np.ones((len(x), n))
    der = np.zeros((len(x), n))
    for i in range(n):
        others = [m for m in range(n) if m != i]
        denom = np.prod([nodes[i] - nodes[m] for m in others])
        val[:, i] = np.prod(diff[:, others], axis=1) / denom
        der[:, i] = sum(np.prod(diff[:, [m for m in others if m != j]], axis=1)
                        for j in others) / denom
    return val, der


def geographic_latitude(geocentric_deg: np.ndarray, flattening: float = SPECFEM_FLATTENING
                        ) -> np.ndarray:
    """Inverse of kernels.damping.geocentric_latitude: tan φ = tan φc / (1 − f)²."""
    return np.degrees(np.arctan(np.tan(np.radians(geocentric_deg)) / (1.0 - flattening) ** 2))


def wrap_longitude(lon: np.ndarray, centre: float) -> np.ndarray:
    """Longitudes within ±180° of `centre` (maps that cross the antimeridian stay continuous)."""
    return centre + (np.asarray(lon, float) - centre + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class Extent:
    """Geographic bounding box of a mesh's surface (degrees) and its centre."""
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    lat_centre: float
    lon_centre: float
    max_depth_km: float


class GllInterpolator:
    """Spectral-element interpolation of GLL-point fields of one regional mesh (module doc).

    xyz: (nspec·ngll³, 3) km of the local GLL points (Mesh.xyz, element by element, i fastest);
    ngll: GLL points per element edge (Mesh.ngll)."""

    def __init__(self, xyz: np.ndarray, ngll: int):
        xyz = np.asarray(xyz, float)
        n3 = int(ngll) ** 3
        if xyz.ndim != 2 or xyz.shape[1] != 3 or not len(xyz) or len(xyz) % n3:
            raise ValueError(f"GLL points must be (nspec·{n3}, 3) km, got shape {xyz.shape}")
        self.ngll = int(ngll)
        self.nodes = gll_points_weights(self.ngll)[0]
        self.elements = xyz.reshape(-1, n3, 3)                    # [ispec, (k, j, i), xyz]
        self.centres = self.elements.mean(axis=1)
        self.tree = cKDTree(self.centres)
        r = np.linalg.norm(xyz, axis=1)
        self.r_min, self.r_max = float(r.min()), float(r.max())
        u = xyz / r[:, None]
        c = u.mean(axis=0)
        self.centre = c / np.linalg.norm(c)
        if np.min(u @ self.centre) <= INSIDE_TOL:
            raise ValueError("the mesh spans a hemisphere or more: map views and sections support "
                             "one-chunk regional meshes")
        a = np.eye(3)[np.argmin(np.abs(self.centre))]
        self.e1 = np.cross(self.centre, a)
        self.e1 /= np.linalg.norm(self.e1)
        self.e2 = np.cross(self.centre, self.e1)
        proj = self._gnomonic(u)
        self.hull = ConvexHull(proj)
        self._scale = float(np.abs(proj).max())
        self._top = xyz[r >= self.r_max * (1 - INSIDE_TOL)]

    def _gnomonic(self, u: np.ndarray) -> np.ndarray:
        cz = u @ self.centre
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack([u @ self.e1 / cz, u @ self.e2 / cz], axis=1)

    def inside(self, targets: np.ndarray) -> np.ndarray:
        """True for targets (n, 3) km within the mesh's lateral bounds and radial range."""
        t = np.atleast_2d(np.asarray(targets, float))
        r = np.linalg.norm(t, axis=1)
        u = t / np.where(r > 0, r, 1.0)[:, None]
        ok = (u @ self.centre > INSIDE_TOL) & (r >= self.r_min * (1 - INSIDE_TOL)) & \
            (r <= self.r_max * (1 + INSIDE_TOL))
        p = self._gnomonic(u[ok])
        lateral = np.max(p @ self.hull.equations[:, :2].T + self.hull.equations[:, 2], axis=1) \
            <= INSIDE_TOL * self._scale
        out = np.zeros(len(t), bool)
        out[np.nonzero(ok)[0][lateral]] = True
        return out

    # ---------------------------------------------------------------- locating targets
    def _basis(self, ref: np.ndarray, derivatives: bool = False):
        """Lagrange basis on the GLL nodes at reference points ref (P, 3) = (ξ, η, γ): (P, ngll³)
        in the [k, j, i] point order, and with `derivatives` its ξ, η, γ derivatives."""
        lv, ld = zip(*(_lagrange(self.nodes, ref[:, a]) for a in range(3)))
        n = np.einsum("pk,pj,pi->pkji", lv[2], lv[1], lv[0]).reshape(len(ref), -1)
        if not derivatives:
            return n
        d = [np.einsum("pk,pj,pi->pkji", lv[2], lv[1], ld[0]),
             np.einsum("pk,pj,pi->pkji", lv[2], ld[1], lv[0]),
             np.einsum("pk,pj,pi->pkji", ld[2], lv[1], lv[0])]
        return n, np.stack([x.reshape(len(ref), -1) for x in d], axis=2)      # (P, n3, 3)

    def _newton(self, targets: np.ndarray, elements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference coordinates of `targets` in `elements` (one each) and whether the target
        lies in that element."""
        x_e = self.elements[elements]                                           # (P, n3, 3)
        ref = np.zeros((len(targets), 3))
        scale = np.linalg.norm(x_e.max(axis=1) - x_e.min(axis=1), axis=1)
        active = np.arange(len(targets))
        for _ in range(NEWTON_ITERATIONS):
            n, dn = self._basis(ref[active], derivatives=True)
            xa = x_e[active]
            res = np.einsum("pn,pnc->pc", n, xa) - targets[active]
            jac = np.einsum("pnc,pna->pca", xa, dn)
            step = np.linalg.solve(jac, res[..., None])[..., 0]
            ref[active] = np.clip(ref[active] - step, -NEWTON_CLIP, NEWTON_CLIP)
            # converged, or pushed to the clip (the target is in another element): stop these
            going = (np.max(np.abs(step), axis=1) >= NEWTON_TOL) & \
                (np.max(np.abs(ref[active]), axis=1) < NEWTON_CLIP)
            active = active[going]
            if not active.size:
                break
        n = self._basis(ref)
        miss = np.linalg.norm(np.einsum("pn,pnc->pc", n, x_e) - targets, axis=1)
        found = (np.max(np.abs(ref), axis=1) <= 1.0 + REF_TOL) & (miss <= REF_TOL * scale)
        return ref, found

    def locate(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(element index or −1, reference coordinates) of every target (n, 3) km: candidates are
        the elements with the nearest centres, in widening rounds (CANDIDATES)."""
        t = np.atleast_2d(np.asarray(targets, float))
        elem = np.full(len(t), -1)
        ref = np.zeros((len(t), 3))
        todo = np.nonzero(self.inside(t))[0]
        tried = 0
        for k in CANDIDATES:
            if not todo.size:
                break
            k = min(k, len(self.centres))
            _, cand = self.tree.query(t[todo], k=k)
            cand = cand.reshape(len(todo), -1)
            for col in range(tried, k):
                if not todo.size:
                    break
                for a in range(0, todo.size, BLOCK_TARGETS):
                    rows = todo[a:a + BLOCK_TARGETS]
                    r, ok = self._newton(t[rows], cand[a:a + BLOCK_TARGETS, col])
                    elem[rows[ok]] = cand[a:a + BLOCK_TARGETS, col][ok]
                    ref[rows[ok]] = r[ok]
                keep = elem[todo] < 0
                todo, cand = todo[keep], cand[keep]
            tried = k
        return elem, ref

    def __call__(self, fields: Mapping[str, np.ndarray], targets: np.ndarray,
                 upper_side: bool = True) -> dict[str, np.ndarray]:
        """{name: values at `targets` (n, 3) km}, NaN outside the mesh: Σ_a f_a ℓ_a(ξ, η, γ)
        over the GLL points of the element holding each target. With `upper_side` targets are
        raised by DISCONTINUITY_TOL_KM (not above the mesh top), so a target on a discontinuity
        takes its upper side, as model.reference does."""
        t = np.atleast_2d(np.asarray(targets, float))
        n3 = self.elements.shape[1]
        for k, v in fields.items():
            if np.size(v) != self.elements.shape[0] * n3:
                raise ValueError(f"field {k}: {np.size(v)} values for "
                                 f"{self.elements.shape[0] * n3} GLL points")
        if upper_side:
            r = np.linalg.norm(t, axis=1)
            up = np.minimum(r + DISCONTINUITY_TOL_KM, np.maximum(r, self.r_max))
            t = t * (up / np.where(r > 0, r, 1.0))[:, None]
        elem, ref = self.locate(t)
        out = {k: np.full(len(t), np.nan) for k in fields}
        hit = np.nonzero(elem >= 0)[0]
        for a in range(0, hit.size, BLOCK_TARGETS):
            rows = hit[a:a + BLOCK_TARGETS]
            n = self._basis(ref[rows])
            for k, v in fields.items():
                vals = np.asarray(v, float).reshape(-1, n3)[elem[rows]]
                out[k][rows] = np.einsum("pn,pn->p", n, vals)
        return out

    def extent(self) -> Extent:
        """Geographic box of the mesh's top surface."""
        top = self._top
        lat_c = float(geographic_latitude(np.degrees(np.arcsin(self.centre[2]))))
        lon_c = float(np.degrees(np.arctan2(self.centre[1], self.centre[0])))
        lat = geographic_latitude(np.degrees(np.arctan2(top[:, 2], np.hypot(top[:, 0], top[:, 1]))))
        lon = wrap_longitude(np.degrees(np.arctan2(top[:, 1], top[:, 0])), lon_c)
        return Extent(float(lat.min()), float(lat.max()), float(lon.min()), float(lon.max()),
                      lat_c, lon_c, R_EARTH_KM - self.r_min)


def map_grid(extent: Extent, spacing_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes (1-D, degrees) of a regular grid covering the extent."""
    if not spacing_deg > 0:
        raise ValueError(f"grid spacing must be > 0 deg, got {spacing_deg}")
    lat = np.arange(extent.lat_min, extent.lat_max + spacing_deg / 2, spacing_deg)
    lon = np.arange(extent.lon_min, extent.lon_max + spacing_deg / 2, spacing_deg)
    return lat, lon


def depth_slice(interp: GllInterpolator, fields: Mapping[str, np.ndarray], depth_km: float,
                lat: np.ndarray, lon: np.ndarray) -> dict[str, np.ndarray]:
    """{name: (nlat, nlon)} at `depth_km` on the grid (NaN outside the mesh)."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    xyz = geographic_to_xyz(la.ravel(), lo.ravel(), np.full(la.size, float(depth_km)))
    return {k: v.reshape(la.shape) for k, v in interp(fields, xyz).items()}


@dataclass(frozen=True)
class GreatCircle:
    """Points of a great-circle path: geographic latitude, longitude and distance (degrees)."""
    lat: np.ndarray
    lon: np.ndarray
    distance_deg: np.ndarray
    unit: np.ndarray            # (n, 3) unit vectors in the mesh's frame


def great_circle(lat1: float, lon1: float, lat2: float, lon2: float, spacing_deg: float
                 ) -> GreatCircle:
    """Great circle from point 1 to point 2 sampled every ~`spacing_deg` (scipy geometric_slerp
    between the geocentric unit vectors, SPECFEM's placement of geographic coordinates)."""
    a, b = (geographic_to_xyz(la, lo, 0.0)[0] / R_EARTH_KM for la, lo in ((lat1, lon1), (lat2, lon2)))
    angle = float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))))
    if angle <= 0 or angle >= 180.0:
        raise ValueError(f"section end points ({lat1}, {lon1}) and ({lat2}, {lon2}) must be distinct "
                         "and not antipodal")
    n = max(int(np.ceil(angle / spacing_deg)) + 1, 2)
    u = geometric_slerp(a, b, np.linspace(0.0, 1.0, n))
    lat = geographic_latitude(np.degrees(np.arcsin(np.clip(u[:, 2], -1, 1))))
    lon = wrap_longitude(np.degrees(np.arctan2(u[:, 1], u[:, 0])), lon1)
    return GreatCircle(lat, lon, np.linspace(0.0, angle, n), u)


def cross_section(interp: GllInterpolator, fields: Mapping[str, np.ndarray], path: GreatCircle,
                  depths_km: np.ndarray) -> dict[str, np.ndarray]:
    """{name: (ndepth, npath)} along `path` at `depths_km` (NaN outside the mesh)."""
    depths_km = np.asarray(depths_km, float)
    r = R_EARTH_KM - depths_km
    xyz = (r[:, None, None] * path.unit[None, :, :]).reshape(-1, 3)
    return {k: v.reshape(depths_km.size, -1) for k, v in interp(fields, xyz).items()}


def default_section(extent: Extent, fraction: float = DEFAULT_SECTION_FRACTION
                    ) -> tuple[float, float, float, float]:
    """End points of a west-east section through the centre of the mesh spanning `fraction` of
    its surface width (a region-agnostic default for `plot model`)."""
    half = fraction * min(extent.lon_centre - extent.lon_min, extent.lon_max - extent.lon_centre)
    return (extent.lat_centre, extent.lon_centre - half, extent.lat_centre, extent.lon_centre + half)
