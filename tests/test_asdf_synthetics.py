"""SPECFEM3D_GLOBE's ASDF synthetics (OUTPUT_SEISMOS_ASDF) read like its *.sem.ascii files.

The ASDF file is written here in SPECFEM3D_GLOBE 7.0's exact layout from the real ascii synthetics
of shared/fixtures/specfem3d_globe_tiny (the run's own output_solver.txt beside it), following
src/specfem3D/write_output_ASDF.f90 (write_asdf l.321-368: file OUTPUT_FILES/synthetic.h5, root
attributes file_format/file_format_version "0.0.2", /QuakeML, /Provenance, AuxiliaryData/Files
{constants_h, Parfile}, /Waveforms/NET.STA with StationXML, waveform names
NET.STA..CHA__<start(1:19)>__<end(1:19)>__synthetic, components in iorientation order N, E, Z
(write_seismograms.f90 l.414-431); get_time l.514-563: start string with seconds as F5.2, end
from (n−1)/DT, starttime = the CMTSOLUTION header time in ns) and the asdf-library's
ASDF_define_waveform (float32 chunked dataset; attributes event_id string, sampling_rate
float64 = the DT SPECFEM passes, starttime int64).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from obspy import UTCDateTime

from conftest import shared_fixture
from seisflows_eara import params
from seisflows_eara.io.specfem_asdf import (SOLVER_LOG, SYNTHETIC_FILE, SpecfemAsdfError,
                                            is_specfem_asdf, read_specfem_asdf, solver_log_times)
from seisflows_eara.io.specfem_traces import read_synthetics
from seisflows_eara.io.stations import read_stations
from seisflows_eara.io.waveforms import read_synthetic_data
from seisflows_eara.measure import Config, event_from_file, measure_event

GRC = Path(__file__).parent / "data" / "regional_greece"
sys.path.insert(0, str(Path(__file__).parent / "standin"))
import specfem_asdf_files  # noqa: E402  (tests/standin: shared with the solver stand-in)


# ---------------------------------------------------------------- SPECFEM's layout, written here
def write_specfem_asdf(path: Path, ascii_dir: Path, header: UTCDateTime, event_name: str,
                       dt: float, parfile: str, stations: list[str] | None = None) -> None:
    """SPECFEM3D_GLOBE's synthetic.h5 (tests/standin/specfem_asdf_files.py) from a run's
    NET.STA.CHA.sem.ascii files."""
    comps: dict[str, dict[str, np.ndarray]] = {}
    for f in sorted(glob.glob(str(ascii_dir / "*.sem.ascii"))):
        net, sta, cha = os.path.basename(f).split(".")[:3]
        if stations is None or f"{net}.{sta}" in stations:
            # the ascii text prints SPECFEM's float32 samples with 9 digits: exact in float32
            comps.setdefault(f"{net}.{sta}", {})[cha] = np.loadtxt(f)[:, 1].astype(np.float32)
    specfem_asdf_files.write_specfem_asdf(path, comps, header, event_name, dt, parfile)


def _ordered(st) -> list:
    return sorted(st, key=lambda tr: tr.id)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(ascii dir, folder with synthetic.h5 + output_solver.txt, event) of the tiny real run."""
    tiny = shared_fixture("specfem3d_globe_tiny")
    out = tmp_path_factory.mktemp("asdf")
    shutil.copy(tiny / "OUTPUT_FILES" / SOLVER_LOG, out / SOLVER_LOG)
    dt, start, nstep = solver_log_times(str(out / SOLVER_LOG))
    assert (dt, start, nstep) == (0.253585309, -4.5, 1100)
    ev = event_from_file(str(tiny / "DATA" / "CMTSOLUTION"))
    header = specfem_asdf_files.header_time(tiny / "DATA" / "CMTSOLUTION")
    assert header == UTCDateTime(2008, 1, 6, 5, 14, 23.70)
    par = (tiny / "DATA" / "Par_file.forward").read_text().replace(
        "OUTPUT_SEISMOS_ASDF             = .false.", "OUTPUT_SEISMOS_ASDF             = .true.")
    write_specfem_asdf(out / SYNTHETIC_FILE, tiny / "OUTPUT_FILES", header, ev.name, dt, par)
    return tiny / "OUTPUT_FILES", out, ev


