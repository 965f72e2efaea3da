"""`seisflows-eara estimate`: the cost model by hand on a small schedule, its byte counts against a
real SPECFEM3D_GLOBE run, and the paper's totals (4.5 M CPU-hours, ~800 GB per iteration)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import SHARED_FIXTURES, shared_fixture
from seisflows_eara import cli, params
from seisflows_eara.commands.estimate import read_mesher_header, run_estimate
from seisflows_eara.schedule import simulations_per_event
from seisflows_eara.system import cost

REPO = Path(__file__).resolve().parents[1]
PAPER = SHARED_FIXTURES.parent / "paper" / "EARA2024_Xi_et_al_2024_GJI.txt"


def _inputs(**over) -> cost.CostInputs:
    kw = dict(events=10, stations=5, cores_per_event=4, minutes_per_forward=60.0, kernel_cost=2.0,
              source_adjoint_cost=1.0, mesher_cost=0.0, events_per_job=3, record_seconds=600.0,
              dt=0.5, elements=100, points=None, attenuation=True)
    kw.update(over)
    return cost.CostInputs(**kw)


def _schedule(src: list[int], struct: list[int]) -> dict:
    v = params.defaults()
    v["stage_source_iterations"], v["stage_structure_iterations"] = src, struct
    n = len(src)
    for key in ("stage_body_bands", "stage_surface_bands"):
        v[key] = v[key][:n]
    return v


def test_small_schedule_by_hand():
    """1 stage, 1 source + 2 structure iterations, counted by hand."""
    e = cost.estimate(_schedule([1], [2]), _inputs())
    assert e.solver_runs == {"forward": 3, "source_adjoint": 1, "perturbed_forward": 1,
                             "kernel": 2, "trial_forward": 2, "final_forward": 1}
    # (1 + 1 + 1) + 2 (1 + 2 + 1) + 1 forward equivalents per event
    assert e.forward_equivalents == pytest.approx(12.0)
    assert e.core_hours == pytest.approx(10 * 4 * 1.0 * 12)
    assert e.mesher_runs == 1 + 2 * 2
    # per-event steps: 4 (source) + 3 x 2 (structure) + 1 (final) = 11, each as ceil(10/3) = 4 jobs
    assert e.jobs == 11 * 4 + 1
    # NSTEP = 100 (floor(600 / 50) + 1) = 1300 samples
    assert e.samples_per_trace == 1300
    traces = 10 * 5 * 3
    assert e.storage["synthetics"] == 2 * traces * 1300 * 37
    assert e.storage["adjoint_sources"] == traces * 1300 * 34
    assert e.storage["kernels"] == 10 * 13 * (125 * 100 * 4 + 8 * 4)
    assert e.storage["saved_wavefields"] == 10 * 4 * (9 * 64 * 100 + 5 * 125 * 100 + 15 * 125 * 100)
    no_att = cost.estimate(_schedule([1], [2]), _inputs(attenuation=False, elements=None))
    assert no_att.storage["kernels"] is None and no_att.storage["saved_wavefields"] is None


@pytest.mark.parametrize("src, struct", [([3, 3, 3], [10, 10, 10]), ([0], [4]), ([2, 0], [1, 5])])
def test_counts_follow_the_schedule(src, struct):
    values = _schedule(src, struct)
    e = cost.estimate(values, _inputs(mesher_cost=0.5))
    assert sum(e.solver_runs.values()) == simulations_per_event(values)   # 3 per iteration + 1
    assert sum(e.solver_runs.values()) == 3 * (sum(src) + sum(struct)) + 1
    assert e.mesher_runs == 1 + 2 * sum(struct)
    assert sum(e.core_hours_per_stage) == pytest.approx(e.core_hours)
    assert e.forward_equivalents == pytest.approx(
        sum(src) * 3 + sum(struct) * 4 + 1 + 0.5 * (1 + 2 * sum(struct)))


def test_paper_totals():
    """Xi et al. 2024: 142 events, ~2000 stations, 441 cores, ~30 min per forward, 3 stages of 3
    source + 10 structure iterations -> "about 4.5 million CPU hours" and "~800 GB" per iteration."""
    if PAPER.exists():
        text = " ".join(PAPER.read_text().split())
        assert "about 4.5 million CPU hours" in text
        assert re.search(r"data and synthetics in each iteration is ~ ?800 GB", text)
        assert "~ 30 min wall time for the forward simulation and ~ 70 min for sensitivity" in text
    est, used = run_estimate(str(REPO / "parameters.yaml"), events=142, stations=2000,
                             cores_per_event=441, minutes_per_forward=30.0, elements=2_300_000)
    assert used["cores_per_event"][0] == 441 and used["record_minutes"][0] == 30.0
    assert est.iterations == 39
    assert abs(est.core_hours / 4.5e6 - 1) < 0.10, est.core_hours
    # the paper's measured kernel time (70 min) instead of 2 forwards stays within 15 %
    slow, _ = run_estimate(str(REPO / "parameters.yaml"), events=142, stations=2000,
                           minutes_per_forward=30.0, kernel_cost=70 / 30)
    assert abs(slow.core_hours / 4.5e6 - 1) < 0.15
    # synthetics of the forward and trial runs in SPECFEM ascii at the empirical step for NEX 336
    assert 800e9 / 1.5 < est.storage["synthetics"] < 800e9 * 1.5, est.storage["synthetics"]


def test_bytes_and_time_step_against_a_real_specfem_run():
    """Per-sample bytes, kernel file size and time step against the tiny SPECFEM3D_GLOBE run."""
    tiny = shared_fixture("specfem3d_globe_tiny")
    header = read_mesher_header(str(tiny / "OUTPUT_FILES" / "values_from_mesher.h"))
    assert header["dt"] == pytest.approx(0.253585309) and header["elements"] == 8000
    assert header["points"] == 537623 and header["nex"] == 32
    samples = 1100                                        # output_solver.txt: time steps
    syn = tiny / "OUTPUT_FILES" / "GE.ZKR.MXE.sem.ascii"
    assert syn.stat().st_size == samples * cost.BYTES_ASCII_SEISMOGRAM
    assert (tiny / "SEM" / "GE.ZKR.MXE.adj").stat().st_size == samples * cost.BYTES_ASCII_ADJOINT
    # one reg1 kernel file of 7360 elements on one process, exactly
    e = cost.estimate(_schedule([0], [1]), _inputs(events=1, cores_per_event=1, elements=7360,
                                                   kernel_files=1))
    assert e.storage["kernels"] == (tiny / "KERNELS" / "proc000000_reg1_betav_kernel.bin").stat().st_size
    # SPECFEM's empirical step for NEX 32 and its NSTEP rounding, vs. what this build used
    assert abs(cost.specfem_dt(32) / header["dt"] - 1) < 0.10
    e = cost.estimate(_schedule([0], [1]), _inputs(record_seconds=240.0, dt=header["dt"]))
    assert abs(e.samples_per_trace / samples - 1) < 0.10
    # unique points per element: 64 asymptotically, the real mesh has a few more (surfaces)
    assert 64 <= header["points"] / header["elements"] < 70


def test_specfem_dt_table_edges():
    assert cost.specfem_dt(336) == pytest.approx(0.11 * 0.95)
    assert cost.specfem_dt(1248) == pytest.approx(0.0462 * 0.95)
    # beyond the table SPECFEM scales as 0.0462 * 1248 / (2 NEX_MAX), as written in its source
    assert cost.specfem_dt(2496) == pytest.approx(0.0462 * 1248 / (2 * 2496) * 0.95)
    with pytest.raises(ValueError):
        cost.specfem_dt(0)


def test_cli_prints_the_estimate_and_names_missing_inputs(tmp_path, capsys):
    assert cli.main(["estimate", "--config", str(REPO / "parameters.yaml"), "--events", "142",
                     "--stations", "2000", "--minutes-per-forward", "30",
                     "--mesher-header", str(shared_fixture("specfem3d_globe_tiny") / "OUTPUT_FILES"
                                            / "values_from_mesher.h")]) == 0
    out = capsys.readouterr().out
    assert "core-hours: 4.69 M" in out and "jobs: 4573" in out
    assert "dt 0.2536 s" in out and "event kernels" in out and "unknown" not in out
    # a parameter file whose path_specfem_data has no STATIONS: the option to give is named
    values = yaml.safe_load((REPO / "parameters.yaml").read_text())
    values["path_specfem_data"] = str(tmp_path)
    (tmp_path / "parameters.yaml").write_text(yaml.safe_dump(values))
    assert cli.main(["estimate", "--config", str(tmp_path / "parameters.yaml")]) == 2
    assert "number of stations unknown: give --stations" in capsys.readouterr().err
    assert cli.main(["estimate", "--config", str(tmp_path / "nothing.yaml")]) == 2
    assert "nothing.yaml" in capsys.readouterr().err


def _budget(**keep) -> dict[str, cost.StorageItem]:
    v = _schedule([1], [2])
    v.update(keep, estimate_window_seconds_per_station=300.0, estimate_windows_per_station=4.0,
             sampling_rate=10.0)
    return {b.name: b for b in cost.storage_budget(v, _inputs())}


def test_storage_budget_by_hand():
    """1 stage, 1 source + 2 structure iterations, 10 events x 5 stations, NSTEP 1300: 4 measured
    forwards, 3 trial forwards, 2 kernel runs, counted by hand; the keep_* flags move the trial
    synthetics, kernels and wavefields from deleted to kept."""
    b = _budget()
    traces, nt, es = 10 * 5 * 3, 1300, 10 * 5
    assert b["synthetics of measured forwards"].kept == 4 * traces * nt * 37
    assert b["synthetics of trial forwards"].kept == 0
    assert b["synthetics of trial forwards"].deleted == 3 * traces * nt * 37
    assert b["adjoint sources (.adj)"].kept == traces * nt * 34
    # 300 s at 10 sps; the final forward's kept, the three others' removed after their line search
    assert b["adjoint store (compact)"].kept == es * 3000 * 8
    assert b["adjoint store (compact)"].deleted == 3 * es * 3000 * 8
    assert b["frozen measurements"].kept == es * 3000 * 16 + 10 * nt * 8
    assert b["frozen measurements"].deleted == 3 * (es * 3000 * 16 + 10 * nt * 8)
    assert b["measurement tables"].kept == 4 * es * 4 * 210
    assert b["prepared observed data"].kept == 1 * es * 600 * 344
    gll_file = 125 * 100 * 4 + 8 * 4
    assert b["event kernels"].deleted == 2 * 10 * 13 * gll_file and b["event kernels"].kept == 0
    wavefield = 10 * 4 * (9 * 64 * 100 + 5 * 125 * 100 + 15 * 125 * 100)
    assert b["saved forward wavefields"].deleted == 2 * wavefield
    assert b["directions"].kept == 2 * (125 * 100 * 24 * 8 + 6 * gll_file)
    assert b["models"].kept == 2 * 6 * gll_file
    kept = _budget(keep_trial_synthetics=True, keep_wavefields=True, keep_event_kernels=True,
                   keep_frozen_measurements=True)
    assert kept["frozen measurements"].kept == 4 * (es * 3000 * 16 + 10 * nt * 8)
    assert kept["synthetics of trial forwards"].kept == 3 * traces * nt * 37
    assert kept["event kernels"].kept == 2 * 10 * 13 * gll_file
    assert kept["saved forward wavefields"].kept == wavefield       # one per event, overwritten
    for name in b:
        assert kept[name].kept + kept[name].deleted >= b[name].kept + b[name].deleted - wavefield
    assert all(x.deleted == 0 for x in kept.values() if x.name != "saved forward wavefields")
    # windows never longer than the record in every category
    v = _schedule([1], [2])
    v["estimate_window_seconds_per_station"] = 1e9
    long = {x.name: x for x in cost.storage_budget(v, _inputs())}
    assert long["adjoint store (compact)"].kept == es * len(v["categories"]) * 600 * 10 * 8


def test_storage_bytes_against_the_real_kbl_files(tmp_path):
    """The per-sample and per-row byte counts of the budget against the files of the real IU.KBL
    measurement (105-min raw record, 6 categories): compact store, frozen measurement, table and
    prepared observed file; and the old full arrays the store replaces."""
    import pickle
    from seisflows_eara.commands.demo import load_kbl_pair
    from seisflows_eara.measure import Config, measure_event, prepare_event
    from seisflows_eara.measure.adjoint_store import write_adjoint_store
    from seisflows_eara.model.parametrization import INVERTED
    ev, st, obs, inv, syn = load_kbl_pair(REPO / "tests" / "data" / "pytomo3d_darfield")
    cfg = Config(params.defaults(), 1)
    m = measure_event(ev, st, {"IU.KBL": obs}, syn, cfg, inventory=inv)
    samples, nt = int(m.prepared.offsets[-1]), syn[0].stats.npts
    store = write_adjoint_store(tmp_path / "s.npz", m.prepared, m.adjoint_windows)
    assert samples * cost.BYTES_FLOAT64 < store < samples * cost.BYTES_FLOAT64 + 2000
    frozen = len(pickle.dumps(m.prepared))
    model = samples * cost.FROZEN_BYTES_PER_WINDOW_SAMPLE + nt * cost.BYTES_FLOAT64
    assert abs(frozen / model - 1) < 0.05, (frozen, model)
    rows = m.table.to_csv(index=False, float_format="%.6g")
    assert abs(len(rows) / (len(m.table) * cost.BYTES_PER_TABLE_ROW) - 1) < 0.1
    prepare_event(ev, st, {"IU.KBL": obs}, cfg, str(tmp_path / "p.h5"), inventory=inv)
    seconds = obs[0].stats.npts / obs[0].stats.sampling_rate
    per_second = (tmp_path / "p.h5").stat().st_size / seconds
    assert abs(per_second / cost.PREPARED_BYTES_PER_RECORD_SECOND - 1) < 0.1, per_second
    old = len(pickle.dumps((m.adjoint_by_category, m.adjoint_times)))
    full = len(m.adjoint_by_category) * cost.COMPONENTS * nt * cost.BYTES_FLOAT64
    assert abs(old / full - 1) < 0.1 and store < old / 10
    # the window-length default is this record's
    total = float((m.table.win_end - m.table.win_start).sum())
    assert abs(params.defaults()["estimate_window_seconds_per_station"] / total - 1) < 0.05
    assert params.defaults()["estimate_windows_per_station"] == len(m.table)
    assert cost.DIRECTION_FLOATS_PER_POINT == 4 * len(INVERTED)       # g, pg, d, raw per field


def test_cli_prints_what_a_run_keeps_and_deletes(capsys):
    """The 142 x 2000 run: the whole run's kept and deleted bytes, item by item, with totals."""
    assert cli.main(["estimate", "--config", str(REPO / "parameters.yaml"), "--events", "142",
                     "--stations", "2000", "--minutes-per-forward", "30", "--elements",
                     "2300000"]) == 0
    out = capsys.readouterr().out
    assert "storage of the whole run" in out
    for name in ("synthetics of trial forwards", "adjoint store (compact)", "event kernels",
                 "saved forward wavefields", "prepared observed data", "directions", "models"):
        assert name in out, name
    total = next(line for line in out.splitlines() if line.strip().startswith("total "))
    assert "unknown" not in total and total.count("TB") == 2, total
