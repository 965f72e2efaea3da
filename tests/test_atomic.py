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


def test_atomic_files_get_the_permissions_open_would_give(tmp_path):
    import os
    from seisflows_eara.io.atomic import atomic_write_text
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.md", "x")
        open(tmp_path / "plain.md", "w").close()
        assert (tmp_path / "report.md").stat().st_mode & 0o777 == \
            (tmp_path / "plain.md").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
