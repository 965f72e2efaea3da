"""measure.transfer: pool results (and jobs) through shared memory are the same objects."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from seisflows_eara.measure import transfer


def _value():
    rng = np.random.default_rng(3)
    big = rng.standard_normal((3, 70000))               # 1.7 MB (a row 0.56 MB): out of band
    return {"big": big, "view": big[1], "small": np.arange(10.0), "rows": [{"a": 1}],
            "f32": rng.standard_normal(400000).astype(np.float32)}


def _files(parent: int) -> list[str]:
    where = transfer.shm_dir()
    return [f for f in os.listdir(where) if f.startswith(f"{transfer.PREFIX}{parent}-")]


@pytest.mark.skipif(transfer.shm_dir() is None, reason="no /dev/shm")
def test_ship_receive_same_objects_writable_and_no_file_left():
    v = _value()
    parent = os.getpid()
    s = transfer.ship(v, parent)
    assert isinstance(s, transfer.Shipped) and len(s.sizes) == 3      # big, its row, f32
    assert len(_files(parent)) == 1
    out = transfer.receive(s)
    assert _files(parent) == []                  # the name is gone; the memory lives on
    for k in ("big", "view", "small", "f32"):
        assert out[k].dtype == v[k].dtype and np.array_equal(out[k], v[k])
    assert out["rows"] == v["rows"]
    out["big"] *= 2.0                            # writable, and the mapping stays valid
    assert np.array_equal(out["big"], 2.0 * v["big"])


def test_small_values_and_no_directory_go_through_the_pipe(monkeypatch, tmp_path):
    small = {"x": np.arange(5.0)}
    assert transfer.ship(small, os.getpid()) is small
    monkeypatch.setattr(transfer, "SHM_DIR", str(tmp_path / "absent"))
    v = _value()
    assert transfer.ship(v, os.getpid()) is v
    assert transfer.receive(v) is v


def test_a_full_directory_leaves_no_partial_file(monkeypatch, tmp_path):
    monkeypatch.setattr(transfer, "SHM_DIR", str(tmp_path))
    real = os.write
    calls = []

    def full(fd, data):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)
    monkeypatch.setattr(os, "write", full)
    v = _value()
    assert transfer.ship(v, os.getpid()) is v
    assert os.listdir(tmp_path) == []


def test_remove_left_clears_only_this_parents_files(monkeypatch, tmp_path):
    monkeypatch.setattr(transfer, "SHM_DIR", str(tmp_path))
    mine = transfer.ship(_value(), 111)
    other = transfer.ship(_value(), 222)
    transfer.remove_left(111)
    assert not os.path.exists(mine.path) and os.path.exists(other.path)
    assert np.array_equal(transfer.receive(other)["big"], _value()["big"])
