"""Observed waveforms and station metadata: ASDF, any format obspy reads, SPECFEM ascii."""
from __future__ import annotations

import glob
import os

import obspy
from obspy import Inventory, Stream

from seisflows_eara.io.specfem_traces import read_synthetics


def read_observed(path: str, reference_time: obspy.UTCDateTime) -> tuple[Stream, Inventory | None]:
    """Observed waveforms from an ASDF file (with its StationXML), a waveform file, a directory
    of waveform files (any format obspy reads) or of SPECFEM `*.sem.ascii` files (time axis relative
    to `reference_time`). A corrupt file raises an error naming it."""
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
