"""Assessment figures (SPEC §7, paper §3): misfit curves (Fig. 3), δt/NZCC/CC histograms (Fig. 8),
waveform comparisons (Fig. 10), map views and cross-sections of model fields (Figs 4-7) and
point-spread functions (Fig. 9).

Every function takes arrays or tables (no file reading), returns the matplotlib Figure (tests
inspect its axes) and saves it when `path` is given (PNG, or PDF by the file name).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CATEGORY_LABELS = {"pz": "P-SV body, Z", "pr": "P-SV body, R", "sh": "SH body, T",
                   "rayleigh_z": "Rayleigh, Z", "rayleigh_r": "Rayleigh, R", "love_t": "Love, T"}
#: per-stage style of the misfit curves (paper Fig. 3: red stars, blue diamonds, magenta squares)
STAGE_STYLES = [("tab:red", "*"), ("tab:blue", "D"), ("m", "s"), ("tab:green", "o"),
                ("tab:orange", "^")]
#: x-span before a stage's start over which its source iterations are drawn (misfit curves)
SOURCE_SPAN = 0.5
#: histogram bins (paper Fig. 8): δt in s, NZCC and CC dimensionless
HIST_BINS = {"dt": np.linspace(-10, 10, 41), "nzcc": np.linspace(-1, 1, 41),
             "cc_max": np.linspace(0, 1, 21)}
#: colours of compared tables/synthetics, in order (paper Figs 8 and 10: blue initial, red final)
SERIES_COLORS = ["tab:blue", "tab:red", "tab:green", "0.4"]
DPI = 120
#: window labels: top position (axes fraction), step down and number of rows they cycle through
LABEL_TOP, LABEL_STEP, LABEL_ROWS = 0.97, 0.1, 3
#: colour scales span this percentile of |values| (relative) or the central range (absolute)
COLOR_PERCENTILE = 99.0
#: opacity of the bands that mask the neighbourhood of discontinuities (paper Figs 4-7)
MASK_ALPHA = 0.6


def _save(fig, path: str | None):
    if path:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return fig


# ------------------------------------------------------------------------------ Fig. 3
def misfit_curve_points(history: pd.DataFrame) -> pd.DataFrame:
    """Plot positions of output/misfit_history.csv rows. x = structure iterations done before the
    row's model (stages follow each other; a stage's final row sits after its last iteration);
    the source inversion that opens a stage is drawn just before the stage's start: its
    pre-source row at start − SOURCE_SPAN, source iteration k of n at start − SOURCE_SPAN (1 − k/n),
    so the model after it (structure iteration 0) is at the start itself.
    Adds columns x and marker ('pre' open symbol, 'source', 'structure' filled)."""
    need = {"stage", "kind", "iteration", "category", "misfit"}
    if not need <= set(history.columns):
        raise ValueError(f"misfit history needs columns {sorted(need)}, has {list(history.columns)}")
    h = history.copy()
    offsets, nsrc, total = {}, {}, 0
    for s in sorted(h.stage.unique()):
        offsets[s] = total
        nsrc[s] = max(int(h[(h.stage == s) & (h.kind == "source")].iteration.nunique()), 1)
        total += int(h[(h.stage == s) & (h.kind == "structure")].iteration.nunique())
    x = h.stage.map(offsets).astype(float)
    is_struct = h.kind == "structure"
    x[is_struct] += h.iteration[is_struct]
    is_src = h.kind == "source"
    x[is_src] -= SOURCE_SPAN * (1.0 - h.iteration[is_src] / h.stage[is_src].map(nsrc))
    x[h.kind == "pre_source"] -= SOURCE_SPAN
    x[h.kind == "final"] = total
    h["x"] = x
    h["marker"] = np.where(h.kind == "pre_source", "pre",
                           np.where(is_src, "source", "structure"))
    return h


def misfit_curves(history: pd.DataFrame, path: str | None = None):
    """Misfit per stage against structure iteration, total and per category (Fig. 3): filled
    symbols joined by lines after the source inversion, an open symbol before it, the source
    iterations as small symbols on a dotted line just before the stage's start."""
    h = misfit_curve_points(history)
    cats = ["total"] + [c for c in CATEGORY_LABELS if c in set(h.category)]
    cats += sorted(set(h.category) - set(cats))
    ncol = 4 if len(cats) > 4 else len(cats)
    nrow = int(np.ceil(len(cats) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.9 * nrow), squeeze=False)
    for ax, cat in zip(axes.ravel(), cats):
        for n, (stage, g) in enumerate(h[h.category == cat].groupby("stage")):
            color, mk = STAGE_STYLES[n % len(STAGE_STYLES)]
            s = g[g.marker == "structure"].sort_values("x")
            ax.plot(s.x, s.misfit, color=color, marker=mk, ms=7, lw=1.2, label=f"stage {stage}")
            pre = g[g.marker == "pre"]
            ax.plot(pre.x, pre.misfit, ls="none", marker=mk, ms=9, mfc="white", mec=color, mew=1.5,
                    zorder=3)
            src = g[g.marker != "structure"].sort_values("x")
            if len(src):
                first = s.iloc[:1]
                ax.plot(np.r_[src.x, first.x], np.r_[src.misfit, first.misfit], color=color,
                        ls=":", lw=1.0, marker=".", ms=5)
        ax.set_title("overall" if cat == "total" else CATEGORY_LABELS.get(cat, cat), fontsize=9)
        ax.set_xlabel("structure iteration")
        ax.set_ylabel("misfit (eq. 2)")
    for ax in axes.ravel()[len(cats):]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=7, title="open: before source inversion", title_fontsize=6)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ Fig. 8
