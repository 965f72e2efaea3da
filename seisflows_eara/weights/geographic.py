"""Geographic weights with automatic Δ0 (Table 1 note, after Ruan et al. 2019).

W_s = 1 / Σ_j exp(−(Δ_sj/Δ0)²) over the event's stations j (s included), normalized to mean 1.
Δ0: for every Δ0 of the scan the ratio max(W)/min(W) is computed; Δ0 is where this ratio has
fallen to `fraction` (1/3) of its maximum, on the large-Δ0 side of the maximum (larger Δ0 = broader
declustering; at the scan's end if it never falls that far). Memory: one float32 N×N separation
matrix (2000 stations: 16 MB).
"""
from __future__ import annotations

import numpy as np


def separations_deg(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle separations (deg) between all station pairs, float32 N×N (haversine)."""
    la, lo = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    dla = la[:, None] - la[None, :]
    dlo = lo[:, None] - lo[None, :]
    h = np.sin(dla / 2) ** 2 + np.cos(la)[:, None] * np.cos(la)[None, :] * np.sin(dlo / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))).astype(np.float32)


def _weights(sep: np.ndarray, delta0: float) -> np.ndarray:
    return 1.0 / np.exp(-(sep / np.float32(delta0)) ** 2).sum(axis=1, dtype=np.float64)


def choose_delta0(sep: np.ndarray, scan: tuple[float, float], npoints: int, fraction: float
                  ) -> tuple[float, np.ndarray, np.ndarray]:
    """(Δ0, scanned Δ0 values, ratio max/min at each)."""
    xs = np.linspace(scan[0], scan[1], npoints)
    ratio = np.array([(lambda w: w.max() / w.min())(_weights(sep, x)) for x in xs])
    k = int(np.argmax(ratio))
    target = fraction * ratio[k]
    after = np.flatnonzero(ratio[k:] <= target)
    if after.size == 0:
        return float(xs[-1]), xs, ratio
    j = k + int(after[0])
    # linear interpolation between the two scan points that bracket the target
    x0, x1, r0, r1 = xs[j - 1], xs[j], ratio[j - 1], ratio[j]
    d0 = x1 if r1 == r0 else x0 + (target - r0) * (x1 - x0) / (r1 - r0)
    return float(d0), xs, ratio


def geographic_weights(lat: np.ndarray, lon: np.ndarray, scan: tuple[float, float], npoints: int,
                       fraction: float, delta0: float | None = None) -> tuple[np.ndarray, float]:
    """(per-station W_es normalized to mean 1, Δ0 used). One station gets weight 1."""
    lat = np.asarray(lat, float)
    if lat.size == 0:
        return np.zeros(0), float("nan")
    if lat.size == 1:
        return np.ones(1), float(delta0 if delta0 is not None else scan[0])
    sep = separations_deg(lat, lon)
    if delta0 is None:
        delta0 = choose_delta0(sep, scan, npoints, fraction)[0]
    w = _weights(sep, delta0)
    return w / w.mean(), float(delta0)
