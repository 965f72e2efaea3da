"""Observed waveforms and station metadata: ASDF, any format obspy reads, SPECFEM ascii.

`read_waveforms` reads a file or a folder (recursively: MassDownloader's waveforms/ + stations/
layout works) file by file and never stops at a bad one: each file that cannot be read becomes a
FileNote naming it (with the line for SPECFEM ascii), files that are not data (figures, text) are
skipped with a note, and StationXML files found among the data are read as the inventory. Every
trace remembers its file in `trace.stats.eara_file`; SPECFEM ascii traces are marked
`trace.stats.eara_displacement` (SPECFEM writes displacement in m).
"""
from __future__ import annotations

import glob
import os
import re
import warnings
from dataclasses import dataclass, field

import obspy
from obspy import Inventory, Stream

from seisflows_eara.io.specfem_asdf import (SYNTHETIC_FILE, SpecfemAsdfError, is_specfem_asdf,
                                             read_specfem_asdf)
from seisflows_eara.io.specfem_traces import read_sem_ascii, read_synthetics

#: files that are never waveform data: skipped with a note, not read
NOT_DATA = (".png", ".jpg", ".jpeg", ".gif", ".pdf", ".ps", ".eps", ".svg", ".md", ".txt",
            ".json", ".csv", ".log", ".yaml", ".yml", ".py", ".sh", ".ipynb", ".html", ".pkl",
            ".npz", ".npy", ".zip", ".gz", ".tar", ".adj")
#: extensions that promise waveform data: when obspy does not recognise them the file is damaged
WAVEFORM = (".mseed", ".miniseed", ".ms", ".msd", ".seed", ".sac", ".segy", ".sgy", ".gse",
            ".gse2", ".sg2", ".seisan", ".wav", ".sem.ascii", ".semd")
_STATION_IN_NAME = re.compile(r"^([A-Za-z0-9]{1,2})\.([A-Za-z0-9]{1,5})(?:\.|$)")


@dataclass(frozen=True)
class FileNote:
    """A file that was not used: `rejected` (data that cannot be read) or `skipped` (not data);
    network/station guessed from the file name when it starts NET.STA."""
    file: str
    reason: str
    status: str = "rejected"
    network: str = ""
    station: str = ""


@dataclass
class WaveformData:
    stream: Stream
    inventory: Inventory | None
    notes: list[FileNote] = field(default_factory=list)
    files: list[str] = field(default_factory=list)       # every file found


def _note(path: str, reason: str, status: str = "rejected") -> FileNote:
    m = _STATION_IN_NAME.match(os.path.basename(path))
    return FileNote(path, reason, status, *(m.group(1, 2) if m else ("", "")))


def _read_obspy(path: str) -> Stream:
    """obspy.read, with obspy's warnings about damaged records turned into an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st = obspy.read(path)
    bad = [str(w.message) for w in caught
           if any(k in str(w.message).lower() for k in ("corrupt", "truncat", "not enough"))]
    if bad:
        raise ValueError(f"damaged file (obspy: {bad[0]})")
    if not len(st):
        raise ValueError("no traces in the file")
    return st


def _read_specfem_asdf(path: str, data: WaveformData, reference_time: obspy.UTCDateTime) -> None:
    """SPECFEM's synthetic.h5 (io.specfem_asdf): traces as from its *.sem.ascii files, a note per
    station that cannot be read; a file that cannot be read at all raises."""
    st, bad = read_specfem_asdf(path, reference_time)
    for name, reason in bad:
        net, _, code = name.partition(".")
        data.notes.append(FileNote(f"{path}:{name}", reason, "rejected", net, code))
    for tr in st:
        tr.stats.eara_file = f"{path}:{tr.stats.network}.{tr.stats.station}"
        tr.stats.eara_displacement = True
        data.stream.append(tr)


def _read_asdf(path: str, data: WaveformData, reference_time: obspy.UTCDateTime) -> None:
    if is_specfem_asdf(path):
        _read_specfem_asdf(path, data, reference_time)
        return
    import pyasdf
    inv = Inventory()
    with pyasdf.ASDFDataSet(path, mode="r") as ds:
        for name in ds.waveforms.list():
            try:
                sta = ds.waveforms[name]
                for tag in sta.get_waveform_tags():
                    for tr in sta[tag]:
                        tr.stats.eara_file = f"{path}:{name}/{tag}"
                        data.stream.append(tr)
                if "StationXML" in sta:
                    inv += sta.StationXML
            except Exception as e:      # one damaged station of the file stays local
                net, _, code = name.partition(".")
                data.notes.append(FileNote(f"{path}:{name}", f"cannot read ASDF station {name} "
                                           f"of {path}: {e}", "rejected", net, code))
    if len(inv):
        data.inventory = (data.inventory or Inventory()) + inv


def read_waveforms(path: str, reference_time: obspy.UTCDateTime, what: str = "observed"
                   ) -> WaveformData:
    """Every waveform file under `path` (a file or a folder), never stopping at a bad one (module
    doc). Raises FileNotFoundError only when `path` does not exist. `reference_time` is the
    centroid time (SPECFEM ascii time axes are relative to it)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} data {path!r} not found")
    if os.path.isdir(path):
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(path) for f in names)
    else:
        files = [path]
    data = WaveformData(Stream(), None, [], files)
    for f in files:
        name = os.path.basename(f).lower()
        if name.startswith(".") or name.endswith(NOT_DATA) or name in ("readme", "license",
                                                                       "stations"):
            data.notes.append(_note(f, f"{f}: not a waveform file (skipped)", "skipped"))
            continue
        try:
            if name.endswith((".h5", ".asdf")):
                _read_asdf(f, data, reference_time)
                continue
            if name.endswith(".xml"):
                try:
                    inv = obspy.read_inventory(f)
                except Exception:
                    data.notes.append(_note(f, f"{f}: XML that is not StationXML (skipped)",
                                            "skipped"))
                    continue
                data.inventory = inv if data.inventory is None else data.inventory + inv
                continue
            if name.endswith(".sem.ascii"):
                st = Stream([read_sem_ascii(f, reference_time)])
                st[0].stats.eara_displacement = True
            else:
                try:
                    st = _read_obspy(f)
                except TypeError as e:       # obspy: "Unknown format for file"
                    if name.endswith(WAVEFORM) or os.path.getsize(f) == 0:
                        raise ValueError("empty file" if os.path.getsize(f) == 0 else
                                         f"not readable as waveform data ({e})") from e
                    data.notes.append(_note(f, f"{f}: not a format obspy reads (skipped)",
                                            "skipped"))
                    continue
        except Exception as e:
            msg = str(e)
            data.notes.append(_note(f, msg if f in msg else f"cannot read {what} file {f}: {msg}"))
            continue
        for tr in st:
            tr.stats.eara_file = f
            data.stream.append(tr)
    return data


