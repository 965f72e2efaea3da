"""The per-event measurement chain (SPEC §2-4): processing, windows, NZCC, weights, adjoint sources.

`measure_event` returns an EventMeasurement: the measurement table (one row per window or rejected
trace, columns in docs/DEVELOPING.md), the weighted misfit of eq. (2) for the event, and the
adjoint sources on the solver's N/E/Z time axis. All windows of the event are measured in one
vectorized call. `EventMeasurement.prepared` re-measures the same windows with frozen weights on
new synthetics (line searches on extrapolated synthetics, SPEC §5-6).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from obspy import Inventory, Stream, UTCDateTime
from obspy.geodetics import gps2dist_azimuth, locations2degrees
from scipy.signal.windows import tukey

from seisflows_eara.io.stations import Station
from seisflows_eara.measure.measurements import cc_and_lag, snr_db
from seisflows_eara.misfit.nzcc import nzcc_misfit_and_adjoint
from seisflows_eara.processing import (Band, TimeAxis, common_axis, filter_and_resample,
                                       prepare_observed, prepare_synthetic, response_prefilter)
from seisflows_eara.weights import categorical_weights, geographic_weights, quality_weight
from seisflows_eara.windows import (BODY_CATEGORIES, SURFACE_CATEGORIES, TravelTimes, Window,
                                    body_windows, noise_window, surface_windows)

COLUMNS = ["event", "network", "station", "location", "component", "category", "band", "stage",
           "iteration", "step", "min_period", "max_period", "win_start", "win_end", "phases",
           "distance_deg", "azimuth", "backazimuth", "nzcc", "cc_max", "dt", "snr_db", "f_cc",
           "f_snr", "f_dt", "w_quality", "w_category", "w_geographic", "weight", "misfit",
           "status", "reason"]
P_PHASES = ("P", "p", "Pdiff", "PKP", "PKIKP")
#: TauP names down-going P and S "P", "S" and their up-going branches (deep source, short distance)
#: "p", "s"; a window for P or S uses whichever arrives first, as a seismologist reads "P".
UPGOING = {"P": "p", "S": "s"}


@dataclass(frozen=True)
class EventInfo:
    """Event name, centroid time (SPECFEM's time zero) and centroid location."""
    name: str
    time: UTCDateTime
    latitude: float
    longitude: float
    depth_km: float


def event_from_file(path: str) -> EventInfo:
    """Centroid of a CMTSOLUTION or QuakeML file (obspy reads both)."""
    import obspy
    try:
        ev = obspy.read_events(path)[0]
    except Exception as e:
        raise ValueError(f"cannot read event file {path}: {e}") from e
    org = next((o for o in ev.origins if str(o.origin_type) == "centroid"),
               ev.preferred_origin() or ev.origins[0])
    name = next((d.text for d in ev.event_descriptions if d.type == "earthquake name"), None)
    if name is None:
        name = str(ev.resource_id).split("/")[-2] if "/" in str(ev.resource_id) else str(ev.resource_id)
    return EventInfo(name, org.time, org.latitude, org.longitude, org.depth / 1000.0)


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
    adjoint_by_category: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: (code, band) -> (times, observed (3, n) Z/R/T, synthetic (3, n)) when keep_processed
    processed: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict)


def _row(event, st: Station, **kw) -> dict:
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update(event=event, network=st.network, station=st.station, location="", component="",
               category="", band="", phases="", status="rejected", reason="")
    row.update(kw)
    return row


