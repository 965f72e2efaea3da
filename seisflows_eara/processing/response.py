"""Instrument response removal at FFT speed (SPEC §2; issue 18 item 2).

The arithmetic of obspy's Trace.remove_response (obspy/core/trace.py, obspy/signal/invsim.py):
demean, SAC cosine taper (5 %), zero-pad to obspy's nfft (`_npts2nfft`), rfft, multiply by the
frequency-domain cosine pre-filter (`cosine_sac_taper`) and by the inverted response with the
water level of `invert_spectrum` (|R| raised to max|R|·10^(-wl/20), phase kept), Nyquist bin set
to its modulus, irfft, first npts samples. Two differences in how, not in what:

* traces of equal (npts, dt) are transformed together, one batched rfft/irfft per block;
* the response is evaluated by obspy's evalresp (Response.get_evalresp_response_for_frequencies)
  only where the pre-filter is non-zero — elsewhere obspy multiplies the spectrum by 0 — once per
  (response content, nfft, dt, pre-filter, water level, output), cached. The water level needs
  max|R| over the whole rfft grid (`_max_abs_response`: every 64th bin, then bin by bin around
  the coarse peaks). Without a pre-filter the whole grid is evaluated, as obspy does.
Equal to obspy's per-trace result to rounding (tests/test_measure_response.py).
"""
from __future__ import annotations

import hashlib
import pickle
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.fft
from obspy import Inventory, Trace
from obspy.core.inventory import PolynomialResponseStage, Response
from obspy.signal.invsim import cosine_sac_taper, cosine_taper, invert_spectrum
from obspy.signal.util import _npts2nfft

#: samples (rows × nfft) per batched FFT: bounds the complex temporaries (~32 MB)
BLOCK_SAMPLES = 1 << 21
#: coarse stride (rfft bins) of the search for max|R| (the water level's reference)
MAX_STRIDE = 64
#: cached inverse filters kept (each holds only the pre-filtered bins)
CACHE_SIZE = 4096

_CACHE: "OrderedDict[tuple, tuple[int, np.ndarray]]" = OrderedDict()


def response_key(response: Response) -> str:
    """Digest of a Response's content: channels with identical responses share one evaluation."""
    return hashlib.sha1(pickle.dumps(response, protocol=4)).hexdigest()


