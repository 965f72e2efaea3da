import os

import pytest

from seisflows_eara.io.atomic import atomic_open, atomic_write_text


def test_replaces_file(tmp_path):
    p = tmp_path / "state.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert os.listdir(tmp_path) == ["state.txt"]


def test_failure_keeps_previous_content(tmp_path):
    p = tmp_path / "model.bin"
    atomic_write_text(p, "good")
    with pytest.raises(OSError):
        with atomic_open(p, "w") as f:
            f.write("partial")
            raise OSError("No space left on device")
    assert p.read_text() == "good"
    assert os.listdir(tmp_path) == ["model.bin"]
