"""Stations in parallel (issue 18 item 3): measure_event(workers=N) gives the serial result bit for
bit — table, misfit, adjoint sources, provenance, processed traces and the frozen PreparedEvent —
from raw records and from a prepared file, on real data (Darfield IU.KBL replicated to several
stations, Okhotsk), also with more workers than stations."""
from __future__ import annotations


import os

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
    from seisflows_eara.measure import transfer
    monkeypatch.setattr(transfer, "MIN_BYTES", 1)     # every array through shared memory
    shipped, receive = [], E.receive

    def spy_receive(value):
        shipped.append(isinstance(value, transfer.Shipped))
        return receive(value)
    monkeypatch.setattr(E, "receive", spy_receive)
    ev, sta, by, inv, syn = _kbl_replicas(5)
    cfg = Config(params.defaults(), 1)
    serial = measure_event(ev, sta, by, syn, cfg, inventory=inv)
    par = measure_event(ev, sta, by, syn, cfg, inventory=inv, workers=2)
    assert "_call_adjoint_sources" in calls
    if transfer.shm_dir() is not None:
        assert any(shipped)
        assert not [f for f in os.listdir(transfer.shm_dir())
                    if f.startswith(f"{transfer.PREFIX}{os.getpid()}-")]
    _same(serial, par)
    a, b = serial.adjoint_by_category, par.adjoint_by_category
    assert list(a) == list(b) and all(list(a[c]) == list(b[c]) for c in a)
    for c in a:
        for code in a[c]:
            np.testing.assert_array_equal(a[c][code], b[c][code])


def test_job_sizes_cover_the_event_largest_first():
    from seisflows_eara.measure.event import MIN_JOB, STATION_BLOCK, job_sizes
    for n in (0, 1, 5, 100, 300, 2000):
        for w in (1, 2, 8):
            sizes = job_sizes(n, w)
            assert sum(sizes) == n and all(s >= 1 for s in sizes)
            assert max(sizes, default=0) <= STATION_BLOCK
            assert sizes == sorted(sizes, reverse=True)          # guided: never growing
            if w == 1:
                assert all(s == STATION_BLOCK for s in sizes[:-1])
            elif n >= 4 * MIN_JOB * w:
                assert sizes[-1] <= MIN_JOB < sizes[0]


def _square(x: int) -> int:
    return x * x


def test_in_order_keeps_order_with_this_process_and_inherited_jobs():
    """_in_order: results in job order although the pool and this process share the jobs; the
    pool's processes were forked with the job list (where the platform forks) and the later
    stage's jobs, made after the fork, are pickled — both give fn(job)."""
    import multiprocessing
    from seisflows_eara.measure import event as E
    jobs = list(range(40))
    with E._Pool(2) as pool:
        assert list(E._in_order(_square, jobs, 2, pool, size=lambda j: 1)) == \
            [j * j for j in jobs]
        if "fork" in multiprocessing.get_all_start_methods():
            assert pool.inherited is not None and pool.inherited[1] is jobs
        later = [(j,) for j in range(7)]
        assert list(E._in_order(len, later, 2, pool)) == [1] * 7
    assert E._INHERITED is None
    assert list(E._in_order(_square, iter(range(5)), 3)) == [0, 1, 4, 9, 16]   # a generator


def test_adjoint_sources_of_one_station_runs_equal_the_whole(monkeypatch):
    """PreparedEvent.adjoint_sources over runs of one station each gives each station's array
    bit for bit as over one run of all: a station's adjoint source is its own (eq. 3), so the
    pool's runs cannot change it."""
    from seisflows_eara.measure import event as E
    ev, sta, by, inv, syn = _kbl_replicas(4)
    m = measure_event(ev, sta, by, syn, Config(params.defaults(), 1), inventory=inv)
    p, adj = m.prepared, m.adjoint_windows
    wc = {c: float(p.wc[p.categories == c][0]) for c in np.unique(p.categories)}
    whole = p.adjoint_sources(adj, wc)
    monkeypatch.setattr(E, "STATION_BLOCK", 1)
    assert len(p.station_runs(1)) == 4
    alone = p.adjoint_sources(adj, wc)
    assert list(alone) == list(whole)
    for code in whole:
        np.testing.assert_array_equal(alone[code], whole[code])
        np.testing.assert_array_equal(whole[code], m.adjoint[code])


