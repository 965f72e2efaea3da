"""Prepared observed data (issue 18 item 1): the observed half of the chain done once per event
and stage, stored in one ASDF file (pyasdf) with its provenance, reused by every forward.

Preparation = read -> select -> QC (gaps, units) -> response removal (decimated towards
sampling_rate where its pre-filter makes that exact) -> Z, N, E -> misorientation -> Z, R, T ->
band-pass per band of the stage -> cut after the span any window or noise window of the station
can cover (SPEC §2-3; measure.event._observe_bands). The back azimuth is fixed by the event and
STATIONS, so the records are kept in Z, R, T; the forward then only interpolates them onto the
synthetics' axis. The raw path computes the same bands in memory: one chain, bit-identical.

File layout: waveforms tagged `prepared_body` / `prepared_surface` (those bands, displacement in
m), auxiliary data `PreparedObserved/<event>`: JSON of the table rows the
read and select stages made, one entry per chosen channel set (station, channels, files, gap and
overlap spans, notes, or the reason it was rejected), the processing parameters, their digest
and the program version. `read_prepared` refuses a file whose digest differs from the current
parameters' (ValueError naming the file and the differing keys): never silently reused.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from seisflows_eara import __version__
from seisflows_eara.measure.qc import Span

#: parameters.yaml keys the observed half of the chain reads (with the stage's two bands)
OBSERVED_KEYS = ("channel_priorities", "location_priorities", "measure_all_locations",
                 "gap_interpolation_max", "observed_displacement", "taper_fraction",
                 "response_water_level", "filter_corners", "misorientation_file",
                 # the rate the records are decimated towards and the windowable span they are
                 # cut to (measure.event._observe_bands, _windowable_span)
                 "sampling_rate", "taup_model", "categories", "phases_pz", "phases_pr",
                 "phases_sh", "body_window_before", "body_window_after",
                 "surface_velocity_range", "surface_window_pad", "surface_max_depth",
                 "noise_end_before_p")
#: version of the observed chain's layout (2: decimated towards sampling_rate, cut to the
#: windowable span): files of another version are prepared again
CHAIN_VERSION = 2
BANDS = ("body", "surface")
AUX = "PreparedObserved"
LOG = logging.getLogger("seisflows_eara.measure")


def processing_parameters(values: dict[str, Any], stage: int, bands: dict[str, tuple],
                          misorientation: dict[str, float], observed_processed: bool) -> dict:
    """Everything the prepared records depend on, JSON-ready."""
    p = {k: values[k] for k in OBSERVED_KEYS}
    p.update(stage=int(stage), chain=CHAIN_VERSION,
             bands={k: list(map(float, b)) for k, b in bands.items()},
             misorientation={k: float(v) for k, v in sorted(misorientation.items())},
             observed_processed=bool(observed_processed))
    return json.loads(json.dumps(p, default=list))


def digest(parameters: dict) -> str:
    """sha256 of the canonical JSON of the processing parameters."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()


@dataclass
class ObservedUnit:
    """One chosen channel set of station k of STATIONS, processed (or why it could not be)."""
    k: int
    network: str
    station: str
    location: str
    channel: str                     # the table's channel label, e.g. "BHZ,BHN,BHE"
    band_code: str                   # band and instrument code, e.g. "BH"
    files: str
    ids: list[str]                   # the observed NET.STA.LOC.CHA used (provenance)
    spans: list[Span] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""                  # non-empty: rejected with this reason (observed side)
    bands: dict[str, Stream] = field(default_factory=dict)   # band -> band-passed Z, R, T

    def meta(self) -> dict:
        return dict(k=self.k, network=self.network, station=self.station, location=self.location,
                    channel=self.channel, band_code=self.band_code, files=self.files,
                    ids=self.ids, notes=self.notes, error=self.error,
                    spans=[[s.kind, s.trace_id, str(s.start), str(s.end), s.interpolated]
                           for s in self.spans])


@dataclass
class PreparedObserved:
    """The prepared observed data of one event and stage (module doc). Band-passed records are
    read from `path` unit by unit (`bands`): memory holds one unit's records at a time."""
    event: str
    parameters: dict
    rows: list[dict]                 # read/select rows, each with "_k" (station order key)
    units: list[ObservedUnit]
    faults: dict[str, list[str]]     # "NET.STA" (upper case) -> why its files were rejected
    stations: list[str]              # the NET.STA of STATIONS, in order
    version: str = __version__
    path: str = ""

    @property
    def digest(self) -> str:
        return digest(self.parameters)

    def bands(self, i: int) -> dict[str, Stream]:
        """band -> band-passed Z, R, T of unit i (from memory or from the file; inside `reader()`
        the file stays open between units)."""
        u = self.units[i]
        if u.bands or u.error or not self.path:
            return u.bands
        h5 = getattr(self, "_h5", None)
        if h5 is None:
            with self.reader():
                return self.bands(i)
        group = h5["Waveforms"][f"{u.network}.{u.station}"]
        out: dict[str, list] = {}
        for name in group:          # NET.STA.LOC.CHA__start__end__tag (pyasdf's layout)
            parts = name.split("__")
            if len(parts) != 4 or not parts[3].startswith("prepared_"):
                continue
            net, sta, loc, cha = parts[0].split(".")
            if loc != u.location or cha[:-1] != u.band_code:
                continue
            d = group[name]
            tr = Trace(d[()], header=dict(network=net, station=sta, location=loc, channel=cha,
                                          sampling_rate=float(d.attrs["sampling_rate"])))
            tr.stats.starttime = UTCDateTime(ns=int(d.attrs["starttime"]))
            out.setdefault(parts[3][len("prepared_"):], []).append(tr)
        return {b: Stream(sorted(out[b], key=lambda tr: "ZRT".index(tr.stats.channel[-1])))
                for b in BANDS if b in out}

    @contextlib.contextmanager
    def reader(self):
        """Keep the file open while `bands` reads unit after unit (h5py, read-only)."""
        if getattr(self, "_h5", None) is not None or not self.path:
            yield self
            return
        import h5py
        with h5py.File(self.path, "r") as h5:
            self._h5 = h5
            try:
                yield self
            finally:
                self._h5 = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_h5", None)
        return state


