"""Window placement from predicted arrivals (SPEC §3). Times are s after the event origin
(the centroid time, SPECFEM's time zero)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: category -> (component, band)
BODY_CATEGORIES = {"pz": "Z", "pr": "R", "sh": "T"}
SURFACE_CATEGORIES = {"rayleigh_z": "Z", "rayleigh_r": "R", "love_t": "T"}
KM_PER_DEG = 111.19492664455873  # 2πR/360 with R = 6371 km (obspy.geodetics' sphere)


@dataclass(frozen=True)
class Window:
    category: str
    component: str
    band: str            # "body" | "surface"
    start: float         # s after origin
    end: float
    phases: str          # "+"-joined phase names, or "surface"


def merge_intervals(starts: np.ndarray, ends: np.ndarray, labels: list[str]
                    ) -> list[tuple[float, float, str]]:
    """Merge overlapping [start, end] intervals; labels of merged intervals are joined with '+'."""
    order = np.argsort(starts, kind="stable")
    out: list[list] = []
    for i in order:
        s, e, lab = float(starts[i]), float(ends[i]), labels[i]
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
            if lab not in out[-1][2]:
                out[-1][2].append(lab)
        else:
            out.append([s, e, [lab]])
    return [(s, e, "+".join(lab)) for s, e, lab in out]


def _clip(s: float, e: float, record: tuple[float, float], min_length: float):
    """Clip to the record; None (with the reason) when the rest is shorter than min_length."""
    cs, ce = max(s, record[0]), min(e, record[1])
    if ce - cs < min_length:
        return None, (f"window {s:.1f}-{e:.1f} s outside the record {record[0]:.1f}-{record[1]:.1f} s"
                      if ce <= cs else f"window shorter than {min_length} s after clipping")
    return (cs, ce), ""


def body_windows(arrivals: dict[str, float], phases_by_category: dict[str, list[str]],
                 before: float, after: float, record: tuple[float, float], min_length: float
                 ) -> tuple[list[Window], list[tuple[str, str]]]:
    """[t − before, t + after] around every predicted phase, merged per category; clipped.

    Returns (windows, rejected) with rejected = [(category, reason)]."""
    wins, rejected = [], []
    for cat, phases in phases_by_category.items():
        have = [(p, arrivals[p]) for p in phases if np.isfinite(arrivals.get(p, np.nan))]
        if not have:
            rejected.append((cat, "no predicted arrival of " + "/".join(phases)))
            continue
        t = np.array([x[1] for x in have])
        for s, e, lab in merge_intervals(t - before, t + after, [x[0] for x in have]):
            clipped, why = _clip(s, e, record, min_length)
            if clipped is None:
                rejected.append((cat, f"{lab}: {why}"))
            else:
                wins.append(Window(cat, BODY_CATEGORIES[cat], "body", *clipped, lab))
    return wins, rejected


def surface_windows(distance_deg: float, depth_km: float, categories: list[str],
                    velocity_range: tuple[float, float], pad: float, max_depth_km: float,
                    record: tuple[float, float], min_length: float
                    ) -> tuple[list[Window], list[tuple[str, str]]]:
    """[Δ/v_max − pad, Δ/v_min + pad] (Δ in km) for events shallower than max_depth_km."""
    cats = [c for c in categories if c in SURFACE_CATEGORIES]
    if depth_km >= max_depth_km:
        return [], [(c, f"event deeper than {max_depth_km} km: no surface-wave window") for c in cats]
    dkm = distance_deg * KM_PER_DEG
    s, e = dkm / max(velocity_range) - pad, dkm / min(velocity_range) + pad
    wins, rejected = [], []
    for c in cats:
        clipped, why = _clip(s, e, record, min_length)
        if clipped is None:
            rejected.append((c, why))
        else:
            wins.append(Window(c, SURFACE_CATEGORIES[c], "surface", *clipped, "surface"))
    return wins, rejected


def noise_window(first_p: float, gap: float, record_start: float) -> tuple[float, float] | None:
    """From the origin (or the record start, if later) to `gap` s before the first predicted P."""
    s, e = max(0.0, record_start), first_p - gap
    return (s, e) if e > s else None
