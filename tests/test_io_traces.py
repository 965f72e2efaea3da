"""SPECFEM ascii traces: the time column is single precision (SPECFEM's t = it·DT − t0)."""
from __future__ import annotations

import numpy as np
import pytest
from obspy import UTCDateTime

from seisflows_eara.io.specfem_traces import read_sem_ascii

T0 = UTCDateTime(2008, 1, 6, 5, 14, 23.7)


def _write(path, t, x):
    np.savetxt(path, np.column_stack([t, x]), fmt="%16.8f %18.8E")


def test_single_precision_time_column_gives_the_exact_step(tmp_path):
    dt, n = 0.253687292, 1100           # the DT of a real NEX 32 regional run, 4-minute record
    t = (np.arange(n, dtype=np.float32) * np.float32(dt) - np.float32(4.5)).astype(np.float32)
    f = tmp_path / "XX.STA.MXZ.sem.ascii"
    _write(f, t.astype(float), np.sin(np.arange(n) / 10.0))
    tr = read_sem_ascii(str(f), T0)
    assert abs(tr.stats.delta - dt) < 1e-6 * dt            # median of the diffs is off by ~1e-5
    assert tr.stats.starttime == T0 - 4.5 and tr.stats.npts == n
    assert (tr.stats.network, tr.stats.station, tr.stats.channel) == ("XX", "STA", "MXZ")


def test_a_gap_in_the_time_axis_is_an_error_naming_the_file(tmp_path):
    t = np.arange(200) * 0.25
    t[100:] += 0.25                      # one missing sample
    f = tmp_path / "XX.GAP.MXN.sem.ascii"
    _write(f, t, np.zeros(200))
    with pytest.raises(ValueError, match="XX.GAP.MXN.sem.ascii has an irregular time axis"):
        read_sem_ascii(str(f), T0)
