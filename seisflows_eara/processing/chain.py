"""The processing chain; each function documents the step of SPEC §2 it implements."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from obspy import Inventory, Stream, Trace, UTCDateTime
from obspy.signal.headers import clibsignal
from obspy.signal.rotate import rotate_ne_rt
from scipy.signal import detrend

from seisflows_eara.processing.bandpass import zerophase_bandpass
from seisflows_eara.processing.response import remove_response_traces

#: samples per batched filter call (rows × npts, 16 MB of float64): bounds the temporaries
BLOCK_SAMPLES = 1 << 21


@dataclass(frozen=True)
class Band:
    """A period band in s, e.g. body waves of stage 1: Band(10, 40, 'body')."""
    min_period: float
    max_period: float
    name: str = ""

    @property
    def freqs(self) -> tuple[float, float]:
        return 1.0 / self.max_period, 1.0 / self.min_period


@dataclass(frozen=True)
class TimeAxis:
    """A regular axis: starttime (UTC), sampling interval dt (s), npts; `t0` is the time of the
    first sample relative to the event's reference (centroid) time."""
    starttime: UTCDateTime
    dt: float
    npts: int
    reference: UTCDateTime

    @property
    def t0(self) -> float:
        return float(self.starttime - self.reference)

    @property
    def times(self) -> np.ndarray:
        return self.t0 + self.dt * np.arange(self.npts)


def response_prefilter(bands: list[Band], nyquist: float) -> tuple[float, float, float, float]:
    """Cosine pre-filter for response removal that passes every band of the stage untouched."""
    fmin = min(b.freqs[0] for b in bands)
    fmax = max(b.freqs[1] for b in bands)
    f4 = min(2.0 * fmax, 0.9 * nyquist)
    f3 = min(1.25 * fmax, 0.8 * f4)
    return (0.5 * fmin, 0.8 * fmin, f3, f4)


def read_misorientation_table(path: str | None) -> dict[str, float]:
    """'NET.STA angle_deg' per line: the angle (clockwise from N) at which the sensor's N channel
    really points. Empty dict when `path` is None."""
    if not path:
        return {}
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split("#")[0].split()
            if not parts:
                continue
            try:
                out[parts[0]] = float(parts[1])
            except (IndexError, ValueError) as e:
                raise ValueError(f"{os.fspath(path)}, line {n}: expected 'NET.STA angle_deg'") from e
    return out


def correct_misorientation(st: Stream, angle_deg: float) -> None:
    """Rotate recorded n, e (sensor N at azimuth θ) back to geographic N, E in place:
    N = n cos θ − e sin θ, E = n sin θ + e cos θ."""
    if not angle_deg:
        return
    n, e = st.select(component="N")[0], st.select(component="E")[0]
    th = np.radians(angle_deg)
    nd, ed = n.data.astype(float), e.data.astype(float)
    n.data, e.data = nd * np.cos(th) - ed * np.sin(th), nd * np.sin(th) + ed * np.cos(th)


def prepare_observed(st: Stream, inventory: Inventory, back_azimuth: float,
                     prefilter: tuple[float, float, float, float], taper_fraction: float,
                     water_level: float, misorientation_deg: float = 0.0,
                     target_rate: float | None = None) -> Stream:
    """Raw observed traces (counts) -> displacement Z, R, T (m), unfiltered beyond the pre-filter.
    Demean and linear detrend (`detrend_linear`, Trace.detrend's least-squares line in closed
    form), Trace.taper's cosine taper, then the response removed by processing.response (obspy's
    Trace.remove_response arithmetic, batched, the response evaluated only where the pre-filter
    passes). `target_rate`: traces come back decimated towards it where the pre-filter makes
    that exact (response.remove_response_traces), and are rotated and filtered at that rate.

    Raises ValueError naming the station when a component or the response is missing.
    """
    st = st.copy()
    st.merge(fill_value=0)
    code = f"{st[0].stats.network}.{st[0].stats.station}" if st else "?"
    for tr in st:
        x = detrend_linear(tr.data.astype(np.float64))
        x *= _taper_window(x.size, taper_fraction)
        tr.data = x
    try:
        remove_response_traces(list(st), inventory, output="DISP", pre_filt=prefilter,
                               water_level=water_level, target_rate=target_rate)
    except Exception as e:  # obspy raises ValueError or ObsPyException for missing responses
        raise ValueError(f"{code}: instrument response unavailable ({e})") from e
    try:
        st.rotate("->ZNE", inventory=inventory)
    except Exception as e:
        raise ValueError(f"{code}: cannot rotate to ZNE ({e})") from e
    if len(st) != 3 or {tr.stats.component for tr in st} != {"Z", "N", "E"}:
        raise ValueError(f"{code}: needs three components Z, N, E; has "
                         f"{sorted(tr.stats.channel for tr in st)}")
    correct_misorientation(st, misorientation_deg)
    st.rotate("NE->RT", back_azimuth=back_azimuth)
    return st


