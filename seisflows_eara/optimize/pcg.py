"""Preconditioned Polak-Ribière conjugate gradient with Powell restarts (SPEC §6, paper App. C).

Model and gradient are dicts of parameter name -> array (δln m; any shapes), so the Powell test can
be made per parameter as SPEC requires. With P the (diagonal) preconditioner:
    d_i = −P g_i + β d_{i−1},
    β   = (g_i − g_{i−1})·P g_i / (g_{i−1}·P g_{i−1})     (printed eq. C2 has d for g: circular)
β = 0 at the first iteration of a stage, when the Powell ratio
    R = P g_i·P g_{i−1} / (P g_{i−1}·P g_{i−1})
exceeds the threshold for every parameter, and when d is not a descent direction (g·d >= 0).
The recursion runs on the raw directions; the direction returned for the line search is normalized
to max|d| = 1 so a step ε is a relative model perturbation.
The state (g, Pg, d of the last iteration) is saved atomically so a resumed run continues the same
sequence.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field

import numpy as np

from seisflows_eara.io.atomic import atomic_write_bytes, atomic_write_text

Fields = dict[str, np.ndarray]


def dot(a: Fields, b: Fields) -> float:
    return float(sum(np.vdot(a[k], b[k]).real for k in a))


def scale(a: Fields, s: float) -> Fields:
    return {k: v * s for k, v in a.items()}


def axpy(alpha: float, x: Fields, y: Fields) -> Fields:
    """alpha·x + y."""
    return {k: alpha * x[k] + y[k] for k in x}


def max_abs(a: Fields) -> float:
    return max(float(np.max(np.abs(v))) for v in a.values())


@dataclass
class Direction:
    d: Fields                   # normalized, max|d| = 1
    raw: Fields                 # the CG recursion's direction (saved for the next iteration)
    beta: float
    restarted: bool
    reason: str
    powell_ratio: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0          # d (normalized) = raw direction × scale


@dataclass
class PrSums:
    """The global inner products one PR-CG step needs (sums over all GLL points; a slice-parallel
    job adds per-slice partial sums, seisflows_eara.direction)."""
    g_pg: float                     # g_i·Pg_i
    g_d0: float = 0.0               # g_i·d_{i−1} (raw)
    g0_pg0: float = 0.0             # g_{i−1}·Pg_{i−1}
    dg_pg: float = 0.0              # (g_i − g_{i−1})·Pg_i
    pg_pg0: dict[str, float] = field(default_factory=dict)    # per parameter Pg_i·Pg_{i−1}
    pg0_pg0: dict[str, float] = field(default_factory=dict)   # per parameter Pg_{i−1}·Pg_{i−1}


def _vdot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.vdot(a, b).real)


def pr_sums(g: Fields, pg: Fields, prev: tuple[Fields, Fields, Fields] | None,
            dot_=_vdot) -> PrSums:
    """PrSums of arrays (one process, or one slice's partial sums); `dot_(a, b)` is the inner
    product of two arrays (the slice-parallel job passes one with a fixed summation order)."""
    out = PrSums(sum(dot_(g[k], pg[k]) for k in g))
    if prev is not None:
        g0, pg0, d0 = prev
        out.g_d0 = sum(dot_(g[k], d0[k]) for k in g)
        out.g0_pg0 = sum(dot_(g0[k], pg0[k]) for k in g0)
        out.dg_pg = sum(dot_(g[k] - g0[k], pg[k]) for k in g)
        out.pg_pg0 = {k: dot_(pg[k], pg0[k]) for k in pg}
        out.pg0_pg0 = {k: dot_(pg0[k], pg0[k]) for k in pg}
    return out


def pr_coefficients(sums: PrSums, has_previous: bool, powell_threshold: float
                    ) -> tuple[float, str, dict[str, float]]:
    """(β, restart reason, Powell ratios) of eq. C2 with the Powell and descent restarts."""
    if not has_previous:
        return 0.0, "first iteration of the stage", {}
    ratios = {k: sums.pg_pg0[k] / d if d > 0 else np.inf for k, d in sums.pg0_pg0.items()}
    beta, reason = 0.0, ""
    if all(r > powell_threshold for r in ratios.values()):
        reason = f"Powell restart: R > {powell_threshold} for every parameter"
    elif sums.g0_pg0 <= 0:
        reason = "previous g·Pg <= 0"
    else:
        beta = sums.dg_pg / sums.g0_pg0
    if beta != 0.0 and beta * sums.g_d0 - sums.g_pg >= 0:      # g·d, d = β d_{i−1} − Pg
        beta, reason = 0.0, "not a descent direction"
    return beta, reason, ratios


def pr_direction(g: Fields, pg: Fields, prev: tuple[Fields, Fields, Fields] | None,
                 powell_threshold: float, normalize: bool = True) -> Direction:
    """Direction of iteration i from the gradient g, preconditioned gradient pg = P g and the
    previous (g, Pg, raw d) (None at the first iteration of a stage)."""
    beta, reason, ratios = pr_coefficients(pr_sums(g, pg, prev), prev is not None,
                                           powell_threshold)
    steepest = scale(pg, -1.0)
    d = steepest if beta == 0.0 else axpy(beta, prev[2], steepest)
    s = 1.0
    if normalize:
        m = max_abs(d)
        s = 1.0 / m if m > 0 else 1.0
    return Direction(scale(d, s), d, beta, beta == 0.0, reason, ratios, s)


class OptimizerState:
    """g, Pg, raw d of the last accepted iteration, per stage, saved atomically in `folder`
    as one .npz per field set plus a JSON index."""

    def __init__(self, folder: str):
        self.folder = folder

    def _index(self) -> dict:
        p = os.path.join(self.folder, "pcg_state.json")
        if not os.path.exists(p):
            return {}
        with open(p) as f:
            return json.load(f)

    def save(self, stage: int, iteration: int, g: Fields, pg: Fields, d: Fields,
             info: dict | None = None) -> None:
        os.makedirs(self.folder, exist_ok=True)
        for name, fields in (("g", g), ("pg", pg), ("d", d)):
            buf = io.BytesIO()
            np.savez(buf, **fields)
            atomic_write_bytes(os.path.join(self.folder, f"{name}_s{stage}_i{iteration:03d}.npz"),
                               buf.getvalue())
        self._index_entry(stage, dict(iteration=iteration, **(info or {})))

    def record(self, stage: int, iteration: int, gradient: str, direction: str,
               info: dict | None = None) -> None:
        """Index a slice-parallel iteration's state: the folders of its per-slice gradient (g, Pg)
        and direction (raw d) files (seisflows_eara.direction), which the next iteration reads."""
        os.makedirs(self.folder, exist_ok=True)
        self._index_entry(stage, dict(iteration=iteration, **(info or {}), gradient=gradient,
                                      direction=direction))

    def _index_entry(self, stage: int, entry: dict) -> None:
        """Put `entry` in the index as stage's record of its iteration (replacing an earlier one
        of the same iteration: a repeated step after a crash), written atomically."""
        idx = self._index()
        entries = [e for e in idx.get(str(stage), []) if e["iteration"] != entry["iteration"]]
        idx[str(stage)] = sorted(entries + [entry], key=lambda e: e["iteration"])
        atomic_write_text(os.path.join(self.folder, "pcg_state.json"), json.dumps(idx, indent=1))

    def previous_folders(self, stage: int, before: int) -> tuple[str, str] | None:
        """(gradient, direction) folders of the last recorded iteration of `stage` before
        `before`, or None (a new stage restarts)."""
        entries = [e for e in self._index().get(str(stage), []) if e["iteration"] < before]
        if not entries:
            return None
        if "gradient" not in entries[-1]:
            raise ValueError(f"{self.folder}: iteration {entries[-1]['iteration']} of stage "
                             f"{stage} was saved as whole-mesh arrays, not per slice")
        return entries[-1]["gradient"], entries[-1]["direction"]

    def previous(self, stage: int, before: int | None = None
                 ) -> tuple[Fields, Fields, Fields] | None:
        """(g, Pg, d) of the last saved iteration of `stage` earlier than `before` (all when None),
        or None (a new stage restarts). `before` makes a repeated direction step after a crash
        read the same previous iteration as the first attempt."""
        entries = [e for e in self._index().get(str(stage), [])
                   if before is None or e["iteration"] < before]
        if not entries:
            return None
        it = entries[-1]["iteration"]
        out = []
        for name in ("g", "pg", "d"):
            with np.load(os.path.join(self.folder, f"{name}_s{stage}_i{it:03d}.npz")) as z:
                out.append({k: z[k] for k in z.files})
        return tuple(out)
