"""The misfit of eq. (B3) extrapolated synthetics for any (α, t'), fast (SPEC §5).

    s_α(t) = s0(t − Δ) + (α/ε)[s_ε(t − Δ) − s0(t − Δ)],   Δ = t' − t0,

re-measured on a PreparedEvent's frozen windows, tapers, observed segments and weights (W_c per
event, eq. 9). Processing (demean, taper, rotation, band-pass, resampling) is linear, and a delay
of the raw synthetic moves its processed trace by Δ on the same grid (PreparedEvent.process shifts
the start time, so the same samples are tapered and filtered), so s0 and D = s_ε − s0 are
processed ONCE, on the measurement axis extended by the largest shift. With β = α/ε and window
taper w, NZCC needs three inner products,
    ∫ w²u s_α = A0(Δ) + β AD(Δ),   ∫ w² s_α² = B00(Δ) + 2β B0D(Δ) + β² BDD(Δ),   ∫ w²u²,
and each A, B is a correlation in Δ: computed once per window at every integer lag within the
bounds (FFT), then read at any real Δ by 4-point (cubic Lagrange) interpolation in the lag — exact
at whole samples, and the functions of Δ are as smooth as the band-passed traces (error ~(ωΔt)⁴).
One evaluation costs O(number of windows). For another `misfit` parameter (pyadjoint measures),
`segments` shifts the window segments by a Fourier phase ramp and the PreparedEvent measures them.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from obspy import Stream

from seisflows_eara.measure.event import STATION_BLOCK, PreparedEvent
from seisflows_eara.processing import TimeAxis, filter_and_resample_many, prepare_synthetic
from seisflows_eara.weights import categorical_weights
from seisflows_eara.windows.ragged import blocks, gather

#: extra lags beyond the shift bounds: the 4-point interpolation reads one lag past each neighbour
INTERP_MARGIN = 2
#: samples per FFT batch (windows × FFT length): bounds the memory of the precomputation
BATCH_SAMPLES = 1 << 21


def _extended(prepared: PreparedEvent, by_station: dict, margin: int, stations: list[int],
              windows_only: bool = False) -> dict[tuple[int, str], tuple[int, np.ndarray]]:
    """processed_extended for the station indices `stations` (synthetics grouped by station), as
    (offset, array): the array holds samples offset … offset + its length of the extended axis.
    Without `windows_only` the offset is 0 and the array the whole axis. `windows_only`: only the
    samples from the first window start to the last window end (+ 2·margin) of each station and
    band — those the correlations read; the interpolation is pointwise, so they are the same."""
    p = prepared
    v = p.cfg.values
    streams, subs, spans = {}, {}, {}
    for k in stations:
        axis = p.axes[k]
        st = p.stations[k]
        syn = by_station.get((st.network.upper(), st.station.upper()))
        if not syn:
            raise ValueError(f"event {p.event.name}: no synthetics for station {st.code}")
        s = prepare_synthetic(syn, p.baz[k], v["taper_fraction"])
        n_ext = axis.npts + 2 * margin
        start = axis.starttime - margin * axis.dt
        t_a = max(tr.stats.starttime for tr in s)
        t_b = min(tr.stats.endtime for tr in s)
        lo = max(0, int(np.ceil((t_a - start) / axis.dt - 1e-9)))
        if start + lo * axis.dt < t_a:
            lo += 1
        hi = min(n_ext, int(np.floor((t_b - start) / axis.dt + 1e-9)) + 1)
        if start + (hi - 1) * axis.dt > t_b:
            hi -= 1
        streams[k], spans[k] = s, (lo, hi, n_ext)
        subs[k] = TimeAxis(start + lo * axis.dt, axis.dt, hi - lo, axis.reference)
    bands: dict[int, set[str]] = {}
    reach: dict[tuple[int, str], tuple[int, int]] = {}
    for d in p.windows:
        bands.setdefault(d.station, set()).add(d.window.band)
        a, b = reach.get((d.station, d.window.band), (d.i0, d.i1 + 2 * margin))
        reach[(d.station, d.window.band)] = (min(a, d.i0), max(b, d.i1 + 2 * margin))
    out = {}
    for band in ("body", "surface"):
        ks = [k for k in stations if band in bands.get(k, ())]
        cut = {}
        for k in ks:
            lo, hi, _ = spans[k]
            if windows_only:
                lo, hi = max(lo, reach[(k, band)][0]), min(hi, reach[(k, band)][1])
            cut[k] = (lo, hi)
        live = [k for k in ks if cut[k][1] > cut[k][0]]
        axes = [subs[k] if cut[k] == spans[k][:2] else
                TimeAxis(subs[k].starttime + (cut[k][0] - spans[k][0]) * subs[k].dt, subs[k].dt,
                         cut[k][1] - cut[k][0], subs[k].reference) for k in live]
        arrays = filter_and_resample_many([streams[k] for k in live], p.cfg.band(band), axes,
                                          v["filter_corners"])
        done = dict(zip(live, arrays))
        for k in ks:
            r0, r1 = (max(0, reach[(k, band)][0]), min(spans[k][2], reach[(k, band)][1])) \
                if windows_only else (0, spans[k][2])
            arr = np.zeros((3, r1 - r0))
            if k in done:
                arr[:, cut[k][0] - r0:cut[k][1] - r0] = done[k]
            out[(k, band)] = (r0, arr)
    return out


def _group(synthetics: Stream) -> dict[tuple[str, str], Stream]:
    out: dict[tuple[str, str], Stream] = {}
    for tr in synthetics:
        out.setdefault((tr.stats.network.upper(), tr.stats.station.upper()), Stream()).append(tr)
    return out


def _station_blocks(prepared: PreparedEvent) -> list[list[int]]:
    ks = sorted(prepared.axes)
    return [ks[i:i + STATION_BLOCK] for i in range(0, len(ks), STATION_BLOCK)]


def processed_extended(prepared: PreparedEvent, synthetics: Stream, margin: int
                       ) -> dict[tuple[int, str], np.ndarray]:
    """(station index, band) -> (3, npts + 2·margin) Z, R, T: the synthetics processed exactly as
    PreparedEvent.process does, on each measurement axis extended by `margin` samples at both
    ends (zero where the synthetic record does not reach). Many stations per filter call."""
    by_station = _group(synthetics)
    out = {}
    for ks in _station_blocks(prepared):
        out.update({key: arr for key, (_, arr) in _extended(prepared, by_station, margin,
                                                             ks).items()})
    return out


def lagrange4(frac: float) -> np.ndarray:
    """Weights of the 4-point (cubic) Lagrange interpolation at nodes −1, 0, 1, 2 for a point
    `frac` ∈ [0, 1) past node 0."""
    x = frac
    return np.array([-x * (x - 1.0) * (x - 2.0) / 6.0, (x + 1.0) * (x - 1.0) * (x - 2.0) / 2.0,
                     -(x + 1.0) * x * (x - 2.0) / 2.0, (x + 1.0) * x * (x - 1.0) / 6.0])


class ExtrapolatedMisfit:
    """χ(α, Δ) of the eq. (B3) synthetics on the frozen windows and weights of `prepared`.

    `s0`, `s_eps`: synthetics (N, E, Z) of the current and the trial source (same stations and
    sampling); `trial_step` ε; shifts Δ = t' − t0 allowed within `shift_bounds` (s). The processed
    traces are kept (memory: 2 × stations × bands × 3 × samples) only when `keep_traces` or when the
    `misfit` parameter is not NZCC: `segments` needs them."""

    def __init__(self, prepared: PreparedEvent, s0: Stream, s_eps: Stream, trial_step: float,
                 shift_bounds: tuple[float, float], keep_traces: bool = False):
        p = prepared
        self.prepared = p
        self.trial_step = float(trial_step)
        self.dt = p.dt
        self.shift_bounds = (float(shift_bounds[0]), float(shift_bounds[1]))
        self.margin = int(np.ceil(max(abs(b) for b in shift_bounds) / p.dt - 1e-9)) + INTERP_MARGIN
        m = self.margin
        self.nwin = len(p.windows)
        # eq. (7)-(9): W_c counted over this event's windows, whatever W_c the PreparedEvent holds
        # (the structure misfit sets all-event W_c on it)
        self.w = categorical_weights(p.categories, p.weights) * p.weights if self.nwin else np.zeros(0)
        self.lengths = p.lengths.copy()
        nlag = 2 * m + 1
        # A0, AD, B00, B0D, BDD per window and lag r = m − Δ/dt
        self.corr = np.zeros((5, self.nwin, nlag))
        self.uu = np.zeros(self.nwin)
        self._e0: list = [None] * self.nwin
        self._d: list = [None] * self.nwin
        self._ext0: dict = {}
        self._ext1: dict = {}
        if self.nwin == 0:
            return
        where: dict[tuple[int, str], list[int]] = {}
        for i, d in enumerate(p.windows):
            where.setdefault((d.station, d.window.band), []).append(i)
        keep = keep_traces or p.cfg["misfit"] != "nzcc"
        by0, by1 = _group(s0), _group(s_eps)
        ext0: dict = {}
        ext1: dict = {}
        for ks in _station_blocks(p):     # a block of stations at a time: bounded memory
            b0 = _extended(p, by0, m, ks, windows_only=not keep)
            b1 = _extended(p, by1, m, ks, windows_only=not keep)
            for key in b0:
                (off, a0), (_, a1) = b0[key], b1[key]
                for i in where.get(key, ()):
                    d = p.windows[i]
                    c = "ZRT".index(d.window.component)
                    e0 = a0[c, d.i0 - off:d.i1 + 2 * m - off].copy()
                    self._e0[i] = e0
                    self._d[i] = a1[c, d.i0 - off:d.i1 + 2 * m - off] - e0
            if keep:
                ext0.update({key: arr for key, (_, arr) in b0.items()})
                ext1.update({key: arr for key, (_, arr) in b1.items()})
        self._ext0, self._ext1 = ext0, ext1
        self._correlate()
        self._e0, self._d = [], []

    def _correlate(self) -> None:
        """Correlations of the kernels w²u and w² with s0, D, s0², s0·D, D² at lags 0 … 2m, and
        ∫ w²u² (batch by batch: no array of all windows at full length is formed)."""
        p = self.prepared
        nlag = 2 * self.margin + 1
        width = lambda n: sfft.next_fast_len(n + 2 * self.margin, real=True)   # noqa: E731
        for idx, nfft in blocks(self.lengths, width, BATCH_SAMPLES):
            n = idx.size
            lmax = int(self.lengths[idx].max())
            u = gather(p.U, p.offsets, idx, lmax)
            w2 = gather(p.taper, p.offsets, idx, lmax) ** 2
            g = w2 * u
            self.uu[idx] = np.sum(g * u, axis=1)
            e0 = np.zeros((n, nfft))
            dd = np.zeros((n, nfft))
            for row, i in enumerate(idx):
                e0[row, :self._e0[i].size] = self._e0[i]
                dd[row, :self._d[i].size] = self._d[i]
            k1 = np.conj(sfft.rfft(g, nfft, axis=1))
            k2 = np.conj(sfft.rfft(w2, nfft, axis=1))
            for q, (kern, sig) in enumerate(((k1, e0), (k1, dd), (k2, e0 * e0), (k2, e0 * dd),
                                             (k2, dd * dd))):
                self.corr[q, idx] = sfft.irfft(kern * sfft.rfft(sig, nfft, axis=1), nfft,
                                               axis=1)[:, :nlag]

    def _position(self, shift: float) -> tuple[int, np.ndarray]:
        lo, hi = self.shift_bounds
        if not lo - 1e-9 <= shift <= hi + 1e-9:
            raise ValueError(f"origin-time change {shift} s outside the bounds [{lo}, {hi}] s")
        x = self.margin - shift / self.dt
        i = int(np.floor(x))
        return i, lagrange4(x - i)

    def parts(self, shift: float) -> np.ndarray:
        """(5, nwin) A0, AD, B00, B0D, BDD at origin-time change `shift` (s)."""
        i, wts = self._position(shift)
        return self.corr[:, :, i - 1:i + 3] @ wts

    def window_misfits(self, alpha: float, shift: float) -> np.ndarray:
        """χ_w = 1 − NZCC per window for step α and origin-time change Δ (NaN: zero energy)."""
        a0, ad, b00, b0d, bdd = self.parts(shift)
        beta = alpha / self.trial_step
        a = a0 + beta * ad
        b = b00 + 2.0 * beta * b0d + beta * beta * bdd
        ok = (b > 0) & (self.uu > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ok, 1.0 - a / np.sqrt(np.where(ok, b * self.uu, 1.0)), np.nan)

    def __call__(self, alpha: float, shift: float) -> float:
        """Σ W_c W_es W_w χ_w (eq. 7, W_c per event: eq. 9) of the extrapolated synthetics; any
        `misfit` parameter."""
        if self.nwin == 0:
            return 0.0
        if self.prepared.cfg["misfit"] != "nzcc":
            chi, _ = self.prepared.other_misfit(self.segments(alpha, shift))
        else:
            chi = self.window_misfits(alpha, shift)
        return float(np.sum(np.where(self.w > 0, self.w * np.nan_to_num(chi, nan=0.0), 0.0)))

    def segments(self, alpha: float, shift: float) -> np.ndarray:
        """Flat window segments (PreparedEvent layout) of s_α(t) (eq. B3): the processed traces
        on the extended axes delayed by a Fourier phase ramp (they are tapered to zero at the
        record ends, so the ramp does not wrap), then cut to the windows. The general path, for
        misfits other than NZCC and as an independent check of the interpolated inner products."""
        lo, hi = self.shift_bounds
        if not lo - 1e-9 <= shift <= hi + 1e-9:
            raise ValueError(f"origin-time change {shift} s outside the bounds [{lo}, {hi}] s")
        if self.nwin and not self._ext0:
            raise RuntimeError("segments() needs ExtrapolatedMisfit(..., keep_traces=True)")
        beta = alpha / self.trial_step
        m = self.margin
        p = self.prepared
        out = np.zeros_like(p.U)
        shifted = {}
        for key, e0 in self._ext0.items():
            x = e0 + beta * (self._ext1[key] - e0)
            nfft = sfft.next_fast_len(x.shape[1] + m, real=True)
            ramp = np.exp(-2j * np.pi * sfft.rfftfreq(nfft, self.dt) * shift)
            shifted[key] = sfft.irfft(sfft.rfft(x, nfft, axis=1) * ramp, nfft, axis=1)
        for i, d in enumerate(p.windows):
            y = shifted[(d.station, d.window.band)]["ZRT".index(d.window.component)]
            out[p.offsets[i]:p.offsets[i + 1]] = y[d.i0 + m:d.i1 + m]
        return out
