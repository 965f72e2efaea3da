"""CMTSOLUTION reading and writing in SPECFEM3D_GLOBE's layout (SPEC §5 output; issue 6 item 1).

SPECFEM3D_GLOBE's reader (src/specfem3D/get_cmt.f90) takes, per source block:
  line 1   PDE header: a data-source tag of any length, then year month day hour minute second read
           free-format (the rest — hypocentre, mb, Ms, region — is ignored);
  line 2   event name (ignored);
  lines 3-13 one value each, read free-format from a FIXED column right after a fixed label:
           `time shift:` (col 12), `half duration:` (col 15), `latitude:` (col 10), `longitude:`
           (col 11), `depth:` (col 7), `Mrr:` `Mtt:` `Mpp:` `Mrt:` `Mrp:` `Mtp:` (col 5).
Units: time shift and half duration in s, latitude/longitude in degrees (geographic), depth in km,
moment-tensor components in dyne·cm in the (r, θ, φ) = (up, south, east) basis.

Writing keeps that layout: the labels start in column 1 exactly as above. A source read from a file
remembers each value line; unchanged values are written back verbatim and changed values in the same
field width, notation and number of decimals, so read → write round-trips byte for byte and an
updated file keeps its columns. Sources built from scratch use the GCMT layout obspy writes.
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
from obspy import UTCDateTime

from seisflows_eara.io.atomic import atomic_write_text

#: value lines after the header and event name, in SPECFEM's order, with the labels it expects
VALUE_LABELS = ("time shift:", "half duration:", "latitude:", "longitude:", "depth:",
                "Mrr:", "Mtt:", "Mpp:", "Mrt:", "Mrp:", "Mtp:")
MOMENT_NAMES = ("Mrr", "Mtt", "Mpp", "Mrt", "Mrp", "Mtp")
#: lines per source block: header, event name, 11 values
BLOCK_LINES = 2 + len(VALUE_LABELS)

_HEADER = re.compile(r"^(\D+)(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+(?:\.\d*)?)(.*)$")
_NUMBER = re.compile(r"^(\s*)([-+]?(?:\d+\.?\d*|\.\d+)(?:([eEdD])[-+]?\d+)?)\s*$")


class CMTSolutionError(ValueError):
    """A CMTSOLUTION that SPECFEM would misread or that the source inversion cannot use; the
    message names the file and line."""


@dataclass(frozen=True)
class FieldFormat:
    """How one value line is written: label, value field width (everything after the label),
    notation ('f', 'e' or 'E'), decimals, and the original line with the value it held."""
    label: str
    width: int
    notation: str
    decimals: int
    original_line: str | None = None
    original_value: float | None = None

    def format(self, value: float) -> str:
        if self.original_line is not None and value == self.original_value:
            return self.original_line
        text = f"{value:.{self.decimals}{self.notation}}"
        return f"{self.label}{text:>{self.width}}"


#: the GCMT layout obspy writes (obspy/io/cmtsolution/core.py), for sources built from scratch
DEFAULT_LAYOUT: tuple[FieldFormat, ...] = (
    FieldFormat("time shift:", 17, "f", 4), FieldFormat("half duration:", 14, "f", 4),
    FieldFormat("latitude:", 19, "f", 4), FieldFormat("longitude:", 18, "f", 4),
    FieldFormat("depth:", 22, "f", 4),
    *(FieldFormat(f"{m}:", 24, "E", 6) for m in MOMENT_NAMES))


@dataclass(frozen=True)
class CMTSource:
    """One point source of a CMTSOLUTION. `moment` is (Mrr, Mtt, Mpp, Mrt, Mrp, Mtp) in dyne·cm;
    `depth` in km; `time_shift` (s) is added to the header's origin time to give the centroid time,
    SPECFEM's time zero."""
    header: str
    event_name: str
    time_shift: float
    half_duration: float
    latitude: float
    longitude: float
    depth: float
    moment: tuple[float, ...]
    layout: tuple[FieldFormat, ...] = field(default=DEFAULT_LAYOUT, compare=False, repr=False)
    name_line: str | None = field(default=None, compare=False, repr=False)

    # ---------------------------------------------------------------- derived quantities
    @property
    def origin_time(self) -> UTCDateTime:
        """The header's (PDE) origin time, as SPECFEM reads it."""
        return _header_time(self.header, "<CMTSource>", 1)

    @property
    def centroid_time(self) -> UTCDateTime:
        """Origin time + time shift: time zero of SPECFEM's synthetics."""
        return self.origin_time + self.time_shift

    @property
    def moment_tensor(self) -> np.ndarray:
        """(6,) Mrr, Mtt, Mpp, Mrt, Mrp, Mtp in dyne·cm."""
        return np.asarray(self.moment, dtype=float)

    @property
    def tensor(self) -> np.ndarray:
        """Symmetric 3×3 tensor in the (r, θ, φ) basis, dyne·cm."""
        return moment_matrix(self.moment_tensor)

    @property
    def scalar_moment(self) -> float:
        """M0 = sqrt(Σ_ij M_ij² / 2) in dyne·cm (Dahlen & Tromp 1998, eq. 5.96)."""
        return float(np.sqrt(np.sum(self.tensor ** 2) / 2.0))

    @property
    def values(self) -> np.ndarray:
        """The 11 numbers of lines 3-13 in file order."""
        return np.array([self.time_shift, self.half_duration, self.latitude, self.longitude,
                         self.depth, *self.moment], dtype=float)

    def with_values(self, **changes: Any) -> "CMTSource":
        """A copy with some fields replaced (`moment` may be any 6-sequence)."""
        if "moment" in changes:
            changes["moment"] = tuple(float(x) for x in changes["moment"])
        for key in ("time_shift", "half_duration", "latitude", "longitude", "depth"):
            if key in changes:
                changes[key] = float(changes[key])
        return replace(self, **changes)

    def rounded(self) -> "CMTSource":
        """The source exactly as SPECFEM will read it back from this layout (values rounded to the
        written decimals)."""
        return parse_cmtsolution(format_cmtsolution(self), "<rounded CMTSource>")[0]