def measure_event(event: EventInfo, stations: list[Station], observed: dict[str, Stream],
                  synthetics: Stream, cfg: Config, inventory: Inventory | None = None,
                  observed_processed: bool = False, misorientation: dict[str, float] | None = None,
                  iteration: int = 0, step: int = 0, keep_processed: bool = False
                  ) -> EventMeasurement:
    """Measure one event. `observed` maps "NET.STA" to its raw Stream (counts, with `inventory`)
    or to displacement already in Z/N/E or Z/R/T (`observed_processed=True`). `synthetics` holds
    SPECFEM's displacement in N/E/Z for all stations. Bad data become rejected rows.
    `keep_processed` keeps the processed Z/R/T traces per (station, band) for figures."""
    v = cfg.values
    misorientation = misorientation or {}
    cats = list(v["categories"])
    bands = {k: cfg.band(k) for k in ("body", "surface")}
    body_phases = {c: list(v[f"phases_{c}"]) for c in BODY_CATEGORIES if c in cats}
    all_phases = sorted({p for ph in body_phases.values() for p in ph} | set(P_PHASES))
    tt = TravelTimes(v["taup_model"], event.depth_km, all_phases + ["s"])
    lat = np.array([s.latitude for s in stations])
    lon = np.array([s.longitude for s in stations])
    dist = locations2degrees(event.latitude, event.longitude, lat, lon) if len(stations) else lat
    arrivals = {p: tt.times(p, dist) for p in all_phases}
    for down, up in UPGOING.items():
        if down in arrivals:
            arrivals[down] = np.fmin(arrivals[down], tt.times(up, dist))
    first_p = np.nanmin(np.vstack([arrivals[p] for p in P_PHASES]), axis=0) if len(stations) else dist
    prefilter = None

    rows: list[dict] = []
    wdata: list[_WindowData] = []
    seg_obs: dict[tuple[int, str], np.ndarray] = {}
    seg_syn: dict[tuple[int, str], np.ndarray] = {}
    axes: dict[int, TimeAxis] = {}
    geo: dict[int, tuple[float, float, float]] = {}
    syn_prepared: dict[int, Stream] = {}
    for k, st in enumerate(stations):
        code = st.code
        _, az, baz = gps2dist_azimuth(event.latitude, event.longitude, st.latitude, st.longitude)
        geo[k] = (float(dist[k]), az, baz)
        base = dict(distance_deg=float(dist[k]), azimuth=az, backazimuth=baz)
        syn = synthetics.select(network=st.network, station=st.station)
        obs = observed.get(code)
        if obs is None or len(obs) == 0:
            rows.append(_row(event.name, st, reason="no observed data", **base))
            continue
        if len(syn) == 0:
            rows.append(_row(event.name, st, reason="no synthetics", **base))
            continue
        try:
            if observed_processed:
                o = obs.copy()
                comps = {tr.stats.component for tr in o}
                if comps == {"Z", "N", "E"}:
                    o.rotate("NE->RT", back_azimuth=baz)
                elif comps != {"Z", "R", "T"} or len(o) != 3:
                    raise ValueError(f"{code}: needs three components Z, N, E (or Z, R, T); has "
                                     f"{sorted(tr.stats.channel for tr in o)}")
            else:
                if prefilter is None:
                    nyq = 0.5 * min(tr.stats.sampling_rate for tr in obs)
                    prefilter = response_prefilter(list(bands.values()), nyq)
                o = prepare_observed(obs, inventory, baz, prefilter, v["taper_fraction"],
                                     v["response_water_level"], misorientation.get(code, 0.0))
            s = prepare_synthetic(syn, baz, v["taper_fraction"])
            for name, stream in (("observed", o), ("synthetic", s)):
                for tr in stream:
                    if not np.all(np.isfinite(tr.data)):
                        raise ValueError(f"{code}: {name} {tr.stats.channel} has NaN/inf samples")
                    if not np.any(tr.data - tr.data.mean()):
                        raise ValueError(f"{code}: {name} {tr.stats.channel} is flat (all zero or "
                                         "constant)")
            axis = common_axis(o, s, v["sampling_rate"], event.time)
        except (ValueError, IndexError) as e:
            rows.append(_row(event.name, st, reason=str(e), **base))
            continue
        axes[k] = axis
        syn_prepared[k] = s
        record = (axis.t0, axis.t0 + (axis.npts - 1) * axis.dt)
        wins, rejected = body_windows({p: arrivals[p][k] for p in all_phases}, body_phases,
                                      v["body_window_before"], v["body_window_after"], record,
                                      v["window_min_length"])
        sw, srej = surface_windows(float(dist[k]), event.depth_km, cats,
                                   v["surface_velocity_range"], v["surface_window_pad"],
                                   v["surface_max_depth"], record, v["window_min_length"])
        wins += sw
        for cat, why in rejected + srej:
            comp = BODY_CATEGORIES.get(cat) or SURFACE_CATEGORIES.get(cat)
            band = "body" if cat in BODY_CATEGORIES else "surface"
            rows.append(_row(event.name, st, component=comp, category=cat, band=band,
                             reason=why, **base))
        nz = noise_window(float(first_p[k]), v["noise_end_before_p"], record[0]) \
            if np.isfinite(first_p[k]) else None
        noise = None if nz is None else (int(round((nz[0] - axis.t0) / axis.dt)),
                                         int(round((nz[1] - axis.t0) / axis.dt)))
        for band_name in {w.band for w in wins}:
            seg_obs[(k, band_name)] = filter_and_resample(o, bands[band_name], axis, v["filter_corners"])
            seg_syn[(k, band_name)] = filter_and_resample(s, bands[band_name], axis, v["filter_corners"])
        for w in wins:
            i0 = int(np.ceil((w.start - axis.t0) / axis.dt - 1e-9))
            i1 = int(np.floor((w.end - axis.t0) / axis.dt + 1e-9)) + 1
            wdata.append(_WindowData(k, w, i0, i1, noise))

    prepared = PreparedEvent.build(event, stations, wdata, seg_obs, axes, syn_prepared, cfg)
    nwin = len(wdata)
    if nwin:
        S = prepared.segments_from_processed(seg_syn)
        nz_chi, adj = nzcc_misfit_and_adjoint(S, prepared.U, prepared.taper, prepared.dt)
        chi = nz_chi
        if v["misfit"] != "nzcc":      # same windows and weights, another misfit (pyadjoint)
            chi, adj = prepared.other_misfit(S)
        cc, lag = cc_and_lag(S * prepared.taper, prepared.U * prepared.taper, prepared.lengths)
        dt_shift = lag * prepared.dt
        snr = np.array([snr_db(seg_obs[(d.station, d.window.band)]["ZRT".index(d.window.component)],
                               d.noise, (d.i0, d.i1)) for d in wdata])
        f1, f2, f3, wq = quality_weight(cc, snr, dt_shift, tuple(v["quality_cc"]),
                                        tuple(v["quality_snr"]), tuple(v["quality_dt"]))
        wq = np.where(np.isfinite(nz_chi) & np.isfinite(chi), wq, 0.0)
        cats_w = np.array([d.window.category for d in wdata])
        wc = categorical_weights(cats_w, wq)
        used_st = sorted({d.station for d, q in zip(wdata, wq) if q > 0})
        wgeo_st = np.zeros(len(stations))
        if used_st:
            g, _ = geographic_weights(lat[used_st], lon[used_st], tuple(v["geographic_delta0_scan"]),
                                      v["geographic_scan_points"], v["geographic_ratio_fraction"])
            wgeo_st[used_st] = g
        wg = np.array([wgeo_st[d.station] for d in wdata])
        weight = wc * wg * wq
        contrib = np.where(weight > 0, weight * np.nan_to_num(chi, nan=0.0), 0.0)
        prepared.set_weights(wq * wg, cats_w)
        for i, d in enumerate(wdata):
            st = stations[d.station]
            dist_k, az, baz = geo[d.station]
            band = bands[d.window.band]
            why = ""
            if not np.isfinite(nz_chi[i]):
                why = "zero energy in window (NZCC undefined)"
            elif not np.isfinite(chi[i]):
                why = f"{v['misfit']} measurement failed (pyadjoint rejected the window)"
            elif wq[i] <= 0:
                parts = [n for n, f in (("CC", f1[i]), ("SNR", f2[i]), ("dt", f3[i])) if f <= 0]
                why = "quality weight 0 (" + ", ".join(parts) + ")"
            rows.append(dict(
                event=event.name, network=st.network, station=st.station, location="",
                component=d.window.component, category=d.window.category, band=d.window.band,
                stage=cfg.stage, iteration=iteration, step=step, min_period=band.min_period,
                max_period=band.max_period, win_start=axes[d.station].t0 + d.i0 * prepared.dt,
                win_end=axes[d.station].t0 + (d.i1 - 1) * prepared.dt, phases=d.window.phases,
                distance_deg=dist_k, azimuth=az, backazimuth=baz, nzcc=1.0 - nz_chi[i],
                cc_max=cc[i], dt=dt_shift[i], snr_db=snr[i], f_cc=f1[i], f_snr=f2[i], f_dt=f3[i],
                w_quality=wq[i], w_category=wc[i], w_geographic=wg[i], weight=weight[i],
                misfit=contrib[i], status="ok" if not why else "rejected", reason=why))
        by_cat = prepared.adjoint_by_category(adj * (wq * wg)[:, None], seg_syn)
        misfit = float(contrib.sum())
    else:
        by_cat, misfit, wc, cats_w = {}, 0.0, np.zeros(0), np.array([])
    for r in rows:
        if r.get("stage") is None or (isinstance(r.get("stage"), float) and np.isnan(r["stage"])):
            r.update(stage=cfg.stage, iteration=iteration, step=step)
    table = pd.DataFrame(rows, columns=COLUMNS)
    wc_map = {c: float(wc[cats_w == c][0]) for c in np.unique(cats_w)} if nwin else {}
    adjoint, times = combine_adjoint(by_cat, wc_map, prepared.solver_times)
    for k in axes:   # every measured station gets a (possibly zero) adjoint source
        code = stations[k].code
        if code not in adjoint:
            adjoint[code] = np.zeros((3, prepared.solver_times[code].size))
            times[code] = prepared.solver_times[code]
    processed = {}
    if keep_processed:
        for (k, band_name), obs_b in seg_obs.items():
            processed[(stations[k].code, band_name)] = (axes[k].times, obs_b, seg_syn[(k, band_name)])
    return EventMeasurement(table, misfit, adjoint, times, prepared, by_cat, processed)


