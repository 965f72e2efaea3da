"""SPECFEM3D_GLOBE 7.0's ASDF synthetics file and the output_solver.txt lines its reader needs,
written with h5py in the layout the Fortran writes (for tests and the solver stand-in).

Layout (src/specfem3D/write_output_ASDF.f90, write_asdf l.321-368: OUTPUT_FILES/synthetic.h5, root
attributes file_format "ASDF" / file_format_version "0.0.2", /QuakeML, /Provenance/<id>,
/AuxiliaryData/Files/{constants_h, Parfile}, /Waveforms/NET.STA with StationXML, waveform names
NET.STA..CHA__<start(1:19)>__<end(1:19)>__synthetic in iorientation order N, E, Z
(write_seismograms.f90 l.414-431); get_time l.514-563: start string with the seconds as F5.2,
end from (n−1)/DT, starttime = the CMTSOLUTION header time in ns; station_to_stationxml
l.574-608: codes cut to 2/3 characters) and the asdf-library's ASDF_define_waveform (float32
chunked, unlimited dataset; attributes event_id string, sampling_rate float64 = the DT SPECFEM
passes, starttime int64). Strings are 1-D int8 datasets (ASDF_write_quakeml etc.).
prepare_timerun.f90 l.112-115 prints the log lines.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from obspy import UTCDateTime


def _int8(group, name: str, text: str) -> None:
    b = np.frombuffer(text.encode(), dtype=np.int8)
    group.create_dataset(name, data=b, maxshape=(None,), chunks=(max(b.size, 1),))


def _str_attr(obj, name: str, text: str) -> None:
    """A fixed-length, null-padded string attribute (ASDF_write_string_attribute)."""
    obj.attrs.create(name, np.bytes_(text.encode()), dtype=h5py.string_dtype("ascii", len(text)))


def write_specfem_asdf(path, comps: dict[str, dict[str, np.ndarray]], header_time: UTCDateTime,
                       event_name: str, dt: float, parfile: str) -> None:
    """synthetic.h5 from {"NET.STA": {"MXN": samples, "MXE": ..., "MXZ": ...}} (float32)."""
    sec = header_time.second + header_time.microsecond / 1e6
    start19 = (header_time.strftime("%Y-%m-%dT%H:%M:") + f"{sec:5.2f}")[:19]     # F5.2, (1:19)
    start_s = header_time.timestamp
    with h5py.File(path, "w", libver="latest") as h:
        _str_attr(h, "file_format", "ASDF")
        _str_attr(h, "file_format_version", "0.0.2")
        _int8(h, "QuakeML", '<q:quakeml xmlns="http://quakeml.org/xmlns/bed/1.2" '
              'xmlns:q="http://quakeml.org/xmlns/quakeml/1.2"><eventParameters '
              'publicID="smi:local/x"><event publicID="smi:local/e"><type>earthquake</type>'
              '</event></eventParameters></q:quakeml>')
        _int8(h.create_group("Provenance"), "373da5fe_d424_4f44_9bca_4334d77ed10b",
              '<prov:document xmlns:prov="http://www.w3.org/ns/prov#"/>')
        files = h.create_group("AuxiliaryData").create_group("Files")
        _int8(files, "constants_h", "! setup/constants.h of the build\n")
        _int8(files, "Parfile", parfile)
        wave = h.create_group("Waveforms")
        for name, by_cha in comps.items():
            g = wave.create_group(name)
            net, sta = name.split(".")
            _int8(g, "StationXML", '<FDSNStationXML schemaVersion="1.0" xmlns="http://www.fdsn.'
                  f'org/xml/station/1"><Source>SPECFEM3D_GLOBE</Source><Network code="{net[:2]}">'
                  f'<Station code="{sta[:3]}"/></Network></FDSNStationXML>')
            n = len(next(iter(by_cha.values())))
            end19 = UTCDateTime(int(start_s + (n - 1) / dt)).strftime("%Y-%m-%dT%H:%M:%S")
            for cha in sorted(by_cha, key=lambda c: "NEZRT".index(c[-1])):
                d = g.create_dataset(f"{name}..{cha}__{start19}__{end19}__synthetic",
                                     data=np.asarray(by_cha[cha], dtype=np.float32), dtype="<f4",
                                     maxshape=(None,), chunks=(n,))
                _str_attr(d, "event_id", event_name)
                d.attrs.create("sampling_rate", dt, dtype="<f8")          # DT, as SPECFEM passes
                d.attrs.create("starttime", int(start_s * 1e9), dtype="<i8")


def solver_log_lines(dt: float, nstep: int, start: float) -> str:
    """The time-loop lines of output_solver.txt (gfortran list-directed, single precision)."""
    return (f"           time step: {np.float32(dt):14.9g}      s\n"
            f" number of time steps: {nstep:12d}\n"
            f" start time          : {np.float32(start):14.9g}      seconds\n")


def header_time(cmtsolution) -> UTCDateTime:
    """The CMTSOLUTION header (PDE) time: year month day hour minute second of line 1."""
    f = Path(cmtsolution).read_text().split("\n", 1)[0][4:].split()
    y, mo, d, hh, mi = (int(x) for x in f[:5])
    return UTCDateTime(y, mo, d, hh, mi) + float(f[5])