def detrend_linear(x: np.ndarray) -> np.ndarray:
    """x minus its least-squares line (what Trace.detrend("demean") then ("linear") leave, by the
    closed-form slope instead of scipy's lstsq: the same to rounding), as a new array."""
    n = x.size
    if n < 2:
        return x - x.mean() if n else x.copy()
    t = np.arange(n, dtype=np.float64)
    t -= 0.5 * (n - 1)
    xm = x.mean()
    slope = np.dot(t, x - xm) / np.dot(t, t)
    return x - xm - slope * t


def _taper_window(npts: int, taper_fraction: float) -> np.ndarray:
    """The window Trace.taper(taper_fraction, type="cosine") multiplies a trace of npts by
    (obspy's own, taken from a trace of ones: the lookup obspy makes per call is done once)."""
    key = (int(npts), float(taper_fraction))
    if key not in _TAPERS:
        _TAPERS[key] = Trace(np.ones(npts)).taper(taper_fraction, type="cosine").data
    return _TAPERS[key]


_TAPERS: dict[tuple[int, float], np.ndarray] = {}


def _to_zrt(st: Stream, data: list[np.ndarray], back_azimuth: float, code: str,
            time_shift: float = 0.0) -> Stream:
    """New Z, R, T traces from the Z, N, E traces of `st` with samples `data` (same order), by
    obspy.signal.rotate.rotate_ne_rt (what Stream.rotate("NE->RT") calls); start times moved by
    `time_shift`. N and E must share their time span."""
    comps = [tr.stats.channel[-1] for tr in st]
    n, e = st[comps.index("N")].stats, st[comps.index("E")].stats
    if n.npts != e.npts or n.sampling_rate != e.sampling_rate or \
            abs(n.starttime - e.starttime) > 0.5 * n.delta:
        raise ValueError(f"{code}: N and E components do not cover the same time span")
    rt = dict(zip("RT", rotate_ne_rt(data[comps.index("N")], data[comps.index("E")],
                                     back_azimuth)))
    out = Stream()
    for tr, c, x in zip(st, comps, data):
        new = {"Z": "Z", "N": "R", "E": "T"}[c]
        out.append(Trace(x if c == "Z" else rt[new], header=dict(
            network=tr.stats.network, station=tr.stats.station, location=tr.stats.location,
            channel=tr.stats.channel[:-1] + new, delta=tr.stats.delta,
            starttime=tr.stats.starttime + time_shift)))
    return out


def prepare_synthetic(st: Stream, back_azimuth: float, taper_fraction: float,
                      time_shift: float = 0.0) -> Stream:
    """SPECFEM synthetics (displacement Z, N, E) -> Z, R, T: demean (scipy.signal.detrend, what
    Trace.detrend("demean") calls), Trace.taper's cosine taper, NE -> RT; optionally delayed by
    `time_shift` s (start times moved). New traces in the input's float type (as the Stream
    methods keep it); the input is not changed."""
    code = f"{st[0].stats.network}.{st[0].stats.station}" if st else "?"
    if len(st) != 3 or {tr.stats.channel[-1] for tr in st} != {"Z", "N", "E"}:
        raise ValueError(f"{code}: synthetics need components Z, N, E; have "
                         f"{sorted(tr.stats.channel for tr in st)}")
    data = []
    for tr in st:
        x = detrend(tr.data, type="constant")
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        x *= _taper_window(x.size, taper_fraction)
        data.append(x)
    return _to_zrt(st, data, back_azimuth, code, time_shift)


def rotate_to_zrt(st: Stream, back_azimuth: float) -> Stream:
    """Displacement in Z, N, E (or already Z, R, T) -> Z, R, T, as new traces (Stream.rotate's
    arithmetic). Raises ValueError naming the station unless the stream has exactly those three
    components."""
    code = f"{st[0].stats.network}.{st[0].stats.station}" if st else "?"
    comps = {tr.stats.component for tr in st}
    if len(st) == 3 and comps == {"Z", "N", "E"}:
        return _to_zrt(st, [tr.data.copy() for tr in st], back_azimuth, code)
    if len(st) == 3 and comps == {"Z", "R", "T"}:
        return Stream([Trace(tr.data.copy(), header=tr.stats.copy()) for tr in st])
    raise ValueError(f"{code}: needs three components Z, N, E (or Z, R, T); has "
                     f"{sorted(tr.stats.channel for tr in st)}")