def measurement_histograms(tables: Mapping[str, pd.DataFrame], path: str | None = None):
    """Histograms of δt, NZCC and CC over the kept windows, one row per category, one colour per
    table (e.g. initial vs final model; Fig. 8); δt legends give mean and standard deviation."""
    cats = [c for c in CATEGORY_LABELS if any((t.category == c).any() for t in tables.values())]
    fig, axes = plt.subplots(max(len(cats), 1), 3, figsize=(11, 2.2 * max(len(cats), 1)),
                             squeeze=False)
    spec = [("dt", "δt = T_obs − T_syn (s)"), ("nzcc", "NZCC"), ("cc_max", "CC (maximum)")]
    for r, cat in enumerate(cats):
        for c, (col, label) in enumerate(spec):
            ax = axes[r, c]
            for (name, t), color in zip(tables.items(), SERIES_COLORS * len(tables)):
                v = t[(t.category == cat) & (t.status == "ok")][col].dropna()
                text = name
                if len(v):
                    text = f"{name} (n={len(v)}, {v.mean():.2f}" + \
                        (f" ± {v.std(ddof=0):.2f})" if col == "dt" else ")")
                ax.hist(v, bins=HIST_BINS[col], histtype="step", lw=1.5, color=color, label=text)
            ax.set_xlabel(label)
            if c == 0:
                ax.set_ylabel(f"{CATEGORY_LABELS[cat]}\nwindows")
            ax.legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ Fig. 10
