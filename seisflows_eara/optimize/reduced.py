"""The structure line search reduced where the data are (SPEC §6 eq. C6, §4 eq. 2; issue 16).

Under the linear extrapolation of eq. (C6), s(α) = s0 + a Δ with a = α/ε and Δ = s_ε − s0, the
tapered NZCC of every window is an exact closed form of six inner products (taper w, as
seisflows_eara.misfit.nzcc applies it to both traces):
    A = ∫(w s0)(w u),  B = ∫(w Δ)(w u),  C = ∫(w s0)²,  D = ∫(w s0)(w Δ),  E = ∫(w Δ)²,  U = ∫(w u)²
    NZCC(a) = (A + a B) / sqrt(U (C + 2 a D + a² E)).
The event task that ran the trial forward writes these per window, with the window's category and
its weight W_es·W_w (without W_c), to a small file (`write_terms`); the master sums the events with
the all-event W_c (Table 1) and minimizes χ(α) = Σ W_c W_es W_w (1 − NZCC(α)) in milliseconds
(`ReducedMisfit`, `line_search`): O(windows) scalars, no waveforms.

The pyadjoint alternatives (`misfit: cc_traveltime|multitaper`) have no closed form: the event task
evaluates its misfit on a grid of α (`grid_terms`), summed per category without W_c, and the master
takes the best grid point of Σ_c W_c Σ_e χ_ec(α) (`grid_line_search`).
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from seisflows_eara.io.atomic import atomic_write_bytes
from seisflows_eara.optimize.linesearch import LineSearchResult, extrapolated_line_search
from seisflows_eara.windows.ragged import runs, segment_sums

#: names of the per-window inner products in a terms file (A, B, C, D, E, U above)
PRODUCTS = ("su0", "sud", "ss0", "s0d", "sdd", "uu")


# ---------------------------------------------------------------- per event (in the event's task)
def nzcc_products(s0: np.ndarray, s_trial: np.ndarray, u: np.ndarray, taper: np.ndarray | None,
                  dt: float, offsets: np.ndarray) -> dict[str, np.ndarray]:
    """The six tapered inner products per window of flat segments (windows/ragged.py layout),
    a run of windows at a time (temporaries bounded whatever the number of windows)."""
    offsets = np.asarray(offsets)
    n = len(offsets) - 1
    out = {k: np.zeros(n) for k in PRODUCTS}
    for i0, i1 in runs(offsets):
        lo, hi = offsets[i0], offsets[i1]
        off = offsets[i0:i1 + 1] - lo
        w = np.ones(hi - lo) if taper is None else taper[lo:hi]
        a = s0[lo:hi] * w
        d = s_trial[lo:hi] * w - a            # w Δ
        b = u[lo:hi] * w
        for key, x in (("su0", a * b), ("sud", d * b), ("ss0", a * a), ("s0d", a * d),
                       ("sdd", d * d), ("uu", b * b)):
            out[key][i0:i1] = segment_sums(x, off) * dt
    return out


@dataclass
class WindowTerms:
    """One or more events' per-window terms: inner products, weight W_es·W_w, category."""
    products: dict[str, np.ndarray]     # PRODUCTS -> (n,)
    weight: np.ndarray                  # (n,) W_es W_w, without W_c
    category: np.ndarray                # (n,) index into `categories`
    categories: tuple[str, ...]
    event: np.ndarray                   # (n,) index into `events`
    events: tuple[str, ...]
    trial_step: float
    key: str = ""                       # what trial the terms belong to (resume check)

    @property
    def nwin(self) -> int:
        return int(self.weight.size)


def _encode(categories: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    names = tuple(sorted({str(c) for c in categories}))
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[str(c)] for c in categories], dtype=np.int16), names


def event_terms(event: str, s0: np.ndarray, s_trial: np.ndarray, u: np.ndarray,
                taper: np.ndarray | None, dt: float, offsets: np.ndarray, weight: np.ndarray,
                categories: Sequence[str], trial_step: float, key: str = "") -> WindowTerms:
    """Terms of one event's windows; windows of weight 0 are left out (they never contribute)."""
    keep = np.asarray(weight, float) > 0
    p = nzcc_products(s0, s_trial, u, taper, dt, offsets)
    cat, names = _encode(np.asarray(categories)[keep])
    return WindowTerms({k: v[keep] for k, v in p.items()}, np.asarray(weight, float)[keep], cat,
                       names, np.zeros(int(keep.sum()), dtype=np.int32), (event,),
                       float(trial_step), key)