def common_axis(obs: Stream, syn: Stream, sampling_rate: float, reference: UTCDateTime,
                within: tuple[UTCDateTime, UTCDateTime] | None = None) -> TimeAxis:
    """The synthetics' time grid at `sampling_rate`, over the span both records cover (and, when
    given, inside `within`: the times the measurement can use)."""
    s0, s1 = syn[0].stats.starttime, syn[0].stats.endtime
    o0 = max(tr.stats.starttime for tr in obs)
    o1 = min(tr.stats.endtime for tr in obs)
    if within is not None:
        o0, o1 = max(o0, within[0]), min(o1, within[1])
    dt = 1.0 / sampling_rate
    k0 = max(0, int(np.ceil((o0 - s0) / dt - 1e-9)))
    start = s0 + k0 * dt
    end = min(s1, o1)
    npts = int(np.floor((end - start) / dt + 1e-9)) + 1
    if npts < 2:
        code = f"{syn[0].stats.network}.{syn[0].stats.station}"
        raise ValueError(f"{code}: observed and synthetic records do not overlap")
    return TimeAxis(start, dt, npts, reference)


def _component(st: Stream, comp: str) -> Trace:
    for tr in st:
        if tr.stats.component == comp:
            return tr
    code = f"{st[0].stats.network}.{st[0].stats.station}" if st else "?"
    raise ValueError(f"{code}: no {comp} component among {sorted(tr.id for tr in st)}")


def weighted_average_slopes_rows(data: np.ndarray, old_starts: np.ndarray, old_dt: float,
                                 new_starts: np.ndarray, new_dt: float, new_npts: np.ndarray,
                                 names: Sequence[str] = ()) -> list[np.ndarray]:
    """obspy.signal.interpolation.weighted_average_slopes (Wiggins 1976; Trace.interpolate's
    default) of the rows of `data` (n, npts) at once: row r, starting at old_starts[r] (timestamp,
    s), onto new_npts[r] samples from new_starts[r] at new_dt. The same slopes (weighted average of
    the adjacent linear slopes, zero at a sign change), the same cubic Hermite formula and
    arithmetic, and obspy's check that the new axis lies inside the record (ValueError naming
    `names[r]`); the slopes of the whole block in one vectorized pass, the Hermite evaluation by
    obspy's own C routine row by row (obspy's Python overhead per trace was 4 s of the 2000-station
    source line search); equal to obspy's (tests/test_measure.py). One deliberate difference: a
    constant row interpolates to that constant (obspy returns NaN: 0/0 weights)."""
    n, npts = data.shape
    new_npts = np.asarray(new_npts, dtype=np.int64)
    new_ends = new_starts + new_dt * (new_npts - 1)
    bad = np.flatnonzero((new_npts > 0) & ((old_starts > new_starts) |
                                           (old_starts + old_dt * (npts - 1) < new_ends)))
    if bad.size:
        r = int(bad[0])
        raise ValueError(f"{names[r] if len(names) > r else f'row {r}'}: the new axis "
                         f"{new_starts[r]:.3f} + {new_npts[r]} x {new_dt} s is not inside the "
                         "record; no extrapolation can be performed")
    data = np.ascontiguousarray(data, dtype=np.float64)
    # the slopes are local (two neighbours): computed only over the samples the new axes reach,
    # 2 beyond each end (a long raw record, a shorter synthetic); the same numbers there
    live = new_npts > 0
    lo, hi = 0, npts
    if live.any():
        lo = int(max(0, np.floor(np.min((new_starts - old_starts)[live] / old_dt)) - 2))
        hi = int(min(npts, np.ceil(np.max((new_ends - old_starts)[live] / old_dt)) + 3))
        if hi - lo < 4:
            lo, hi = 0, npts
    # obspy's arithmetic, operation by operation, in place (the block is memory-bound: every
    # pass over it counts): m = diff / dt; w = 1 / clip(|m|, eps, max|m|) (a constant row,
    # max|m| = 0, takes weights 1 instead of 1/0); slope = (w0 m0 + w1 m1) / (w0 + w1), zero
    # where the sign of m changes (diff(sign(m)) != 0), the end slopes m
    eps = np.spacing(1)
    m = np.diff(data[:, lo:hi], axis=1)
    m /= old_dt
    w = np.abs(m)
    top = np.maximum(w.max(axis=1, keepdims=True), eps)
    np.maximum(w, eps, out=w)
    np.minimum(w, top, out=w)
    np.divide(1.0, w, out=w)
    slope = np.zeros_like(data) if (lo, hi) != (0, npts) else np.empty_like(data)
    part = slope[:, lo:hi]
    part[:, 0] = m[:, 0]
    part[:, -1] = m[:, -1]
    inner = part[:, 1:-1]
    np.multiply(w[:, :-1], m[:, :-1], out=inner)
    tmp = w[:, 1:] * m[:, 1:]
    inner += tmp
    np.add(w[:, :-1], w[:, 1:], out=tmp)
    inner /= tmp
    del tmp
    np.sign(m, out=w)
    inner[w[:, 1:] != w[:, :-1]] = 0.0
    del m, w
    out = []
    base = np.arange(int(new_npts.max(initial=0)), dtype=np.float64)
    steps = (new_ends - new_starts) / np.maximum(new_npts - 1, 1)
    for r in range(n):      # obspy's own C Hermite routine, row by row (no Python per sample)
        k = int(new_npts[r])
        x = base[:k] * steps[r] + new_starts[r]     # numpy.linspace(start, end, k), as obspy
        if k > 1:
            x[-1] = new_ends[r]
        y = np.empty(k)
        if k:
            clibsignal.hermite_interpolation(data[r], slope[r], x, y, npts, k, old_dt,
                                             old_starts[r])
        out.append(y)
    return out