def read_observed(path: str, reference_time: obspy.UTCDateTime) -> tuple[Stream, Inventory | None]:
    """Observed waveforms from an ASDF file (with its StationXML), a waveform file, a directory
    of waveform files (any format obspy reads) or of SPECFEM `*.sem.ascii` files (time axis relative
    to `reference_time`). A corrupt file raises an error naming it."""
    if path.endswith((".h5", ".asdf")) and is_specfem_asdf(path):
        return read_synthetics(path, reference_time), None
    if path.endswith((".h5", ".asdf")):
        import pyasdf
        st, inv = Stream(), Inventory()
        with pyasdf.ASDFDataSet(path, mode="r") as ds:
            for sta in ds.waveforms:
                for tag in sta.get_waveform_tags():
                    st += sta[tag]
                if "StationXML" in sta:
                    inv += sta.StationXML
        return st, (inv if len(inv) else None)
    if os.path.isdir(path) and glob.glob(os.path.join(path, "*.sem.ascii")):
        return read_synthetics(path, reference_time), None
    files = sorted(glob.glob(os.path.join(path, "*"))) if os.path.isdir(path) else [path]
    if not files or not os.path.exists(files[0]):
        raise FileNotFoundError(f"observed data {path!r} not found")
    st = Stream()
    for f in files:
        if f.endswith((".xml", ".md", ".txt", ".json")):
            continue
        try:
            st += obspy.read(f)
        except Exception as e:
            raise ValueError(f"cannot read observed waveform file {f}: {e}") from e
    return st, None


def read_inventory(path: str | None) -> Inventory | None:
    if not path:
        return None
    files = sorted(glob.glob(os.path.join(path, "*.xml"))) if os.path.isdir(path) else [path]
    inv = Inventory()
    for f in files:
        try:
            inv += obspy.read_inventory(f)
        except Exception as e:
            raise ValueError(f"cannot read StationXML file {f}: {e}") from e
    return inv


def read_synthetic_data(path: str, reference_time: obspy.UTCDateTime) -> WaveformData:
    """Synthetics like `read_waveforms`: a folder's `*.sem.ascii` files when it has any (SPECFEM's
    OUTPUT_FILES holds other files too), else its SPECFEM ASDF file synthetic.h5 (with
    output_solver.txt beside it, io.specfem_asdf: the same traces), else every file in any obspy
    format or ASDF. `path` may also be a SPECFEM ASDF file."""
    asdf = os.path.join(path, SYNTHETIC_FILE) if os.path.isdir(path) else path
    if not (os.path.isdir(path) and glob.glob(os.path.join(path, "*.sem.ascii"))) \
            and os.path.isfile(asdf) and is_specfem_asdf(asdf):
        data = WaveformData(Stream(), None, [], [asdf])
        try:
            _read_specfem_asdf(asdf, data, reference_time)
        except SpecfemAsdfError as e:
            data.notes.append(FileNote(asdf, str(e)))
        return data
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.sem.ascii")))
        if files:
            data = WaveformData(Stream(), None, [], files)
            for f in files:
                try:
                    tr = read_sem_ascii(f, reference_time)
                except Exception as e:
                    data.notes.append(_note(f, str(e)))
                    continue
                tr.stats.eara_file = f
                data.stream.append(tr)
            return data
    return read_waveforms(path, reference_time, "synthetic")
