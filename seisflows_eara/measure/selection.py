"""Which recorded channels of a station are measured (issue 17 item 1).

A data centre delivers per station any number of sensors (location codes) and bands (BH, HH, LH,
...), each as Z plus two horizontals N/E or 1/2. The chain measures per station ONE complete set
(Z + N, E or Z + 1, 2): the band first in `channel_priorities` (obspy MassDownloader's convention:
fnmatch patterns on the channel code, e.g. "BH[ZNE12]"), then among the locations of that band the
one first in `location_priorities` ('' the blank code) — MassDownloader filters channels first,
then locations. With `measure_all_locations` every location contributes its best band, each
measured on its own (their adjoint sources are summed per component). Everything not chosen is
returned as `unused`, with the reason, so the table lists every channel that was delivered.

Pure functions on obspy Streams: no file I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from obspy import Stream

HORIZONTAL_PAIRS = ("NE", "12", "RT")


@dataclass(frozen=True)
class SelectionRules:
    """Priority lists of parameters.yaml (channel_priorities, location_priorities,
    measure_all_locations)."""
    channel_priorities: tuple[str, ...]
    location_priorities: tuple[str, ...]
    all_locations: bool = False

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "SelectionRules":
        return cls(tuple(values["channel_priorities"]), tuple(values["location_priorities"]),
                   bool(values["measure_all_locations"]))


@dataclass
class ChannelSet:
    """The traces of one (location, band) of a station; `orientations` is e.g. 'Z12'."""
    network: str
    station: str
    location: str
    band: str
    stream: Stream

    @property
    def channels(self) -> list[str]:
        return sorted({tr.stats.channel for tr in self.stream})

    @property
    def orientations(self) -> str:
        return "".join(sorted({tr.stats.channel[2:] for tr in self.stream}))

    @property
    def label(self) -> str:
        """NET.STA.LOC.BAND? as a reason names it."""
        return f"{self.network}.{self.station}.{self.location}.{self.band}?"

    @property
    def channel_label(self) -> str:
        """The table's `channel` column: the channel codes, comma-separated (Z first)."""
        return ",".join(sorted(self.channels, key=lambda c: (c[2:] != "Z", c)))


@dataclass
class Selection:
    """What select_channels chose: measured sets (one, or one per location), unused sets with
    their reasons, and a reason when nothing can be measured."""
    chosen: list[ChannelSet]
    unused: list[tuple[ChannelSet, str]]
    reason: str = ""


def channel_sets(stream: Stream) -> list[ChannelSet]:
    """Group traces by (location, first two letters of the channel), in the order first seen."""
    groups: dict[tuple[str, str], ChannelSet] = {}
    for tr in stream:
        s = tr.stats
        key = (s.location, s.channel[:2])
        if key not in groups:
            groups[key] = ChannelSet(s.network, s.station, s.location, s.channel[:2], Stream())
        groups[key].stream.append(tr)
    return list(groups.values())


def complete(cs: ChannelSet) -> tuple[ChannelSet | None, str]:
    """The Z + horizontal pair of a set (N/E preferred to 1/2), or None and what is missing."""
    o = set(cs.orientations)
    for pair in HORIZONTAL_PAIRS:
        if "Z" in o and set(pair) <= o:
            keep = {"Z", *pair}
            st = Stream([tr for tr in cs.stream if tr.stats.channel[2:] in keep])
            return ChannelSet(cs.network, cs.station, cs.location, cs.band, st), ""
    return None, (f"{cs.label} has components {', '.join(cs.channels)}: needs Z and N, E "
                  "(or 1, 2)")


def _rank(patterns: tuple[str, ...], codes: list[str]) -> int | None:
    """Index of the first pattern matching every code, None when none does."""
    for i, p in enumerate(patterns):
        if all(fnmatchcase(c, p) for c in codes):
            return i
    return None


def select_channels(stream: Stream, rules: SelectionRules) -> Selection:
    """Choose the channel set(s) of one station's traces by the priority lists (module doc)."""
    candidates: list[tuple[int, int, ChannelSet]] = []
    unused: list[tuple[ChannelSet, str]] = []
    problems: list[str] = []
    for cs in channel_sets(stream):
        full, why = complete(cs)
        if full is None:
            unused.append((cs, why))
            problems.append(why)
            continue
        if len(full.stream) < len(cs.stream):       # 1/2 beside N/E: N/E are measured
            kept = {id(tr) for tr in full.stream}
            rest = Stream([tr for tr in cs.stream if id(tr) not in kept])
            unused.append((ChannelSet(cs.network, cs.station, cs.location, cs.band, rest),
                           f"{cs.label}: N and E measured instead"))
        c_rank = _rank(rules.channel_priorities, full.channels)
        l_rank = _rank(rules.location_priorities, [full.location])
        if c_rank is None or l_rank is None:
            why = (f"{full.label}: channels {', '.join(full.channels)} match no channel_priorities "
                   "pattern" if c_rank is None else
                   f"{full.label}: location {full.location!r} matches no location_priorities entry")
            unused.append((full, why))
            problems.append(why)
            continue
        candidates.append((c_rank, l_rank, full))
    if not candidates:
        return Selection([], unused, "; ".join(problems) or "no traces")
    candidates.sort(key=lambda x: (x[0], x[1]))
    if rules.all_locations:
        chosen, seen = [], set()
        for _, _, cs in candidates:
            if cs.location not in seen:
                seen.add(cs.location)
                chosen.append(cs)
    else:
        chosen = [candidates[0][2]]
    first = chosen[0]
    for _, _, cs in candidates:
        if cs not in chosen:
            pick = next((c for c in chosen if c.location == cs.location), first)
            unused.append((cs, f"{cs.label} not measured: {pick.label} comes first in "
                               "channel_priorities / location_priorities"))
    return Selection(chosen, unused)
