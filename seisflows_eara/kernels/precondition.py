"""Pseudo-Hessian preconditioner (SPEC §6 step 3; paper eq. C4).

P = 1 / max(H', δ·max H'), with H' the summed approximate Hessian made non-negative: |H| (rule
'abs', as SPECFEM's xsum_preconditioned_kernels — its Hessian is not positive everywhere) or
max(H, 0) (rule 'clip'); δ = hessian_threshold (SPECFEM THRESHOLD_HESS = 1e-3). H is normalized by
its maximum first, so P is dimensionless with min P = 1."""
from __future__ import annotations

import numpy as np


def preconditioner(hess: np.ndarray, threshold: float, rule: str = "abs") -> np.ndarray:
    if rule == "abs":
        h = np.abs(hess)
    elif rule == "clip":
        h = np.maximum(hess, 0.0)
    else:
        raise ValueError(f"hessian_rule {rule!r}: must be 'abs' or 'clip'")
    hmax = float(np.max(h)) if h.size else 0.0
    if not np.isfinite(hmax) or hmax <= 0:
        raise ValueError("the summed pseudo-Hessian is zero or not finite: no kernel run "
                         "contributed (check APPROXIMATE_HESS_KL and the adjoint sources)")
    return 1.0 / np.maximum(h / hmax, threshold)


def precondition(gradient: dict[str, np.ndarray], p: np.ndarray) -> dict[str, np.ndarray]:
    return {k: p * v for k, v in gradient.items()}
