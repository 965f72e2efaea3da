"""Stations in parallel (issue 18 item 3): measure_event(workers=N) gives the serial result bit for
bit — table, misfit, adjoint sources, provenance, processed traces and the frozen PreparedEvent —
from raw records and from a prepared file, on real data (Darfield IU.KBL replicated to several
stations, Okhotsk), also with more workers than stations."""
from __future__ import annotations


import numpy as np
import pytest

from seisflows_eara import params
from seisflows_eara.measure import (Config, measure_event, observed_parameters, prepare_event,
                                    read_prepared)
from seisflows_eara.measure.event import worker_count
from seisflows_eara.commands.demo import replicate_kbl
from test_measure_prepared import DARF, _okhotsk


def _kbl_replicas(n: int):
    """IU.KBL as n stations XX.K000..: same record and synthetic, each StationXML gain scaled by
    1 + 1e-3 k and the stations moved by 2° steps in longitude (distinct responses, back azimuths,
    windows and geographic weights)."""
    return replicate_kbl(DARF, n, lon_step_deg=2.0, gain_step=1e-3, digits=3)


def _same(a, b) -> None:
    assert a.table.to_csv(index=False) == b.table.to_csv(index=False)
    assert a.misfit == b.misfit and a.provenance == b.provenance
    assert list(a.adjoint) == list(b.adjoint)
    for k in a.adjoint:
        np.testing.assert_array_equal(a.adjoint[k], b.adjoint[k])
        np.testing.assert_array_equal(a.adjoint_times[k], b.adjoint_times[k])
    assert sorted(a.processed) == sorted(b.processed)      # (order of a dict: not a result)
    for k, (t, o, s) in a.processed.items():
        for x, y in zip((t, o, s), b.processed[k]):
            np.testing.assert_array_equal(x, y)
    p, q = a.prepared, b.prepared
    for name in ("U", "synthetic", "lengths", "offsets", "station_index", "weights", "wc",
                 "categories"):
        np.testing.assert_array_equal(getattr(p, name), getattr(q, name), err_msg=name)
    assert [(d.station, d.window, d.i0, d.i1, d.noise) for d in p.windows] == \
        [(d.station, d.window, d.i0, d.i1, d.noise) for d in q.windows]
    assert p.axes == q.axes and p.baz == q.baz and p.solver_start == q.solver_start
    assert [s.code for s in p.stations] == [s.code for s in q.stations]


@pytest.mark.parametrize("source", ["raw", "prepared"])
def test_parallel_equals_serial_on_replicated_kbl(source, tmp_path):
    ev, sta, by, inv, syn = _kbl_replicas(5)
    cfg = Config(params.defaults(), 1)
    kw = dict(inventory=inv, keep_processed=True)
    obs = by
    if source == "prepared":
        path = str(tmp_path / "p.h5")
        prepare_event(ev, sta, by, cfg, path, inventory=inv)
        kw = dict(keep_processed=True,
                  prepared=read_prepared(path, observed_parameters(cfg, event=ev, stations=sta)))
        obs = {}
    serial = measure_event(ev, sta, obs, syn, cfg, **kw)
    assert (serial.table.status == "ok").sum() >= 5 * 5
    assert len({round(float(x), 6) for x in serial.table.backazimuth}) == 5
    done = []
    par = measure_event(ev, sta, obs, syn, cfg, workers=2,
                        progress=lambda d, n: done.append((d, n)), **kw)
    _same(serial, par)
    assert done[0] == (0, 5) and done[-1] == (5, 5) and len(done) >= 3   # runs of 2 units
    many = measure_event(ev, sta, obs, syn, cfg, workers=8, **kw)   # more workers than stations
    _same(serial, many)


def test_parallel_equals_serial_on_okhotsk_with_rejections(tmp_path):
    """Okhotsk: a station without data and one without synthetics (rows of the select stage), both
    paths, 2 and 4 workers (more than the two measured stations)."""
    ev, sta, by, inv, syn = _okhotsk()
    cfg = Config(params.defaults(), 1)
    serial = measure_event(ev, sta, by, syn, cfg, inventory=inv)
    for w in (2, 4):
        _same(serial, measure_event(ev, sta, by, syn, cfg, inventory=inv, workers=w))
    path = str(tmp_path / "p.h5")
    prepare_event(ev, sta, by, cfg, path, inventory=inv, workers=2)
    prep = read_prepared(path, observed_parameters(cfg, event=ev, stations=sta))
    _same(serial, measure_event(ev, sta, {}, syn, cfg, prepared=prep, workers=4))


def test_worker_count(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    import os
    assert worker_count(3) == 3
    assert worker_count(0) == len(os.sched_getaffinity(0))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "7")
    assert worker_count(0) == 7 and worker_count(2) == 2


def test_measure_command_with_workers_writes_the_same_files(tmp_path):
    """`seisflows-eara measure --workers 2` (run_measure): the files of the serial run."""
    from test_measure_prepared import DARF, REPO, _stations
    from seisflows_eara.commands.measure import run_measure
    common = dict(config=str(REPO / "parameters.yaml"), cmtsolution=str(DARF / "C201009031635A.xml"),
                  stations=_stations(tmp_path), stage=1, observed=str(DARF / "IU.KBL.obs.mseed"),
                  stationxml=str(DARF / "IU.KBL.xml"), synthetics=str(DARF / "IU.KBL.syn.mseed"))
    run_measure(output=str(tmp_path / "w1"), **common)
    run_measure(output=str(tmp_path / "w2"), workers=2, **common)
    for name in ("measurements.csv", "adjoint_provenance.csv", "SEM/IU.KBL.MXZ.adj",
                 "SEM/IU.KBL.MXN.adj", "SEM/IU.KBL.MXE.adj"):
        assert (tmp_path / "w2" / name).read_bytes() == (tmp_path / "w1" / name).read_bytes()


def test_parallel_adjoint_blocks_equal_serial(monkeypatch):
    """Blocks of 2 stations (STATION_BLOCK): the adjoint sources' blocks run in the pool as well
    (5 stations: 3 blocks), the same arrays, categories and stations in the same order."""
    import seisflows_eara.measure.event as E
    monkeypatch.setattr(E, "STATION_BLOCK", 2)
    calls, real = [], E._in_order

    def spy(fn, jobs, workers, *args, **kw):
        calls.append(fn.__name__)
        return real(fn, jobs, workers, *args, **kw)
    monkeypatch.setattr(E, "_in_order", spy)
    ev, sta, by, inv, syn = _kbl_replicas(5)
    cfg = Config(params.defaults(), 1)
    serial = measure_event(ev, sta, by, syn, cfg, inventory=inv)
    par = measure_event(ev, sta, by, syn, cfg, inventory=inv, workers=2)
    assert "_call_adjoint_sources" in calls
    _same(serial, par)
    a, b = serial.adjoint_by_category, par.adjoint_by_category
    assert list(a) == list(b) and all(list(a[c]) == list(b[c]) for c in a)
    for c in a:
        for code in a[c]:
            np.testing.assert_array_equal(a[c][code], b[c][code])