def test_layout_is_specfems(run):
    _, out, _ = run
    with h5py.File(out / SYNTHETIC_FILE, "r") as h:
        names = list(h["Waveforms/IU.GRFO"])
        assert "IU.GRFO..MXZ__2008-01-06T05:14:23__2008-01-06T06:26:37__synthetic" in names
        assert h["Waveforms/IU.GRFO"][names[0]].dtype == np.float32
    assert is_specfem_asdf(str(out / SYNTHETIC_FILE))
    assert not is_specfem_asdf(str(out / SOLVER_LOG))


def test_ascii_and_asdf_give_the_same_stream(run):
    ascii_dir, out, ev = run
    a = read_synthetic_data(str(ascii_dir), ev.time).stream
    b = read_synthetic_data(str(out), ev.time)
    assert not b.notes
    b = b.stream
    assert [tr.id for tr in _ordered(a)] == [tr.id for tr in _ordered(b)]
    assert len(b) == 18 and {tr.stats.channel for tr in b} == {"MXN", "MXE", "MXZ"}
    for x, y in zip(_ordered(a), _ordered(b)):
        assert x.stats.starttime == y.stats.starttime == ev.time - 4.5     # -t0 after the centroid
        assert x.stats.npts == y.stats.npts == 1100
        # ascii: step from the float32 time column; ASDF: DT itself
        assert abs(x.stats.delta - y.stats.delta) < 1e-6 * y.stats.delta
        assert abs(x.stats.endtime - y.stats.endtime) < 1e-4
        assert y.data.dtype == x.data.dtype == np.float64
        np.testing.assert_array_equal(x.data.astype(np.float32), y.data)   # same float32 samples
        np.testing.assert_allclose(x.data, y.data, rtol=1e-7, atol=0)
    # the other readers (line searches, plots) give the same traces from the folder or the file
    for c in (read_synthetics(str(out), ev.time),
              read_synthetics(str(out / SYNTHETIC_FILE), ev.time)):
        assert [(t.id, t.stats.starttime, t.stats.delta) for t in _ordered(c)] == \
            [(t.id, t.stats.starttime, t.stats.delta) for t in _ordered(b)]
        for x, y in zip(_ordered(c), _ordered(b)):
            np.testing.assert_array_equal(x.data, y.data)


def test_measurements_and_adjoint_sources_agree(run):
    ascii_dir, out, ev = run
    sta = read_stations(GRC / "STATIONS")
    obs = read_synthetics(str(GRC / "REF_SEIS"), ev.time)
    by = {s.code: obs.select(network=s.network, station=s.station) for s in sta}
    cfg = Config(params.defaults(), 1)
    ma = measure_event(ev, sta, by, read_synthetic_data(str(ascii_dir), ev.time).stream, cfg,
                       observed_processed=True)
    mb = measure_event(ev, sta, by, read_synthetic_data(str(out), ev.time).stream, cfg,
                       observed_processed=True)
    ta, tb = (m.table.drop(columns=["files"]) for m in (ma, mb))
    assert (ta["status"] == "ok").sum() > 0
    assert list(ta["status"]) == list(tb["status"]) and list(ta["reason"]) == list(tb["reason"])
    # time lags in s: the ascii step (from the float32 time column) is off DT by ~1e-7 of it,
    # ~1e-5 s over the record; every other number agrees to 1e-5 relative
    num = [c for c in ta.select_dtypes("number").columns if c != "dt"]
    np.testing.assert_allclose(ta[num].to_numpy(float), tb[num].to_numpy(float), rtol=1e-5,
                               atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ta["dt"].to_numpy(float), tb["dt"].to_numpy(float), rtol=0,
                               atol=2e-5, equal_nan=True)
    assert abs(ma.misfit - mb.misfit) <= 1e-5 * abs(ma.misfit)
    assert sorted(ma.adjoint) == sorted(mb.adjoint) and ma.adjoint
    for k in ma.adjoint:
        np.testing.assert_allclose(ma.adjoint_times[k], mb.adjoint_times[k], rtol=0, atol=1e-4)
        scale = np.max(np.abs(ma.adjoint[k]))
        np.testing.assert_allclose(ma.adjoint[k], mb.adjoint[k], rtol=0, atol=1e-5 * scale)


