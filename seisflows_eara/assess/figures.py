"""Figures from measurement tables and processed waveforms (paper Figs 8 and 10).

Every function returns the matplotlib Figure (tests inspect its axes) and saves it when `path` is
given (PNG, or PDF by the file name)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CATEGORY_LABELS = {"pz": "P-SV body, Z", "pr": "P-SV body, R", "sh": "SH body, T",
                   "rayleigh_z": "Rayleigh, Z", "rayleigh_r": "Rayleigh, R", "love_t": "Love, T"}


def _save(fig, path: str | None):
    if path:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def waveform_comparison(times: np.ndarray, observed: np.ndarray, synthetics: dict[str, np.ndarray],
                        windows: pd.DataFrame, title: str, path: str | None = None):
    """Observed and one or more synthetics (label -> (3, n) Z/R/T) per component, measurement
    windows shaded and annotated with phases and NZCC (Fig. 10)."""
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    colors = ["tab:red", "tab:blue", "tab:green"]
    for i, comp in enumerate("ZRT"):
        ax = axes[i]
        scale = max(np.abs(observed[i]).max(), 1e-30)
        ax.plot(times, observed[i] / scale, "k", lw=1.0, label="observed")
        for (label, syn), c in zip(synthetics.items(), colors):
            ax.plot(times, syn[i] / scale, color=c, lw=0.9, label=label)
        for _, w in windows[windows.component == comp].iterrows():
            ok = w.status == "ok"
            ax.axvspan(w.win_start, w.win_end, color="gold" if ok else "0.85", alpha=0.35, lw=0)
            if np.isfinite(w.nzcc):
                ax.text(w.win_start, 0.92, f"{w.phases} NZCC {w.nzcc:.2f}", fontsize=7,
                        transform=ax.get_xaxis_transform(), va="top")
        ax.set_ylabel(f"{comp} (norm.)")
        ax.set_xlim(times[0], times[-1])
    axes[0].legend(loc="upper right", fontsize=8, ncol=len(synthetics) + 1)
    axes[0].set_title(title)
    axes[-1].set_xlabel("time after centroid (s)")
    fig.tight_layout()
    return _save(fig, path)


def measurement_histograms(tables: dict[str, pd.DataFrame], path: str | None = None):
    """Histograms of δt, NZCC and CC over the kept windows, one row per category, one colour per
    table (e.g. initial vs final model; Fig. 8)."""
    cats = [c for c in CATEGORY_LABELS if any((t.category == c).any() for t in tables.values())]
    fig, axes = plt.subplots(max(len(cats), 1), 3, figsize=(11, 2.2 * max(len(cats), 1)),
                             squeeze=False)
    spec = [("dt", "δt (s)", np.linspace(-10, 10, 21)), ("nzcc", "NZCC", np.linspace(-1, 1, 21)),
            ("cc_max", "CC", np.linspace(0, 1, 21))]
    for r, cat in enumerate(cats):
        for c, (col, label, bins) in enumerate(spec):
            ax = axes[r, c]
            for name, t in tables.items():
                v = t[(t.category == cat) & (t.status == "ok")][col].dropna()
                ax.hist(v, bins=bins, histtype="step", lw=1.5,
                        label=f"{name} (n={len(v)}, mean {v.mean():.2f})" if len(v) else name)
            ax.set_xlabel(label)
            if c == 0:
                ax.set_ylabel(f"{CATEGORY_LABELS[cat]}\nwindows")
            ax.legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)