def test_window_numbers_do_not_depend_on_the_other_windows():
    """cc_and_lag and the NZCC misfit/adjoint of a window are the same bit for bit whether it is
    measured with all the event's windows or with a subset (the jobs of a parallel run measure
    subsets)."""
    from seisflows_eara.measure.measurements import cc_and_lag
    from seisflows_eara.misfit.nzcc import nzcc_misfit_and_adjoint
    from seisflows_eara.windows.ragged import offsets_from_lengths, tukey_tapers
    ev, sta, by, inv, syn = _kbl_replicas(3)
    m = measure_event(ev, sta, by, syn, Config(params.defaults(), 1), inventory=inv)
    p = m.prepared
    S, U, lengths = p.synthetic, p.U, p.lengths
    assert lengths.size >= 10 and len(set(lengths.tolist())) > 3

    def measure(idx):
        ln = lengths[idx]
        seg = np.concatenate([np.arange(p.offsets[i], p.offsets[i + 1]) for i in idx])
        s, u = S[seg], U[seg]
        taper = tukey_tapers(ln, 0.1)
        chi, a = nzcc_misfit_and_adjoint(s, u, taper, p.dt, offsets=offsets_from_lengths(ln))
        cc, lag = cc_and_lag(s, u, ln, taper=taper)
        return chi, a, cc, lag, offsets_from_lengths(ln)
    full = measure(np.arange(lengths.size))
    for idx in (np.array([0]), np.arange(1, lengths.size, 3), np.array([lengths.size - 1, 2])):
        chi, a, cc, lag, off = measure(idx)
        for j, i in enumerate(idx):
            assert chi[j] == full[0][i] and cc[j] == full[2][i] and lag[j] == full[3][i]
            np.testing.assert_array_equal(a[off[j]:off[j + 1]],
                                          full[1][full[4][i]:full[4][i + 1]])


def test_keep_freed_memory_changes_no_number(monkeypatch):
    """measure_keep_freed_memory (glibc mallopt) is in effect on glibc and changes no result."""
    import ctypes.util
    from seisflows_eara.measure import memory
    ev, sta, by, inv, syn = _kbl_replicas(2)
    v = params.defaults()
    v["measure_keep_freed_memory"] = False
    monkeypatch.setattr(memory, "_applied", None)
    off = measure_event(ev, sta, by, syn, Config(v, 1), inventory=inv)
    assert memory._applied is None               # not asked for: nothing was changed
    on = measure_event(ev, sta, by, syn, Config(params.defaults(), 1), inventory=inv)
    if ctypes.util.find_library("c") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version"):
        assert memory._applied is True
    _same(off, on)


def test_huge_pages_setting_follows_the_parameter_and_changes_no_number():
    """measure_huge_pages switches numpy's madvise(MADV_HUGEPAGE) for the measuring process
    (default off) and no number depends on it."""
    from seisflows_eara.measure import memory
    ev, sta, by, inv, syn = _kbl_replicas(2)
    before = memory.numpy_huge_pages(True)
    try:
        v = params.defaults()
        assert v["measure_huge_pages"] is False
        off = measure_event(ev, sta, by, syn, Config(v, 1), inventory=inv)
        if before is not None:
            assert memory.numpy_huge_pages(True) is False       # measure_event switched it off
        v["measure_huge_pages"] = True
        on = measure_event(ev, sta, by, syn, Config(v, 1), inventory=inv)
        if before is not None:
            assert memory.numpy_huge_pages(True) is True
        _same(off, on)
    finally:
        if before is not None:
            memory.numpy_huge_pages(before)


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("job 3 fails")
    return x


def _big_or_fail(x):
    if int(x[0]) == 3:
        raise ValueError("job 3 fails")
    return {"x": np.full(100000, float(x[0]))}


def test_shipped_jobs_and_results_leave_no_file_when_a_job_fails(monkeypatch):
    """Jobs pickled by this process (a generator: not inherited) and results go through shared
    memory; when a job fails, the files of what was never received are removed with the pool."""
    from seisflows_eara.measure import event as E, transfer
    if transfer.shm_dir() is None:
        pytest.skip("no /dev/shm")
    monkeypatch.setattr(transfer, "MIN_BYTES", 1)
    ok = list(E._in_order(_big_or_fail, (np.full(50000, float(i)) for i in range(3)), 2,
                          size=lambda j: 1))
    assert [float(r["x"][0]) for r in ok] == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="job 3 fails"):
        list(E._in_order(_big_or_fail, (np.full(50000, float(i)) for i in range(12)), 2,
                         size=lambda j: 1))
    assert not [f for f in os.listdir(transfer.shm_dir())
                if f.startswith(f"{transfer.PREFIX}{os.getpid()}-")]


def test_in_order_passes_a_job_error_on_and_forgets_the_jobs():
    """A job that raises in the pool's process or in this one reaches the caller with its
    message, the pool is shut down and the inherited job list released."""
    from seisflows_eara.measure import event as E
    with pytest.raises(ValueError, match="job 3 fails"):
        with E._Pool(2) as pool:
            list(E._in_order(_fail_on_three, list(range(12)), 2, pool, size=lambda j: 1))
    assert E._INHERITED is None
    assert list(E._in_order(_fail_on_three, [0, 1, 2], 2)) == [0, 1, 2]
