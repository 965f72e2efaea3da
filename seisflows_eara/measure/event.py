"""The per-event measurement chain (SPEC §2-4): processing, windows, NZCC, weights, adjoint sources.

`measure_event` returns an EventMeasurement: the measurement table (one row per window or rejected
trace, columns in docs/DEVELOPING.md), the weighted misfit of eq. (2) for the event, and the
adjoint sources on the solver's N/E/Z time axis. All windows of the event are measured in a few
vectorized calls, on per-window arrays stored end to end (seisflows_eara.windows.ragged).
`EventMeasurement.prepared` re-measures the same windows with frozen weights on new synthetics
(line searches on extrapolated synthetics, SPEC §5-6).

Stages (measure_event's docstring): read (io.waveforms) -> select (measure.selection) -> QC
(measure.qc) -> process (processing) -> window -> measure and weigh -> adjoint.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from obspy import Inventory, Stream, Trace, UTCDateTime
from obspy.geodetics import gps2dist_azimuth, locations2degrees

from seisflows_eara.io.stations import Station
from seisflows_eara.io.waveforms import FileNote
from seisflows_eara.measure.qc import (index_inventory, merge_traces, span_touching,
                                       synthetic_axis_problem, units)
from seisflows_eara.measure.selection import (ChannelSet, SelectionRules, channel_sets,
                                              select_channels)
from seisflows_eara.measure.measurements import cc_and_lag, snr_db
from seisflows_eara.measure.memory import keep_freed_memory, numpy_huge_pages
from seisflows_eara.measure.transfer import call_and_ship, receive, remove_left, ship
from seisflows_eara.measure.prepared import (BANDS, ObservedUnit, PreparedObserved,
                                             PreparedWriter, processing_parameters)
from seisflows_eara.misfit.nzcc import nzcc_misfit_and_adjoint
from seisflows_eara.processing import chain
from seisflows_eara.processing.bandpass import zerophase_bandpass
from seisflows_eara.processing import (Band, TimeAxis, bandpass_stream, common_axis, correct_misorientation,
                                       filter_and_resample_many, prepare_observed,
                                       prepare_synthetic, response_prefilter, rotate_to_zrt)
from seisflows_eara.weights import categorical_weights, geographic_weights, quality_weight
from seisflows_eara.windows import (BODY_CATEGORIES, SURFACE_CATEGORIES, TravelTimes, Window,
                                    body_windows, noise_window, surface_windows)
from seisflows_eara.windows.ragged import (FlatBuilder, offsets_from_lengths, scale_segments,
                                           segment, tukey_tapers)

COLUMNS = ["event", "network", "station", "location", "channel", "component", "category", "band",
           "stage", "iteration", "step", "min_period", "max_period", "win_start", "win_end", "phases",
           "distance_deg", "azimuth", "backazimuth", "nzcc", "cc_max", "dt", "snr_db", "f_cc",
           "f_snr", "f_dt", "w_quality", "w_category", "w_geographic", "weight", "misfit",
           "status", "reason", "notes", "files"]
P_PHASES = ("P", "p", "Pdiff", "PKP", "PKIKP")
#: TauP names down-going P and S "P", "S" and their up-going branches (deep source, short distance)
#: "p", "s"; a window for P or S uses whichever arrives first, as a seismologist reads "P".
UPGOING = {"P": "p", "S": "s"}
#: stations processed together (filters batched over them): bounds the memory of processed traces.
#: 32 (96 traces per filter call) rather than 128: the same per-call amortization, a 0.8 GB
#: smaller peak at 300 stations and a fresh process's first run 1.5x faster (fewer pages to
#: fault in: README "Performance")
STATION_BLOCK = 32
#: samples kept beyond the end of the windowable span (the interpolation onto the axis reads
#: two neighbours of each sample: the same numbers as on the whole record)
TRIM_MARGIN = 4


@dataclass(frozen=True)
class EventInfo:
    """Event name, centroid time (SPECFEM's time zero) and centroid location."""
    name: str
    time: UTCDateTime
    latitude: float
    longitude: float
    depth_km: float


def event_from_file(path: str) -> EventInfo:
    """Centroid and name of a CMTSOLUTION (SPECFEM's format, read by io.cmtsolution: errors name
    the line and field) or a QuakeML file (obspy). The name: io.cmtsolution.event_name (GCMT id,
    FDSN eventid, ... or the file name); a CMTSOLUTION's `event name:` line, else its file name."""
    from seisflows_eara.io.cmtsolution import (CMTSolutionError, event_name, read_cmtsolutions,
                                               safe_event_name)
    try:
        with open(path, "rb") as f:
            head = f.read(512).lstrip()
    except OSError as e:
        raise ValueError(f"cannot read event file {path}: {e}") from e
    if not head.startswith(b"<"):
        src = read_cmtsolutions(path)[0]          # CMTSolutionError names file, line and field
        name = safe_event_name(src.event_name)
        if not name:
            stem = os.path.basename(path)
            name = safe_event_name(stem[len("CMTSOLUTION_"):] if stem.startswith("CMTSOLUTION_")
                                   else stem)
        return EventInfo(name, src.centroid_time, src.latitude, src.longitude, src.depth)
    import obspy
    try:
        ev = obspy.read_events(path)[0]
    except Exception as e:
        raise ValueError(f"cannot read event file {path} as QuakeML: {e}") from e
    org = next((o for o in ev.origins if str(o.origin_type) == "centroid"),
               ev.preferred_origin() or (ev.origins[0] if ev.origins else None))
    if org is None or org.depth is None or org.latitude is None:
        raise ValueError(f"event file {path}: no origin with latitude, longitude and depth")
    if org.depth < 0:
        raise CMTSolutionError(f"event file {path}: origin depth {org.depth} m is above the "
                               "surface")
    return EventInfo(event_name(ev, path), org.time, org.latitude, org.longitude,
                     org.depth / 1000.0)


@dataclass
class Config:
    """The parameters.yaml values the chain uses, for one stage."""
    values: dict[str, Any]
    stage: int

    def band(self, kind: str) -> Band:
        key = "stage_body_bands" if kind == "body" else "stage_surface_bands"
        lo, hi = self.values[key][self.stage - 1]
        return Band(float(lo), float(hi), kind)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


@dataclass
class _WindowData:
    station: int
    window: Window
    i0: int
    i1: int
    noise: tuple[int, int] | None


@dataclass
class EventMeasurement:
    """Result of one event: the table, misfit, adjoint sources and what a re-measure needs."""
    table: pd.DataFrame
    misfit: float
    adjoint: dict[str, np.ndarray]            # "NET.STA" -> (3, npts) N, E, Z on solver axis
    adjoint_times: dict[str, np.ndarray]      # "NET.STA" -> solver time axis (s after centroid)
    prepared: "PreparedEvent | None" = None
    #: (code, band) -> (times, observed (3, n) Z/R/T, synthetic (3, n)) when keep_processed
    processed: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict)
    #: "NET.STA" -> the observed NET.STA.LOC.CHA its adjoint source was measured on
    provenance: dict[str, list[str]] = field(default_factory=dict)
    #: flat per-window adjoint sources × W_es W_w (windows end to end, prepared.offsets): what
    #: adjoint_by_category sums; stored compactly by measure.adjoint_store
    adjoint_windows: np.ndarray | None = None

    @property
    def adjoint_by_category(self) -> dict[str, dict[str, np.ndarray]]:
        """The adjoint sources per category before W_c (eq. 3), per station: made on demand from
        the window adjoints (a forward needs only their W_c sum, `adjoint`)."""
        if self.prepared is None or self.adjoint_windows is None or not self.prepared.nwin:
            return {}
        return self.prepared.adjoint_by_category(self.adjoint_windows)


def _row(event, st: Station, **kw) -> dict:
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update(event=event, network=st.network, station=st.station, location="", channel="",
               component="", category="", band="", phases="", status="rejected", reason="",
               notes="", files="")
    row.update(kw)
    return row


def _by_station(stream: Stream) -> dict[tuple[str, str], Stream]:
    """Traces grouped by (NETWORK, STATION), upper case (as Stream.select matches), in order."""
    out: dict[tuple[str, str], Stream] = {}
    for tr in stream:
        out.setdefault((tr.stats.network.upper(), tr.stats.station.upper()), Stream()).append(tr)
    return out


def _key(st: Station) -> tuple[str, str]:
    return st.network.upper(), st.station.upper()


@dataclass
class _Measured:
    """A station that passed processing: its Z/R/T streams (observed: band -> band-passed Stream,
    `_observe_bands`, from the raw records or a prepared file), axis and window index range."""
    station: int
    observed: dict[str, Stream]
    synthetic: Stream
    axis: TimeAxis
    first: int
    last: int