def combine_adjoint(by_category: dict[str, dict[str, np.ndarray]], wc: dict[str, float],
                    solver_times: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Σ_c W_c · (adjoint of category c) per station (eq. 3). Returns (adjoint, times)."""
    adjoint, times = {}, {}
    for cat, per_station in by_category.items():
        for code, a in per_station.items():
            if code not in adjoint:
                adjoint[code] = np.zeros_like(a)
                times[code] = solver_times[code]
            adjoint[code] += wc.get(cat, 0.0) * a
    return adjoint, times


class PreparedEvent:
    """Frozen windows, tapers, observed segments and weights of one event, to re-measure the
    weighted NZCC misfit on new synthetics (same processing, same windows, same weights)."""

    def __init__(self):
        self.dt = 0.0

    @classmethod
    def build(cls, event: EventInfo, stations: list[Station], wdata: list[_WindowData],
              seg_obs: dict, axes: dict[int, TimeAxis], syn_prepared: dict[int, Stream],
              cfg: Config) -> "PreparedEvent":
        self = cls()
        self.event, self.stations, self.cfg = event, stations, cfg
        self.windows = wdata
        self.axes = axes
        self.dt = 1.0 / cfg["sampling_rate"]
        self.baz = {k: gps2dist_azimuth(event.latitude, event.longitude, stations[k].latitude,
                                        stations[k].longitude)[2] for k in axes}
        self.solver_times = {}
        self.solver_start = {}
        for k, s in syn_prepared.items():
            tr = s[0]
            self.solver_start[stations[k].code] = tr.stats.starttime
            self.solver_times[stations[k].code] = float(tr.stats.starttime - event.time) + \
                tr.stats.delta * np.arange(tr.stats.npts)
        n = len(wdata)
        self.lengths = np.array([d.i1 - d.i0 for d in wdata], dtype=int)
        L = int(self.lengths.max()) if n else 0
        self.U = np.zeros((n, L))
        self.taper = np.zeros((n, L))
        frac = cfg["window_taper_fraction"]
        for i, d in enumerate(wdata):
            m = d.i1 - d.i0
            self.U[i, :m] = seg_obs[(d.station, d.window.band)]["ZRT".index(d.window.component),
                                                                d.i0:d.i1]
            self.taper[i, :m] = tukey(m, 2 * frac)
        self.weights = np.ones(n)
        self.categories = np.array([d.window.category for d in wdata])
        self.wc = np.ones(n)
        return self

    def set_weights(self, station_quality: np.ndarray, categories: np.ndarray,
                    wc: np.ndarray | None = None) -> None:
        """Freeze W_es·W_w per window and W_c (per event unless given, e.g. over all events)."""
        self.weights = np.asarray(station_quality, float)
        self.categories = categories
        self.wc = categorical_weights(categories, self.weights) if wc is None else np.asarray(wc)

    def segments_from_processed(self, processed: dict) -> np.ndarray:
        """(nwin, L) synthetic window segments from processed (3, npts) arrays per (station, band)."""
        S = np.zeros_like(self.U)
        for i, d in enumerate(self.windows):
            S[i, :d.i1 - d.i0] = processed[(d.station, d.window.band)][
                "ZRT".index(d.window.component), d.i0:d.i1]
        return S

    def process(self, synthetics: Stream, time_shift: float = 0.0) -> dict:
        """Process new synthetics (N/E/Z, same stations) like the originals; optionally delayed
        by `time_shift` s (an origin-time change, eq. B3; sub-sample, by obspy's interpolation)."""
        v = self.cfg.values
        out = {}
        for k, axis in self.axes.items():
            st = self.stations[k]
            syn = synthetics.select(network=st.network, station=st.station).copy()
            if time_shift:
                for tr in syn:
                    tr.stats.starttime += time_shift
            s = prepare_synthetic(syn, self.baz[k], v["taper_fraction"])
            for band_name in {d.window.band for d in self.windows if d.station == k}:
                out[(k, band_name)] = filter_and_resample(s, self.cfg.band(band_name), axis,
                                                          v["filter_corners"])
        return out

    def other_misfit(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `misfit` parameter's pyadjoint measure on the frozen windows (χ, ∂χ/∂s per window)."""
        from seisflows_eara.misfit.alternatives import pyadjoint_misfit_and_adjoint
        bands = [self.cfg.band(d.window.band) for d in self.windows]
        return pyadjoint_misfit_and_adjoint(
            S, self.U, self.lengths, self.dt, self.cfg["misfit"],
            np.array([b.min_period for b in bands]), np.array([b.max_period for b in bands]),
            self.cfg["window_taper_fraction"])

    def misfit_from_segments(self, S: np.ndarray) -> float:
        """Σ W_c W_es W_w χ over the frozen windows (eq. 2) for synthetic segments S; χ = 1 − NZCC
        or the `misfit` parameter's alternative."""
        if S.size == 0:
            return 0.0
        if self.cfg["misfit"] == "nzcc":
            chi, _ = nzcc_misfit_and_adjoint(S, self.U, self.taper, self.dt)
        else:
            chi, _ = self.other_misfit(S)
        w = self.wc * self.weights
        return float(np.sum(np.where(w > 0, w * np.nan_to_num(chi, nan=0.0), 0.0)))

    def misfit(self, synthetics: Stream, time_shift: float = 0.0) -> float:
        """Re-measure the frozen windows on new synthetics (N/E/Z Stream)."""
        return self.misfit_from_segments(self.segments_from_processed(
            self.process(synthetics, time_shift)))

    def adjoint_by_category(self, adj: np.ndarray, seg_syn: dict) -> dict[str, dict[str, np.ndarray]]:
        """Window adjoint sources (already × W_es W_w) -> per category, per station, (3, npts) N, E, Z
        on the solver time axis: summed on the processed axis, filtered again (the zero-phase
        filter is its own adjoint), interpolated back, rotated R, T -> N, E."""
        from obspy import Trace
        v = self.cfg.values
        out: dict[str, dict[str, np.ndarray]] = {}
        groups: dict[tuple[str, int, str], np.ndarray] = {}
        for i, d in enumerate(self.windows):
            key = (d.window.category, d.station, d.window.band)
            if key not in groups:
                groups[key] = np.zeros((3, self.axes[d.station].npts))
            groups[key]["ZRT".index(d.window.component), d.i0:d.i1] += adj[i, :d.i1 - d.i0]
        tapers: dict[int, np.ndarray] = {}
        for (cat, k, band_name), zrt in groups.items():
            axis = self.axes[k]
            code = self.stations[k].code
            times = self.solver_times[code]
            if times.size not in tapers:   # the taper prepare_synthetic applied, as obspy makes it
                ones = Trace(np.ones(times.size), header=dict(delta=float(times[1] - times[0])))
                tapers[times.size] = ones.taper(v["taper_fraction"], type="cosine").data
            # reverse order of the forward chain: resampling onto the axis (transpose: back onto
            # the solver grid, zero outside the axis), filter (self-adjoint: obspy's zero-phase
            # filter is R L R L), rotation (orthogonal), taper and demean
            dts = float(times[1] - times[0])
            # (adjoint sources are densities per unit time, so the transpose of resampling is
            # resampling back: the ratio of the two sampling intervals cancels)
            st = Stream([Trace(np.interp(times, axis.times, zrt[i], left=0.0, right=0.0), header=dict(
                network=self.stations[k].network, station=self.stations[k].station,
                channel=f"MX{c}", delta=dts, starttime=self.solver_start[code]))
                for i, c in enumerate("ZRT")])
            band = self.cfg.band(band_name)
            st.filter("bandpass", freqmin=band.freqs[0], freqmax=band.freqs[1],
                      corners=v["filter_corners"], zerophase=True)
            st.rotate("RT->NE", back_azimuth=self.baz[k])
            res = np.zeros((3, times.size))
            for i, c in enumerate("NEZ"):
                y = tapers[times.size] * st.select(component=c)[0].data
                res[i] = y - y.mean()    # adjoint of x -> taper * (x - mean x)
            out.setdefault(cat, {})
            out[cat][code] = out[cat].get(code, 0.0) + res
        return out