def test_damaged_station_and_file_are_named(run, tmp_path):
    ascii_dir, out, ev = run
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(out / SOLVER_LOG, bad / SOLVER_LOG)
    shutil.copy(out / SYNTHETIC_FILE, bad / SYNTHETIC_FILE)
    with h5py.File(bad / SYNTHETIC_FILE, "a") as h:       # one component of HT.LIT lost
        g = h["Waveforms/HT.LIT"]
        del g[[k for k in g if "MXE" in k][0]]
    data = read_synthetic_data(str(bad), ev.time)
    assert len(data.stream) == 15
    (note,) = data.notes
    assert note.station == "LIT" and note.network == "HT"
    assert str(bad / SYNTHETIC_FILE) in note.reason and "HT.LIT" in note.reason
    with pytest.raises(ValueError, match="HT.LIT"):
        read_synthetics(str(bad / SYNTHETIC_FILE), ev.time)
    # a truncated file: a note naming it, and an error naming it from the strict reader
    raw = (out / SYNTHETIC_FILE).read_bytes()
    (bad / SYNTHETIC_FILE).write_bytes(raw[: len(raw) // 3])
    data = read_synthetic_data(str(bad / SYNTHETIC_FILE), ev.time)
    assert not len(data.stream)
    assert data.notes and all(str(bad / SYNTHETIC_FILE) in n.reason for n in data.notes)
    # without SPECFEM's log the start time is unknown: an error naming the missing log
    nolog = tmp_path / "nolog"
    nolog.mkdir()
    shutil.copy(out / SYNTHETIC_FILE, nolog / SYNTHETIC_FILE)
    with pytest.raises(SpecfemAsdfError, match=str(nolog / SOLVER_LOG)):
        read_specfem_asdf(str(nolog / SYNTHETIC_FILE), ev.time)
    data = read_synthetic_data(str(nolog), ev.time)
    assert not len(data.stream) and str(nolog / SOLVER_LOG) in data.notes[0].reason
    # a sampling_rate attribute that is not the log's DT (e.g. a writer storing 1/DT)
    shutil.copy(out / SOLVER_LOG, nolog / SOLVER_LOG)
    with h5py.File(nolog / SYNTHETIC_FILE, "a") as h:
        for k in h["Waveforms/GE.ZKR"]:
            if k != "StationXML":
                h["Waveforms/GE.ZKR"][k].attrs["sampling_rate"] = 1 / 0.253585309
    st, bad_st = read_specfem_asdf(str(nolog / SYNTHETIC_FILE), ev.time)
    assert len(st) == 15 and bad_st[0][0] == "GE.ZKR" and "sampling_rate" in bad_st[0][1]
    # NTSTEP_BETWEEN_OUTPUT_SEISMOS < NSTEP: SPECFEM re-creates the file with the last part only
    with h5py.File(nolog / SYNTHETIC_FILE, "a") as h:
        for k in h["Waveforms/YL.BEKI"]:
            if k != "StationXML":
                h["Waveforms/YL.BEKI"][k].resize((500,))
    st, bad_st = read_specfem_asdf(str(nolog / SYNTHETIC_FILE), ev.time)
    assert len(st) == 12 and [b[0] for b in bad_st] == ["GE.ZKR", "YL.BEKI"]
    assert "NTSTEP_BETWEEN_OUTPUT_SEISMOS" in bad_st[1][1]


def test_size_per_station_ascii_vs_asdf(run, tmp_path):
    """Bytes per station per forward: the 3 ascii files vs the ASDF file's growth per station."""
    ascii_dir, out, ev = run
    tiny = shared_fixture("specfem3d_globe_tiny")
    par = (tiny / "DATA" / "Par_file.forward").read_text()
    one = tmp_path / "one.h5"
    write_specfem_asdf(one, ascii_dir, UTCDateTime(2008, 1, 6, 5, 14, 23.7), ev.name, 0.253585309,
                       par, stations=["GE.ZKR"])
    six = os.path.getsize(out / SYNTHETIC_FILE)
    per_asdf = (six - os.path.getsize(one)) / 5
    per_ascii = sum(os.path.getsize(f) for f in glob.glob(str(ascii_dir / "*.sem.ascii"))) / 6
    print(f"\nbytes per station per forward (1100 samples x 3): ascii {per_ascii:.0f}, "
          f"ASDF {per_asdf:.0f} (+ {os.path.getsize(one) - per_asdf:.0f} per file, "
          f"+ {os.path.getsize(out / SOLVER_LOG)} output_solver.txt), "
          f"ratio {per_ascii / per_asdf:.1f}")
    assert per_asdf < per_ascii / 5
    assert 3 * 1100 * 4 <= per_asdf < 3 * 1100 * 4 * 1.5        # float32 samples + HDF5 headers


# ---------------------------------------------------------------- the solver plugin
def _event_dir(tmp_path: Path, run, solver_body: str, monkeypatch, **kw):
    """EaraGlobe for event EV1 with a shell-script mesher and solver in its directory; the
    solver writes what the Par_file asks for from the tiny run (ascii or SPECFEM's ASDF)."""
    monkeypatch.setenv("SEISFLOWS_TASKID", "0")
    from seisflows_eara.plugins.solver import EaraGlobe
    ascii_dir, out, _ = run
    tiny = shared_fixture("specfem3d_globe_tiny")
    data = tmp_path / "specfem_data"
    data.mkdir()
    shutil.copy(tiny / "DATA" / "Par_file.forward", data / "Par_file")
    shutil.copy(tiny / "DATA" / "CMTSOLUTION", data / "CMTSOLUTION_EV1")
    bin_dir = tmp_path / "bin"
    s = EaraGlobe(workdir=str(tmp_path / "w"), path_specfem_bin=str(bin_dir),
                  path_specfem_data=str(data), ntask=1, **kw)
    cwd = Path(s.cwd)
    for sub in ("bin", "DATA", "OUTPUT_FILES", "DATABASES_MPI"):
        (cwd / sub).mkdir(parents=True, exist_ok=True)
    bin_dir.symlink_to(cwd / "bin")
    shutil.copy(data / "Par_file", cwd / "DATA" / "Par_file")
    body = solver_body.format(ascii=ascii_dir, asdf=out / SYNTHETIC_FILE, log=out / SOLVER_LOG)
    for name, text in (("xmeshfem3D", "touch DATABASES_MPI/proc000000_reg1_solver_data.bin"),
                       ("xspecfem3D", body)):
        (cwd / "bin" / name).write_text("#!/bin/sh\n" + text + "\n")
        (cwd / "bin" / name).chmod(0o755)
    return s, cwd


#: like SPECFEM: output_solver.txt always, ascii and/or synthetic.h5 as DATA/Par_file says
SOLVER_WRITES_WHAT_PAR_FILE_ASKS = """cp {log} OUTPUT_FILES/
if grep -qE '^OUTPUT_SEISMOS_ASDF +=[ ]+\\.true\\.' DATA/Par_file; then cp {asdf} OUTPUT_FILES/; fi
if grep -qE '^OUTPUT_SEISMOS_ASCII_TEXT +=[ ]+\\.true\\.' DATA/Par_file; then
  cp {ascii}/*.sem.ascii OUTPUT_FILES/; fi"""
#: a build without ASDF: SPECFEM links a write_asdf stub, so nothing but the ascii files is written
SOLVER_WITHOUT_ASDF = """cp {log} OUTPUT_FILES/
if grep -qE '^OUTPUT_SEISMOS_ASCII_TEXT +=[ ]+\\.true\\.' DATA/Par_file; then
  cp {ascii}/*.sem.ascii OUTPUT_FILES/; fi"""


@pytest.mark.parametrize("fmt", ["ascii", "asdf"])
def test_solver_plugin_sets_the_par_file_and_collects_the_format(fmt, run, tmp_path, monkeypatch):
    ascii_dir, _, ev = run
    s, cwd = _event_dir(tmp_path, run, SOLVER_WRITES_WHAT_PAR_FILE_ASKS, monkeypatch,
                        synthetic_format=fmt)
    s._check_eara()
    if fmt == "asdf":
        s._check_asdf()                 # the script names synthetic.h5, as an ASDF build does
    save, export = tmp_path / "traces", tmp_path / "export"
    s.forward_simulation(save_traces=str(save), export_traces=str(export))
    par = (cwd / "DATA" / "Par_file").read_text()
    want = {"ascii": (".false.", ".true."), "asdf": (".true.", ".false.")}[fmt]
    assert re.search(rf"^OUTPUT_SEISMOS_ASDF +=[ ]+{re.escape(want[0])}", par, re.M)
    assert re.search(rf"^OUTPUT_SEISMOS_ASCII_TEXT +=[ ]+{re.escape(want[1])}", par, re.M)
    files = sorted(os.listdir(save))
    assert files == ([SOLVER_LOG, SYNTHETIC_FILE] if fmt == "asdf" else
                     sorted(os.path.basename(f) for f in glob.glob(str(ascii_dir / "*.sem.ascii"))))
    assert sorted(os.listdir(export)) == files
    got = read_synthetic_data(str(save), ev.time)
    ref = read_synthetic_data(str(ascii_dir), ev.time).stream
    assert not got.notes and [t.id for t in _ordered(got.stream)] == [t.id for t in _ordered(ref)]
    for x, y in zip(_ordered(got.stream), _ordered(ref)):
        assert x.stats.starttime == y.stats.starttime
        np.testing.assert_array_equal(x.data.astype(np.float32), y.data.astype(np.float32))


def test_solver_plugin_names_a_build_without_asdf(run, tmp_path, monkeypatch):
    from seisflows_eara.params import ParameterError
    from seisflows_eara.plugins.solver import SolverError
    s, cwd = _event_dir(tmp_path, run, SOLVER_WITHOUT_ASDF, monkeypatch, synthetic_format="asdf")
    with pytest.raises(ParameterError, match=r"xspecfem3D was built without ASDF support"):
        s._check_asdf()
    with pytest.raises(SolverError, match=r"(?s)event EV1: xspecfem3D wrote no .*synthetic\.h5"
                                          r".*forward\.log.*--with-asdf"):
        s.forward_simulation(save_traces=str(tmp_path / "traces"))
    # SPECFEM refuses ASDF with WRITE_SEISMOGRAMS_BY_MASTER; check() says so before any run
    (cwd / "bin" / "xspecfem3D").write_text("#!/bin/sh\n# OUTPUT_FILES/synthetic.h5\n")
    par = Path(s.path.specfem_data) / "Par_file"
    par.write_text(re.sub(r"(?m)^WRITE_SEISMOGRAMS_BY_MASTER +=.*$",
                          "WRITE_SEISMOGRAMS_BY_MASTER     = .true.", par.read_text()))
    with pytest.raises(ParameterError, match="WRITE_SEISMOGRAMS_BY_MASTER"):
        s._check_asdf()


@pytest.mark.slow        # ~2-3 min: one stand-in inversion (1 source + 1 structure iteration)
def test_inversion_with_asdf_synthetics(tmp_path, tmp_path_factory):
    """synthetic_format: asdf through `seisflows submit`: the stand-in writes SPECFEM's
    synthetic.h5 (+ output_solver.txt) because the solver plugin set OUTPUT_SEISMOS_ASDF, every
    consumer (measurement, source and structure line searches, plots) reads it, on the time axis
    and with the misfit of the same forward written as ascii."""
    import yaml
    import test_workflow as tw
    world = tw._SESSION.get("world") or tw.world.__wrapped__(tmp_path_factory)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for exe in ("xmeshfem3D", "xspecfem3D"):           # check() looks for synthetic.h5 in it
        text = (Path(world["bin"]) / exe).read_text()
        (bin_dir / exe).write_text(text + "# writes OUTPUT_FILES/synthetic.h5 when asked\n")
        (bin_dir / exe).chmod(0o755)
    (tmp_path / "run").mkdir()
    work = tw._project(world, tmp_path / "run", 1, 1)
    with open(work / "specfem_data" / "Par_file", "a") as f:     # the keys of a 7.0 Par_file
        f.write("OUTPUT_SEISMOS_ASCII_TEXT       = .true.\n"
                "OUTPUT_SEISMOS_ASDF             = .false.\n"
                "WRITE_SEISMOGRAMS_BY_MASTER     = .false.\n")
    par = yaml.safe_load((work / "parameters.yaml").read_text())
    par.update(synthetic_format="asdf", path_specfem_bin=str(bin_dir))
    (work / "parameters.yaml").write_text(yaml.safe_dump(par, sort_keys=False))
    tw._seisflows(["submit"], work)
    h = tw._history(work)
    total = h[h.category == "total"]
    chain = np.concatenate([total[total.kind == k].misfit.to_numpy()
                            for k in ("source", "structure", "final")])
    assert len(chain) == 3 and np.all(np.diff(chain) < 0), chain
    asdf = sorted(work.rglob(SYNTHETIC_FILE))
    assert asdf and all((f.parent / SOLVER_LOG).exists() for f in asdf)
    assert not [f for f in work.rglob("*.sem.ascii") if "traces" in f.parts], \
        "ascii synthetics collected although synthetic_format = asdf"
    # the stand-in's time axis (T_START, DT) after the centroid, from the collected ASDF file
    ev = event_from_file(str(work / "specfem_data" / "CMTSOLUTION_EV1"))
    syn = work / "scratch" / "traces" / "stage1" / "source01" / "forward" / "EV1" / "syn"
    data = read_synthetic_data(str(syn), ev.time)
    assert not data.notes and len(data.stream) == 3 * len(tw.STATIONS)
    assert {(tr.stats.starttime - ev.time, tr.stats.delta, tr.stats.npts)
            for tr in data.stream} == {(-10.0, 0.25, 1920)}
    # the plot commands read the finished run's ASDF synthetics
    from seisflows_eara.cli import main
    assert main(["plot", "waveforms", "--workdir", str(work), "--event", "EV1", "--output",
                 str(tmp_path / "wf")]) == 0
    assert list((tmp_path / "wf").glob("waveforms_EV1_*.png"))
    # the final forward again, as ascii, in EV1's solver directory (final model and source): the
    # same traces and misfit as the ASDF the run collected (ascii %18.8e vs float32 samples)
    import subprocess
    import yaml as _yaml
    from seisflows_eara.io.waveforms import read_waveforms
    ev1 = work / "scratch" / "solver" / "EV1"
    pf = ev1 / "DATA" / "Par_file"
    pf.write_text(re.sub(r"(?m)^(OUTPUT_SEISMOS_ASCII_TEXT +=).*$", r"\1 .true.",
                         re.sub(r"(?m)^(OUTPUT_SEISMOS_ASDF +=).*$", r"\1 .false.",
                                pf.read_text())))
    subprocess.run(["./bin/xspecfem3D"], cwd=ev1, check=True, capture_output=True)
    ev = event_from_file(str(ev1 / "DATA" / "CMTSOLUTION"))
    a = read_synthetic_data(str(ev1 / "OUTPUT_FILES"), ev.time)
    b = read_synthetic_data(str(work / "scratch" / "traces" / "stage1" / "final" / "final_forward"
                                / "EV1" / "syn"), ev.time)
    assert not a.notes and not b.notes
    assert [t.id for t in _ordered(a.stream)] == [t.id for t in _ordered(b.stream)]
    for x, y in zip(_ordered(a.stream), _ordered(b.stream)):
        assert x.stats.starttime == y.stats.starttime and x.stats.npts == y.stats.npts
        np.testing.assert_allclose(x.data, y.data, rtol=1e-6, atol=1e-7 * np.abs(x.data).max())
    values = params.load_parameters(str(work / "parameters.yaml"))
    sta = read_stations(work / "specfem_data" / "STATIONS")
    obs = read_waveforms(str(Path(_yaml.safe_load((work / "parameters.yaml").read_text())
                                  ["path_data"]) / "EV1"), ev.time).stream
    by = {s.code: obs.select(network=s.network, station=s.station) for s in sta}
    ma, mb = (measure_event(ev, sta, by, d.stream, Config(values, 1), observed_processed=True)
              for d in (a, b))
    assert (ma.table.status == "ok").sum() > 0 and list(ma.table.status) == list(mb.table.status)
    assert abs(ma.misfit - mb.misfit) <= 1e-6 * ma.misfit
