"""Quality control of a station's chosen records before processing (issue 17 items 2-3).

Units: a record is deconvolved only when the StationXML has a response for each channel at its
start time; without one it is measured as displacement in m only when the user says so
(`observed_displacement`), and never when the samples are integers (counts). Reasons name the
channel, the date and what the StationXML does hold.

Gaps and overlaps: traces of one channel are merged by obspy (Stream.merge(method=0): missing
samples and overlapping samples that disagree are masked, nothing invented); Stream.get_gaps tells
a gap from an overlap. The masked samples are bridged linearly ONLY so that the whole-record
processing (response removal, filters) can run; a window that comes within the band's longest
period of such a span (the reach of the filter) is rejected with the span in its reason. Gaps no
longer than `gap_interpolation_max` s are interpolated on purpose and only noted.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from obspy import Inventory, Stream, UTCDateTime


# ---------------------------------------------------------------- units
def index_inventory(inventory: Inventory | None) -> dict[tuple[str, str], Inventory]:
    """(NET, STA) upper case -> an Inventory of that station alone (fast per-station lookups)."""
    out: dict[tuple[str, str], Inventory] = {}
    if inventory is None:
        return out
    for net in inventory:
        for sta in net:
            key = (net.code.upper(), sta.code.upper())
            sub = out.setdefault(key, Inventory(networks=[], source=inventory.source))
            n = copy.copy(net)          # shallow: the station objects are shared, not copied
            n.stations = [sta]
            sub.networks.append(n)
    return out


def _loc(code: str) -> str:
    return code if code else '""'


def _holdings(inv: Inventory | None, net: str, sta: str, loc: str, cha: str) -> str:
    """What the StationXML holds for a station, as a reason states it."""
    chans = [(ch.location_code, ch.code, ch.start_date, ch.end_date)
             for n in (inv or []) for s in n for ch in s]
    if not chans:
        return f"StationXML has no station {net}.{sta}"
    locs = sorted({c[0] for c in chans})
    if loc not in locs:
        word = "location" if len(locs) == 1 else "locations"
        return f"StationXML has {word} {', '.join(_loc(x) for x in locs)}"
    same = [c for c in chans if c[0] == loc and c[1] == cha]
    if not same:
        have = sorted({c[1] for c in chans if c[0] == loc})
        return f"StationXML has channels {', '.join(have)} at location {_loc(loc)}"
    return "StationXML has " + ", ".join(
        f"{net}.{sta}.{loc}.{cha} {a.date if a else '…'} to {b.date if b else 'open'}"
        for _, _, a, b in same)


def missing_response(st: Stream, inv: Inventory | None) -> str:
    """'' when every trace has a response at its start in `inv`, else the reason for the first
    that has none: 'no response for NET.STA.LOC.CHA at DATE; StationXML has ...'."""
    for tr in st:
        s = tr.stats
        try:
            if inv is None:
                raise ValueError
            inv.get_response(tr.id, s.starttime)
        except Exception:   # obspy raises Exception("No matching response information found")
            what = "no StationXML" if inv is None else _holdings(inv, s.network, s.station,
                                                                 s.location, s.channel)
            return f"no response for {tr.id} at {s.starttime.date}; {what}"
    return ""


def units(st: Stream, inv: Inventory | None, displacement_allowed: bool) -> tuple[str, str]:
    """('response', '') to deconvolve, ('displacement', '') to take as metres, or ('', reason)."""
    why = missing_response(st, inv)
    if not why:
        return "response", ""
    ints = sorted({str(tr.data.dtype) for tr in st if np.issubdtype(tr.data.dtype, np.integer)})
    if ints:
        return "", f"{why}; the samples are integer counts ({', '.join(ints)}), not displacement"
    if displacement_allowed:
        return "displacement", ""
    return "", (f"{why}; set observed_displacement: true if these data are displacement in m")


# ---------------------------------------------------------------- gaps and overlaps
@dataclass(frozen=True)
class Span:
    """Masked samples of one channel after merging: a gap or a disagreeing overlap."""
    kind: str                 # "gap" or "overlap"
    trace_id: str
    start: UTCDateTime        # first and last masked sample
    end: UTCDateTime
    interpolated: bool = False

    def describe(self, reference: UTCDateTime) -> str:
        return (f"{self.kind} in {self.trace_id} from {self.start - reference:.2f} to "
                f"{self.end - reference:.2f} s ({self.start} - {self.end})")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[i0, i1) index ranges where mask is True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def merge_traces(st: Stream, interpolation_max: float) -> tuple[Stream, list[Span], list[str]]:
    """One trace per channel (module doc). Returns the stream (the input itself when no channel
    has several traces), the masked spans and notes (interpolated gaps, identical overlaps).
    Raises ValueError naming the channel when obspy cannot merge (differing sampling rates)."""
    ids = [tr.id for tr in st]
    if len(set(ids)) == len(ids):
        return st, [], []
    gaps = st.get_gaps()
    overlaps = [(tuple(g[0:4]), min(g[4], g[5]), max(g[4], g[5])) for g in gaps if g[6] < 0]
    out = st.copy()
    for tr in out:
        if not np.issubdtype(tr.data.dtype, np.floating):
            tr.data = tr.data.astype(np.float64)
    try:
        out.merge(method=0)
    except Exception as e:
        raise ValueError(f"cannot merge the traces of {', '.join(sorted(set(ids)))}: {e}") from e
    spans: list[Span] = []
    notes: list[str] = []
    for tr in out:
        if not np.ma.isMaskedArray(tr.data):
            continue
        mask = np.ma.getmaskarray(tr.data)
        if mask.all():
            raise ValueError(f"{tr.id}: no sample survives the merge of its traces")
        x = np.arange(tr.stats.npts)
        data = np.ma.getdata(tr.data).astype(np.float64)
        data[mask] = np.interp(x[mask], x[~mask], data[~mask])
        t0, dt = tr.stats.starttime, tr.stats.delta
        for i0, i1 in _runs(mask):
            a, b = t0 + i0 * dt, t0 + (i1 - 1) * dt
            code = tuple(tr.id.split("."))
            kind = "overlap" if any(c == code and lo <= b and hi >= a
                                    for c, lo, hi in overlaps) else "gap"
            short = kind == "gap" and (i1 - i0) * dt <= interpolation_max
            spans.append(Span(kind, tr.id, a, b, short))
            if short:
                notes.append(f"gap in {tr.id} of {(i1 - i0) * dt:.2f} s at {a} interpolated")
        tr.data = data
    masked_overlaps = {s.trace_id for s in spans if s.kind == "overlap"}
    for c, lo, hi in overlaps:
        if ".".join(c) not in masked_overlaps:
            notes.append(f"overlap in {'.'.join(c)} {lo} - {hi} with identical samples merged")
    return out, spans, notes


def span_touching(spans: list[Span], start: float, end: float, margin: float,
                  reference: UTCDateTime) -> Span | None:
    """The first not-interpolated span within `margin` s of the window [start, end] (s after
    `reference`), or None."""
    for s in spans:
        if not s.interpolated and (s.start - reference) - margin < end \
                and (s.end - reference) + margin > start:
            return s
    return None


# ---------------------------------------------------------------- synthetics
def synthetic_axis_problem(st: Stream, reference: UTCDateTime) -> str:
    """'' when the synthetic components share one time axis (same sampling and length, starts
    within half a sample, as the N, E -> R, T rotation needs), else a reason giving each
    component's span (s after `reference`) and file."""
    if not len(st):
        return ""
    a = st[0].stats
    if all(tr.stats.npts == a.npts and abs(tr.stats.delta - a.delta) <= 1e-9 * a.delta
           and abs(tr.stats.starttime - a.starttime) <= 0.5 * a.delta for tr in st):
        return ""
    parts = [f"{tr.stats.channel} {tr.stats.starttime - reference:.2f} to "
             f"{tr.stats.endtime - reference:.2f} s ({tr.stats.npts} samples"
             + (f", {tr.stats.eara_file}" if "eara_file" in tr.stats else "") + ")"
             for tr in st]
    return "synthetic components do not share one time axis: " + "; ".join(parts)