def moment_matrix(m: np.ndarray) -> np.ndarray:
    """(…, 6) Mrr, Mtt, Mpp, Mrt, Mrp, Mtp -> (…, 3, 3) symmetric tensor in (r, θ, φ)."""
    m = np.asarray(m, dtype=float)
    rr, tt, pp, rt, rp, tp = np.moveaxis(m, -1, 0)
    return np.stack([np.stack([rr, rt, rp], -1), np.stack([rt, tt, tp], -1),
                     np.stack([rp, tp, pp], -1)], -2)


# -------------------------------------------------------------------- reading
def _header_time(line: str, path: str, lineno: int) -> UTCDateTime:
    """Origin time of a PDE header line, parsed like get_cmt.f90 (same validity checks)."""
    m = _HEADER.match(line)
    if m is None:
        raise CMTSolutionError(f"{path}, line {lineno}: header must be a data-source tag followed by "
                               f"'year month day hour minute second', got {line.strip()!r}")
    yr, mo, da, ho, mi = (int(m.group(i)) for i in range(2, 7))
    sec = float(m.group(7))
    checks = ((0 < yr <= 3000, "year"), (1 <= mo <= 12, "month"), (1 <= da <= 31, "day"),
              (0 <= ho <= 24, "hour"), (0 <= mi <= 59, "minute"), (0.0 <= sec < 60.0, "second"))
    for ok, what in checks:
        if not ok:
            raise CMTSolutionError(f"{path}, line {lineno}: invalid {what} in header "
                                   f"{line.strip()!r} (SPECFEM's get_cmt rejects it)")
    try:
        return UTCDateTime(yr, mo, da) + 3600.0 * ho + 60.0 * mi + sec
    except (ValueError, TypeError) as e:
        raise CMTSolutionError(f"{path}, line {lineno}: invalid date in header {line.strip()!r}: "
                               f"{e}") from e


