"""Quality weight W_w = f1(CC) f2(SNR) f3(δt) (paper eq. A2-A4, as printed: correct)."""
from __future__ import annotations

import numpy as np


def cosine_ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 for x <= lo, 1 for x >= hi, 0.5 − 0.5 cos(π (x − lo)/(hi − lo)) between (continuous at
    both ends, with zero slope there). NaN input gives 0."""
    x = np.asarray(x, dtype=float)
    r = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    out = 0.5 - 0.5 * np.cos(np.pi * r)
    return np.where(np.isfinite(x), out, 0.0)


def quality_weight(cc: np.ndarray, snr_db: np.ndarray, dt: np.ndarray,
                   cc_range: tuple[float, float], snr_range: tuple[float, float],
                   dt_range: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """(f1, f2, f3, W_w): f1 rises over cc_range, f2 over snr_range (dB), f3 falls over |δt| in
    dt_range (s)."""
    f1 = cosine_ramp(cc, *cc_range)
    f2 = cosine_ramp(snr_db, *snr_range)
    f3 = 1.0 - cosine_ramp(np.abs(dt), *dt_range)
    f3 = np.where(np.isfinite(dt), f3, 0.0)
    return f1, f2, f3, f1 * f2 * f3
