"""The processing chain; each function documents the step of SPEC §2 it implements."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from obspy import Inventory, Stream, UTCDateTime


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
                     water_level: float, misorientation_deg: float = 0.0) -> Stream:
    """Raw observed traces (counts) -> displacement Z, R, T (m), unfiltered beyond the pre-filter.

    Raises ValueError naming the station when a component or the response is missing.
    """
    st = st.copy()
    st.merge(fill_value=0)
    code = f"{st[0].stats.network}.{st[0].stats.station}" if st else "?"
    for tr in st:
        tr.data = tr.data.astype(np.float64)
    st.detrend("demean")
    st.detrend("linear")
    st.taper(taper_fraction, type="cosine")
    try:
        st.remove_response(inventory=inventory, output="DISP", pre_filt=prefilter,
                           water_level=water_level)
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


def prepare_synthetic(st: Stream, back_azimuth: float, taper_fraction: float) -> Stream:
    """SPECFEM synthetics (displacement Z, N, E) -> Z, R, T."""
    st = st.copy()
    code = f"{st[0].stats.network}.{st[0].stats.station}" if st else "?"
    if len(st) != 3 or {tr.stats.channel[-1] for tr in st} != {"Z", "N", "E"}:
        raise ValueError(f"{code}: synthetics need components Z, N, E; have "
                         f"{sorted(tr.stats.channel for tr in st)}")
    st.detrend("demean")
    st.taper(taper_fraction, type="cosine")
    st.rotate("NE->RT", back_azimuth=back_azimuth)
    return st


def common_axis(obs: Stream, syn: Stream, sampling_rate: float, reference: UTCDateTime) -> TimeAxis:
    """The synthetics' time grid at `sampling_rate`, over the span both records cover."""
    s0, s1 = syn[0].stats.starttime, syn[0].stats.endtime
    o0 = max(tr.stats.starttime for tr in obs)
    o1 = min(tr.stats.endtime for tr in obs)
    dt = 1.0 / sampling_rate
    k0 = max(0, int(np.ceil((o0 - s0) / dt - 1e-9)))
    start = s0 + k0 * dt
    end = min(s1, o1)
    npts = int(np.floor((end - start) / dt + 1e-9)) + 1
    if npts < 2:
        code = f"{syn[0].stats.network}.{syn[0].stats.station}"
        raise ValueError(f"{code}: observed and synthetic records do not overlap")
    return TimeAxis(start, dt, npts, reference)


def filter_and_resample(st: Stream, band: Band, axis: TimeAxis, corners: int) -> np.ndarray:
    """Band-pass (Butterworth, zero phase) and interpolate onto `axis`; returns (3, npts) in Z, R, T
    order."""
    st = st.copy()
    st.filter("bandpass", freqmin=band.freqs[0], freqmax=band.freqs[1], corners=corners,
              zerophase=True)
    out = np.empty((3, axis.npts))
    for i, comp in enumerate("ZRT"):
        tr = st.select(component=comp)[0]
        # the signal is band-limited far below either Nyquist: obspy's default interpolation is exact
        # to well below the noise (checked against a direct obspy chain in the tests)
        tr.interpolate(1.0 / axis.dt, starttime=axis.starttime, npts=axis.npts)
        out[i] = tr.data
    return out