def write_terms(path: str, t: WindowTerms) -> None:
    """The terms as one .npz (float64), replaced atomically."""
    buf = io.BytesIO()
    np.savez(buf, kind=np.array("nzcc"), weight=t.weight, category=t.category,
             categories=np.array(t.categories, dtype=str), events=np.array(t.events, dtype=str),
             event=t.event, trial_step=np.float64(t.trial_step), key=np.array(t.key),
             **{k: np.asarray(v, np.float64) for k, v in t.products.items()})
    atomic_write_bytes(path, buf.getvalue())


@dataclass
class GridTerms:
    """One or more events' misfit on an α grid, summed per category without W_c."""
    alphas: np.ndarray                  # (m,)
    misfit: np.ndarray                  # (ncat, m): Σ_e Σ_{w in c} W_es W_w χ_w(α)
    categories: tuple[str, ...]
    events: tuple[str, ...]
    windows: int
    trial_step: float
    key: str = ""


def search_grid(step_range: Sequence[float], samples: int) -> np.ndarray:
    """The α grid of the alternatives: `samples` points across step_range, and α = 0."""
    g = np.linspace(float(step_range[0]), float(step_range[1]), int(samples))
    return g if g[0] == 0.0 else np.concatenate([[0.0], g])


def grid_terms(event: str, s0: np.ndarray, s_trial: np.ndarray, weight: np.ndarray,
               categories: Sequence[str], measure: Callable[[np.ndarray], np.ndarray],
               alphas: np.ndarray, trial_step: float, key: str = "") -> GridTerms:
    """χ_ec(α) = Σ_{w in c, W_es W_w > 0} W_es W_w χ_w(s0 + α (s_ε − s0)/ε) for every α of the
    grid; `measure(S)` gives χ per window (NaN = not measured: counts 0, as on re-measurement)."""
    weight = np.asarray(weight, float)
    cat, names = _encode(categories)
    ds = (s_trial - s0) / trial_step          # the extrapolation of today's re-measurement
    out = np.zeros((len(names), len(alphas)))
    for j, a in enumerate(alphas):
        chi = np.asarray(measure(s0 + float(a) * ds))
        part = np.where(weight > 0, weight * np.nan_to_num(chi, nan=0.0), 0.0)
        out[:, j] = np.bincount(cat, weights=part, minlength=len(names))
    return GridTerms(np.asarray(alphas, float), out, names, (event,), int((weight > 0).sum()),
                     float(trial_step), key)


def write_grid(path: str, g: GridTerms) -> None:
    buf = io.BytesIO()
    np.savez(buf, kind=np.array("grid"), alphas=g.alphas, misfit=g.misfit,
             categories=np.array(g.categories, dtype=str), events=np.array(g.events, dtype=str),
             windows=np.int64(g.windows), trial_step=np.float64(g.trial_step), key=np.array(g.key))
    atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------- reading (master)
