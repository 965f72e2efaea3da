"""Prepared observed data (measure.prepared, issue 18 item 1): prepared once, measured many times,
the same table and adjoint sources as from the raw records (Darfield IU.KBL, Okhotsk AE.113A and
TA.POKR); a changed processing parameter refuses the file; progress logging."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import obspy
import pytest

from conftest import displacement_as_specfem
from seisflows_eara import params
from seisflows_eara.commands.demo import load_kbl_pair
from seisflows_eara.commands.measure import run_measure
from seisflows_eara.io.stations import Station
from seisflows_eara.measure import (Config, event_from_file, measure_event, observed_parameters,
                                    prepare_event, progress_logger, read_prepared)

DATA = Path(__file__).parent / "data"
DARF = DATA / "pytomo3d_darfield"
OKH = Path("/work/shared/fixtures/pyasdf_okhotsk")
REPO = Path(__file__).resolve().parents[1]


def _okhotsk():
    """Both Okhotsk stations plus one without data; synthetics for TA.POKR only (its observed
    displacement written as SPECFEM would): rows 'no observed data' and 'no synthetics'."""
    base = OKH if (OKH / "AE.113A..BHZ.mseed").exists() else DATA / "pyasdf_okhotsk"
    if not (base / "AE.113A..BHZ.mseed").exists():
        pytest.skip("Okhotsk AE.113A records not available")
    ev = event_from_file(str(base / "quake.xml"))
    obs = obspy.read(str(base / "*.mseed"))
    inv = obspy.read_inventory(str(base / "*BH_.xml"))
    sta = [Station(n.code, s.code, s.latitude, s.longitude) for n in inv for s in n]
    sta.append(Station("XX", "NONE", 45.0, 140.0))
    pokr = obs.select(station="POKR")
    disp = displacement_as_specfem(pokr, inv)
    by = {f"{s.network}.{s.station}": obs.select(network=s.network, station=s.station)
          for s in sta[:2]}
    return ev, sta, by, inv, disp


def _kbl():
    ev, sta, obs, inv, syn = load_kbl_pair(DARF)
    return ev, sta, {"IU.KBL": obs}, inv, syn


@pytest.mark.parametrize("which", ["kbl", "okhotsk"])
def test_prepared_equals_raw(which, tmp_path):
    ev, sta, by, inv, syn = _kbl() if which == "kbl" else _okhotsk()
    cfg = Config(params.defaults(), 1)
    raw = measure_event(ev, sta, by, syn, cfg, inventory=inv)
    path = str(tmp_path / "prep.h5")
    prepare_event(ev, sta, by, cfg, path, inventory=inv)
    prep = read_prepared(path, observed_parameters(cfg, event=ev, stations=sta))
    assert prep.version and len(prep.digest) == 64
    assert all(u.ids for u in prep.units)
    m = measure_event(ev, sta, {}, syn, cfg, prepared=prep)
    assert m.table.to_csv(index=False) == raw.table.to_csv(index=False)
    assert (raw.table.status == "ok").sum() >= 5
    if which == "okhotsk":
        reasons = set(raw.table.reason)
        assert {"no observed data", "no synthetics"} <= reasons
    assert m.misfit == raw.misfit and m.provenance == raw.provenance
    assert set(m.adjoint) == set(raw.adjoint)
    for k in raw.adjoint:
        np.testing.assert_array_equal(m.adjoint[k], raw.adjoint[k])
        assert np.abs(raw.adjoint[k]).max() > 0


def _stations(tmp_path):
    f = tmp_path / "STATIONS"
    f.write_text("KBL IU 34.5408 69.0432 1920.0 0.0\nNONE XX 10.0 10.0 0.0 0.0\n")
    return str(f)


def test_prepare_and_measure_commands_give_the_same_files(tmp_path):
    common = dict(config=str(REPO / "parameters.yaml"), cmtsolution=str(DARF / "C201009031635A.xml"),
                  stations=_stations(tmp_path), stage=1)
    run_measure(observed=str(DARF / "IU.KBL.obs.mseed"), stationxml=str(DARF / "IU.KBL.xml"),
                synthetics=str(DARF / "IU.KBL.syn.mseed"), output=str(tmp_path / "raw"), **common)
    prep = tmp_path / "C201009031635A.prepared.h5"
    exe = Path(sys.executable).parent / "seisflows-eara"
    p = subprocess.run([str(exe), "prepare", "--config", common["config"], "--cmtsolution",
                        common["cmtsolution"], "--stations", common["stations"], "--observed",
                        str(DARF / "IU.KBL.obs.mseed"), "--stationxml", str(DARF / "IU.KBL.xml"),
                        "--stage", "1", "--output", str(prep)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "1 channel sets prepared (0 rejected)" in p.stdout
    assert "1/1 stations" in p.stderr                      # progress
    run_measure(observed=str(prep), synthetics=str(DARF / "IU.KBL.syn.mseed"),
                output=str(tmp_path / "pre"), **common)
    for name in ("measurements.csv", "adjoint_provenance.csv", "SEM/IU.KBL.MXZ.adj",
                 "SEM/IU.KBL.MXN.adj", "SEM/IU.KBL.MXE.adj", "SEM/STATIONS_ADJOINT"):
        assert (tmp_path / "pre" / name).read_bytes() == (tmp_path / "raw" / name).read_bytes()
    # a changed processing parameter: refused, naming the file and the key (exit 2 from the CLI)
    cfg = tmp_path / "parameters.yaml"
    cfg.write_text((REPO / "parameters.yaml").read_text().replace(
        "response_water_level: 60.0", "response_water_level: 40.0"))
    with pytest.raises(ValueError, match=r"prepared.h5: prepared with other processing "
                                         r"parameters .*differing: response_water_level"):
        run_measure(observed=str(prep), synthetics=str(DARF / "IU.KBL.syn.mseed"),
                    output=str(tmp_path / "x"), **dict(common, config=str(cfg)))
    p = subprocess.run([str(exe), "measure", "--config", str(cfg), "--cmtsolution",
                        common["cmtsolution"], "--stations", common["stations"], "--observed",
                        str(prep), "--synthetics", str(DARF / "IU.KBL.syn.mseed"), "--stage", "1",
                        "--output", str(tmp_path / "y")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "response_water_level" in p.stderr
    assert not (tmp_path / "y" / "measurements.csv").exists()


def test_digest_follows_every_processing_parameter():
    cfg = Config(params.defaults(), 1)
    ref = observed_parameters(cfg)
    from seisflows_eara.measure.prepared import OBSERVED_KEYS, digest
    for key, new in (("taper_fraction", 0.1), ("filter_corners", 4), ("gap_interpolation_max", 9.0),
                     ("channel_priorities", ["HH"]), ("observed_displacement", True)):
        v = dict(params.defaults(), **{key: new})
        assert key in OBSERVED_KEYS
        assert digest(observed_parameters(Config(v, 1))) != digest(ref), key
    assert digest(observed_parameters(Config(params.defaults(), 2))) != digest(ref)   # bands
    assert digest(observed_parameters(cfg, {"IU.KBL": 3.0})) != digest(ref)
    v = dict(params.defaults(), quality_cc=[0.5, 0.6])     # a measurement parameter: same data
    assert digest(observed_parameters(Config(v, 1))) == digest(ref)
    ev, sta, *_ = _kbl()                                   # the event's location fixes R and T
    a = digest(observed_parameters(cfg, event=ev, stations=sta))
    moved = type(ev)(ev.name, ev.time, ev.latitude + 0.1, ev.longitude, ev.depth_km)
    assert digest(observed_parameters(cfg, event=moved, stations=sta)) != a
    assert digest(observed_parameters(cfg, event=ev, stations=sta[:0] + [
        Station("IU", "KBL", 34.0, 69.0)])) != a


def test_cached_prepared_reuses_and_redoes(tmp_path):
    """Prepared once, reused (the file untouched), redone when a parameter changes."""
    from seisflows_eara.measure.prepared import cached_prepared
    ev, sta, by, inv, syn = _kbl()
    cfg = Config(params.defaults(), 1)
    path = str(tmp_path / "p.h5")
    calls = []

    def prep(c):
        def run():
            calls.append(1)
            return prepare_event(ev, sta, by, c, path, inventory=inv,
                                 parameters=observed_parameters(c, event=ev, stations=sta))
        return run
    a = cached_prepared(path, observed_parameters(cfg, event=ev, stations=sta), prep(cfg))
    mtime = Path(path).stat().st_mtime_ns
    b = cached_prepared(path, observed_parameters(cfg, event=ev, stations=sta), prep(cfg))
    assert len(calls) == 1 and Path(path).stat().st_mtime_ns == mtime and b.digest == a.digest
    c2 = Config(dict(params.defaults(), filter_corners=3), 1)
    c = cached_prepared(path, observed_parameters(c2, event=ev, stations=sta), prep(c2))
    assert len(calls) == 2 and c.digest != a.digest
    assert read_prepared(path).parameters["filter_corners"] == 3


def test_progress_logs_done_total_and_rate(caplog):
    t = iter([0.0, 0.0, 1.0, 12.0, 13.0, 20.0])
    p = progress_logger("measure EV", interval=10.0, clock=lambda: next(t))
    with caplog.at_level(logging.INFO, logger="seisflows_eara.measure"):
        for done in (0, 10, 120, 130):
            p(done, 200)
        p(200, 200)
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0].startswith("measure EV: 0/200 stations")
    assert msgs[1] == "measure EV: 120/200 stations (10.00 stations/s)"
    assert msgs[-1] == "measure EV: 200/200 stations (10.00 stations/s)"
    assert len(msgs) == 3


def test_preprocess_plugin_prepares_once_per_stage_and_reuses_it(tmp_path):
    """Every forward of a stage measures from the one prepared file (kept as written, same
    table); a replaced observed file or another stage prepares again."""
    import os
    import pandas as pd
    from test_preprocess_plugin import EVENT, _layout
    from seisflows_eara.plugins.preprocess import EaraNzcc
    cwd = _layout(tmp_path)
    pre = EaraNzcc(workdir=str(tmp_path), path_solver=str(tmp_path / "scratch" / "solver"),
                   path_output=str(tmp_path / "output"))
    pre.check()
    m0 = pre.quantify_misfit(source_name=EVENT, iteration=1, step_count=0)
    path = Path(pre.observed_file(EVENT, 1))
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    m1 = pre.quantify_misfit(source_name=EVENT, iteration=1, step_count=1)
    assert path.stat().st_mtime_ns == mtime                 # reused, not rewritten
    t0 = pd.read_csv(pre.measurement_file("i01s00", EVENT))
    t1 = pd.read_csv(pre.measurement_file("i01s01", EVENT))
    assert t0.drop(columns="step").equals(t1.drop(columns="step")) and m0.misfit == m1.misfit
    f = next((cwd / "traces" / "obs").iterdir())
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    pre.quantify_misfit(source_name=EVENT, iteration=1, step_count=2)
    assert path.stat().st_mtime_ns != mtime                 # an input changed: prepared again
    pre.quantify_misfit(source_name=EVENT, iteration=2, step_count=0, stage=2)
    assert Path(pre.observed_file(EVENT, 2)).is_file()


def test_parallel_preparation_equals_serial(tmp_path):
    """prepare_event with 2 worker processes: the same records, rows and table as with one."""
    ev, sta, by, inv, syn = _okhotsk()
    cfg = Config(params.defaults(), 1)
    out = {}
    for w in (1, 2):
        path = str(tmp_path / f"w{w}.h5")
        prepare_event(ev, sta, by, cfg, path, inventory=inv, workers=w)
        out[w] = read_prepared(path, observed_parameters(cfg, event=ev, stations=sta))
    a, b = out[1], out[2]
    assert a.rows == b.rows and [u.meta() for u in a.units] == [u.meta() for u in b.units]
    assert len(a.units) == 2
    for i in range(len(a.units)):
        for band, st in a.bands(i).items():
            for x, y in zip(st, b.bands(i)[band]):
                assert x.id == y.id
                np.testing.assert_array_equal(x.data, y.data)
    ta = measure_event(ev, sta, {}, syn, cfg, prepared=a).table
    tb = measure_event(ev, sta, {}, syn, cfg, prepared=b).table
    assert ta.to_csv(index=False) == tb.to_csv(index=False)


def test_decimated_trimmed_chain_equals_the_whole_record_chain_in_band(tmp_path, monkeypatch):
    """The observed chain decimates towards sampling_rate after the response pre-filter (exact)
    and keeps only the windowable span; against the same chain on the whole 40-sps
    record (decimation and cut switched off), real IU.KBL: the band-passed observed traces on the
    common axis agree to 1e-4 of their maximum, NZCC to 5e-5, CC delays to 1e-3 s, SNR to 0.01 dB,
    the adjoint sources to 1e-4 of their maximum, the same windows kept; the prepared file holds
    ≤ 1/5 of the whole record's bytes."""
    import seisflows_eara.measure.event as E
    ev, sta, by, inv, syn = _kbl()
    cfg = Config(params.defaults(), 1)
    new = measure_event(ev, sta, by, syn, cfg, inventory=inv, keep_processed=True)
    path = str(tmp_path / "new.h5")
    prepare_event(ev, sta, by, cfg, path, inventory=inv)
    po = E.prepare_observed
    monkeypatch.setattr(E, "prepare_observed", lambda *a, **k: po(*a, **dict(k, target_rate=None)))
    monkeypatch.setattr(E, "_windowable_span", lambda *a: None)
    old = measure_event(ev, sta, by, syn, cfg, inventory=inv, keep_processed=True)
    whole = str(tmp_path / "whole.h5")
    prepare_event(ev, sta, by, cfg, whole, inventory=inv)
    a, b = new.table, old.table
    assert list(a.status) == list(b.status) and (a.status == "ok").sum() >= 5
    assert np.nanmax(np.abs(a.nzcc - b.nzcc)) <= 5e-5
    assert np.nanmax(np.abs(a.dt - b.dt)) <= 1e-3
    assert np.nanmax(np.abs(a.snr_db - b.snr_db)) <= 0.01
    d = np.abs(new.adjoint["IU.KBL"] - old.adjoint["IU.KBL"]).max()
    assert d <= 1e-4 * np.abs(old.adjoint["IU.KBL"]).max()
    for key, (t, o, _) in new.processed.items():
        t_old, o_old, _ = old.processed[key]
        assert t.size < t_old.size                       # cut to the windowable span
        i = int(np.searchsorted(t_old, t[0] - 1e-6))
        np.testing.assert_allclose(t, t_old[i:i + t.size], rtol=0, atol=1e-6)   # same grid
        assert np.abs(o - o_old[:, i:i + t.size]).max() <= 1e-4 * np.abs(o_old).max(), key
    size, size_whole = Path(path).stat().st_size, Path(whole).stat().st_size
    assert size <= size_whole / 5, (size, size_whole)
    st = read_prepared(path).bands(0)["body"]
    assert st[0].stats.sampling_rate == cfg["sampling_rate"] and st[0].data.dtype == np.float64


def test_record_outside_the_windowable_span_is_a_rejected_row(tmp_path):
    """KBL's record cut to its last 15 min (after the latest window, the surface waves at 120°):
    both paths give the same rejected row naming the trace, nothing stored."""
    ev, sta, by, inv, syn = _kbl()
    end = by["IU.KBL"][0].stats.endtime
    short = {"IU.KBL": by["IU.KBL"].copy().trim(end - 900, end)}
    cfg = Config(params.defaults(), 1)
    raw = measure_event(ev, sta, short, syn, cfg, inventory=inv)
    path = str(tmp_path / "p.h5")
    prepare_event(ev, sta, short, cfg, path, inventory=inv)
    prep = read_prepared(path, observed_parameters(cfg, event=ev, stations=sta))
    assert prep.units[0].error.startswith("IU.KBL: observed IU.KBL..BH")
    m = measure_event(ev, sta, {}, syn, cfg, prepared=prep)
    assert m.table.to_csv(index=False) == raw.table.to_csv(index=False)
    assert list(raw.table.status) == ["rejected"] and "windowable span" in raw.table.reason[0]
