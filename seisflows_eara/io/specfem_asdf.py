"""SPECFEM3D_GLOBE's ASDF synthetics (Par_file OUTPUT_SEISMOS_ASDF = .true.), read with pyasdf.

What SPECFEM3D_GLOBE 7.0 writes (src/specfem3D/write_output_ASDF.f90: write_asdf, get_time,
station_to_stationxml, cmt_to_quakeml; the asdf-library's ASDF_define_waveform), one file
OUTPUT_FILES/synthetic.h5 per forward run:

- root attributes file_format = "ASDF", file_format_version = "0.0.2"; /QuakeML; /Provenance/<id>;
  /AuxiliaryData/Files/{constants_h, Parfile} (the build's setup/constants.h and DATA/Par_file);
- /Waveforms/NET.STA/ with a StationXML and 3 float32 datasets (N, E, Z, or Z, R, T with
  ROTATE_SEISMOGRAMS_RT) named `NET.STA..<band>X<comp>__<start>__<end>__synthetic`: empty location
  code, the channel of the `.sem.ascii` file (band code from DT, e.g. MXZ), tag `synthetic`,
  displacement in m, the samples of the ascii files (which print the same float32 values);
- each dataset's attributes: event_id (the CMTSOLUTION event name), starttime (int64 ns) and
  sampling_rate (float64).

What the reader does not take at face value:
- `sampling_rate` holds DT in s (write_asdf passes DT); it is checked against the time step of
  output_solver.txt and used as the sample interval;
- every output of the seismograms re-creates the file, so with NTSTEP_BETWEEN_OUTPUT_SEISMOS <
  NSTEP it holds only the last part (checked against NSTEP of output_solver.txt);
- `starttime` is the CMTSOLUTION header (PDE) time, without the time shift and without SPECFEM's
  start −t0 (get_time). The ascii files' time axis starts at −t0 relative to the centroid time,
  and SPECFEM states −t0 only in OUTPUT_FILES/output_solver.txt ("start time : … seconds"), so
  that log must lie beside the ASDF file (the solver plugin collects both);
- StationXML cuts station codes to 3 and coordinates to 4 characters, QuakeML swaps latitude and
  longitude: station codes come from the waveform names, coordinates from STATIONS/StationXML.

The traces equal those of `io.specfem_traces.read_sem_ascii` on the same run: same ids, npts,
starttime (centroid time − t0) and samples; the ascii reader estimates the step from its float32
time column, this one takes DT itself (they agree to ~1e-7 of DT).
"""
from __future__ import annotations

import os
import re
import warnings

import numpy as np
from obspy import Stream, Trace, UTCDateTime

#: SPECFEM's file name in OUTPUT_FILES (write_asdf)
SYNTHETIC_FILE = "synthetic.h5"
#: SPECFEM's log that states the time step and the start time −t0 (prepare_timerun)
SOLVER_LOG = "output_solver.txt"
#: the waveform tag SPECFEM writes
TAG = "synthetic"
#: largest |DT(attribute) − DT(log)| / DT accepted (the log prints DT in single precision)
DT_TOLERANCE = 1e-6

_START = re.compile(r"^\s*start time\s*:\s*(\S+)\s+seconds", re.M)
_STEP = re.compile(r"^\s*time step\s*:\s*(\S+)\s+s\s*$", re.M)
_NSTEP = re.compile(r"^\s*number of time steps\s*:\s*(\d+)\s*$", re.M)


class SpecfemAsdfError(ValueError):
    """A SPECFEM ASDF file (or its output_solver.txt) that cannot be read; names the file."""


def is_specfem_asdf(path: str) -> bool:
    """True when `path` is an HDF5 file in SPECFEM's ASDF layout (ASDF with the Par_file SPECFEM
    stores in /AuxiliaryData/Files/Parfile); False for other ASDF files and unreadable files."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("file_format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            return fmt == "ASDF" and "AuxiliaryData/Files/Parfile" in f
    except (OSError, KeyError, ValueError):
        return False


def solver_log_times(log: str) -> tuple[float, float, int]:
    """(DT, start time −t0 in s, NSTEP) from SPECFEM's output_solver.txt; error naming it."""
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise SpecfemAsdfError(f"SPECFEM log {log} not readable ({e}); SPECFEM's ASDF synthetics "
                               "need it beside them for their start time") from e
    start, step, nstep = _START.search(text), _STEP.search(text), _NSTEP.search(text)
    if not start or not step or not nstep:
        raise SpecfemAsdfError(f"SPECFEM log {log} has no 'time step' / 'number of time steps' / "
                               "'start time' line (the solver stopped before its time loop?)")
    return float(step.group(1)), float(start.group(1)), int(nstep.group(1))