def waveform_comparison(times: np.ndarray, observed: np.ndarray, synthetics: dict[str, np.ndarray],
                        windows: pd.DataFrame, title: str, path: str | None = None,
                        colors: Sequence[str] | None = None):
    """Observed (black) and one or more synthetics (label -> (3, n) Z/R/T) per component,
    measurement windows shaded (gold kept, grey rejected) and annotated with a `label` column when
    the table has one, else phases and NZCC (Fig. 10)."""
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    colors = list(colors) if colors else ["tab:red", "tab:blue", "tab:green"]
    for i, comp in enumerate("ZRT"):
        ax = axes[i]
        scale = max(np.abs(observed[i]).max(), 1e-30)
        ax.plot(times, observed[i] / scale, "k", lw=1.0, label="observed")
        for (label, syn), c in zip(synthetics.items(), colors):
            ax.plot(times, syn[i] / scale, color=c, lw=0.9, label=label)
        shown = windows[windows.component == comp].sort_values("win_start")
        for n, (_, w) in enumerate(shown.iterrows()):
            ok = w.status == "ok"
            ax.axvspan(w.win_start, w.win_end, color="gold" if ok else "0.85", alpha=0.35, lw=0)
            text = w["label"] if "label" in w and isinstance(w["label"], str) else \
                (f"{w.phases} NZCC {w.nzcc:.2f}" if np.isfinite(w.nzcc) else "")
            if text:
                ax.text(w.win_start, LABEL_TOP - LABEL_STEP * (n % LABEL_ROWS), text, fontsize=6.5,
                        transform=ax.get_xaxis_transform(), va="top")
        ax.set_ylabel(f"{comp} (norm.)")
        ax.set_xlim(times[0], times[-1])
    axes[0].legend(loc="lower left", fontsize=8, ncol=len(synthetics) + 1)
    axes[0].set_title(title)
    axes[-1].set_xlabel("time after centroid (s)")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ Figs 4-7, 9
def _limits(arrays: Sequence[np.ndarray], symmetric: bool) -> tuple[float, float]:
    """Colour limits: the COLOR_PERCENTILE range of the finite values (symmetric about 0 for
    relative fields), so a few extreme points do not wash out the map."""
    vals = np.concatenate([np.ravel(a)[np.isfinite(np.ravel(a))] for a in arrays] or [np.zeros(1)])
    if not vals.size:
        return -1.0, 1.0
    if symmetric:
        m = float(np.percentile(np.abs(vals), COLOR_PERCENTILE)) or float(np.max(np.abs(vals))) \
            or 1.0
        return -m, m
    lo, hi = (float(x) for x in np.percentile(vals, [100 - COLOR_PERCENTILE, COLOR_PERCENTILE]))
    return (lo, hi) if hi > lo else (lo - abs(lo) * 0.01 - 1e-12, hi + abs(hi) * 0.01 + 1e-12)


