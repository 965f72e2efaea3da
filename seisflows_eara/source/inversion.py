"""One source-inversion iteration per event, and a driver for in-process solvers (SPEC §5).

An iteration (EARA: 3 per stage, steepest descent):
  1. forward with the current source, measured (frozen windows and weights, W_c per event, eq. 9);
  2. adjoint run -> src_frechet -> SourceGradient (frechet.read_src_frechet, checked);
  3. trial CMTSOLUTION at ε along the non-dimensional descent (gradient.trial_source);
  4. one forward with the trial source;
  5. Bayesian optimization of (α, t') on the eq. (B3) extrapolations (fastmisfit, linesearch);
  6. the new CMTSOLUTION — or the previous source when no step lowers the misfit or the line
     search fails (status "kept" / "failed", the reason names the event; other events go on).
The workflow plugin runs 2 and 4 with SPECFEM; `invert_source` runs all of it with any solver given
as Python callables (the instaseis provider in the tests).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from obspy import Stream

from seisflows_eara.io.cmtsolution import (CMTSource, SourceHistory, read_cmtsolution,
                                           write_cmtsolution)
from seisflows_eara.measure.event import EventInfo, EventMeasurement, PreparedEvent
from seisflows_eara.source.fastmisfit import ExtrapolatedMisfit
from seisflows_eara.source.frechet import SourceGradient, check_src_frechet, read_src_frechet
from seisflows_eara.source.gradient import (M_PER_KM, SourceStep, centroid_offset, extrapolate_source,
                                            trial_source)
from seisflows_eara.source.linesearch import LineSearchResult, bayesian_line_search

logger = logging.getLogger(__name__)


def event_info(source: CMTSource) -> EventInfo:
    """The measurement chain's event (centroid time = SPECFEM's time zero, centroid location)."""
    return EventInfo(source.event_name, source.centroid_time, source.latitude, source.longitude,
                     source.depth)


def prepare_trial(source: CMTSource, gradient: SourceGradient, values: dict[str, Any],
                  event: str = "") -> tuple[CMTSource, SourceStep]:
    """Check the gradient against its source, then the trial source at ε = source_trial_step."""
    check_src_frechet(gradient, source, values["source_frechet_tolerance"], event or
                      source.event_name)
    return trial_source(source, gradient, values["source_trial_step"])


def trial_from_files(cmt_path: str | os.PathLike, frechet_path: str | os.PathLike,
                     output_path: str | os.PathLike, values: dict[str, Any], event: str = ""
                     ) -> dict[str, Any]:
    """Read a CMTSOLUTION and its src_frechet, write the trial CMTSOLUTION (atomically); returns
    σ_M, σ_X and the non-dimensional gradient for the record."""
    source = read_cmtsolution(cmt_path)
    gradient = read_src_frechet(frechet_path, source, values["source_frechet_frame"])
    trial, step = prepare_trial(source, gradient, values, event)
    write_cmtsolution(output_path, trial)
    return dict(sigma_m=step.sigma_m, sigma_x=step.sigma_x,
                nondimensional_gradient=step.nondimensional_gradient.tolist(),
                gradient=gradient.as_array().tolist())


@dataclass
class SourceUpdate:
    """Outcome of one event's line search: the source to use next (the previous one unless
    status == "updated"), status "updated" / "kept" / "failed", a reason naming the event, and
    the line search (None when it failed)."""
    event: str
    source: CMTSource
    status: str
    reason: str
    line_search: LineSearchResult | None

    @property
    def accepted(self) -> bool:
        return self.status == "updated"

    def as_dict(self) -> dict[str, Any]:
        out = dict(event=self.event, status=self.status, reason=self.reason)
        if self.line_search is not None:
            out.update(self.line_search.as_dict())
        return out


def line_search_update(event: str, prepared: PreparedEvent, s0: Stream, s_eps: Stream,
                       source: CMTSource, trial: CMTSource, values: dict[str, Any]) -> SourceUpdate:
    """Steps 5-6: BO over (α, t') on the extrapolated synthetics of `s0` (current source) and
    `s_eps` (trial source); the new source is source + (α/ε)(trial − source), centroid time
    + (t' − t0), as SPECFEM will read it. Failures keep `source` (status "failed")."""
    eps = values["source_trial_step"]
    try:
        bounds = step_bounds_above_surface(source, trial, eps, tuple(values["source_step_bounds"]))
        misfit = ExtrapolatedMisfit(prepared, s0, s_eps, eps, tuple(values["source_time_shift_bounds"]))
        ls = bayesian_line_search(misfit, bounds, tuple(values["source_time_shift_bounds"]),
                                  values["source_bo_initial_points"], values["source_bo_iterations"],
                                  values["source_bo_seed"], event,
                                  values["source_bo_refinements"])
        new = extrapolate_source(source, trial, ls.alpha / eps, ls.origin_time_change).rounded() \
            if ls.accepted else source
    except Exception as e:   # one event's failure must not stop the others
        reason = str(e) if event in str(e) else f"event {event}: {type(e).__name__}: {e}"
        logger.warning("source line search failed, previous source kept: %s", reason)
        return SourceUpdate(event, source, "failed", reason, None)
    if not ls.accepted:
        return SourceUpdate(event, source, "kept",
                            f"event {event}: no (alpha, t') lowers the misfit {ls.misfit0:.6g} "
                            f"({len(ls.evaluations)} evaluations): previous source kept", ls)
    return SourceUpdate(event, new, "updated", "", ls)


def update_from_files(event: str, prepared: PreparedEvent, s0: Stream, s_eps: Stream,
                      cmt_path: str | os.PathLike, trial_path: str | os.PathLike,
                      output_path: str | os.PathLike, values: dict[str, Any],
                      history: SourceHistory | None = None, tag: str | None = None
                      ) -> dict[str, Any]:
    """line_search_update with the sources read from their CMTSOLUTIONs; writes the source to use
    next to `output_path` (atomically; the previous one when the step is kept or the search
    failed) and, with `history`, records it under `tag`. Returns SourceUpdate.as_dict()."""
    source = read_cmtsolution(cmt_path)
    trial = read_cmtsolution(trial_path)
    up = line_search_update(event, prepared, s0, s_eps, source, trial, values)
    write_cmtsolution(output_path, up.source)
    if history is not None and tag is not None:
        ls = up.line_search
        nan = float("nan")
        history.record(tag, up.source, misfit=ls.misfit if ls else nan, alpha=ls.alpha if ls else nan,
                       origin_time_change=ls.origin_time_change if ls else nan, status=up.status,
                       reason=up.reason)
    return up.as_dict()


def step_bounds_above_surface(source: CMTSource, trial: CMTSource, trial_step: float,
                              bounds: tuple[float, float]) -> tuple[float, float]:
    """`bounds` on α, the upper one lowered so that the extrapolated centroid stays at depth >= 0
    (a step that lifts the source moves it by (α/ε)·(trial − source) upwards)."""
    lo, hi = float(bounds[0]), float(bounds[1])
    dz = centroid_offset(source, trial)[2]
    if dz < 0.0:
        hi = min(hi, trial_step * source.depth * M_PER_KM / -dz)
    if hi <= lo:
        raise ValueError(f"event {source.event_name}: the descent lifts the centroid "
                         f"(depth {source.depth} km) above the surface for every step in {list(bounds)}")
    return lo, hi


@dataclass
class IterationRecord:
    """One iteration of `invert_source`: the source it started from, its re-measured misfit, the
    gradient and descent step, and the line-search outcome."""
    iteration: int
    source: CMTSource
    misfit: float
    gradient: SourceGradient
    step: SourceStep
    update: SourceUpdate


def invert_source(source: CMTSource, forward: Callable[[CMTSource], Stream],
                  measure: Callable[[CMTSource, Stream], EventMeasurement],
                  frechet: Callable[[CMTSource, EventMeasurement], SourceGradient],
                  values: dict[str, Any], iterations: int, history: SourceHistory | None = None,
                  tag: str = "it{:02d}") -> tuple[list[IterationRecord], CMTSource, float]:
    """`iterations` steepest-descent iterations of one event with an in-process solver.

    forward(source) -> synthetics (N, E, Z); measure(source, synthetics) -> EventMeasurement
    (its `prepared` and adjoint sources); frechet(source, measurement) -> SourceGradient.
    Stops early when a line search keeps the source. Returns the records, the final source and
    its re-measured misfit. With `history`, every source is written as CMTSOLUTION_<tag>."""
    event = source.event_name
    records: list[IterationRecord] = []
    if history is not None:
        history.record(tag.format(0), source)
    for it in range(1, iterations + 1):
        s0 = forward(source)
        m = measure(source, s0)
        gradient = frechet(source, m)
        trial, step = prepare_trial(source, gradient, values, event)
        s_eps = forward(trial)
        update = line_search_update(event, m.prepared, s0, s_eps, source, trial, values)
        records.append(IterationRecord(it, source, m.misfit, gradient, step, update))
        if history is not None:
            ls = update.line_search
            history.record(tag.format(it), update.source,
                           misfit=ls.misfit if ls is not None else float("nan"),
                           alpha=ls.alpha if ls is not None else float("nan"),
                           origin_time_change=ls.origin_time_change if ls is not None else float("nan"),
                           status=update.status, reason=update.reason)
        source = update.source
        if not update.accepted:
            break
    final = measure(source, forward(source))
    return records, source, final.misfit
