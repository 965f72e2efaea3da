"""Categorical weights W_c = 1 / (number of windows with W_w > 0 in category c) (Table 1, eq. 9)."""
from __future__ import annotations

import numpy as np


def categorical_weights(categories: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Per-window W_c for windows labelled `categories` with quality weights `quality`; counted over
    the windows given (one event for the source misfit, all events for the structure misfit)."""
    categories = np.asarray(categories)
    used = np.asarray(quality) > 0
    out = np.zeros(categories.shape, dtype=float)
    for c in np.unique(categories):
        sel = categories == c
        n = int(np.count_nonzero(sel & used))
        out[sel] = 1.0 / n if n else 0.0
    return out
