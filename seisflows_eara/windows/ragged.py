"""Window segments of one event stored end to end (the "ragged" layout of SPEC §8's scale).

Windows differ greatly in length: a 70-s body window is ~700 samples at 10 samples/s, a surface
window at 40° several thousand. Per-window arrays (observed and synthetic segments, tapers, adjoint
sources) are therefore one flat array with `offsets` (n_windows + 1): window i is
x[offsets[i]:offsets[i + 1]]. Memory and work scale with the number of window samples, not with
n_windows × the longest window. Sums per window use np.add.reduceat; what needs equal-length rows
(FFT cross-correlations) runs on `blocks` of windows of similar length, zero-padded to the longest
of the block, with a bounded number of samples per block.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy.signal.windows import tukey

#: samples per padded block (rows × row length, 16 MB of float64): bounds blockwise temporaries
BLOCK_SAMPLES = 1 << 21


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """(n + 1,) start of each window in the flat array, and the total length last."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=out[1:])
    return out


def segment_sums(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Σ of x over each window (0 for an empty window); x is flat, of length offsets[-1]."""
    lengths = np.diff(offsets)
    out = np.zeros(lengths.size, dtype=np.result_type(x, np.float64))
    full = lengths > 0
    if np.any(full):
        out[full] = np.add.reduceat(x, offsets[:-1][full])
    return out


def per_sample(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A per-window value repeated over the window's samples (flat)."""
    return np.repeat(values, np.diff(offsets))


def scale_segments(x: np.ndarray, values: np.ndarray, offsets: np.ndarray) -> None:
    """x *= per_sample(values, offsets), in place, a run of windows at a time (`runs`): the same
    products without an event-sized temporary."""
    for i0, i1 in runs(offsets):
        x[offsets[i0]:offsets[i1]] *= per_sample(values[i0:i1], offsets[i0:i1 + 1])


def segment(x: np.ndarray, offsets: np.ndarray, i: int) -> np.ndarray:
    """Window i of the flat array x (a view)."""
    return x[offsets[i]:offsets[i + 1]]


def blocks(lengths: np.ndarray, width: Callable[[int], int] = lambda n: n,
           max_samples: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """Windows in blocks of similar length: (window indices, row width) with row width
    `width(longest length in the block)` and rows × width <= max_samples (default
    BLOCK_SAMPLES; one row at least).
    Windows are taken in order of length, so a block never pads short windows to a long one
    beyond that bound."""
    max_samples = BLOCK_SAMPLES if max_samples is None else max_samples
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    i = 0
    while i < order.size:
        w = int(width(int(lengths[order[i]])))
        j = i + 1
        while j < order.size:
            w_j = int(width(int(lengths[order[j]])))
            if (j - i + 1) * w_j > max_samples:
                break
            w = w_j
            j += 1
        yield order[i:j], w
        i = j


def runs(offsets: np.ndarray, max_samples: int | None = None) -> Iterator[tuple[int, int]]:
    """Consecutive windows in runs (i0, i1) of about max_samples samples (default BLOCK_SAMPLES;
    one window at least): flat arrays are then processed run by run, each a contiguous slice."""
    max_samples = BLOCK_SAMPLES if max_samples is None else max_samples
    n = len(offsets) - 1
    i0 = 0
    while i0 < n:
        i1 = int(np.searchsorted(offsets, offsets[i0] + max_samples, side="right")) - 1
        i1 = min(max(i1, i0 + 1), n)
        yield i0, i1
        i0 = i1


def gather(x: np.ndarray, offsets: np.ndarray, idx: np.ndarray, width: int) -> np.ndarray:
    """(len(idx), width) rows: windows idx of the flat array x, zero-padded on the right."""
    out = np.zeros((len(idx), width), dtype=x.dtype)
    for row, i in enumerate(idx):
        seg = x[offsets[i]:offsets[i + 1]]
        out[row, :seg.size] = seg
    return out


def scatter(rows: np.ndarray, offsets: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    """Inverse of `gather`: the first length(i) samples of each row into window i of flat `out`."""
    for row, i in enumerate(idx):
        out[offsets[i]:offsets[i + 1]] = rows[row, :offsets[i + 1] - offsets[i]]


def tukey_tapers(lengths: np.ndarray, fraction: float) -> np.ndarray:
    """Flat Tukey (cosine-tapered) windows of each length; `fraction` tapered at each end
    (scipy's alpha = 2 · fraction). Computed once per distinct length."""
    cache: dict[int, np.ndarray] = {}
    parts = []
    for m in np.asarray(lengths, dtype=np.int64):
        m = int(m)
        if m not in cache:
            cache[m] = tukey(m, 2 * fraction)
        parts.append(cache[m])
    return np.concatenate(parts) if parts else np.zeros(0)


class FlatBuilder:
    """A flat array built from parts as they come, in order, with no concatenation at the end:
    each part is copied once into a buffer sized after the first parts (their share of the
    whole, `add`'s `done`, extrapolated with GROWTH headroom; doubled on the rare overflow) and
    can be freed at once. The copies then happen while the parts arrive, beside the pool's
    work, not in one serial join of the event's window samples afterwards (three such arrays
    of 330 MB at 1000 stations), and the parts are not all held at the peak. `array()` is a
    view of the filled length: the buffer's untouched tail takes no memory."""

    GROWTH = 1.25

    def __init__(self, dtype=np.float64):
        self.dtype = np.dtype(dtype)
        self.buf: np.ndarray | None = None
        self.size = 0

    def add(self, x: np.ndarray, done: float = 1.0) -> None:
        """Append x; `done` is the fraction of the whole (e.g. of the units) that the parts
        so far, x included, hold."""
        x = np.asarray(x).ravel()
        end = self.size + x.size
        if self.buf is None or end > self.buf.size:
            want = max(end, int(end / max(done, 1e-9) * self.GROWTH) + 1)
            if self.buf is not None:
                want = max(want, 2 * self.buf.size)
            buf = np.empty(want, dtype=self.dtype)
            if self.size:
                buf[:self.size] = self.buf[:self.size]
            self.buf = buf
        self.buf[self.size:end] = x
        self.size = end

    def array(self) -> np.ndarray:
        return np.zeros(0, dtype=self.dtype) if self.buf is None else self.buf[:self.size]