@lru_cache(maxsize=8)
def _freqs(dt: float, nfft: int) -> np.ndarray:
    """The frequencies of obspy's get_evalresp_response grid (= numpy.fft.rfftfreq); read-only,
    one array per (dt, nfft)."""
    f = np.linspace(0, 0.5 / dt, nfft // 2 + 1)
    f.setflags(write=False)
    return f


def _prefilter_key(pre_filt: Sequence[float] | None) -> tuple[float, ...] | None:
    """The pre-filter corners as a hashable key (cache keys of the inverse filter and band)."""
    return None if pre_filt is None else tuple(map(float, pre_filt))


@lru_cache(maxsize=64)
def _prefilter_band(dt: float, nfft: int, pre_filt: tuple[float, ...] | None
                    ) -> tuple[int, int, np.ndarray]:
    """(lo, hi, taper[lo:hi]): the rfft bins obspy's cosine pre-filter does not zero and its
    values there (all bins, ones, without a pre-filter); once per (dt, nfft, pre-filter)."""
    freqs = _freqs(dt, nfft)
    if pre_filt is None:
        return 0, freqs.size, np.ones(freqs.size)
    taper = cosine_sac_taper(freqs, flimit=pre_filt)
    nz = np.flatnonzero(taper)
    lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
    band = taper[lo:hi].copy()
    band.setflags(write=False)
    return lo, hi, band


def inverse_filter(response: Response, dt: float, nfft: int, output: str,
                   pre_filt: Sequence[float] | None, water_level: float | None,
                   key: str | None = None) -> tuple[int, np.ndarray]:
    """(lo, H): the spectrum multiplier obspy's remove_response applies, pre-filter × inverted
    response (water level), on rfft bins lo .. lo + H.size - 1 (zero elsewhere). Cached."""
    key = (key or response_key(response), int(nfft), float(dt), output,
           _prefilter_key(pre_filt), water_level)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    freqs = _freqs(dt, nfft)
    lo, hi, taper = _prefilter_band(float(dt), int(nfft), key[4])
    out = None
    if pre_filt is not None and hi > lo:
        if water_level is None:
            r = response.get_evalresp_response_for_frequencies(
                np.ascontiguousarray(freqs[lo:hi]), output=output)
            if lo == 0:
                r[0] = 0.0      # obspy: the zero-frequency bin is not inverted
            out = _invert_plain(r)
        else:
            peak, r = _max_abs_response(response, freqs, output, (lo, hi))
            out = _invert_with_level(r, peak * 10.0 ** (-water_level / 20.0))
    if out is None:                 # obspy's own path, on the whole grid
        r, _ = response.get_evalresp_response(dt, nfft, output=output)
        if water_level is None:
            r[0] = 0.0
            r[1:] = 1.0 / r[1:]
        else:
            invert_spectrum(r, water_level)
        out = r[lo:hi]
    h = (lo, out * taper)
    _CACHE[key] = h
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return h


def _max_abs_response(response: Response, freqs: np.ndarray, output: str,
                      band: tuple[int, int] = (0, 0)) -> tuple[float, np.ndarray]:
    """(max |R| over the rfft grid `freqs` (obspy's `waterlevel` reference), R on the bins
    band[0]..band[1]-1), for a response that varies by < 10 % over MAX_STRIDE bins (|R| changes
    by a factor ≥ 0.9^(d / MAX_STRIDE) over d bins): every MAX_STRIDE-th bin, the last and the
    band's bins in one evalresp call (evalresp evaluates each frequency on its own); then, at
    strides MAX_STRIDE / 8 and 1, the bins within the previous stride of every bin that can still
    be within that factor of the peak (≥ 0.9^(stride / MAX_STRIDE) of the best so far) — the peak
    is among them, and far fewer bins are evaluated than bin by bin around the coarse peaks."""
    n = freqs.size
    value = np.full(n, -1.0)

    def evaluate(idx: np.ndarray) -> np.ndarray:
        idx = idx[value[idx] < 0]
        r = np.zeros(0, dtype=complex)
        if idx.size:
            r = response.get_evalresp_response_for_frequencies(
                np.ascontiguousarray(freqs[idx]), output=output)
            value[idx] = np.abs(r)
        return r
    lo, hi = band
    first = np.unique(np.r_[np.arange(0, n, MAX_STRIDE), n - 1, np.arange(lo, hi)])
    r = evaluate(first)
    in_band = r[np.searchsorted(first, np.arange(lo, hi))]
    stride = MAX_STRIDE
    for finer in (max(1, MAX_STRIDE // 8), 1):
        if finer >= stride:
            continue
        best = value.max()
        cand = np.flatnonzero(value >= best * 0.9 ** (finer / MAX_STRIDE))
        # every `finer`-th bin within `stride` of a candidate
        offs = np.arange(-stride, stride + 1, finer)
        idx = np.unique(np.clip((cand[:, None] + offs[None, :]).ravel(), 0, n - 1))
        evaluate(idx)
        stride = finer
    return float(value.max()), in_band


def _invert_with_level(r: np.ndarray, swamp: float) -> np.ndarray:
    """obspy.signal.invsim.invert_spectrum with its level `swamp` given: |R| < swamp raised to
    swamp (phase kept), then 1/R; zero where R = 0."""
    r = r.copy()
    mag = np.abs(r)
    low = (mag < swamp) & (mag > 0.0)
    r[low] *= swamp / mag[low]
    out = np.zeros_like(r)
    nz = np.abs(r) > 0.0
    out[nz] = 1.0 / r[nz]
    return out


def _invert_plain(r: np.ndarray) -> np.ndarray:
    """obspy's inversion without water level: 1/R, the zero-frequency bin left at 0."""
    out = np.zeros_like(r)
    nz = r != 0
    out[nz] = 1.0 / r[nz]
    return out


def decimation_factor(rate: float, target_rate: float | None) -> int:
    """The integer q that brings `rate` down to no less than `target_rate` (1: none)."""
    if not target_rate or rate <= target_rate:
        return 1
    return max(1, int(np.floor(rate / target_rate + 1e-9)))


def remove_response_traces(traces: Sequence[Trace], inventory: Inventory, output: str = "DISP",
                           pre_filt: Sequence[float] | None = None,
                           water_level: float | None = 60.0, taper_fraction: float = 0.05,
                           max_samples: int | None = None,
                           target_rate: float | None = None) -> None:
    """Trace.remove_response(inventory, output, water_level, pre_filt) of every trace, in place,
    batched (module doc). Raises ValueError naming the trace when its response is missing.
    Polynomial responses are left to obspy's own method.

    `target_rate`: a trace whose pre-filter leaves nothing above target_rate / 2 comes back
    decimated by q = decimation_factor(rate, target_rate) — every q-th sample of obspy's result,
    computed by the inverse FFT of the bins below the new Nyquist frequency (all others are 0:
    exact, no aliasing, q times fewer samples to transform back and to process after)."""
    max_samples = BLOCK_SAMPLES if max_samples is None else max_samples
    groups: dict[tuple[int, float], list[tuple[Trace, Response]]] = {}
    for tr in traces:
        try:
            resp = inventory.get_response(tr.id, tr.stats.starttime)
        except Exception as e:
            raise ValueError(f"{tr.id}: no matching response information ({e})") from e
        if (not resp.response_stages and resp.instrument_polynomial) or \
                isinstance(resp.response_stages[0], PolynomialResponseStage):
            tr.remove_response(inventory=inventory, output=output, pre_filt=pre_filt,
                               water_level=water_level, taper_fraction=taper_fraction)
            continue
        groups.setdefault((tr.stats.npts, tr.stats.delta), []).append((tr, resp))
    for (npts, dt), members in groups.items():
        nfft = int(_npts2nfft(npts))
        q = decimation_factor(1.0 / dt, target_rate)
        nbin = nfft // 2 + 1
        if q > 1:
            hi = _passband_end(dt, nfft, pre_filt)
            if pre_filt is None or hi > nfft // (2 * q) or nfft % q:
                q = 1       # not band-limited below the new Nyquist, or not an exact q-th
            else:
                nbin = nfft // (2 * q) + 1
        window = cosine_taper(npts, taper_fraction, sactaper=True, halfcosine=False)
        step = max(1, max_samples // max(nfft, 1))
        for b in range(0, len(members), step):
            chunk = members[b:b + step]
            x = np.zeros((len(chunk), nfft))      # zero-padded to nfft here: rfft copies nothing
            for i, (tr, _) in enumerate(chunk):
                x[i, :npts] = tr.data
            body = x[:, :npts]
            body -= body.mean(axis=1, keepdims=True)
            body *= window
            spec = scipy.fft.rfft(x, axis=-1, overwrite_x=True)
            del x, body
            y = np.zeros((len(chunk), nbin), dtype=spec.dtype)
            for i, (tr, resp) in enumerate(chunk):
                lo, h = inverse_filter(resp, dt, nfft, output, pre_filt, water_level)
                y[i, lo:lo + h.size] = spec[i, lo:lo + h.size] * h
            del spec
            if q == 1:
                y[:, -1] = np.abs(y[:, -1])
                data = scipy.fft.irfft(y, n=nfft, axis=-1)[:, :npts]
            else:       # x[::q] of the length-nfft inverse = the inverse of its low bins on
                # nfft / q points, times 1/q (numpy's irfft scales by 1/n)
                data = scipy.fft.irfft(y, n=nfft // q, axis=-1)[:, :-(-npts // q)] / q
            for i, (tr, _) in enumerate(chunk):
                tr.data = np.ascontiguousarray(data[i])
                if q > 1:
                    tr.stats.delta = dt * q


def _passband_end(dt: float, nfft: int, pre_filt: Sequence[float] | None) -> int:
    """One past the last rfft bin the cosine pre-filter does not zero (all bins without one)."""
    return _prefilter_band(float(dt), int(nfft), _prefilter_key(pre_filt))[1]