def model_maps(slices: Mapping[str, Sequence[np.ndarray]], lat: np.ndarray, lon: np.ndarray,
               depths_km: Sequence[float], labels: Mapping[str, str],
               relative: Sequence[str] = (), masked: Sequence[bool] | None = None,
               title: str = "", path: str | None = None, scale: Mapping[str, float] | None = None):
    """Map views: one row per field (name -> one (nlat, nlon) array per depth), one column per
    depth. Fields in `relative` use a diverging colour scale symmetric about 0 (red slow); values
    are multiplied by `scale[name]` (e.g. 100 for %). Depths flagged in `masked` (near a
    discontinuity) are veiled with a semi-transparent band and say so."""
    names = list(slices)
    masked = list(masked) if masked is not None else [False] * len(depths_km)
    scale = dict(scale or {})
    fig, axes = plt.subplots(len(names), len(depths_km), squeeze=False, sharex=True, sharey=True,
                             figsize=(2.6 * len(depths_km) + 1.2, 2.4 * len(names) + 0.6),
                             layout="constrained")
    extent = (lon[0], lon[-1], lat[0], lat[-1])
    for r, name in enumerate(names):
        data = [np.asarray(a) * scale.get(name, 1.0) for a in slices[name]]
        sym = name in relative
        vmin, vmax = _limits(data, sym)
        for c, (z, a) in enumerate(zip(depths_km, data)):
            ax = axes[r, c]
            im = ax.imshow(np.ma.masked_invalid(a), origin="lower", extent=extent, aspect="auto",
                           cmap="RdBu" if sym else "viridis", vmin=vmin, vmax=vmax,
                           interpolation="nearest")
            if masked[c]:
                ax.axhspan(lat[0], lat[-1], color="white", alpha=MASK_ALPHA, lw=0)
                ax.text(0.5, 0.5, "near a discontinuity:\nmasked", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8)
            ax.set_title(f"{z:g} km", fontsize=9)
            if r == len(names) - 1:
                ax.set_xlabel("longitude (°)")
            if c == 0:
                ax.set_ylabel("latitude (°)")
        fig.colorbar(im, ax=list(axes[r]), shrink=0.9, label=labels.get(name, name))
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def model_section(sections: Mapping[str, np.ndarray], distance_deg: np.ndarray,
                  depths_km: np.ndarray, labels: Mapping[str, str], relative: Sequence[str] = (),
                  mask_depths_km: Sequence[float] = (), mask_halfwidth_km: float = 0.0,
                  title: str = "", path: str | None = None,
                  scale: Mapping[str, float] | None = None):
    """Great-circle cross-sections (one panel per field: (ndepth, npath) arrays) with
    semi-transparent bands ±`mask_halfwidth_km` around `mask_depths_km` and dashed lines at those
    depths (paper Figs 6-7)."""
    names = list(sections)
    scale = dict(scale or {})
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.8 * len(names) + 0.4), squeeze=False)
    for r, name in enumerate(names):
        ax = axes[r, 0]
        a = np.asarray(sections[name]) * scale.get(name, 1.0)
        sym = name in relative
        vmin, vmax = _limits([a], sym)
        im = ax.pcolormesh(distance_deg, depths_km, np.ma.masked_invalid(a), shading="nearest",
                           cmap="RdBu" if sym else "viridis", vmin=vmin, vmax=vmax)
        for z in mask_depths_km:
            ax.axhspan(z - mask_halfwidth_km, z + mask_halfwidth_km, color="white",
                       alpha=MASK_ALPHA, lw=0)
            ax.axhline(z, color="k", ls="--", lw=0.8)
        ax.set_ylim(depths_km[-1], depths_km[0])
        ax.set_ylabel("depth (km)")
        ax.set_xlabel("distance along the section (°)")
        fig.colorbar(im, ax=ax, label=labels.get(name, name))
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def psf_maps(inputs: Sequence[np.ndarray], responses: Mapping[str, Sequence[np.ndarray]],
             lat: np.ndarray, lon: np.ndarray, depths_km: Sequence[float], reference: str,
             input_label: str, path: str | None = None):
    """Paper Fig. 9: one row per depth; columns: the input perturbation (%), then the responses
    −g of each parameter normalised at each depth by max |response of `reference`| there, so the
    trade-off columns read as fractions of the perturbed parameter's own response."""
    cols = ["input"] + list(responses)
    fig, axes = plt.subplots(len(depths_km), len(cols), squeeze=False, sharex=True, sharey=True,
                             figsize=(3.2 * len(cols) + 0.6, 2.5 * len(depths_km) + 0.4),
                             layout="constrained")
    extent = (lon[0], lon[-1], lat[0], lat[-1])
    amp = _limits([100 * np.asarray(a) for a in inputs], True)[1]
    for r, z in enumerate(depths_km):
        ref = np.nanmax(np.abs(responses[reference][r])) if reference in responses else np.nan
        ref = ref if np.isfinite(ref) and ref > 0 else 1.0
        for c, col in enumerate(cols):
            ax = axes[r, c]
            if col == "input":
                im = ax.imshow(np.ma.masked_invalid(100 * np.asarray(inputs[r])), origin="lower",
                               extent=extent, aspect="auto", cmap="RdBu", vmin=-amp, vmax=amp)
                label = input_label
            else:
                im = ax.imshow(np.ma.masked_invalid(np.asarray(responses[col][r]) / ref),
                               origin="lower", extent=extent, aspect="auto", cmap="RdBu",
                               vmin=-1, vmax=1)
                label = f"{col} response / max|{reference}|"
            fig.colorbar(im, ax=ax, shrink=0.85, label=label)
            ax.set_title(f"{col}, {z:g} km", fontsize=9)
            if r == len(depths_km) - 1:
                ax.set_xlabel("longitude (°)")
            if c == 0:
                ax.set_ylabel("latitude (°)")
    return _save(fig, path)