def _value_line(line: str, label: str, path: str, lineno: int) -> tuple[float, FieldFormat]:
    if not line.startswith(label):
        raise CMTSolutionError(f"{path}, line {lineno}: expected '{label}' in column 1 (SPECFEM reads "
                               f"the value from column {len(label) + 1}), got {line.rstrip()!r}")
    rest = line[len(label):]
    m = _NUMBER.match(rest)
    if m is None:
        raise CMTSolutionError(f"{path}, line {lineno}: '{label}' is not followed by one number: "
                               f"{line.rstrip()!r}")
    text = m.group(2)
    value = float(text.replace("d", "e").replace("D", "e"))
    if not np.isfinite(value):
        raise CMTSolutionError(f"{path}, line {lineno}: '{label}' value {text!r} is not finite")
    exp = m.group(3)
    mantissa = re.split(r"[eEdD]", text)[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    notation = "f" if exp is None else ("E" if exp in "ED" else "e")
    width = len(rest.rstrip("\r\n"))
    return value, FieldFormat(label, width, notation, decimals, line.rstrip("\r\n"), value)


def _check_source(src: CMTSource, path: str, first_line: int) -> None:
    """Physical checks: the messages name the file and the line of the offending value."""
    def where(label: str) -> str:
        return f"{path}, line {first_line + 2 + VALUE_LABELS.index(label)}"
    if not -90.0 <= src.latitude <= 90.0:
        raise CMTSolutionError(f"{where('latitude:')}: latitude {src.latitude} outside [-90, 90]")
    if not -360.0 <= src.longitude <= 360.0:
        raise CMTSolutionError(f"{where('longitude:')}: longitude {src.longitude} outside [-360, 360]")
    if src.depth < 0.0:
        raise CMTSolutionError(f"{where('depth:')}: depth {src.depth} km is above the surface")
    if src.half_duration < 0.0:
        raise CMTSolutionError(f"{where('half duration:')}: negative half duration {src.half_duration}")
    if not np.any(src.moment_tensor):
        raise CMTSolutionError(f"{path}, lines {first_line + 7}-{first_line + 12}: the moment tensor "
                               "is zero (Mrr … Mtp all 0): no seismograms, no source inversion")


def parse_cmtsolution(text: str, path: str = "<string>") -> list[CMTSource]:
    """All source blocks of CMTSOLUTION text (blank lines before a header are skipped, as in
    get_cmt.f90). Raises CMTSolutionError naming `path` and the line."""
    lines = text.splitlines(keepends=True)
    out: list[CMTSource] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        block = lines[i:i + BLOCK_LINES]
        if len(block) < BLOCK_LINES:
            missing = VALUE_LABELS[len(block) - 2] if len(block) >= 2 else "event name:"
            raise CMTSolutionError(f"{path}, line {i + len(block) + 1}: file ends inside a source "
                                   f"block (expected '{missing}')")
        header = block[0].rstrip("\r\n")
        _header_time(header, path, i + 1)
        name_line = block[1].rstrip("\r\n")
        if ":" not in name_line:
            raise CMTSolutionError(f"{path}, line {i + 2}: expected 'event name: <name>', got "
                                   f"{name_line!r}")
        name = name_line.split(":", 1)[1].strip()
        values, layout = [], []
        for k, label in enumerate(VALUE_LABELS):
            v, fmt = _value_line(block[2 + k], label, path, i + 3 + k)
            values.append(v)
            layout.append(fmt)
        src = CMTSource(header, name, *values[:5], tuple(values[5:]), tuple(layout), name_line)
        _check_source(src, path, i + 1)
        out.append(src)
        i += BLOCK_LINES
    if not out:
        raise CMTSolutionError(f"{path}: no source block (empty file)")
    return out


def read_cmtsolutions(path: str | os.PathLike) -> list[CMTSource]:
    """Every source of a CMTSOLUTION file."""
    path = os.fspath(path)
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as e:
        raise CMTSolutionError(f"cannot read CMTSOLUTION {path}: {e}") from e
    return parse_cmtsolution(text, path)


def read_cmtsolution(path: str | os.PathLike) -> CMTSource:
    """The single point source of a CMTSOLUTION (the source inversion handles one per event)."""
    srcs = read_cmtsolutions(path)
    if len(srcs) != 1:
        raise CMTSolutionError(f"{os.fspath(path)}: holds {len(srcs)} sources; the source inversion "
                               "needs exactly one point source per event")
    return srcs[0]


# -------------------------------------------------------------------- writing
def format_cmtsolution(sources: CMTSource | Sequence[CMTSource]) -> str:
    """CMTSOLUTION text in SPECFEM's layout (see the module docstring)."""
    if isinstance(sources, CMTSource):
        sources = [sources]
    out = []
    for src in sources:
        name = src.name_line if (src.name_line is not None and
                                 src.name_line.split(":", 1)[1].strip() == src.event_name) \
            else f"event name:{src.event_name:>17}"
        out += [src.header, name]
        out += [fmt.format(v) for fmt, v in zip(src.layout, src.values)]
    return "\n".join(out) + "\n"


def write_cmtsolution(path: str | os.PathLike, sources: CMTSource | Sequence[CMTSource]) -> None:
    """Write (atomically) a CMTSOLUTION that SPECFEM's get_cmt reads."""
    atomic_write_text(path, format_cmtsolution(sources))


# -------------------------------------------------------------------- event names
_GCMT_ID = re.compile(r"(?<![A-Za-z0-9])([A-Z]?\d{12}[A-Z])(?![A-Za-z0-9])")
_FDSN_EVENTID = re.compile(r"[?&]eventid=([^&/#]+)")
_GENERIC_ID_PARTS = {"", "event", "query", "1", "quakeml", "smi:local", "smi:", "fdsnws"}


def safe_event_name(name: str) -> str:
    """A name usable as a file or folder name: runs of other characters become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("_.")


def event_name(event: Any, path: str | os.PathLike | None = None) -> str:
    """A stable, meaningful name for an obspy Event (issue 17 item 5), first found of: its
    'earthquake name' description; a GCMT id (C201305240544A) in any of its resource ids; the FDSN
    `eventid=` of its resource id; a specific last part of that id; the file name."""
    names = [d.text for d in event.event_descriptions if d.type == "earthquake name" and d.text]
    if names and safe_event_name(names[0]):
        return safe_event_name(names[0])
    ids = [str(event.resource_id)] + [str(x.resource_id) for x in
                                      [*event.focal_mechanisms, *event.origins, *event.magnitudes]]
    ids += [str(fm.moment_tensor.resource_id) for fm in event.focal_mechanisms if fm.moment_tensor]
    for text in ids:
        m = _GCMT_ID.search(text)
        if m:
            return m.group(1)
    m = _FDSN_EVENTID.search(ids[0])
    if m and safe_event_name(m.group(1)):
        return safe_event_name(m.group(1))
    parts = [p for p in re.split(r"[/?#]", ids[0]) if p.lower() not in _GENERIC_ID_PARTS]
    if parts and not re.fullmatch(r"[0-9a-f-]{32,36}", parts[-1]) and safe_event_name(parts[-1]):
        return safe_event_name(parts[-1])
    if path is not None:
        stem = os.path.basename(os.fspath(path)).split(".")[0]
        if stem.upper().startswith("CMTSOLUTION_"):
            stem = stem[len("CMTSOLUTION_"):]
        if safe_event_name(stem):
            return safe_event_name(stem)
    raise CMTSolutionError(f"{path or 'event'}: no event name (no description, GCMT id, FDSN "
                           "eventid or file name)")


def from_obspy_event(event: Any, name: str | None = None) -> CMTSource:
    """A CMTSource from an obspy Event with a centroid origin and a moment tensor (e.g. GCMT
    QuakeML), in the GCMT layout. Moment tensor N·m -> dyne·cm, depth m -> km."""
    org = next((o for o in event.origins if str(o.origin_type) == "centroid"), None)
    fm = event.preferred_focal_mechanism() or (event.focal_mechanisms[0] if event.focal_mechanisms
                                                else None)
    if org is None or fm is None or fm.moment_tensor is None or fm.moment_tensor.tensor is None:
        raise CMTSolutionError(f"event {event.resource_id}: needs a centroid origin and a moment tensor")
    hypo = event.preferred_origin() if event.preferred_origin() is not org else None
    hypo = hypo or next((o for o in event.origins if o is not org), org)
    t = fm.moment_tensor.tensor
    mags = {str(m.magnitude_type).lower(): m.mag for m in event.magnitudes}
    ht = hypo.time
    region = next((d.text for d in event.event_descriptions if d.type == "Flinn-Engdahl region"), "")
    header = (f" PDE {ht.year:4d} {ht.month:02d} {ht.day:02d} {ht.hour:02d} {ht.minute:02d} "
              f"{ht.second + ht.microsecond / 1e6:05.2f} {hypo.latitude:9.4f} {hypo.longitude:9.4f} "
              f"{(hypo.depth or 0.0) / 1000.0:5.1f} {mags.get('mb', 0.0):.1f} {mags.get('ms', 0.0):.1f} "
              f"{region.upper()}").rstrip()
    if name is None:
        name = event_name(event)
    scale = 1e7   # N·m -> dyne·cm
    moment = (t.m_rr * scale, t.m_tt * scale, t.m_pp * scale, t.m_rt * scale, t.m_rp * scale,
              t.m_tp * scale)
    hdur = 0.0
    if fm.moment_tensor.source_time_function is not None and \
            fm.moment_tensor.source_time_function.duration is not None:
        hdur = fm.moment_tensor.source_time_function.duration / 2.0
    src = CMTSource(header, name, float(org.time - ht), hdur, org.latitude, org.longitude,
                    org.depth / 1000.0, tuple(float(x) for x in moment))
    return src


# -------------------------------------------------------------------- per-event history
HISTORY_COLUMNS = ["tag", "file", "centroid_time", "time_shift", "half_duration", "latitude",
                   "longitude", "depth", *MOMENT_NAMES, "scalar_moment", "misfit", "alpha",
                   "origin_time_change", "status", "reason"]


class SourceHistory:
    """Every source of one event: `CMTSOLUTION_<tag>` per iteration in `folder` and one row per
    iteration in `folder/history.csv` (full-precision values, misfit, step, status). Both are
    written atomically, so a crash never leaves a half-written source."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = os.fspath(folder)

    @property
    def table_path(self) -> str:
        return os.path.join(self.folder, "history.csv")

    def path(self, tag: str) -> str:
        return os.path.join(self.folder, f"CMTSOLUTION_{tag}")

    def rows(self) -> list[dict[str, str]]:
        if not os.path.exists(self.table_path):
            return []
        with open(self.table_path, newline="") as f:
            return list(csv.DictReader(f))

    def record(self, tag: str, source: CMTSource, misfit: float = float("nan"),
               alpha: float = float("nan"), origin_time_change: float = float("nan"),
               status: str = "ok", reason: str = "") -> str:
        """Write CMTSOLUTION_<tag> and its history row (a row with the same tag is replaced, so a
        repeated task after a crash does not duplicate it). Returns the CMTSOLUTION path."""
        path = self.path(tag)
        write_cmtsolution(path, source)
        row = dict(tag=tag, file=os.path.basename(path), centroid_time=str(source.centroid_time),
                   time_shift=repr(source.time_shift), half_duration=repr(source.half_duration),
                   latitude=repr(source.latitude), longitude=repr(source.longitude),
                   depth=repr(source.depth),
                   **{m: repr(v) for m, v in zip(MOMENT_NAMES, source.moment)},
                   scalar_moment=repr(source.scalar_moment), misfit=repr(float(misfit)),
                   alpha=repr(float(alpha)), origin_time_change=repr(float(origin_time_change)),
                   status=status, reason=reason)
        rows = [r for r in self.rows() if r["tag"] != tag] + [row]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.table_path, buf.getvalue())
        return path

    def latest(self) -> CMTSource | None:
        """The most recently recorded source (None before the first record)."""
        rows = self.rows()
        return read_cmtsolution(self.path(rows[-1]["tag"])) if rows else None
