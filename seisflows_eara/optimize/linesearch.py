"""The one-forward line search (SPEC §6, paper eq. C6).

One trial forward simulation per event at m + ε d gives s_ε; for any step α the synthetics are
extrapolated linearly, s_α = s_0 + (α/ε)(s_ε − s_0), and the total misfit is re-measured on the
same windows with the same weights. α is chosen on a grid over the allowed range, refined by a
bounded scalar minimization around the best grid point (scipy). A step is accepted only if the
misfit decreases; otherwise the result says so and the caller falls back (smaller trial step, then
a steepest-descent restart) — an increase is never accepted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import minimize_scalar


@dataclass
class LineSearchResult:
    alpha: float
    misfit: float
    misfit0: float
    accepted: bool
    alphas: np.ndarray
    misfits: np.ndarray

    @property
    def reduction(self) -> float:
        return 1.0 - self.misfit / self.misfit0 if self.misfit0 else 0.0


def extrapolated_line_search(misfit: Callable[[float], float], step_range: tuple[float, float],
                             samples: int, misfit0: float | None = None) -> LineSearchResult:
    """Minimize `misfit(alpha)` (misfit of the extrapolated synthetics) over step_range."""
    lo, hi = float(step_range[0]), float(step_range[1])
    f0 = misfit(0.0) if misfit0 is None else float(misfit0)
    alphas = np.linspace(lo, hi, int(samples))
    vals = np.array([f0 if a == 0.0 else misfit(float(a)) for a in alphas])
    k = int(np.nanargmin(vals))
    best_a, best_f = float(alphas[k]), float(vals[k])
    left, right = alphas[max(k - 1, 0)], alphas[min(k + 1, len(alphas) - 1)]
    if right > left:
        r = minimize_scalar(misfit, bounds=(float(left), float(right)), method="bounded",
                            options=dict(xatol=1e-4 * (hi - lo)))
        if r.success and r.fun < best_f:
            best_a, best_f = float(r.x), float(r.fun)
    accepted = best_a > 0 and best_f < f0
    return LineSearchResult(best_a if accepted else 0.0, best_f if accepted else f0, f0, accepted,
                            alphas, vals)
