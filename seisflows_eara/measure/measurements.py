"""Per-window measurements besides NZCC: maximum normalized cross-correlation with its lag, and SNR
(paper eq. A5). Vectorized over windows with batched FFTs."""
from __future__ import annotations

import numpy as np
from scipy import fft

from seisflows_eara.windows import ragged
from seisflows_eara.windows.ragged import gather, offsets_from_lengths, segment_sums


def cc_and_lag(s: np.ndarray, u: np.ndarray, lengths: np.ndarray | None = None,
               taper: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Max over lags of Σ u[n+k] s[n] / sqrt(Σs² Σu²) and its lag k in samples (sub-sample by a
    parabola through the peak). Positive lag: u (observed) arrives later than s (synthetic).
    NaN where either has zero energy.

    Layouts: rows of 2-D s, u are windows, zero-padded on the right beyond `lengths` (default: the
    full row); or 1-D s, u hold windows of `lengths` end to end (seisflows_eara.windows.ragged).
    Either way window i is correlated over its own lags −(m−1) … m−1 (m its length), exactly as
    if measured alone. `taper` (same layout) multiplies both s and u first.
    Flat windows are measured in batches of equal FFT length, next_fast_len(2m), each window's
    energies summed over its own samples: a window's numbers do not depend on which other
    windows are measured with it (stations split among processes give the serial result)."""
    if s.ndim == 1:
        if lengths is None:
            raise ValueError("cc_and_lag: flat (1-D) windows need their lengths")
        lengths = np.asarray(lengths, dtype=np.int64)
        offsets = offsets_from_lengths(lengths)
        if taper is not None:
            s, u = s * taper, u * taper
        norm = np.sqrt(segment_sums(s * s, offsets) * segment_sums(u * u, offsets))
        cc, lag = np.full(lengths.size, np.nan), np.full(lengths.size, np.nan)
        nfft = {int(m): fft.next_fast_len(2 * int(m), real=True) for m in np.unique(lengths)}
        per_window = np.array([nfft[int(m)] for m in lengths], dtype=np.int64)
        for size in np.unique(per_window):
            group = np.flatnonzero(per_window == size)
            rows = max(1, ragged.BLOCK_SAMPLES // int(size))
            for b in range(0, group.size, rows):
                idx = group[b:b + rows]
                width = int(lengths[idx].max())
                cc[idx], lag[idx] = _cc_rows(gather(s, offsets, idx, width),
                                             gather(u, offsets, idx, width), lengths[idx],
                                             int(size), norm[idx])
        return cc, lag
    if taper is not None:
        s, u = s * taper, u * taper
    n = s.shape[-1]
    m = np.full(s.shape[0], n) if lengths is None else np.asarray(lengths, dtype=np.int64)
    norm = np.sqrt(np.sum(s * s, axis=-1) * np.sum(u * u, axis=-1))
    return _cc_rows(s, u, m, fft.next_fast_len(2 * n, real=True), norm)


def _cc_rows(s: np.ndarray, u: np.ndarray, m: np.ndarray, nfft: int, norm: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """cc_and_lag of rows (windows of lengths m, zero-padded to the row width n) with the FFT
    length nfft (>= 2n - 1: no wrap-around) and the energies' product sqrt(Σs² Σu²) given."""
    n = s.shape[-1]
    c = fft.irfft(fft.rfft(u, nfft, axis=-1) * np.conj(fft.rfft(s, nfft, axis=-1)), nfft, axis=-1)
    c = np.concatenate([c[..., nfft - n + 1:], c[..., :n]], axis=-1)   # lags -(n-1) .. n-1
    # each window's own lags: index n-1 is lag 0; lags beyond ±(m-1) only see the padding
    kmin, kmax = n - m, n + m - 2
    pos = np.arange(2 * n - 1)
    c = np.where((pos >= kmin[:, None]) & (pos <= kmax[:, None]), c, -np.inf)
    k = np.argmax(c, axis=-1)
    rows = np.arange(c.shape[0])
    peak = c[rows, k]
    # parabolic refinement where both neighbours are lags of the window
    inner = (k > kmin) & (k < kmax)
    km, kp = np.where(inner, k - 1, k), np.where(inner, k + 1, k)
    y0, y1, y2 = c[rows, km], peak, c[rows, kp]
    den = y0 - 2 * y1 + y2
    inner &= den < 0
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(inner, 0.5 * (y0 - y2) / np.where(inner, den, 1.0), 0.0)
        cc = np.where(norm > 0, (y1 - 0.25 * (y0 - y2) * frac) / norm, np.nan)
    lag = np.where(norm > 0, k - (n - 1) + frac, np.nan)
    return cc, lag


def snr_db(trace: np.ndarray, noise: tuple[int, int] | None, signal: tuple[int, int]) -> float:
    """10 log10(mean square of the signal window / mean square of the noise window) (eq. A5).
    +inf when the noise is exactly zero, NaN when there is no noise window."""
    if noise is None:
        return float("nan")
    n0, n1 = max(0, noise[0]), min(trace.size, noise[1])
    s0, s1 = max(0, signal[0]), min(trace.size, signal[1])
    if n1 - n0 < 2 or s1 <= s0:
        return float("nan")
    pn = float(np.mean(trace[n0:n1] ** 2))
    ps = float(np.mean(trace[s0:s1] ** 2))
    if pn == 0:
        return float("inf")
    if ps == 0:
        return float("-inf")
    return 10.0 * np.log10(ps / pn)