def _measure_block(block: list[_Measured], wdata: list[_WindowData], cfg: Config,
                   keep: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band-pass the synthetics and resample both sides of a block of stations (many traces per
    call; the observed are band-passed already), cut their windows.
    Returns flat observed and synthetic window segments and the SNR of each window, in window
    order; with `keep`, stores the processed traces per (station index, band)."""
    first, last = block[0].first, block[-1].last
    obs_seg: list = [None] * (last - first)
    syn_seg: list = [None] * (last - first)
    snr = np.full(last - first, np.nan)
    for band_name in ("body", "surface"):
        members = [b for b in block
                   if any(wdata[i].window.band == band_name for i in range(b.first, b.last))]
        if not members:
            continue
        band, corners = cfg.band(band_name), cfg["filter_corners"]
        axes = [b.axis for b in members]
        obs_f = filter_and_resample_many([b.observed[band_name] for b in members], None, axes,
                                         corners)
        syn_f = filter_and_resample_many([b.synthetic for b in members], band, axes, corners)
        for b, o, s in zip(members, obs_f, syn_f):
            for i in range(b.first, b.last):
                d = wdata[i]
                if d.window.band != band_name:
                    continue
                c = "ZRT".index(d.window.component)
                obs_seg[i - first] = o[c, d.i0:d.i1]
                syn_seg[i - first] = s[c, d.i0:d.i1]
                snr[i - first] = snr_db(o[c], d.noise, (d.i0, d.i1))
            if keep is not None:
                keep[(b.station, band_name)] = (o, s)
    return np.concatenate(obs_seg), np.concatenate(syn_seg), snr


@dataclass
class _Unit:
    """One measured record set: station `k` of STATIONS with its chosen observed channels (one
    location and band; several units per station with measure_all_locations). `channels` is
    None when the observed side comes from a prepared file (`prepared` is its index there)."""
    k: int
    station: Station
    channels: ChannelSet | None
    location: str = ""
    channel: str = ""
    files: str = ""
    ids: list[str] = field(default_factory=list)
    prepared: int = -1

    def __post_init__(self) -> None:
        if self.channels is not None:
            cs = self.channels
            self.location, self.channel, self.files = cs.location, cs.channel_label, \
                _files(cs.stream)
            self.ids = sorted(tr.id for tr in cs.stream)

    def labels(self) -> dict[str, str]:
        """The table's location, channel and files columns."""
        return dict(location=self.location, channel=self.channel, files=self.files)


@dataclass
class _Geometry:
    """Event-station distances (deg), azimuths and predicted arrivals, per station of STATIONS."""
    dist: np.ndarray
    azimuth: list[float]
    backazimuth: list[float]
    arrivals: dict[str, np.ndarray]
    first_p: np.ndarray

    def columns(self, k: int) -> dict[str, float]:
        return dict(distance_deg=float(self.dist[k]), azimuth=self.azimuth[k],
                    backazimuth=self.backazimuth[k])


def _files(st: Stream) -> str:
    """Base names of the files the traces came from (io.waveforms records them), ';'-joined."""
    names = dict.fromkeys(os.path.basename(str(tr.stats.eara_file)) for tr in st
                          if "eara_file" in tr.stats)
    return ";".join(names)


def _geometry(event: EventInfo, stations: list[Station], cfg: Config) -> _Geometry:
    """Stage 0: distances, azimuths and AK135 arrivals of every station (SPEC §3)."""
    v = cfg.values
    body_phases = {c: list(v[f"phases_{c}"]) for c in BODY_CATEGORIES if c in v["categories"]}
    all_phases = sorted({p for ph in body_phases.values() for p in ph} | set(P_PHASES))
    tt = TravelTimes(v["taup_model"], event.depth_km, all_phases + ["s"])
    lat = np.array([s.latitude for s in stations])
    lon = np.array([s.longitude for s in stations])
    dist = locations2degrees(event.latitude, event.longitude, lat, lon) if len(stations) else lat
    arrivals = {p: tt.times(p, dist) for p in all_phases}
    for down, up in UPGOING.items():
        if down in arrivals:
            arrivals[down] = np.fmin(arrivals[down], tt.times(up, dist))
    first_p = np.nanmin(np.vstack([arrivals[p] for p in P_PHASES]), axis=0) if len(stations) \
        else dist
    az, baz = [], []
    for s in stations:
        _, a, b = gps2dist_azimuth(event.latitude, event.longitude, s.latitude, s.longitude)
        az.append(a)
        baz.append(b)
    return _Geometry(dist, az, baz, arrivals, first_p)


def _file_rows(event: EventInfo, notes: Sequence[FileNote]) -> list[dict]:
    """Stage 1 (read): one row per file that was not used (damaged: rejected; not data: skipped)."""
    return [_row(event.name, Station(n.network, n.station, np.nan, np.nan), status=n.status,
                 reason=n.reason, files=os.path.basename(n.file)) for n in notes]


def _select(event: EventInfo, stations: list[Station], observed: dict[str, Stream],
            synthetics: dict[tuple[str, str], Stream] | None, rules: SelectionRules,
            geo: _Geometry, faults: dict[tuple[str, str], list[str]], rows: list[dict]
            ) -> list[_Unit]:
    """Stage 2 (select): per station of STATIONS the channel set(s) to measure
    (seisflows_eara.measure.selection); rows for everything else — no data, no synthetics,
    channel sets not chosen (status `unused`), data of stations absent from STATIONS.
    `synthetics=None` (preparation): no synthetics check; each row gets "_k", its station's
    order (len(stations) for stations absent from STATIONS)."""
    mark = first_row = len(rows)

    def order(k: int) -> None:      # the rows since the last call belong to station order k
        nonlocal mark
        for r in rows[mark:]:
            r["_k"] = k
        mark = len(rows)
    units: list[_Unit] = []
    known = set()
    for k, st in enumerate(stations):
        order(k - 1)
        known.add(_key(st))
        base = geo.columns(k)
        why_files = "; ".join(faults.get(_key(st), []))
        extra = f" ({why_files})" if why_files else ""
        obs = observed.get(st.code)
        if obs is None or len(obs) == 0:
            rows.append(_row(event.name, st, reason="no observed data" + extra, **base))
            continue
        sel = select_channels(obs, rules)
        status = "unused" if sel.chosen else "rejected"
        for cs, why in sel.unused:
            rows.append(_row(event.name, st, status=status, location=cs.location,
                             channel=cs.channel_label, files=_files(cs.stream),
                             reason=why + (extra if status == "rejected" else ""), **base))
        if not sel.chosen:
            continue
        if synthetics is not None and len(synthetics.get(_key(st), ())) == 0:
            rows.append(_row(event.name, st, reason="no synthetics" + extra, **base))
            continue
        units += [_Unit(k, st, cs) for cs in sel.chosen]
    order(len(stations) - 1)
    tail = len(rows)
    for code, obs in observed.items():
        for cs in channel_sets(obs):
            if (cs.network.upper(), cs.station.upper()) not in known:
                rows.append(_row(event.name, Station(cs.network, cs.station, np.nan, np.nan),
                                 location=cs.location, channel=cs.channel_label,
                                 files=_files(cs.stream),
                                 reason=f"{code} is not in STATIONS (no synthetics)"))
    for r in rows[tail:]:
        r["_k"] = len(stations)
    if synthetics is not None:
        for r in rows[first_row:]:
            del r["_k"]
    return units


def _observe(u: _Unit, inv: Inventory | None, baz: float, cfg: Config,
             declared_displacement: bool, misorientation_deg: float
             ) -> tuple[Stream, list, list[str]]:
    """Stages 3-4, observed side, of one unit: gaps/overlaps merged (seisflows_eara.measure.qc),
    units decided (response or declared displacement), displacement in Z, R, T (SPEC §2),
    NaN/flat checks. Returns (Z/R/T stream, masked spans, notes); ValueError = a rejected row."""
    v = cfg.values
    code = u.station.code
    obs, spans, notes = merge_traces(u.channels.stream, v["gap_interpolation_max"])
    displacement = declared_displacement or all(tr.stats.get("eara_displacement", False)
                                                for tr in obs)
    mode = "displacement"
    if not displacement:
        mode, why = units(obs, inv, v["observed_displacement"])
        if not mode:
            raise ValueError(f"{code}: {why}")
    if mode == "displacement":
        o = _displacement_zrt(obs, inv, baz, misorientation_deg, code)
    else:
        nyq = 0.5 * min(tr.stats.sampling_rate for tr in obs)
        prefilter = response_prefilter([cfg.band("body"), cfg.band("surface")], nyq)
        o = prepare_observed(obs, inv, baz, prefilter, v["taper_fraction"],
                             v["response_water_level"], misorientation_deg,
                             target_rate=v["sampling_rate"])
    _check_finite(o, "observed", code)
    return o, spans, notes


def _observe_bands(u: _Unit, inv: Inventory | None, baz: float, cfg: Config,
                   declared_displacement: bool, misorientation_deg: float,
                   span: tuple[UTCDateTime, UTCDateTime] | None
                   ) -> tuple[dict[str, Stream], list, list[str]]:
    """The observed side of one unit as both paths use it (prepare_event stores exactly this;
    measure_event from raw records computes it in memory): `_observe`, the band-pass of each band
    of the stage over the whole record, then each band cut after the end of `span`
    (`_windowable_span`) plus TRIM_MARGIN samples, in float64 (float32 would halve prepared files
    but move the chain 1e-8 from a float64 computation). Returns (band -> Z/R/T Stream, masked
    spans, notes)."""
    o, spans, notes = _observe(u, inv, baz, cfg, declared_displacement, misorientation_deg)
    bands = {b: _trim(bandpass_stream(o, cfg.band(b), cfg["filter_corners"]), span)
             for b in BANDS}
    return bands, spans, notes


def _trim(st: Stream, span: tuple[UTCDateTime, UTCDateTime] | None) -> Stream:
    """Each trace up to the end of `span` and TRIM_MARGIN samples beyond (new traces). The start
    is kept: a later start would move the samples' times by the rounding of its timestamp (the
    interpolation onto the axis reads them as floats); records start close to the event anyway.
    ValueError (a rejected row) when a trace ends before `span` begins or starts after it ends."""
    if span is None:
        return st
    out = Stream()
    for tr in st:
        d = tr.stats.delta
        i1 = min(tr.stats.npts, int(np.ceil((span[1] - tr.stats.starttime) / d)) + TRIM_MARGIN + 1)
        if tr.stats.endtime < span[0] or i1 < 2:
            raise ValueError(f"{tr.stats.network}.{tr.stats.station}: observed {tr.id} does not "
                             f"cover the windowable span {span[0]} - {span[1]}")
        new = Trace(np.ascontiguousarray(tr.data[:i1]), header=dict(
            network=tr.stats.network, station=tr.stats.station, location=tr.stats.location,
            channel=tr.stats.channel, sampling_rate=tr.stats.sampling_rate,
            starttime=tr.stats.starttime))
        out.append(new)
    return out


def _windowable_span(k: int, geo: "_Geometry", cfg: Config, event: EventInfo
                     ) -> tuple[UTCDateTime, UTCDateTime] | None:
    """The times any window or noise window of station k can cover (SPEC §3, unclipped): from
    the event time (or the earliest window, if earlier) to the latest window end or the end of
    the noise window. None when no window is predicted. Both paths measure on this part of the
    common axis only, so observed data beyond it are never used (prepare_event does not keep
    them)."""
    v = cfg.values
    body_phases = {c: list(v[f"phases_{c}"]) for c in BODY_CATEGORIES if c in v["categories"]}
    everything = (-1e12, 1e12)
    wins, _ = body_windows({p: a[k] for p, a in geo.arrivals.items()}, body_phases,
                           v["body_window_before"], v["body_window_after"], everything, 0.0)
    sw, _ = surface_windows(float(geo.dist[k]), event.depth_km, list(v["categories"]),
                            v["surface_velocity_range"], v["surface_window_pad"],
                            v["surface_max_depth"], everything, 0.0)
    ends = [w.end for w in wins + sw]
    if np.isfinite(geo.first_p[k]):
        ends.append(float(geo.first_p[k]) - v["noise_end_before_p"])
    if not ends:
        return None
    start = min([0.0] + [w.start for w in wins + sw])
    return event.time + start, event.time + max(ends)


def _check_finite(stream: Stream, name: str, code: str) -> None:
    for tr in stream:
        if not np.all(np.isfinite(tr.data)):
            raise ValueError(f"{code}: {name} {tr.stats.channel} has NaN/inf samples")
        if not np.any(tr.data - tr.data.mean()):
            raise ValueError(f"{code}: {name} {tr.stats.channel} is flat (all zero or "
                             "constant)")


def _process(u: _Unit, syn: Stream, observe: Callable[[], tuple], baz: float, cfg: Config,
             event: EventInfo, span: tuple[UTCDateTime, UTCDateTime] | None
             ) -> tuple[Any, Stream, TimeAxis, list, list[str]]:
    """Stages 3-4 (QC, process) of one unit: synthetic time axes checked, the observed side
    (`observe()`: the bands of _observe_bands, computed or from the prepared file), synthetics
    to Z, R, T (SPEC §2), NaN/flat checks, common axis within the windowable `span`.
    ValueError = a rejected row."""
    why = synthetic_axis_problem(syn, event.time)
    if why:
        raise ValueError(f"{u.station.code}: {why}")
    o, spans, notes = observe()
    s = prepare_synthetic(syn, baz, cfg["taper_fraction"])
    _check_finite(s, "synthetic", u.station.code)
    ref = next(iter(o.values()))
    return o, s, common_axis(ref, s, cfg["sampling_rate"], event.time, span), spans, notes


def _displacement_zrt(st: Stream, inv: Inventory | None, baz: float, misorientation_deg: float,
                      code: str) -> Stream:
    """Displacement records -> Z, R, T: 1/2 channels first to Z, N, E by their StationXML azimuth
    and dip (obspy Stream.rotate('->ZNE')), then the misorientation correction and NE -> RT."""
    if set("12") & {tr.stats.channel[-1] for tr in st}:
        if inv is None:
            raise ValueError(f"{code}: channels {', '.join(sorted(tr.id for tr in st))} need "
                             "StationXML azimuth and dip to be rotated to Z, N, E")
        st = st.copy()
        try:
            st.rotate("->ZNE", inventory=inv)
        except Exception as e:
            raise ValueError(f"{code}: cannot rotate to ZNE ({e})") from e
    if misorientation_deg and {tr.stats.component for tr in st} == {"Z", "N", "E"}:
        st = st.copy()
        correct_misorientation(st, misorientation_deg)
    return rotate_to_zrt(st, baz)


def _windows(u: int, unit: _Unit, axis: TimeAxis, spans: list, geo: _Geometry, cfg: Config,
             event: EventInfo, rows: list[dict], row: Callable[..., dict]) -> list[_WindowData]:
    """Stage 5 (window): body and surface windows clipped to the record (SPEC §3); windows that
    touch a gap or overlap (qc.span_touching, within the band's longest period) are rejected."""
    v, k = cfg.values, unit.k
    body_phases = {c: list(v[f"phases_{c}"]) for c in BODY_CATEGORIES if c in v["categories"]}
    record = (axis.t0, axis.t0 + (axis.npts - 1) * axis.dt)
    wins, rejected = body_windows({p: a[k] for p, a in geo.arrivals.items()}, body_phases,
                                  v["body_window_before"], v["body_window_after"], record,
                                  v["window_min_length"])
    sw, srej = surface_windows(float(geo.dist[k]), event.depth_km, list(v["categories"]),
                               v["surface_velocity_range"], v["surface_window_pad"],
                               v["surface_max_depth"], record, v["window_min_length"])
    wins += sw
    for cat, why in rejected + srej:
        comp = BODY_CATEGORIES.get(cat) or SURFACE_CATEGORIES.get(cat)
        band = "body" if cat in BODY_CATEGORIES else "surface"
        rows.append(row(component=comp, category=cat, band=band, reason=why))
    fp = geo.first_p[k]
    nz = noise_window(float(fp), v["noise_end_before_p"], record[0]) if np.isfinite(fp) else None
    noise = None if nz is None else (int(round((nz[0] - axis.t0) / axis.dt)),
                                     int(round((nz[1] - axis.t0) / axis.dt)))
    out = []
    for w in wins:
        hit = span_touching(spans, w.start, w.end, cfg.band(w.band).max_period, event.time)
        if hit is not None:
            rows.append(row(component=w.component, category=w.category, band=w.band,
                            win_start=w.start, win_end=w.end, phases=w.phases,
                            reason=f"window touches a {hit.describe(event.time)}"))
            continue
        i0 = int(np.ceil((w.start - axis.t0) / axis.dt - 1e-9))
        i1 = int(np.floor((w.end - axis.t0) / axis.dt + 1e-9)) + 1
        out.append(_WindowData(u, w, i0, i1, noise))
    return out


def _window_measurements(S: np.ndarray, U: np.ndarray, wdata: Sequence[_WindowData],
                         cfg: Config) -> dict[str, np.ndarray]:
    """Stage 6 on flat window segments S, U (windows `wdata`, end to end): NZCC χ and its adjoint
    (SPEC §4; or the `misfit` alternative's, pyadjoint), CC and its lag in samples. Each
    window's numbers are its own, whichever windows are measured with it (tests/test_measure.py):
    jobs of any stations concatenate to the event's result."""
    lengths = np.array([d.i1 - d.i0 for d in wdata], dtype=np.int64)
    offsets = offsets_from_lengths(lengths)
    taper = tukey_tapers(lengths, cfg["window_taper_fraction"])
    dt = 1.0 / cfg["sampling_rate"]
    nz_chi, adj = nzcc_misfit_and_adjoint(S, U, taper, dt, offsets=offsets)
    chi = nz_chi
    if cfg["misfit"] != "nzcc":      # same windows and weights, another misfit (pyadjoint)
        from seisflows_eara.misfit.alternatives import pyadjoint_misfit_and_adjoint
        bands = [cfg.band(d.window.band) for d in wdata]
        chi, adj = pyadjoint_misfit_and_adjoint(
            S, U, lengths, dt, cfg["misfit"], np.array([b.min_period for b in bands]),
            np.array([b.max_period for b in bands]), cfg["window_taper_fraction"])
    cc, lag = cc_and_lag(S, U, lengths, taper=taper)
    return dict(nz_chi=nz_chi, chi=chi, adjoint=adj, cc=cc, lag=lag)


def _weigh(p: "PreparedEvent", m: dict[str, np.ndarray], snr: np.ndarray, units: list[_Unit],
           cfg: Config) -> dict[str, np.ndarray]:
    """Stage 7 on the event's window measurements `m` (_window_measurements): quality W_w =
    f1 f2 f3, categorical W_c, geographic W_es (SPEC §4, Table 1, Appendix A), the window misfit
    W_c W_es W_w χ (eq. 2) and the reason of each window rejected here. Freezes W_es W_w and the
    categories in `p`."""
    v = cfg.values
    nz_chi, chi = m["nz_chi"], m["chi"]
    cc, dt_shift = m["cc"], m["lag"] * p.dt
    f1, f2, f3, wq = quality_weight(cc, snr, dt_shift, tuple(v["quality_cc"]),
                                    tuple(v["quality_snr"]), tuple(v["quality_dt"]))
    wq = np.where(np.isfinite(nz_chi) & np.isfinite(chi), wq, 0.0)
    wc = categorical_weights(p.categories, wq)
    st_idx = p.station_index
    used_st = np.unique(st_idx[wq > 0])
    wgeo_st = np.zeros(len(units))
    if used_st.size:
        lat = np.array([units[u].station.latitude for u in used_st])
        lon = np.array([units[u].station.longitude for u in used_st])
        g, _ = geographic_weights(lat, lon, tuple(v["geographic_delta0_scan"]),
                                  v["geographic_scan_points"], v["geographic_ratio_fraction"])
        wgeo_st[used_st] = g
    wg = wgeo_st[st_idx]
    weight = wc * wg * wq
    contrib = np.where(weight > 0, weight * np.nan_to_num(chi, nan=0.0), 0.0)
    p.set_weights(wq * wg, p.categories)
    why = []
    for i in range(len(wq)):
        if not np.isfinite(nz_chi[i]):
            why.append("zero energy in window (NZCC undefined)")
        elif not np.isfinite(chi[i]):
            why.append(f"{v['misfit']} measurement failed (pyadjoint rejected the window)")
        elif wq[i] <= 0:
            parts = [n for n, f in (("CC", f1[i]), ("SNR", f2[i]), ("dt", f3[i])) if f <= 0]
            why.append("quality weight 0 (" + ", ".join(parts) + ")")
        else:
            why.append("")
    return dict(nzcc=1.0 - nz_chi, cc_max=cc, dt=dt_shift, snr_db=snr, f_cc=f1, f_snr=f2,
                f_dt=f3, w_quality=wq, w_category=wc, w_geographic=wg, weight=weight,
                misfit=contrib, reason=np.array(why, dtype=object))


def _window_table(event: EventInfo, p: "PreparedEvent", q: dict[str, np.ndarray],
                  units: list[_Unit], axes: dict[int, TimeAxis], geo: _Geometry,
                  unit_notes: dict[int, str], cfg: Config, iteration: int, step: int
                  ) -> pd.DataFrame:
    """One table row per measured window (columns: COLUMNS, docs/DEVELOPING.md)."""
    wdata, st_idx = p.windows, p.station_index
    t0 = np.array([axes[u].t0 for u in st_idx])
    i0 = np.array([d.i0 for d in wdata])
    win_bands = [cfg.band(d.window.band) for d in wdata]
    labels = {u: units[u].labels() for u in axes}
    ks = [units[u].k for u in st_idx]
    cols = {c: q[c] for c in ("nzcc", "cc_max", "dt", "snr_db", "f_cc", "f_snr", "f_dt",
                              "w_quality", "w_category", "w_geographic", "weight", "misfit",
                              "reason")}
    return pd.DataFrame(dict(
        event=event.name, network=[units[u].station.network for u in st_idx],
        station=[units[u].station.station for u in st_idx],
        location=[labels[u]["location"] for u in st_idx],
        channel=[labels[u]["channel"] for u in st_idx],
        component=[d.window.component for d in wdata], category=p.categories,
        band=[d.window.band for d in wdata], stage=cfg.stage, iteration=iteration, step=step,
        min_period=[b.min_period for b in win_bands],
        max_period=[b.max_period for b in win_bands],
        win_start=t0 + i0 * p.dt, win_end=t0 + (i0 + p.lengths - 1) * p.dt,
        phases=[d.window.phases for d in wdata],
        distance_deg=geo.dist[ks], azimuth=[geo.azimuth[k] for k in ks],
        backazimuth=[geo.backazimuth[k] for k in ks], **cols,
        status=np.where(q["reason"] == "", "ok", "rejected").astype(object),
        notes=[unit_notes[u] for u in st_idx], files=[labels[u]["files"] for u in st_idx]),
        columns=COLUMNS)


@dataclass
class _UnitsJob:
    """A contiguous run of units (from unit index u0) and only what measuring them needs: their
    synthetics, responses and misorientations, the event's geometry and parameters."""
    u0: int
    units: list[_Unit]
    synthetics: dict[tuple[str, str], Stream]
    inventories: dict[tuple[str, str], Inventory | None]
    misorientation: dict[str, float]
    event: EventInfo
    geo: _Geometry
    cfg: Config
    faults: dict[tuple[str, str], list[str]]
    observed_processed: bool
    keep_processed: bool
    prepared: "PreparedObserved | None"


@dataclass
class _UnitsPart:
    """What `_measure_units` returns for a job: rows, windows (station index = global unit
    index), axes, solver grids, notes, flat window segments, SNRs and measurements
    (_window_measurements), processed traces."""
    count: int
    rows: list[dict]
    wdata: list[_WindowData]
    axes: dict[int, TimeAxis]
    solver: dict[int, tuple[UTCDateTime, float, int]]
    unit_notes: dict[int, str]
    obs: list[np.ndarray]
    syn: list[np.ndarray]
    snr: list[np.ndarray]
    keep: dict
    measured: dict[str, np.ndarray] = field(default_factory=dict)


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """np.concatenate(parts), without the copy when there is one part (a job of one block, an
    event of one job: each copy is fresh memory, 0.1 s per 100 MB here)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0)


def _measure_units(job: _UnitsJob) -> _UnitsPart:
    """Stages 3-6 of a run of units (a process-pool task of measure_event, or a run of the serial
    loop): process, window, filter STATION_BLOCK stations at a time, measure the windows; window
    indices are global, so the parts of consecutive jobs concatenate."""
    event, geo, cfg, prepared = job.event, job.geo, job.cfg, job.prepared
    out = _UnitsPart(len(job.units), [], [], {}, {}, {}, [], [], [], {})
    keep: dict | None = {} if job.keep_processed else None
    block: list[_Measured] = []     # first/last: indices into out.wdata

    def flush() -> None:
        if block and block[-1].last > block[0].first:
            o, s, q = _measure_block(block, out.wdata, cfg, keep)
            out.obs.append(o)
            out.syn.append(s)
            out.snr.append(q)
        block.clear()

    reader = prepared.reader() if prepared is not None else contextlib.nullcontext()
    with reader:
        for j, unit in enumerate(job.units):
            u = job.u0 + j
            st, k = unit.station, unit.k
            base = dict(geo.columns(k), **unit.labels())
            syn = job.synthetics[_key(st)]
            span = _windowable_span(k, geo, cfg, event)
            if prepared is not None:
                observe = partial(_prepared_observed, prepared, unit)
            else:
                observe = partial(_observe_bands, unit, job.inventories.get(_key(st)),
                                  geo.backazimuth[k], cfg, job.observed_processed,
                                  job.misorientation.get(st.code, 0.0), span)
            try:
                o, s, axis, spans, notes = _process(unit, syn, observe, geo.backazimuth[k], cfg,
                                                    event, span)
            except (ValueError, IndexError) as e:
                extra = "; ".join(job.faults.get(_key(st), []))
                out.rows.append(_row(event.name, st, reason=str(e) +
                                     (f" ({extra})" if extra else ""), **base))
                continue
            out.unit_notes[u] = "; ".join(notes)

            def row(**kw) -> dict:
                return _row(event.name, st, notes=out.unit_notes[u], **base, **kw)
            out.axes[u] = axis
            out.solver[u] = (s[0].stats.starttime, s[0].stats.delta, s[0].stats.npts)
            first = len(out.wdata)
            out.wdata += _windows(u, unit, axis, spans, geo, cfg, event, out.rows, row)
            block.append(_Measured(u, o, s, axis, first, len(out.wdata)))
            if len(block) >= STATION_BLOCK:
                flush()
        flush()
    out.keep = keep or {}
    if out.wdata:
        out.obs, out.syn, out.snr = ([_join(x)] for x in (out.obs, out.syn, out.snr))
        out.measured = _window_measurements(out.syn[0], out.obs[0], out.wdata, cfg)
    return out


def _adjoint_sources(p: "PreparedEvent", adj: np.ndarray, wc: dict[str, float], workers: int,
                     pool: "_Pool | None" = None) -> dict[str, np.ndarray]:
    """p.adjoint_sources(adj, wc) (eq. 3); with workers > 1 runs of stations in a process pool
    (_in_order, runs of job_sizes), each the same call on the part of `p` holding that run's windows, so each
    worker returns one array per station. The same numbers: a station's array does not depend on
    the run it is in (PreparedEvent._adjoint_run). Serial when a station code's units are not
    adjacent (they would fall in two runs)."""
    workers = worker_count(workers)
    nsta = np.unique(p.station_index).size
    runs = p.station_runs(job_sizes(nsta, workers))
    if workers <= 1 or len(runs) <= 1:
        return p.adjoint_sources(adj, wc)
    owner: dict[str, int] = {}
    for j, run in enumerate(runs):
        for u in run:
            if owner.setdefault(p.stations[u].code, j) != j:
                return p.adjoint_sources(adj, wc)
    out: dict[str, np.ndarray] = {}
    jobs = (_adjoint_part(p, adj, run) + (wc,) for run in runs)
    for part in _in_order(_call_adjoint_sources, jobs, workers, pool,
                          size=lambda job: len(job[0].axes)):
        out.update(part)
    return out


def _adjoint_part(p: "PreparedEvent", adj: np.ndarray, block: np.ndarray) -> tuple:
    """(the part of `p` with the windows of stations `block`, their adjoint samples)."""
    import copy
    idx = np.flatnonzero(np.isin(p.station_index, block))
    i0, i1 = int(idx[0]), int(idx[-1]) + 1          # windows are in station order: contiguous
    sub = copy.copy(p)
    sub.windows = p.windows[i0:i1]
    sub.offsets = p.offsets[i0:i1 + 1] - p.offsets[i0]
    sub.lengths = p.lengths[i0:i1]
    sub.station_index = p.station_index[i0:i1]
    keep = set(int(u) for u in block)
    codes = {p.stations[u].code for u in keep}
    sub.axes = {u: a for u, a in p.axes.items() if u in keep}
    sub.baz = {u: b for u, b in p.baz.items() if u in keep}
    sub.solver_times = {c: t for c, t in p.solver_times.items() if c in codes}
    sub.solver_start = {c: t for c, t in p.solver_start.items() if c in codes}
    sub.U, sub.synthetic, sub._taper = None, None, None
    for name in ("weights", "categories", "wc"):
        setattr(sub, name, getattr(p, name)[i0:i1])
    return sub, adj[p.offsets[i0]:p.offsets[i1]]


def _call_adjoint_sources(job: tuple) -> dict[str, np.ndarray]:
    sub, adj, wc = job
    return sub.adjoint_sources(adj, wc)


def worker_count(workers: int) -> int:
    """`measure_workers` as a number of processes: n > 0 as given, 0 = every core of the
    allocation (SLURM_CPUS_PER_TASK when set, else the cores this process may run on)."""
    if workers and workers > 0:
        return int(workers)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1



def measure_event(event: EventInfo, stations: list[Station], observed: dict[str, Stream],
                  synthetics: Stream, cfg: Config, inventory: Inventory | None = None,
                  observed_processed: bool = False, misorientation: dict[str, float] | None = None,
                  iteration: int = 0, step: int = 0, keep_processed: bool = False,
                  file_notes: Sequence[FileNote] = (), prepared: "PreparedObserved | None" = None,
                  progress: Callable[[int, int], None] | None = None,
                  workers: int = 1) -> EventMeasurement:
    """Measure one event. `observed` maps "NET.STA" to its raw Stream (any locations and bands:
    the priority lists of parameters.yaml choose; counts with `inventory`) or, with
    `observed_processed=True`, to displacement already in Z/N/E or Z/R/T. `synthetics` holds the
    solver's displacement in N/E/Z for all stations; `file_notes` the files the reader could not
    use (they become rows). Bad data never stop the event: they become rejected rows.
    `keep_processed` keeps the processed Z/R/T traces per (station, band) for figures.
    `prepared` (measure.prepared, read with the current parameters) replaces `observed`,
    `inventory` and `file_notes`: the observed side was done once; the table is the same.
    `progress(done, total)` is called as units are processed (log_progress logs it).
    `workers` > 1 (0: every core, `worker_count`) processes runs of units, then the adjoint
    sources of runs of stations, in that many processes (_in_order: a concurrent.futures pool
    and this process; each job given only its own synthetics and responses); the parts are
    joined in unit order and each window's numbers are its own, so the result is the serial one.

    Stages, each rule in one place: read (io.waveforms, `file_notes`) -> select (_select,
    measure.selection) -> QC and process (_process, measure.qc, processing) -> window (_windows)
    -> measure (_measure_block: batched filters, NZCC, CC, SNR) -> weight (quality, categorical,
    geographic) -> adjoint (PreparedEvent.adjoint_sources: eq. 3 per station, runs of stations in the pool).
    Stations are processed STATION_BLOCK at a time and only the window segments are kept: memory
    grows with the number of window samples, not with stations × record length."""
    v = cfg.values
    keep_freed_memory(v.get("measure_keep_freed_memory", True))
    numpy_huge_pages(v.get("measure_huge_pages", False))
    misorientation = misorientation or {}
    geo = _geometry(event, stations, cfg)
    syn_by = _by_station(synthetics)
    if prepared is not None:
        faults = {tuple(c.split(".", 1)): list(w) for c, w in prepared.faults.items()}
        for key, why in _faults(file_notes).items():
            faults.setdefault(key, []).extend(why)
        rows, units = _prepared_units(event, stations, prepared, syn_by, geo, file_notes,
                                      faults)
    else:
        rows = _file_rows(event, file_notes)
        faults = _faults(file_notes)
        units = _select(event, stations, observed, syn_by, SelectionRules.from_values(v), geo,
                        faults, rows)
    inv_by = index_inventory(inventory)
    lite = None if prepared is None else dataclasses.replace(prepared, rows=[])
    n = len(units)
    workers = worker_count(workers)
    # runs of units: STATION_BLOCK (serial: progress after each), in parallel job_sizes
    starts = np.cumsum([0] + job_sizes(n, workers))
    jobs = [_UnitsJob(u0, units[u0:u1],
                      {_key(x.station): syn_by[_key(x.station)] for x in units[u0:u1]},
                      {_key(x.station): inv_by.get(_key(x.station)) for x in units[u0:u1]
                       if prepared is None},
                      {x.station.code: misorientation.get(x.station.code, 0.0)
                       for x in units[u0:u1]},
                      event, geo, cfg, faults, observed_processed, keep_processed, lite)
            for u0, u1 in zip(starts[:-1].tolist(), starts[1:].tolist())]
    wdata: list[_WindowData] = []
    axes: dict[int, TimeAxis] = {}
    solver: dict[int, tuple[UTCDateTime, float, int]] = {}
    unit_notes: dict[int, str] = {}
    # flat window samples, copied in as the parts come (FlatBuilder: no join at the end)
    obs_flat, syn_flat, adj_flat = FlatBuilder(), FlatBuilder(), FlatBuilder()
    snr_parts: list[np.ndarray] = []
    measured: list[dict[str, np.ndarray]] = []
    keep: dict | None = {} if keep_processed else None
    with _Pool(workers) as pool:      # one pool for the event's parallel stages
        if progress is not None:
            progress(0, n)
        done = 0
        # in unit order: the same as serial
        for part in _in_order(_measure_units, jobs, workers, pool,
                              size=lambda job: len(job.units)):
            rows += part.rows
            wdata += part.wdata
            axes.update(part.axes)
            solver.update(part.solver)
            unit_notes.update(part.unit_notes)
            share = (done + part.count) / max(n, 1)
            for x in part.obs:
                obs_flat.add(x, share)
            for x in part.syn:
                syn_flat.add(x, share)
            snr_parts += part.snr
            if part.measured:
                adj_flat.add(part.measured.pop("adjoint"), share)
                measured.append(part.measured)
            if keep is not None:
                keep.update(part.keep)
            done += part.count
            if progress is not None:
                progress(done, n)
        if progress is not None and n == 0:
            progress(0, 0)

        U, S = obs_flat.array(), syn_flat.array()
        ustations = [unit.station for unit in units]
        prepared = PreparedEvent.build(event, ustations, wdata, U, axes, solver,
                                       {u: geo.backazimuth[units[u].k] for u in axes}, cfg)
        nwin = len(wdata)
        win_table = None
        if nwin:
            p = prepared
            q = _weigh(p, {k: _join([x[k] for x in measured]) for k in measured[0]},
                       _join(snr_parts), units, cfg)
            win_table = _window_table(event, p, q, units, axes, geo, unit_notes, cfg, iteration, step)
            # ---- adjoint (eq. 3): W_es W_w per window; W_c per category in adjoint_sources
            adj = adj_flat.array()
            measured.clear()
            scale_segments(adj, q["w_quality"] * q["w_geographic"], p.offsets)
            misfit = float(q["misfit"].sum())
            wc, cats = q["w_category"], p.categories
            adjoint = _adjoint_sources(prepared, adj, {c: float(wc[cats == c][0])
                                                       for c in np.unique(cats)}, workers, pool)
        else:
            misfit, adj, adjoint = 0.0, np.zeros(0), {}
    prepared.synthetic = S      # the measured synthetics' window segments (line searches, SPEC §6)
    del S
    for r in rows:
        r.update(stage=cfg.stage, iteration=iteration, step=step)
    parts = ([pd.DataFrame(rows, columns=COLUMNS)] if rows else []) + \
        ([win_table] if win_table is not None else [])
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame([], columns=COLUMNS)
    times = {code: prepared.solver_times[code] for code in adjoint}
    provenance: dict[str, list[str]] = {}
    for u in axes:   # every measured station gets a (possibly zero) adjoint source
        code = units[u].station.code
        provenance.setdefault(code, []).extend(units[u].ids)
        if code not in adjoint:
            adjoint[code] = np.zeros((3, prepared.solver_times[code].size))
            times[code] = prepared.solver_times[code]
    count = Counter(units[u].station.code for u in axes)      # codes measured at several units
    shared = {c for c in provenance if count[c] > 1}
    processed = {}
    for (u, band_name), (obs_b, syn_b) in (keep or {}).items():
        code = units[u].station.code
        key = f"{code}.{units[u].location}" if code in shared else code
        processed[(key, band_name)] = (axes[u].times, obs_b, syn_b)
    return EventMeasurement(table, misfit, adjoint, times, prepared, processed=processed,
                            provenance=provenance, adjoint_windows=adj)


def observed_parameters(cfg: Config, misorientation: dict[str, float] | None = None,
                        observed_processed: bool = False, event: EventInfo | None = None,
                        stations: Sequence[Station] = (), inputs: str | None = None) -> dict:
    """The processing parameters a prepared file depends on (its digest; measure.prepared):
    the parameters, the stage's bands, the misorientation table, and the event's location and
    the stations (they fix the back azimuths of Z, R, T) when given; `inputs` e.g. a digest of
    the observed files (measure.prepared.file_digest)."""
    bands = {b: (cfg.band(b).min_period, cfg.band(b).max_period) for b in BANDS}
    p = processing_parameters(cfg.values, cfg.stage, bands, misorientation or {},
                              observed_processed)
    if event is not None:
        p["event"] = [event.name, str(event.time), float(event.latitude),
                      float(event.longitude)]
    if stations:
        p["stations"] = hashlib.sha256(repr([(s.code, float(s.latitude), float(s.longitude))
                                             for s in stations]).encode()).hexdigest()
    if inputs is not None:
        p["inputs"] = inputs
    return p


def prepare_event(event: EventInfo, stations: list[Station], observed: dict[str, Stream],
                  cfg: Config, path: str, inventory: Inventory | None = None,
                  observed_processed: bool = False, misorientation: dict[str, float] | None = None,
                  file_notes: Sequence[FileNote] = (),
                  progress: Callable[[int, int], None] | None = None,
                  parameters: dict | None = None, workers: int = 1) -> PreparedObserved:
    """The observed half of `measure_event` (read rows, select, QC, response, Z/R/T, band-pass
    per band of the stage), written to the ASDF file `path` unit by unit (measure.prepared).
    `measure_event(..., prepared=read_prepared(path, observed_parameters(cfg, ...)))` then gives
    the table and adjoint sources of the raw path. `parameters` (default observed_parameters
    with the event and stations) is what the file records and its digest is of. `workers` > 1
    prepares the units in that many processes (concurrent.futures; the file is the same; 0:
    every core, worker_count)."""
    v = cfg.values
    keep_freed_memory(v.get("measure_keep_freed_memory", True))
    numpy_huge_pages(v.get("measure_huge_pages", False))
    misorientation = misorientation or {}
    geo = _geometry(event, stations, cfg)
    rows = _file_rows(event, file_notes)
    for r in rows:
        r["_k"] = -1
    faults = _faults(file_notes)
    units = _select(event, stations, observed, None, SelectionRules.from_values(v), geo, faults,
                    rows)
    inv_by = index_inventory(inventory)
    writer = PreparedWriter(path)
    jobs = [(unit, inv_by.get(_key(unit.station)), geo.backazimuth[unit.k], cfg,
             observed_processed, misorientation.get(unit.station.code, 0.0),
             _windowable_span(unit.k, geo, cfg, event)) for unit in units]
    try:
        for i, pu in enumerate(_in_order(_prepare_unit, jobs, workers)):
            if progress is not None:
                progress(i, len(units))
            writer.add(pu)
        if progress is not None:
            progress(len(units), len(units))
        prep = PreparedObserved(event.name, parameters or observed_parameters(
                                    cfg, misorientation, observed_processed, event, stations),
                                rows, writer.units, {".".join(k): w for k, w in faults.items()},
                                [s.code for s in stations])
        return writer.finish(prep)
    finally:
        writer.close()
        if os.path.exists(writer.tmp):
            os.remove(writer.tmp)


def _prepare_unit(job: tuple) -> ObservedUnit:
    """One unit of prepare_event: _observe_bands (a process-pool task)."""
    unit, inv, baz, cfg, observed_processed, misorientation_deg, span = job
    st = unit.station
    pu = ObservedUnit(unit.k, st.network, st.station, unit.location, unit.channel,
                      unit.channels.band, unit.files, unit.ids)
    try:
        pu.bands, pu.spans, pu.notes = _observe_bands(unit, inv, baz, cfg, observed_processed,
                                                      misorientation_deg, span)
    except (ValueError, IndexError) as e:
        pu.error = str(e)
    return pu


#: the smallest job (stations or units) of a parallel stage (job_sizes)
MIN_JOB = 2


def job_sizes(n: int, workers: int, largest: int | None = None) -> list[int]:
    """The sizes of the jobs `n` stations (or units) are cut into for `workers` processes:
    guided self-scheduling, each job 1/(2·workers) of what remains, at most `largest` (default
    STATION_BLOCK), at least MIN_JOB — the first jobs large (few, batched filters), the last
    ones small, so that no process waits long for another's last job. One process: `largest`."""
    largest = STATION_BLOCK if largest is None else largest
    out, left = [], int(n)
    while left > 0:
        size = largest if workers <= 1 else -(-left // (2 * workers))
        size = min(left, max(MIN_JOB, min(largest, size)))
        out.append(size)
        left -= size
    return out


class _Done:
    """A job this process ran itself, in the queue of futures."""

    def __init__(self, value):
        self.value = value

    def done(self) -> bool:
        return True

    def result(self):
        return self.value


#: the (function, jobs) the running pool's processes were forked with (_Pool.submitter)
_INHERITED: tuple[Callable, Sequence] | None = None


def _run_inherited(i: int, parent: int | None = None):
    """Job i of the stage the pool's processes inherited at their fork (no pickled input); its
    result shipped to the `parent` pid (measure.transfer) when given."""
    fn, jobs = _INHERITED
    return fn(jobs[i]) if parent is None else call_and_ship(fn, jobs[i], parent)


class _Pool:
    """workers − 1 processes (concurrent.futures) for `_in_order`, shared by the parallel stages
    of one event: their processes, and the memory they have touched, are reused (a fresh process
    pays the kernel's page faults on its first blocks). Made at the first stage; where the
    platform forks (Linux), the processes are forked with that stage's job list in memory and
    receive only job numbers — the records and synthetics are not pickled to them; later stages'
    jobs, made after the fork, are pickled."""

    def __init__(self, workers: int):
        self.workers = worker_count(workers)
        self.executor = None
        self.inherited: tuple[Callable, Sequence] | None = None

    def __enter__(self) -> "_Pool":
        return self

    def __exit__(self, *exc) -> None:
        global _INHERITED
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            remove_left(os.getpid())
        if self.inherited is not None and _INHERITED is self.inherited:
            _INHERITED = None

    def submitter(self, fn: Callable, jobs) -> Callable:
        """submit(i, job) -> Future of fn(job): by number when the processes inherited `jobs`."""
        global _INHERITED
        if self.executor is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            fork = "fork" in multiprocessing.get_all_start_methods()
            self.executor = ProcessPoolExecutor(
                max_workers=self.workers - 1,
                mp_context=multiprocessing.get_context("fork") if fork else None)
            if fork and isinstance(jobs, list):
                self.inherited = _INHERITED = (fn, jobs)
                self.executor.submit(int).result()      # fork now, with the jobs in memory
        parent = os.getpid()        # results come back through shared memory (transfer)
        if self.inherited is not None and self.inherited[0] is fn and self.inherited[1] is jobs:
            return lambda i, job: self.executor.submit(_run_inherited, i, parent)
        return lambda i, job: self.executor.submit(call_and_ship, fn, ship(job, parent), parent)


def _in_order(fn: Callable, jobs, workers: int, pool: _Pool | None = None,
              size: Callable | None = None):
    """fn(job) for each job, in order; with workers > 1 by a pool of workers − 1 processes
    (`pool`, else one made here; `jobs` a list: inherited by forked processes, _Pool) and this
    one: a job goes to the pool while it has fewer than two per process running or queued, else
    this process runs it (its result is not pickled). The results waiting to be taken cover at
    most 3 × workers × STATION_BLOCK stations (`size(job)`: a job's stations; default 1 per job,
    so 3 × workers jobs): memory bounded by them, not by the event; 0: every core
    (worker_count)."""
    workers = worker_count(workers)
    if workers <= 1:
        yield from map(fn, jobs)
        return
    from collections import deque
    size = size or (lambda job: STATION_BLOCK)
    cap = 3 * workers * STATION_BLOCK
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(_Pool(workers))
        submit = pool.submitter(fn, jobs)
        pending: deque = deque()
        held = 0
        for i, job in enumerate(jobs):
            busy = sum(not f.done() for f, _ in pending)
            n = size(job)
            pending.append((submit(i, job) if busy < 2 * (workers - 1) else _Done(fn(job)), n))
            held += n
            while pending and (pending[0][0].done() or held >= cap):
                f, n = pending.popleft()
                held -= n
                yield receive(f.result())
        while pending:
            yield receive(pending.popleft()[0].result())


def _faults(file_notes: Sequence[FileNote]) -> dict[tuple[str, str], list[str]]:
    """(NET, STA) -> the reasons its files were rejected by the reader."""
    faults: dict[tuple[str, str], list[str]] = {}
    for n in file_notes:
        if n.status == "rejected" and n.station:
            faults.setdefault((n.network.upper(), n.station.upper()), []).append(n.reason)
    return faults


def _prepared_units(event: EventInfo, stations: list[Station], prepared: "PreparedObserved",
                    syn_by: dict[tuple[str, str], Stream], geo: _Geometry,
                    file_notes: Sequence[FileNote], faults: dict[tuple[str, str], list[str]]
                    ) -> tuple[list[dict], list[_Unit]]:
    """The rows and units `_select` makes, from a prepared file: its read/select rows, rows of
    the synthetics' `file_notes`, a "no synthetics" row for each station with chosen channels but
    no synthetics, in station order."""
    codes = [s.code for s in stations]
    if prepared.event != event.name or prepared.stations != codes:
        raise ValueError(f"{prepared.path}: prepared for event {prepared.event} and "
                         f"{len(prepared.stations)} stations, not {event.name} and the "
                         f"{len(codes)} stations of STATIONS; run `seisflows-eara prepare` again")
    rows = [dict(r) for r in prepared.rows if r["_k"] < 0] + \
        [dict(r, _k=-1) for r in _file_rows(event, file_notes)] + \
        [dict(r) for r in prepared.rows if r["_k"] >= 0]
    units: list[_Unit] = []
    missing: set[int] = set()
    for i, pu in enumerate(prepared.units):
        st = stations[pu.k]
        if len(syn_by.get(_key(st), ())) == 0:
            if pu.k not in missing:
                missing.add(pu.k)
                why = "; ".join(faults.get(_key(st), []))
                rows.append(_row(event.name, st, reason="no synthetics" +
                                 (f" ({why})" if why else ""), _k=pu.k, **geo.columns(pu.k)))
            continue
        units.append(_Unit(pu.k, st, None, pu.location, pu.channel, pu.files, list(pu.ids), i))
    rows.sort(key=lambda r: r["_k"])
    for r in rows:
        del r["_k"]
    return rows, units


def _prepared_observed(prepared: "PreparedObserved", unit: _Unit
                       ) -> tuple[dict[str, Stream], list, list[str]]:
    """The observed side of a unit from the prepared file (ValueError: its stored rejection)."""
    pu = prepared.units[unit.prepared]
    if pu.error:
        raise ValueError(pu.error)
    return prepared.bands(unit.prepared), pu.spans, pu.notes


def combine_adjoint(by_category: dict[str, dict[str, np.ndarray]], wc: dict[str, float],
                    solver_times: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Σ_c W_c · (adjoint of category c) per station (eq. 3), the categories in name order
    (the same sum however the dict was built). Returns (adjoint, times)."""
    adjoint, times = {}, {}
    for cat in sorted(by_category):
        for code, a in by_category[cat].items():
            if code not in adjoint:
                adjoint[code] = np.zeros_like(a)
                times[code] = solver_times[code]
            adjoint[code] += wc.get(cat, 0.0) * a
    return adjoint, times


class PreparedEvent:
    """Frozen windows, tapers, observed segments and weights of one event, to re-measure the
    weighted NZCC misfit on new synthetics (same processing, same windows, same weights).

    Per-window arrays are flat, the windows end to end (seisflows_eara.windows.ragged): window i
    is U[offsets[i]:offsets[i + 1]], of lengths[i] samples; likewise `taper` and the synthetic
    segments of `segments_from_processed` / `segments`."""

    def __init__(self):
        self.dt = 0.0
        #: flat window segments of the synthetics the windows were measured on (measure_event)
        self.synthetic: np.ndarray | None = None

    @classmethod
    def build(cls, event: EventInfo, stations: list[Station], wdata: list[_WindowData],
              U: np.ndarray, axes: dict[int, TimeAxis],
              solver: dict[int, tuple[UTCDateTime, float, int]], baz: dict[int, float],
              cfg: Config) -> "PreparedEvent":
        """From the windows `wdata` (in order), their observed segments U (flat), the measurement
        axes and the solver's (start, delta, npts) per station index, and back-azimuths."""
        self = cls()
        self.event, self.stations, self.cfg = event, stations, cfg
        self.windows = wdata
        self.axes = axes
        self.dt = 1.0 / cfg["sampling_rate"]
        self.baz = dict(baz)
        self.solver_times = {}
        self.solver_start = {}
        shared: dict[tuple[float, float, int], np.ndarray] = {}
        for k, (start, delta, npts) in solver.items():
            code = stations[k].code
            self.solver_start[code] = start
            grid = (float(start - event.time), float(delta), int(npts))
            if grid not in shared:     # stations of one run share one time axis (one array)
                shared[grid] = grid[0] + delta * np.arange(npts)
            self.solver_times[code] = shared[grid]
        n = len(wdata)
        self.lengths = np.array([d.i1 - d.i0 for d in wdata], dtype=np.int64)
        self.offsets = offsets_from_lengths(self.lengths)
        if U.size != self.offsets[-1]:
            raise ValueError(f"event {event.name}: {U.size} observed samples for windows of "
                             f"{self.offsets[-1]} samples")
        self.U = U
        self._taper = None
        self.station_index = np.array([d.station for d in wdata], dtype=np.int64)
        self.weights = np.ones(n)
        self.categories = np.array([d.window.category for d in wdata])
        self.wc = np.ones(n)
        return self

    @property
    def nwin(self) -> int:
        return len(self.windows)

    @property
    def taper(self) -> np.ndarray:
        """Flat Tukey window tapers (window_taper_fraction at each end), made on first use: they
        follow from `lengths`, so pickles of the event leave them out."""
        if getattr(self, "_taper", None) is None:
            self._taper = tukey_tapers(self.lengths, self.cfg["window_taper_fraction"])
        return self._taper

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_taper"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        if "offsets" not in state:     # pickled by an earlier version: rows padded to the longest
            lengths = np.asarray(state["lengths"], dtype=np.int64)
            U = np.asarray(state.pop("U"))
            state.pop("taper", None)
            state.update(offsets=offsets_from_lengths(lengths), _taper=None,
                         U=np.concatenate([U[i, :m] for i, m in enumerate(lengths)])
                         if lengths.size else np.zeros(0),
                         station_index=np.array([d.station for d in state["windows"]],
                                                dtype=np.int64))
        self.__dict__.update(state)

    def set_weights(self, station_quality: np.ndarray, categories: np.ndarray,
                    wc: np.ndarray | None = None) -> None:
        """Freeze W_es·W_w per window and W_c (per event unless given, e.g. over all events)."""
        self.weights = np.asarray(station_quality, float)
        self.categories = categories
        self.wc = categorical_weights(categories, self.weights) if wc is None else np.asarray(wc)

    def window(self, x: np.ndarray, i: int) -> np.ndarray:
        """Window i of a flat per-window array (U, taper, segments, adjoint sources)."""
        return segment(x, self.offsets, i)

    def segments_from_processed(self, processed: dict) -> np.ndarray:
        """Flat synthetic window segments from processed (3, npts) arrays per (station, band)."""
        S = np.empty(int(self.offsets[-1]))
        for i, d in enumerate(self.windows):
            S[self.offsets[i]:self.offsets[i + 1]] = processed[(d.station, d.window.band)][
                "ZRT".index(d.window.component), d.i0:d.i1]
        return S

    def _stations_with_windows(self) -> dict[int, list[str]]:
        bands: dict[int, list[str]] = {}
        for d in self.windows:
            if d.window.band not in bands.setdefault(d.station, []):
                bands[d.station].append(d.window.band)
        return bands

    def _process_blocks(self, synthetics: Stream, time_shift: float):
        """Yield (station indices, band, processed (3, npts) arrays) block by block."""
        v = self.cfg.values
        syn_by = _by_station(synthetics)
        todo = self._stations_with_windows()
        ks = sorted(todo)
        for b in range(0, len(ks), STATION_BLOCK):
            streams = {}
            for k in ks[b:b + STATION_BLOCK]:
                st = self.stations[k]
                syn = syn_by.get(_key(st), Stream())
                if len(syn) == 0:
                    raise ValueError(f"event {self.event.name}: no synthetics for station {st.code}")
                streams[k] = prepare_synthetic(syn, self.baz[k], v["taper_fraction"], time_shift)
            for band_name in ("body", "surface"):
                members = [k for k in streams if band_name in todo[k]]
                if members:
                    yield members, band_name, filter_and_resample_many(
                        [streams[k] for k in members], self.cfg.band(band_name),
                        [self.axes[k] for k in members], v["filter_corners"])

    def process(self, synthetics: Stream, time_shift: float = 0.0) -> dict:
        """Process new synthetics (N/E/Z, same stations) like the originals; optionally delayed
        by `time_shift` s (an origin-time change, eq. B3; sub-sample, by obspy's interpolation).
        Returns (station index, band) -> (3, npts) Z, R, T on the measurement axis."""
        out = {}
        for members, band_name, arrays in self._process_blocks(synthetics, time_shift):
            out.update({(k, band_name): a for k, a in zip(members, arrays)})
        return out

    def segments(self, synthetics: Stream, time_shift: float = 0.0) -> np.ndarray:
        """segments_from_processed(process(synthetics, time_shift)) without holding the processed
        traces of all stations at once."""
        S = np.empty(int(self.offsets[-1]))
        where: dict[tuple[int, str], list[int]] = {}
        for i, d in enumerate(self.windows):
            where.setdefault((d.station, d.window.band), []).append(i)
        for members, band_name, arrays in self._process_blocks(synthetics, time_shift):
            for k, a in zip(members, arrays):
                for i in where[(k, band_name)]:
                    d = self.windows[i]
                    S[self.offsets[i]:self.offsets[i + 1]] = a["ZRT".index(d.window.component),
                                                               d.i0:d.i1]
        return S

    def other_misfit(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `misfit` parameter's pyadjoint measure on the frozen windows (χ, ∂χ/∂s per window)."""
        from seisflows_eara.misfit.alternatives import pyadjoint_misfit_and_adjoint
        bands = [self.cfg.band(d.window.band) for d in self.windows]
        return pyadjoint_misfit_and_adjoint(
            S, self.U, self.lengths, self.dt, self.cfg["misfit"],
            np.array([b.min_period for b in bands]), np.array([b.max_period for b in bands]),
            self.cfg["window_taper_fraction"])

    def misfit_from_segments(self, S: np.ndarray) -> float:
        """Σ W_c W_es W_w χ over the frozen windows (eq. 2) for flat synthetic segments S; χ = 1 −
        NZCC or the `misfit` parameter's alternative."""
        if S.size == 0:
            return 0.0
        if self.cfg["misfit"] == "nzcc":
            chi, _ = nzcc_misfit_and_adjoint(S, self.U, self.taper, self.dt, offsets=self.offsets)
        else:
            chi, _ = self.other_misfit(S)
        w = self.wc * self.weights
        return float(np.sum(np.where(w > 0, w * np.nan_to_num(chi, nan=0.0), 0.0)))

    def misfit(self, synthetics: Stream, time_shift: float = 0.0) -> float:
        """Re-measure the frozen windows on new synthetics (N/E/Z Stream)."""
        return self.misfit_from_segments(self.segments(synthetics, time_shift))

    def station_runs(self, size: int | Sequence[int]) -> list[np.ndarray]:
        """The station indices with windows in runs of `size` (a list: the sizes of the runs in
        turn, its last for the rest; the last run shorter; a run is longer where it would split
        the units of one station code, which then stay together)."""
        sizes = [size] if isinstance(size, (int, np.integer)) else list(size) or [1]
        stations = np.unique(self.station_index)
        codes = [self.stations[u].code for u in stations]
        out, start = [], 0
        for j in range(1, stations.size + 1):
            want = sizes[min(len(out), len(sizes) - 1)]
            if j == stations.size or (j - start >= want and codes[j] != codes[j - 1]):
                out.append(stations[start:j])
                start = j
        return out

    def adjoint_by_category(self, adj: np.ndarray, seg_syn: dict | None = None
                            ) -> dict[str, dict[str, np.ndarray]]:
        """Window adjoint sources (flat, already × W_es W_w) -> per category, per station, (3, npts)
        N, E, Z on the solver time axis (`_adjoint_run`, STATION_BLOCK stations at a time).
        (`seg_syn` is not used: kept for callers of the earlier signature.)"""
        out: dict[str, dict[str, np.ndarray]] = {}
        for run in self.station_runs(STATION_BLOCK):
            for cat, per in self._adjoint_run(adj, run).items():
                into = out.setdefault(cat, {})
                for code, a in per.items():
                    into[code] = into[code] + a if code in into else a
        return out

    def adjoint_sources(self, adj: np.ndarray, wc: dict[str, float]) -> dict[str, np.ndarray]:
        """Σ_c W_c · (adjoint of category c) per station (eq. 3; combine_adjoint of
        adjoint_by_category), STATION_BLOCK stations at a time: only one run's per-category
        arrays are held. A station's array is the same whichever run it is in."""
        out: dict[str, np.ndarray] = {}
        for run in self.station_runs(STATION_BLOCK):
            part, _ = combine_adjoint(self._adjoint_run(adj, run), wc, self.solver_times)
            for code, a in part.items():
                out[code] = out[code] + a if code in out else a
        return out

    def _adjoint_run(self, adj: np.ndarray, stations: np.ndarray
                     ) -> dict[str, dict[str, np.ndarray]]:
        """adjoint_by_category for the windows of `stations`: summed on the processed axis,
        filtered again (the zero-phase filter is its own adjoint), interpolated back, rotated
        R, T -> N, E. Each station's terms are added in the order of its windows, so its arrays do
        not depend on which other stations share the run.

        The reverse of the forward chain, many traces per call: resampling onto the axis (its
        transpose: back onto the solver grid, zero outside the axis; adjoint sources are densities
        per unit time, so the ratio of the two sampling intervals cancels), filter (self-adjoint:
        obspy's zero-phase filter is R L R L; one obspy.signal.filter.bandpass call per block of
        equal solver grids), rotation (orthogonal), taper and demean (x -> taper · (x − mean x))."""
        v = self.cfg.values
        # (category, station, band, component) -> window adjoints summed on the axis
        rows: dict[tuple[str, int, str, int], np.ndarray] = {}
        for i in np.flatnonzero(np.isin(self.station_index, stations)):
            d = self.windows[i]
            key = (d.window.category, d.station, d.window.band, "ZRT".index(d.window.component))
            if key not in rows:
                rows[key] = np.zeros(self.axes[d.station].npts)
            rows[key][d.i0:d.i1] += adj[self.offsets[i]:self.offsets[i + 1]]
        # onto the solver grids, grouped by (band, grid) for the filter
        groups: dict[tuple[str, float, int], list] = {}
        axis_times: dict[int, np.ndarray] = {}
        for key, row in rows.items():
            k = key[1]
            times = self.solver_times[self.stations[k].code]
            if k not in axis_times:
                axis_times[k] = self.axes[k].times
            dts = float(times[1] - times[0])
            groups.setdefault((key[2], dts, times.size), []).append(
                (key, np.interp(times, axis_times[k], row, left=0.0, right=0.0)))
        filtered: dict[tuple[str, int, str, int], tuple[np.ndarray, np.ndarray]] = {}
        for (band_name, dts, npts), members in groups.items():
            band = self.cfg.band(band_name)
            df = Trace(header=dict(delta=dts)).stats.sampling_rate
            taper = _solver_taper(npts, dts, v["taper_fraction"])
            step = max(1, chain.BLOCK_SAMPLES // max(npts, 1))   # rows per call: heap-sized
            for b in range(0, len(members), step):
                part = members[b:b + step]
                data = zerophase_bandpass(np.stack([m[1] for m in part]), band.freqs[0],
                                          band.freqs[1], df=df, corners=v["filter_corners"])
                filtered.update({key: (y, taper) for (key, _), y in zip(part, data)})
        out: dict[str, dict[str, np.ndarray]] = {}
        for key in rows:          # window order
            cat, k, _, c = key
            y, taper = filtered[key]
            code = self.stations[k].code
            per = out.setdefault(cat, {})
            if code not in per:
                per[code] = np.zeros((3, y.size))
            res = per[code]
            y = y * taper
            y -= y.mean()
            if c == 0:
                res[2] += y
            else:       # one of R, T: N, E are its multiples (rotate_rt_ne with the other 0)
                for row, f in zip(res[:2], _rt_to_ne(c, self.baz[k])):
                    row += f * y
        return out


def _rt_to_ne(c: int, baz: float) -> tuple[float, float]:
    """(N, E) factors of a unit R (c = 1) or T (c = 2) trace: obspy's rotate_rt_ne(r, t, baz)."""
    a = np.radians(360.0 - baz)
    return (-np.cos(a), np.sin(a)) if c == 1 else (-np.sin(a), -np.cos(a))


def _solver_taper(npts: int, delta: float, fraction: float) -> np.ndarray:
    """The cosine taper prepare_synthetic applies to a solver trace of npts samples."""
    return Trace(np.ones(npts), header=dict(delta=delta)).taper(fraction, type="cosine").data
