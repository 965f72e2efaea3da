"""NZCC misfit χ = 1 − ∫s·u / sqrt(∫s² ∫u²) and its exact adjoint source (SPEC §4, paper eq. 1).

The paper's printed adjoint (eq. 4-5) is wrong; SPEC §4 gives the Fréchet derivative implemented here:
    ∂χ/∂s = [ (∫s·u / ∫s²) · s − u ] / sqrt(∫s² ∫u²)
With a window taper w, the measured traces are w·s and w·u, so by the chain rule the adjoint source
with respect to the un-tapered synthetic is w · ∂χ/∂(w s). All functions work on the last axis and
broadcast over any leading axes (windows, stations), so a whole event is one call; or, with
`offsets`, on windows of different lengths stored end to end (seisflows_eara.windows.ragged).
"""
from __future__ import annotations

import numpy as np

from seisflows_eara.windows.ragged import per_sample, runs, segment_sums


def _integrals(s: np.ndarray, u: np.ndarray, dt: float, offsets: np.ndarray | None = None):
    """∫s·u, ∫s², ∫u² on the last axis, or per window of flat arrays with `offsets`."""
    if offsets is None:
        return (np.sum(s * u, axis=-1) * dt, np.sum(s * s, axis=-1) * dt,
                np.sum(u * u, axis=-1) * dt)
    return (segment_sums(s * u, offsets) * dt, segment_sums(s * s, offsets) * dt,
            segment_sums(u * u, offsets) * dt)


def nzcc(s: np.ndarray, u: np.ndarray, taper: np.ndarray | None = None, dt: float = 1.0,
         offsets: np.ndarray | None = None) -> np.ndarray:
    """Normalized zero-lag cross-correlation of (tapered) synthetic `s` and observed `u`, last axis
    (or per window of flat arrays with `offsets`).

    NaN where either windowed trace has zero energy (NZCC undefined).
    """
    if taper is not None:
        s, u = s * taper, u * taper
    su, ss, uu = _integrals(s, u, dt, offsets)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = su / np.sqrt(ss * uu)
    return np.where((ss > 0) & (uu > 0), out, np.nan)


def nzcc_misfit_and_adjoint(s: np.ndarray, u: np.ndarray, taper: np.ndarray | None = None,
                            dt: float = 1.0, offsets: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """χ = 1 − NZCC and ∂χ/∂s (SPEC §4), on the last axis; taper applied to misfit and adjoint alike.

    Returns (chi, adjoint) with chi of the leading shape and adjoint of the shape of `s`. Where the
    windowed energy of s or u is zero, chi is NaN and the adjoint is zero. The adjoint is on the
    forward time axis (SPECFEM reverses it itself) and is a density per unit time: the misfit change
    for a perturbation δs is Σ adjoint·δs·dt. With `offsets`, s, u and taper are flat arrays of
    windows stored end to end (window i is x[offsets[i]:offsets[i + 1]]): chi has one value per
    window and the adjoint is flat like s.
    """
    if offsets is not None:
        return _ragged(s, u, taper, dt, np.asarray(offsets))
    w = np.ones(s.shape[-1]) if taper is None else taper
    sw, uw = s * w, u * w
    su, ss, uu = _integrals(sw, uw, dt)
    chi, a, inv = _coefficients(su, ss, uu)
    adj = w * (a[..., None] * sw - uw) * inv[..., None]
    return chi, adj


def _coefficients(su: np.ndarray, ss: np.ndarray, uu: np.ndarray):
    """χ, ∫s·u/∫s² and 1/sqrt(∫s² ∫u²) (0 where NZCC is undefined, χ NaN there)."""
    ok = (ss > 0) & (uu > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sqrt(ss * uu)
        chi = np.where(ok, 1.0 - su / norm, np.nan)
        a = np.where(ok, su / ss, 0.0)
        inv = np.where(ok, 1.0 / norm, 0.0)
    return chi, a, inv


def _ragged(s: np.ndarray, u: np.ndarray, taper: np.ndarray | None, dt: float,
            offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nzcc_misfit_and_adjoint on flat windows, a run of consecutive windows at a time (the
    temporaries stay small whatever the number of windows)."""
    chi = np.full(len(offsets) - 1, np.nan)
    adj = np.zeros(s.shape, dtype=np.result_type(s, u, np.float64))
    for i0, i1 in runs(offsets):
        lo, hi = offsets[i0], offsets[i1]
        off = offsets[i0:i1 + 1] - lo
        w = np.ones(hi - lo) if taper is None else taper[lo:hi]
        sw, uw = s[lo:hi] * w, u[lo:hi] * w
        su, ss, uu = _integrals(sw, uw, dt, off)
        chi[i0:i1], a, inv = _coefficients(su, ss, uu)
        out = adj[lo:hi]
        np.multiply(per_sample(a, off), sw, out=out)
        out -= uw
        out *= w
        out *= per_sample(inv, off)
    return chi, adj