def _station_traces(name: str, station, reference_time: UTCDateTime, dt: float, start: float,
                    nstep: int) -> list[Trace]:
    """The 3 traces of one pyasdf station (WaveformAccessor); ValueError saying what is wrong."""
    waves = [k for k in station.list() if k != "StationXML"]
    if len(waves) != 3 or not all(k.endswith("__" + TAG) for k in waves):
        raise ValueError(f"has waveforms {sorted(waves)}, want 3 tagged '{TAG}'")
    traces = []
    for tr in station[TAG]:
        if f"{tr.stats.network}.{tr.stats.station}" != name:
            raise ValueError(f"waveform {tr.id} is not of station {name}")
        step = float(tr.stats.sampling_rate)       # SPECFEM writes DT here (module doc)
        if abs(step - dt) > DT_TOLERANCE * dt:
            raise ValueError(f"waveform {tr.id}: 'sampling_rate' attribute {step} is not the DT "
                             f"{dt} s of {SOLVER_LOG}")
        data = np.asarray(tr.data, dtype=np.float64)
        if data.size != nstep:       # write_asdf re-creates the file at every seismogram output
            raise ValueError(f"waveform {tr.id} has {data.size} samples, not the NSTEP = {nstep} "
                             f"of {SOLVER_LOG} (NTSTEP_BETWEEN_OUTPUT_SEISMOS < NSTEP: SPECFEM "
                             "kept only its last output)")
        if not np.all(np.isfinite(data)):
            raise ValueError(f"waveform {tr.id} has non-finite samples")
        traces.append(Trace(data=data, header=dict(
            network=tr.stats.network, station=tr.stats.station, location=tr.stats.location,
            channel=tr.stats.channel, delta=step, starttime=reference_time + start)))
    if len(traces) != 3 or len({tr.stats.npts for tr in traces}) != 1:
        raise ValueError(f"components {[tr.stats.npts for tr in traces]} samples long, want 3 "
                         "of one length")
    return traces


def read_specfem_asdf(path: str, reference_time: UTCDateTime, solver_log: str | None = None
                      ) -> tuple[Stream, list[tuple[str, str]]]:
    """Traces of SPECFEM's synthetic.h5 on the ascii files' time axis (module doc) and the
    stations that could not be read as (NET.STA, reason). `reference_time` is the centroid time,
    `solver_log` SPECFEM's output_solver.txt (default: beside the file). A file that cannot be
    read at all raises SpecfemAsdfError naming it."""
    import pyasdf
    log = solver_log or os.path.join(os.path.dirname(os.path.abspath(path)), SOLVER_LOG)
    dt, start, nstep = solver_log_times(log)
    if not is_specfem_asdf(path):
        raise SpecfemAsdfError(f"{path} is not SPECFEM's ASDF synthetics (no ASDF file with "
                               "/AuxiliaryData/Files/Parfile)")
    st, bad = Stream(), []
    try:
        with warnings.catch_warnings():
            # SPECFEM writes format version 0.0.2, which pyasdf warns about and reads
            warnings.filterwarnings("ignore", message=".*version.*")
            ds = pyasdf.ASDFDataSet(path, mode="r")
    except Exception as e:
        raise SpecfemAsdfError(f"cannot read SPECFEM ASDF synthetics {path}: {e}") from e
    try:
        names = ds.waveforms.list()
        if not names:
            raise SpecfemAsdfError(f"SPECFEM ASDF synthetics {path} hold no station")
        for name in names:
            try:
                st.extend(_station_traces(name, ds.waveforms[name], reference_time, dt, start,
                                          nstep))
            except Exception as e:      # one damaged station stays local
                bad.append((name, f"station {name} of SPECFEM ASDF synthetics {path}: {e}"))
    finally:
        del ds
    return st, bad