def _tag(band: str) -> str:
    return f"prepared_{band}"


def _aux_name(event: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in event) or "event"


def _json(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    return list(x)


class PreparedWriter:
    """Writes a prepared file unit by unit (records leave memory as they are written); `finish`
    adds the provenance and moves the file into place (atomic rename)."""

    def __init__(self, path: str):
        import pyasdf
        self.path = path
        self.tmp = f"{path}.tmp{os.getpid()}"
        if os.path.exists(self.tmp):
            os.remove(self.tmp)
        self.ds = pyasdf.ASDFDataSet(self.tmp, mode="w", compression=None)
        self.units: list[ObservedUnit] = []

    def add(self, unit: ObservedUnit) -> None:
        for band, st in unit.bands.items():
            self.ds.add_waveforms(st, tag=_tag(band))
        unit.bands = {}
        self.units.append(unit)

    def finish(self, prep: PreparedObserved) -> PreparedObserved:
        meta = dict(event=prep.event, version=prep.version, digest=prep.digest,
                    parameters=prep.parameters, rows=prep.rows, faults=prep.faults,
                    stations=prep.stations, units=[u.meta() for u in prep.units])
        blob = np.frombuffer(json.dumps(meta, default=_json).encode(), dtype=np.uint8)
        self.ds.add_auxiliary_data(blob, data_type=AUX, path=_aux_name(prep.event),
                                   parameters=dict(digest=prep.digest, version=prep.version))
        self.close()
        os.replace(self.tmp, self.path)
        prep.path = self.path
        return prep

    def close(self) -> None:
        if self.ds is not None:
            self.ds.flush()
            del self.ds
            self.ds = None


def file_digest(paths: Sequence[str]) -> str:
    """sha256 of the names, sizes and modification times of the files under `paths`: new or
    replaced observed files change it."""
    items = []
    for top in paths:
        if os.path.isdir(top):
            for d, _, names in os.walk(top):
                items += [(os.path.relpath(os.path.join(d, n), top), os.path.join(d, n))
                          for n in names]
        elif os.path.exists(top):
            items.append((os.path.basename(top), top))
    h = hashlib.sha256()
    for name, f in sorted(items):
        st = os.stat(f)
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cached_prepared(path: str, parameters: dict, prepare: Callable[[], PreparedObserved]
                    ) -> PreparedObserved:
    """The prepared file at `path` when it was made with `parameters` (digest), else `prepare()`
    (which writes it): prepared once per stage, reused by every forward and on resume, redone
    when a processing parameter or an input changes, never reused stale."""
    if is_prepared(path):
        try:
            return read_prepared(path, parameters)
        except ValueError as e:
            LOG.warning("%s; preparing again", e)
    return prepare()


def is_prepared(path: str) -> bool:
    """True when `path` is an HDF5 file holding prepared observed data."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            return False
    import h5py
    with h5py.File(path, "r") as h:
        return f"AuxiliaryData/{AUX}" in h


def read_prepared(path: str, parameters: dict | None = None) -> PreparedObserved:
    """Read a prepared file's provenance (records are read per unit later); with `parameters`,
    raise ValueError naming the file and the differing keys unless they are the ones it was
    prepared with (digest)."""
    import pyasdf
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no prepared observed data (run `seisflows-eara prepare`)")
    with pyasdf.ASDFDataSet(path, mode="r") as ds:
        if AUX not in ds.auxiliary_data.list():
            raise ValueError(f"{path}: not a prepared observed-data file (no {AUX} "
                             "auxiliary data)")
        group = ds.auxiliary_data[AUX]
        meta = json.loads(bytes(np.asarray(group[group.list()[0]].data)).decode())
    if parameters is not None and meta["digest"] != digest(parameters):
        old = meta["parameters"]
        diff = sorted(k for k in set(old) | set(parameters) if old.get(k) != parameters.get(k))
        raise ValueError(f"{path}: prepared with other processing parameters (digest "
                         f"{meta['digest'][:12]} != {digest(parameters)[:12]}; differing: "
                         f"{', '.join(diff)}); run `seisflows-eara prepare` again")
    units = []
    for m in meta["units"]:
        spans = [Span(kind, tid, UTCDateTime(a), UTCDateTime(b), bool(i))
                 for kind, tid, a, b, i in m.pop("spans")]
        units.append(ObservedUnit(spans=spans, **m))
    return PreparedObserved(meta["event"], meta["parameters"], meta["rows"], units,
                            meta["faults"], meta["stations"], meta["version"], path)
