"""SPECFEM3D_GLOBE seismograms and adjoint sources.

Synthetics: `NET.STA.CHA.sem.ascii`, two columns (time in s relative to the centroid time, value),
read into obspy Traces whose starttime is centroid time + first time. ASDF synthetics go through
pyasdf (SPECFEM's own synthetic.h5 layout through io.specfem_asdf). Adjoint sources: `NET.STA.CHA.adj` with the same two columns on the forward time axis
(SPECFEM3D_GLOBE reverses them itself).
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pandas as pd
from obspy import Stream, Trace, UTCDateTime

from seisflows_eara.io.atomic import atomic_open


def _first_bad_line(path: str) -> str:
    """', line N: <text>' for the first line that is not two numbers ('' when none is)."""
    try:
        with open(path, errors="replace") as f:
            for n, line in enumerate(f, 1):
                parts = line.split()
                try:
                    if len(parts) != 2:
                        raise ValueError
                    float(parts[0]), float(parts[1])
                except ValueError:
                    return f", line {n}: {line.strip()[:60]!r} is not two numbers"
    except OSError:
        pass
    return ""


def _read_two_columns(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        arr = pd.read_csv(path, sep=r"\s+", header=None, engine="c", dtype=np.float64).to_numpy()
    except Exception as e:  # pandas raises several types for damaged text
        raise ValueError(f"cannot read SPECFEM trace file {path}{_first_bad_line(path)} "
                         f"({e})") from e
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
        raise ValueError(f"SPECFEM trace file {path} must have two columns and >= 2 rows, "
                         f"got shape {arr.shape}")
    return arr[:, 0], arr[:, 1]


#: largest deviation of a time step from the mean step, as a fraction of it (float32 time column)
TIME_AXIS_TOLERANCE = 1e-3


def read_sem_ascii(path: str, reference_time: UTCDateTime) -> Trace:
    """One `NET.STA.CHA.sem.ascii` file as a Trace; `reference_time` is the centroid time."""
    t, x = _read_two_columns(path)
    # SPECFEM computes the time column in single precision (t = it·DT − t0): successive
    # differences scatter by ~1e-4 of DT late in a record, so the step comes from the end points
    dt = float(t[-1] - t[0]) / (t.size - 1)
    if dt <= 0 or np.max(np.abs(np.diff(t) - dt)) > TIME_AXIS_TOLERANCE * dt:
        raise ValueError(f"SPECFEM trace file {path} has an irregular time axis")
    net, sta, cha = os.path.basename(path).split(".")[:3]
    return Trace(data=x, header=dict(network=net, station=sta, location="", channel=cha,
                                     delta=dt, starttime=reference_time + float(t[0])))


def read_synthetics(path: str, reference_time: UTCDateTime) -> Stream:
    """Synthetics from a directory of `*.sem.ascii` files (or of SPECFEM's synthetic.h5, or of
    waveform files in any obspy format), an ASDF file (SPECFEM's layout: io.specfem_asdf; else
    any waveform tag) or a waveform file obspy reads. Raises at the first bad file or station
    (io.waveforms.read_synthetic_data keeps going instead)."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.sem.ascii")))
        if not files:      # a folder of SAC, MiniSEED, ... files (io.waveforms reads them)
            from seisflows_eara.io.waveforms import read_waveforms
            data = read_waveforms(path, reference_time, "synthetic")
            bad = [n.reason for n in data.notes if n.status == "rejected"]
            if bad:
                raise ValueError(bad[0])
            if not len(data.stream):
                raise FileNotFoundError(f"no synthetics (*.sem.ascii or waveform files) in {path}")
            return data.stream
        return Stream([read_sem_ascii(f, reference_time) for f in files])
    if path.endswith((".h5", ".asdf")):
        from seisflows_eara.io.specfem_asdf import is_specfem_asdf, read_specfem_asdf
        if is_specfem_asdf(path):          # SPECFEM's own layout (needs output_solver.txt)
            st, bad = read_specfem_asdf(path, reference_time)
            if bad:
                raise ValueError(bad[0][1])
            return st
        import pyasdf
        st = Stream()
        with pyasdf.ASDFDataSet(path, mode="r") as ds:
            for sta in ds.waveforms:
                for tag in sta.get_waveform_tags():
                    st += sta[tag]
        return st
    if os.path.isfile(path):
        import obspy
        try:
            return obspy.read(path)
        except Exception as e:
            raise ValueError(f"cannot read synthetics file {path}: {e}") from e
    raise FileNotFoundError(f"synthetics {path!r} not found (a directory of *.sem.ascii files, an "
                            "ASDF file or any waveform file obspy reads)")


def write_adjoint_source(folder: str, network: str, station: str, channel: str,
                         times: np.ndarray, values: np.ndarray) -> str:
    """Write one `NET.STA.CHA.adj` file (time, value) on the forward time axis; returns its path."""
    path = os.path.join(folder, f"{network}.{station}.{channel}.adj")
    with atomic_open(path, "w") as f:
        np.savetxt(f, np.column_stack([times, values]), fmt="%14.6f %18.8e")
    return path