def bandpass_stream(st: Stream, band: Band, corners: int) -> Stream:
    """Band-passed copies of the traces of `st` (the filter of `filter_and_resample_many`:
    obspy.signal.filter.bandpass, zero phase, rows of equal rate and length together)."""
    out = Stream()
    groups: dict[tuple[float, int], list[Trace]] = {}
    for tr in st:
        groups.setdefault((tr.stats.sampling_rate, tr.stats.npts), []).append(tr)
    done = {}
    for (rate, _), trs in groups.items():
        data = zerophase_bandpass(np.stack([np.require(tr.data, dtype=np.float64) for tr in trs]),
                                  band.freqs[0], band.freqs[1], df=rate, corners=corners)
        for tr, x in zip(trs, data):
            done[id(tr)] = Trace(np.ascontiguousarray(x), header=tr.stats.copy())
    for tr in st:
        out.append(done[id(tr)])
    return out


def filter_and_resample_many(streams: Sequence[Stream], band: Band | None,
                             axes: Sequence[TimeAxis], corners: int,
                             max_samples: int | None = None) -> list[np.ndarray]:
    """`filter_and_resample` of many stations at once: one (3, npts) Z, R, T array per stream, on
    its axis. Traces of equal sampling rate and length are band-passed together by
    obspy.signal.filter.bandpass along the last axis (the function Trace.filter calls, zero phase:
    forward and backward sosfilt), at most `max_samples` (default BLOCK_SAMPLES) samples per call,
    then interpolated onto their axes by obspy's weighted-average-slopes scheme
    (Trace.interpolate's default, with the arguments Trace.interpolate passes), vectorized over the
    block by `weighted_average_slopes_rows`. All axes share one sampling interval. With
    `band=None` the streams are already band-passed (prepared data): interpolation only."""
    max_samples = BLOCK_SAMPLES if max_samples is None else max_samples
    if len({ax.dt for ax in axes}) > 1:
        raise ValueError("filter_and_resample_many: the axes must share one sampling interval")
    rows = [(j, i, _component(st, c)) for j, st in enumerate(streams) for i, c in enumerate("ZRT")]
    out = [np.empty((3, ax.npts)) for ax in axes]
    groups: dict[tuple[float, int], list[int]] = {}
    for r, (_, _, tr) in enumerate(rows):
        groups.setdefault((tr.stats.sampling_rate, tr.stats.npts), []).append(r)
    for (rate, npts), members in groups.items():
        step = max(1, max_samples // max(npts, 1))
        for b in range(0, len(members), step):
            chunk = members[b:b + step]
            trs = [rows[r][2] for r in chunk]
            axs = [axes[rows[r][0]] for r in chunk]
            data = np.stack([np.require(tr.data, dtype=np.float64) for tr in trs])
            if band is not None:
                data = zerophase_bandpass(data, band.freqs[0], band.freqs[1], df=rate,
                                          corners=corners)
            # the signal is band-limited far below either Nyquist: the interpolation is exact
            # to well below the noise (checked against a direct obspy chain in the tests)
            ys = weighted_average_slopes_rows(
                data, np.array([tr.stats.starttime.timestamp for tr in trs]), trs[0].stats.delta,
                np.array([ax.starttime.timestamp for ax in axs]), 1.0 / (1.0 / axs[0].dt),
                np.array([ax.npts for ax in axs]), [tr.id for tr in trs])
            for r, y in zip(chunk, ys):
                j, i, _ = rows[r]
                out[j][i] = y
    return out


def filter_and_resample(st: Stream, band: Band, axis: TimeAxis, corners: int) -> np.ndarray:
    """Band-pass (Butterworth, zero phase) and interpolate onto `axis`; returns (3, npts) in Z, R, T
    order (obspy's Trace.filter("bandpass", zerophase=True) then Trace.interpolate)."""
    return filter_and_resample_many([st], band, [axis], corners)[0]
