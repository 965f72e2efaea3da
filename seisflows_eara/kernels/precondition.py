"""Pseudo-Hessian preconditioner (SPEC §6 step 3; paper eq. C4).

P = 1 / max(H'/max H', δ), δ = hessian_threshold (SPECFEM's THRESHOLD_HESS = 1e-3), so P is
dimensionless with min P = 1 and max P = 1/δ. H' is the summed approximate Hessian made
non-negative by the rule `hessian_rule`:
  'abs'  — |H|, as SPECFEM's xsum_preconditioned_kernels (sum_preconditioned_kernels.f90 with
           USE_HESS_SUM: it takes abs() of each event's hess_kernel, sums, normalises by the
           maximum and inverts with the threshold — `nonnegative_hessian` per event in the sum
           reproduces it exactly); the approximate Hessian SPECFEM writes is not positive.
  'clip' — max(H, 0): points where H ≤ 0 get the largest P.
"""
from __future__ import annotations

import numpy as np

RULES = ("abs", "clip")


def nonnegative_hessian(hess: np.ndarray, rule: str = "abs") -> np.ndarray:
    """H' of one event's (or the summed) Hessian by `rule` ('abs' or 'clip')."""
    if rule == "abs":
        return np.abs(hess)
    if rule == "clip":
        return np.maximum(hess, 0.0)
    raise ValueError(f"hessian_rule {rule!r}: must be one of {RULES}")


def preconditioner(hess: np.ndarray, threshold: float, rule: str = "abs",
                   hmax: float | None = None) -> np.ndarray:
    """P = 1/max(H'/max H', threshold) on every point of `hess`; `hmax` is max H' over the whole
    mesh when `hess` is one slice of it (default: the maximum of `hess` itself)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"hessian_threshold {threshold}: must be in (0, 1]")
    h = nonnegative_hessian(np.asarray(hess, float), rule)
    if hmax is None:
        hmax = float(np.max(h)) if h.size else 0.0
    if not np.all(np.isfinite(h)) or hmax <= 0:
        raise ValueError("the summed pseudo-Hessian is zero or not finite: no kernel run "
                         "contributed (check APPROXIMATE_HESS_KL and the adjoint sources)")
    return 1.0 / np.maximum(h / hmax, threshold)


def precondition(gradient: dict[str, np.ndarray], p: np.ndarray) -> dict[str, np.ndarray]:
    """P g for every parameter (one P for all parameters, as eq. C4)."""
    return {k: p * np.asarray(v, float) for k, v in gradient.items()}