def read_terms(path: str) -> WindowTerms | GridTerms:
    """A terms file of `write_terms` or `write_grid`; a missing or damaged file names itself."""
    try:
        with np.load(path, allow_pickle=False) as z:
            kind = str(z["kind"])
            if kind == "nzcc":
                return WindowTerms({k: z[k] for k in PRODUCTS}, z["weight"], z["category"],
                                   tuple(str(c) for c in z["categories"]), z["event"],
                                   tuple(str(e) for e in z["events"]), float(z["trial_step"]),
                                   str(z["key"]))
            return GridTerms(z["alphas"], z["misfit"], tuple(str(c) for c in z["categories"]),
                             tuple(str(e) for e in z["events"]), int(z["windows"]),
                             float(z["trial_step"]), str(z["key"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise FileNotFoundError(f"line-search terms {path} unreadable ({e}); re-run the trial "
                                "forward of this event") from e


def term_key(path: str) -> str | None:
    """The trial a terms file belongs to, or None when it is missing or unreadable."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["key"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def concatenate(parts: Sequence[WindowTerms]) -> WindowTerms:
    """The events' terms as one set (categories and events re-indexed)."""
    if not parts:
        raise ValueError("no line-search terms to combine")
    steps = {p.trial_step for p in parts}
    if len(steps) != 1:
        raise ValueError(f"line-search terms of different trial steps {sorted(steps)}: "
                         f"events {[p.events for p in parts]}")
    names = tuple(sorted({c for p in parts for c in p.categories}))
    events = tuple(e for p in parts for e in p.events)
    cat, ev, e0 = [], [], 0
    for p in parts:
        cat.append(np.array([names.index(c) for c in p.categories], dtype=np.int16)[p.category]
                   if p.nwin else np.zeros(0, np.int16))
        ev.append(p.event.astype(np.int32) + e0)
        e0 += len(p.events)
    return WindowTerms({k: np.concatenate([p.products[k] for p in parts]) for k in PRODUCTS},
                       np.concatenate([p.weight for p in parts]), np.concatenate(cat), names,
                       np.concatenate(ev), events, parts[0].trial_step, parts[0].key)


# ---------------------------------------------------------------- χ(α) and the search (master)
class ReducedMisfit:
    """χ(α) = Σ_w W_c W_es W_w (1 − NZCC_w(α/ε)) from the terms of all events (eq. 2, C6), on
    (n,) arrays: one α costs a few vector operations over the windows.

    As on re-measurement (PreparedEvent.misfit_from_segments), a window whose NZCC is undefined
    (zero energy of the extrapolated or observed window) contributes 0, and so does W = 0."""

    def __init__(self, terms: WindowTerms, wc: dict[str, float]):
        wcat = np.array([float(wc.get(c, 0.0)) for c in terms.categories])
        w = wcat[terms.category] * terms.weight if terms.nwin else np.zeros(0)
        p = terms.products
        keep = (w > 0) & (p["uu"] > 0)          # U = 0: NZCC undefined at every α
        root_u = np.sqrt(p["uu"][keep])
        self.w = w[keep]
        self.a, self.b = p["su0"][keep] / root_u, p["sud"][keep] / root_u
        self.c, self.d2, self.e = p["ss0"][keep], 2.0 * p["s0d"][keep], p["sdd"][keep]
        self.total_weight = float(self.w.sum())
        self.eps = terms.trial_step
        self.windows = int(self.w.size)

    def _ratio(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """NZCC·(0 where undefined) per window and the mask of defined windows."""
        x = alpha / self.eps
        ss = self.e * x                         # C + 2 a D + a² E, in place
        ss += self.d2
        ss *= x
        ss += self.c
        ok = ss > 0
        if not ok.all():
            ss[~ok] = 1.0
        np.sqrt(ss, out=ss)
        su = self.b * x
        su += self.a
        su /= ss
        if not ok.all():
            su[~ok] = 0.0
        return su, ok

    def per_window(self, alpha: float) -> np.ndarray:
        """1 − NZCC per window at step α (NaN where undefined)."""
        r, ok = self._ratio(float(alpha))
        return np.where(ok, 1.0 - r, np.nan)

    def __call__(self, alpha: float) -> float:
        r, ok = self._ratio(float(alpha))
        total = self.total_weight if ok.all() else float(self.w[ok].sum())
        return total - float(np.dot(self.w, r))


def line_search(terms: WindowTerms, wc: dict[str, float], step_range: Sequence[float],
                samples: int) -> LineSearchResult:
    """α minimizing the closed-form χ(α): the grid and bounded refinement and the acceptance rule
    of extrapolated_line_search (accepted only if χ decreases)."""
    return extrapolated_line_search(ReducedMisfit(terms, wc), tuple(step_range), int(samples))


def sum_grids(parts: Sequence[GridTerms], wc: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(α grid, Σ_c W_c Σ_e χ_ec(α)) over the events (the grids must agree)."""
    if not parts:
        raise ValueError("no line-search grids to combine")
    alphas = parts[0].alphas
    total = np.zeros(alphas.size)
    for p in parts:
        if p.alphas.shape != alphas.shape or not np.array_equal(p.alphas, alphas):
            raise ValueError(f"events {p.events}: α grid differs from events {parts[0].events}")
        total += np.array([float(wc.get(c, 0.0)) for c in p.categories]) @ p.misfit
    return alphas, total


def grid_line_search(parts: Sequence[GridTerms], wc: dict[str, float],
                     step_range: Sequence[float]) -> LineSearchResult:
    """The best grid point of the summed misfit within step_range; accepted only if it is at
    α > 0 and below χ(0). (No refinement between grid points: pyadjoint's cc_traveltime and
    multitaper misfits use integer-sample cross-correlation shifts, so they are piecewise
    constant in α.)"""
    alphas, total = sum_grids(parts, wc)
    at0 = np.flatnonzero(alphas == 0.0)
    if not at0.size:
        raise ValueError("the α grid must contain α = 0 (search_grid adds it)")
    f0 = float(total[at0[0]])
    inside = (alphas >= float(step_range[0])) & (alphas <= float(step_range[1]))
    a_in, f_in = alphas[inside], total[inside]
    k = int(np.nanargmin(f_in))
    best_a, best_f = float(a_in[k]), float(f_in[k])
    accepted = best_a > 0 and best_f < f0
    return LineSearchResult(best_a if accepted else 0.0, best_f if accepted else f0, f0,
                            accepted, a_in, f_in)
