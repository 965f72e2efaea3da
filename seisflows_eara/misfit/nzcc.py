"""NZCC misfit χ = 1 − ∫s·u / sqrt(∫s² ∫u²) and its exact adjoint source (SPEC §4, paper eq. 1).

The paper's printed adjoint (eq. 4-5) is wrong; SPEC §4 gives the Fréchet derivative implemented here:
    ∂χ/∂s = [ (∫s·u / ∫s²) · s − u ] / sqrt(∫s² ∫u²)
With a window taper w, the measured traces are w·s and w·u, so by the chain rule the adjoint source
with respect to the un-tapered synthetic is w · ∂χ/∂(w s). All functions work on the last axis and
broadcast over any leading axes (windows, stations), so a whole event is one call.
"""
from __future__ import annotations

import numpy as np


def _integrals(s: np.ndarray, u: np.ndarray, dt: float):
    su = np.sum(s * u, axis=-1) * dt
    ss = np.sum(s * s, axis=-1) * dt
    uu = np.sum(u * u, axis=-1) * dt
    return su, ss, uu


def nzcc(s: np.ndarray, u: np.ndarray, taper: np.ndarray | None = None, dt: float = 1.0) -> np.ndarray:
    """Normalized zero-lag cross-correlation of (tapered) synthetic `s` and observed `u`, last axis.

    NaN where either windowed trace has zero energy (NZCC undefined).
    """
    if taper is not None:
        s, u = s * taper, u * taper
    su, ss, uu = _integrals(s, u, dt)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = su / np.sqrt(ss * uu)
    return np.where((ss > 0) & (uu > 0), out, np.nan)


def nzcc_misfit_and_adjoint(s: np.ndarray, u: np.ndarray, taper: np.ndarray | None = None,
                            dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """χ = 1 − NZCC and ∂χ/∂s (SPEC §4), on the last axis; taper applied to misfit and adjoint alike.

    Returns (chi, adjoint) with chi of the leading shape and adjoint of the shape of `s`. Where the
    windowed energy of s or u is zero, chi is NaN and the adjoint is zero. The adjoint is on the
    forward time axis (SPECFEM reverses it itself) and is a density per unit time: the misfit change
    for a perturbation δs is Σ adjoint·δs·dt.
    """
    w = np.ones(s.shape[-1]) if taper is None else taper
    sw, uw = s * w, u * w
    su, ss, uu = _integrals(sw, uw, dt)
    ok = (ss > 0) & (uu > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sqrt(ss * uu)
        chi = np.where(ok, 1.0 - su / norm, np.nan)
        a = np.where(ok, su / ss, 0.0)[..., None]
        inv = np.where(ok, 1.0 / norm, 0.0)[..., None]
    adj = w * (a * sw - uw) * inv
    return chi, adj
