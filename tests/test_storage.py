"""Storage (issue 18 item 4): the compact adjoint store against the full per-category arrays it
replaces, on real records; what a finished iteration removes (tests/test_workflow.py runs)."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from seisflows_eara import params
from seisflows_eara.commands.demo import load_kbl_pair
from seisflows_eara.measure import Config, combine_adjoint, measure_event
from seisflows_eara.measure.adjoint_store import (AdjointStoreError, read_adjoint_store,
                                                  recombine, write_adjoint_store)
from seisflows_eara.plugins.preprocess import EaraNzcc

HERE = Path(__file__).resolve().parent
GRC = HERE / "data" / "regional_greece"
KBL = HERE / "data" / "pytomo3d_darfield"
EVENT = "200801060514A"


def _wc(categories) -> dict[str, float]:
    """All-event categorical weights unlike the per-event ones (distinct per category)."""
    return {c: 1.0 / (i + 2.7) for i, c in enumerate(sorted(categories))}


def _plugin(tmp: Path) -> tuple[EaraNzcc, Path]:
    cwd = tmp / "scratch" / "solver" / EVENT
    (cwd / "DATA").mkdir(parents=True)
    shutil.copy(GRC / "CMTSOLUTION", cwd / "DATA" / "CMTSOLUTION")
    (cwd / "DATA" / "STATIONS").write_text(
        (GRC / "STATIONS").read_text() + "FAR        XX       10.0000    100.0000      0.0     0.0\n")
    shutil.copytree(GRC / "REF_SEIS", cwd / "traces" / "obs")
    shutil.copytree(GRC / "tiny_1d", cwd / "traces" / "syn")
    pre = EaraNzcc(workdir=str(tmp), path_solver=str(tmp / "scratch" / "solver"),
                   path_output=str(tmp / "output"))
    pre.check()
    return pre, cwd


def _adj_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.adj"))}


def test_plugin_store_recombines_bit_identical_to_the_full_arrays(tmp_path):
    """Real Greece records through the preprocess plugin: the kernel step's adjoint sources from
    the compact store equal, byte for byte, those from the old full-array adjoint_parts.pkl; the
    store is a small fraction of it."""
    pre, cwd = _plugin(tmp_path)
    m = pre.quantify_misfit(source_name=EVENT, iteration=1, step_count=0)
    ev = "i01s00"
    store = Path(pre.adjoint_store_file(ev, EVENT))
    old = Path(pre.adjoint_parts_file(ev, EVENT))
    assert store.exists() and not old.exists()
    assert m.adjoint_by_category and len(m.prepared.windows) > 0
    wc = _wc(m.adjoint_by_category)
    data = cwd / "DATA"
    pre.write_weighted_adjoint_sources(ev, EVENT, wc, str(data), str(tmp_path / "new"))
    # the old format, as quantify_misfit wrote it before: read when no store is there
    with open(old, "wb") as f:
        pickle.dump((m.adjoint_by_category, m.adjoint_times), f)
    store.rename(store.with_suffix(".away"))
    pre.write_weighted_adjoint_sources(ev, EVENT, wc, str(data), str(tmp_path / "old"))
    new, before = _adj_files(tmp_path / "new"), _adj_files(tmp_path / "old")
    assert len(new) == 7 * 3 and new == before
    # the arrays themselves, bit for bit (not only their ascii rendering)
    prepared = pre.load_prepared(ev, EVENT)
    a_new, t_new = recombine(store.with_suffix(".away"), prepared, wc)
    a_old, t_old = combine_adjoint(m.adjoint_by_category, wc, m.adjoint_times)
    assert a_new.keys() == a_old.keys() and t_new.keys() == t_old.keys()
    for code in a_old:
        assert np.array_equal(a_new[code], a_old[code]) and np.array_equal(t_new[code], t_old[code])
    assert any(np.abs(a).max() > 0 for a in a_old.values())
    # 4-min records of a 0.25-s solver step, mostly windowed: 1/5 (full-size records: the KBL test)
    assert store.with_suffix(".away").stat().st_size < old.stat().st_size / 4


def test_kbl_record_store_is_bit_identical_and_small(tmp_path):
    """The real IU.KBL record (Darfield, raw counts + StationXML, 105-min SPECFEM synthetic):
    store -> recombination equals the full arrays bit for bit, also after a pickle round trip of
    the frozen measurement, for two different W_c."""
    ev, sta, obs, inv, syn = load_kbl_pair(KBL)
    m = measure_event(ev, sta, {"IU.KBL": obs}, syn, Config(params.defaults(), 1), inventory=inv)
    assert m.adjoint_windows is not None and m.adjoint_windows.size == m.prepared.offsets[-1]
    path = tmp_path / "KBL.adjoint_windows.npz"
    nbytes = write_adjoint_store(path, m.prepared, m.adjoint_windows)
    prepared = pickle.loads(pickle.dumps(m.prepared))
    assert np.array_equal(read_adjoint_store(path, prepared), m.adjoint_windows)
    for wc in (_wc(m.adjoint_by_category), {c: 1.0 for c in m.adjoint_by_category}):
        a_new, _ = recombine(path, prepared, wc)
        a_old, _ = combine_adjoint(m.adjoint_by_category, wc, m.adjoint_times)
        assert a_new.keys() == a_old.keys() == {"IU.KBL"}
        assert np.array_equal(a_new["IU.KBL"], a_old["IU.KBL"])
    full = sum(a.nbytes for per in m.adjoint_by_category.values() for a in per.values())
    assert nbytes < full / 10, (nbytes, full)


def test_store_of_another_measurement_or_missing_is_refused(tmp_path):
    """A store never placed with another measurement's windows; a missing store (and no old file)
    tells to re-run the forward step."""
    pre, cwd = _plugin(tmp_path)
    m = pre.quantify_misfit(source_name=EVENT, iteration=1, step_count=0)
    path = Path(pre.adjoint_store_file("i01s00", EVENT))
    other = pickle.loads(pickle.dumps(m.prepared))
    other.offsets = other.offsets.copy()
    other.offsets[1:] += 1                      # one sample more in the first window
    with pytest.raises(AdjointStoreError, match="another measurement"):
        read_adjoint_store(path, other)
    path.write_bytes(b"not an npz")
    with pytest.raises(FileNotFoundError, match="re-run the forward step"):
        pre.write_weighted_adjoint_sources("i01s00", EVENT, {}, str(cwd / "DATA"),
                                           str(tmp_path / "adj"))
    path.unlink()
    with pytest.raises(FileNotFoundError, match="re-run the forward step"):
        pre.write_weighted_adjoint_sources("i01s00", EVENT, {}, str(cwd / "DATA"),
                                           str(tmp_path / "adj"))


def test_bench_storage_figures_meet_the_goal():
    """benchmarks/bench_storage.py on 3 replicated real KBL stations: the compact store is at most
    1/10 of the old adjoint_parts.pkl per station, and recombines bit-identically."""
    import sys
    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    from bench_storage import storage_figures
    r = storage_figures(3)
    assert r["storage.bit_identical"] and r["storage.windows"] == 3 * 8
    assert r["storage.bytes_per_station_after"] <= r["storage.bytes_per_station_before"] / 10, r
    assert r["extrapolated.storage_bytes_after_142x2000_per_forward"] == pytest.approx(
        r["storage.bytes_per_station_after"] * 142 * 2000)
