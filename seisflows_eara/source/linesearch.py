"""Bayesian-optimization line search over (α, t') (SPEC §5; paper eq. B3).

The misfit χ(α, Δ = t' − t0) of the extrapolated synthetics is cheap (fastmisfit.ExtrapolatedMisfit);
its minimum is found with bayesian-optimization (`bayes_opt` 3.x, the maintained BO library): a
Gaussian process (Matérn 5/2, normalized targets) with the library's default acquisition, over the
unit square mapped onto the bounds (α and Δ have unrelated scales, the kernel is isotropic);
the acquisition's maximum is sought on 10 000 random samples refined by `refinements` L-BFGS-B runs
(bayes_opt's n_smart). The
current source (α = 0, Δ = 0) is registered first, then `initial_points` random points and
`iterations` BO steps (EARA: 9 + 20) are evaluated. The best evaluated point is returned; it is
accepted only when its misfit is below the current one (never an increase).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


class SourceLineSearchError(RuntimeError):
    """The line search of one event failed; the message names the event."""


@dataclass
class LineSearchResult:
    """Best step α, origin-time change Δ = t' − t0 (s), their misfit, the misfit of the current
    source, every evaluation (α, Δ, χ) in order (the first is the current source), and whether the
    step is accepted (misfit < misfit0)."""
    alpha: float
    origin_time_change: float
    misfit: float
    misfit0: float
    evaluations: np.ndarray = field(repr=False)
    accepted: bool

    def as_dict(self) -> dict:
        return dict(alpha=self.alpha, origin_time_change=self.origin_time_change,
                    misfit=self.misfit, misfit0=self.misfit0, accepted=self.accepted,
                    evaluations=self.evaluations.tolist())


def bayesian_line_search(misfit: Callable[[float, float], float], step_bounds: tuple[float, float],
                         shift_bounds: tuple[float, float], initial_points: int, iterations: int,
                         seed: int, event: str = "", refinements: int = 2) -> LineSearchResult:
    """Minimize `misfit(α, Δ)` over α ∈ step_bounds, Δ ∈ shift_bounds (s) by Bayesian optimization.

    Raises SourceLineSearchError naming `event` when the current misfit or an evaluation is not
    finite or the optimizer fails."""
    from bayes_opt import BayesianOptimization
    from bayes_opt.acquisition import UpperConfidenceBound

    class _Acquisition(UpperConfidenceBound):   # the library's default acquisition, n_smart set
        def suggest(self, gp, target_space, n_random=10_000, n_smart=10, fit_gp=True,
                    random_state=None):
            return super().suggest(gp, target_space, n_random, int(refinements), fit_gp,
                                   random_state)

    name = f"event {event}" if event else "source line search"
    a_lo, a_hi = (float(x) for x in step_bounds)
    t_lo, t_hi = (float(x) for x in shift_bounds)
    if not (0.0 <= a_lo < a_hi):
        raise ValueError(f"{name}: source_step_bounds {list(step_bounds)} must satisfy 0 <= low < high")
    if not (t_lo <= 0.0 <= t_hi and t_lo < t_hi):
        raise ValueError(f"{name}: source_time_shift_bounds {list(shift_bounds)} must contain 0 "
                         "(the current origin time)")
    chi0 = float(misfit(0.0, 0.0))
    if not np.isfinite(chi0):
        raise SourceLineSearchError(f"{name}: misfit of the current source is {chi0}")
    evaluations: list[tuple[float, float, float]] = [(0.0, 0.0, chi0)]
    if chi0 <= 0.0:     # nothing to improve (no measured window or a perfect fit)
        return LineSearchResult(0.0, 0.0, chi0, chi0, np.array(evaluations), False)

    def to_alpha(x: float) -> float:
        return a_lo + x * (a_hi - a_lo)

    def to_shift(y: float) -> float:
        return t_lo + y * (t_hi - t_lo)

    def target(x: float, y: float) -> float:
        a, t = to_alpha(x), to_shift(y)
        chi = float(misfit(a, t))
        if not np.isfinite(chi):
            raise SourceLineSearchError(f"{name}: misfit at alpha={a:.6g}, t'-t0={t:.6g} s is {chi}")
        evaluations.append((a, t, chi))
        return -chi / chi0

    try:
        opt = BayesianOptimization(f=target, pbounds={"x": (0.0, 1.0), "y": (0.0, 1.0)},
                                   acquisition_function=_Acquisition(kappa=2.576),
                                   random_state=int(seed), verbose=0, allow_duplicate_points=True)
        if a_lo == 0.0:     # the current source is a point of the search space
            opt.register(params={"x": 0.0, "y": -t_lo / (t_hi - t_lo)}, target=-1.0)
        opt.maximize(init_points=int(initial_points), n_iter=int(iterations))
    except SourceLineSearchError:
        raise
    except Exception as e:   # the optimizer's own failures (GP fit, acquisition): name the event
        raise SourceLineSearchError(f"{name}: Bayesian optimization failed: "
                                    f"{type(e).__name__}: {e}") from e
    ev = np.array(evaluations)
    best = int(np.argmin(ev[:, 2]))
    a, t, chi = ev[best]
    return LineSearchResult(float(a), float(t), float(chi), chi0, ev, bool(chi < chi0))
