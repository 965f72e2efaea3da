"""Non-dimensional steepest descent of the source (SPEC §5; paper Appendix B, corrected).

σ_M = √2 (Σ_k (∂χ/∂M_k)²)^(-1/2) over the six CMTSOLUTION components, σ_X = (Σ_i (∂χ/∂x_i)²)^(-1/2)
over (east, north, depth); M̂ = M/σ_M, X̂ = X/σ_X, ∂χ/∂M̂ = σ_M ∂χ/∂M, ∂χ/∂X̂ = σ_X ∂χ/∂X. The step is
taken in the non-dimensional space (the printed M − ε ∂χ/∂M̂ mixes units):
    M(α) = σ_M (M̂ − α ∂χ/∂M̂) = M − α σ_M² ∂χ/∂M,     X(α) = X − α σ_X² ∂χ/∂X,
and the centroid time moves by the line search's t' − t0. Per unit α the moment tensor moves by
2/|∂χ/∂M| (dyne·cm) and the centroid by 1/|∂χ/∂X| (m), whatever units the derivatives carry.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seisflows_eara.io.cmtsolution import CMTSource
from seisflows_eara.kernels.damping import SPECFEM_FLATTENING, geocentric_latitude
from seisflows_eara.model.mesh import R_EARTH_KM
from seisflows_eara.source.frechet import SourceGradient, SrcFrechetError

#: metres per kilometre (depths are km in a CMTSOLUTION, location derivatives per metre)
M_PER_KM = 1000.0


@dataclass(frozen=True)
class SourceStep:
    """The descent direction per unit α: moment change (6,) in dyne·cm, centroid change (3,) in m
    (east, north, depth), with the scales σ_M (dyne·cm) and σ_X (m) it came from."""
    sigma_m: float
    sigma_x: float
    moment: np.ndarray
    location: np.ndarray

    @property
    def nondimensional_gradient(self) -> np.ndarray:
        """(∂χ/∂M̂ (6), ∂χ/∂X̂ (3)) = (σ_M ∂χ/∂M, σ_X ∂χ/∂X); |∂χ/∂M̂| = √2, |∂χ/∂X̂| = 1."""
        return np.concatenate([-self.moment / self.sigma_m, -self.location / self.sigma_x])


def sigmas(gradient: SourceGradient) -> tuple[float, float]:
    """(σ_M, σ_X) of Appendix B; raises SrcFrechetError when a gradient block is zero."""
    gm = float(np.linalg.norm(gradient.moment))
    gx = float(np.linalg.norm(gradient.location))
    if not (gm > 0 and gx > 0 and np.isfinite(gm) and np.isfinite(gx)):
        where = f" ({gradient.origin})" if gradient.origin else ""
        raise SrcFrechetError(f"source gradient{where} has |∂χ/∂M| = {gm:g}, |∂χ/∂X| = {gx:g}: "
                              "σ_M, σ_X undefined")
    return float(np.sqrt(2.0) / gm), 1.0 / gx


def descent_step(gradient: SourceGradient) -> SourceStep:
    """Steepest descent per unit α in the non-dimensional space: (−σ_M² ∂χ/∂M, −σ_X² ∂χ/∂X)."""
    sm, sx = sigmas(gradient)
    return SourceStep(sm, sx, -sm ** 2 * np.asarray(gradient.moment, float),
                      -sx ** 2 * np.asarray(gradient.location, float))


def move_centroid(latitude: float, longitude: float, depth_km: float, east_m: float, north_m: float,
                  down_m: float, flattening: float = SPECFEM_FLATTENING) -> tuple[float, float, float]:
    """Geographic latitude, longitude (degrees) and depth (km) after moving a point by (east, north,
    down) metres in the local frame SPECFEM uses at its geocentric position (radius R − depth);
    first order in the displacement, the order of the derivatives it follows."""
    r = (R_EARTH_KM - depth_km) * M_PER_KM
    latc = np.radians(float(geocentric_latitude(latitude, flattening)))
    latc_new = latc + north_m / r
    lon_new = longitude + np.degrees(east_m / (r * np.cos(latc)))
    lat_new = np.degrees(np.arctan(np.tan(latc_new) / (1.0 - flattening) ** 2))
    return float(lat_new), float(lon_new), float(depth_km + down_m / M_PER_KM)


def apply_step(source: CMTSource, step: SourceStep, alpha: float,
               origin_time_change: float = 0.0) -> CMTSource:
    """The source at step α along `step`, centroid time moved by t' − t0 = `origin_time_change`
    (through the CMTSOLUTION time shift: the PDE header stays). Half duration unchanged."""
    de, dn, dz = alpha * step.location
    lat, lon, depth = move_centroid(source.latitude, source.longitude, source.depth, de, dn, dz)
    return source.with_values(moment=source.moment_tensor + alpha * step.moment, latitude=lat,
                              longitude=lon, depth=depth,
                              time_shift=source.time_shift + origin_time_change)


def trial_source(source: CMTSource, gradient: SourceGradient, trial_step: float
                 ) -> tuple[CMTSource, SourceStep]:
    """The perturbed source of the line search, {M − ε σ_M² ∂χ/∂M, X − ε σ_X² ∂χ/∂X, t0}, as SPECFEM
    will read it back (rounded to the CMTSOLUTION's decimals), and the step it follows."""
    step = descent_step(gradient)
    return apply_step(source, step, trial_step).rounded(), step


def centroid_offset(start: CMTSource, end: CMTSource,
                    flattening: float = SPECFEM_FLATTENING) -> np.ndarray:
    """(east, north, down) metres from `start`'s centroid to `end`'s in `start`'s local frame: the
    inverse of move_centroid to first order."""
    r = (R_EARTH_KM - start.depth) * M_PER_KM
    latc0 = np.radians(float(geocentric_latitude(start.latitude, flattening)))
    latc1 = np.radians(float(geocentric_latitude(end.latitude, flattening)))
    dlon = (end.longitude - start.longitude + 180.0) % 360.0 - 180.0
    return np.array([np.radians(dlon) * r * np.cos(latc0), (latc1 - latc0) * r,
                     (end.depth - start.depth) * M_PER_KM])


def extrapolate_source(source: CMTSource, trial: CMTSource, ratio: float,
                       origin_time_change: float = 0.0) -> CMTSource:
    """The source eq. (B3) stands for at α = ratio·ε: source + (α/ε)(trial − source) for M and X
    (the trial as SPECFEM read it, so the extrapolated synthetics and the source agree even where
    the CMTSOLUTION's decimals rounded the trial), centroid time moved by t' − t0."""
    de, dn, dz = ratio * centroid_offset(source, trial)
    lat, lon, depth = move_centroid(source.latitude, source.longitude, source.depth, de, dn, dz)
    moment = source.moment_tensor + ratio * (trial.moment_tensor - source.moment_tensor)
    return source.with_values(moment=moment, latitude=lat, longitude=lon, depth=depth,
                              time_shift=source.time_shift + origin_time_change)
