"""The slice-parallel direction job (issue 16 items 2-3) on real SPECFEM3D_GLOBE files: the
4-slice fixture (shared/fixtures/specfem3d_globe_tiny_4slices: per-slice mesh, model and
unassembled kernels). `seisflows-eara direction` under `mpiexec -n 1, 2, 4` gives the same
direction, gradient and trial model (here: bit for bit, reductions are per slice in slice order),
and the same as the single-process path on the same slices (seisflows_eara.optimize.structure on
the concatenated mesh, the code the workflow ran before); a second iteration with β ≠ 0; a kill
inside the job and a re-run; bad slice files named by event, slice and file."""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import shared_fixture
from seisflows_eara.direction import engine
from seisflows_eara.direction.comm import DirectionJobError, SerialComm, my_slices

SIGMA = (8.0, 4.0)             # km: small, so the Python smoother takes seconds
# the environment's own launcher first (PyPI's `mpich` wheel puts it beside the interpreter; mpi4py
# then loads that MPI), else the one on PATH (a site or Debian MPI)
_VENV_MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
MPIEXEC = _VENV_MPIEXEC if os.access(_VENV_MPIEXEC, os.X_OK) else shutil.which("mpiexec")
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMP_NUM_THREADS": "1"}


def _mpi_works() -> bool:
    """mpiexec (beside the interpreter or on PATH) and mpi4py (the [mpi] extra) loading an MPI library under it."""
    if MPIEXEC is None:
        return False
    try:
        p = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c",
                            "from mpi4py import MPI; assert MPI.COMM_WORLD.Get_size() == 2"],
                           capture_output=True, timeout=120, env={**os.environ, **MPI_ENV})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


HAVE_MPI = _mpi_works()
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="mpiexec or mpi4py (the [mpi] extra) missing")
PARS = ("vpv", "vph", "vsv", "vsh", "eta", "rho")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Decompressed 4-slice mesh and model, two events (the fixture's kernels twice, with the real
    CMTSOLUTION and one moved 2°), the fixture's STATIONS, a parameters.yaml."""
    src = shared_fixture("specfem3d_globe_tiny_4slices")
    root = tmp_path_factory.mktemp("four_slices")
    for sub in ("DATABASES_MPI", "MODEL_GLL"):
        (root / sub).mkdir()
        for f in sorted((src / sub).glob("*.xz")):
            with lzma.open(f) as fin, open(root / sub / f.name[:-3], "wb") as fout:
                shutil.copyfileobj(fin, fout)
    cmt = (src / "DATA" / "CMTSOLUTION").read_text()
    (root / "EV1.cmt").write_text(cmt)
    moved = "\n".join("latitude:       38.9800" if ln.startswith("latitude:") else ln
                      for ln in cmt.splitlines()) + "\n"
    (root / "EV2.cmt").write_text(moved)
    (root / "parameters.yaml").write_text(yaml.safe_dump({"smoothing_program": "python"}))
    return dict(root=root, kernels=src / "KERNELS", stations=src / "DATA" / "STATIONS",
                mesh=root / "DATABASES_MPI", model=root / "MODEL_GLL",
                config=root / "parameters.yaml")


def _argv(w: dict, output: Path, *extra: str, kernels: dict | None = None) -> list[str]:
    kernels = kernels or {"EV1": w["kernels"], "EV2": w["kernels"]}
    args = ["--config", str(w["config"]), "--stations", str(w["stations"]), "--model",
            str(w["model"]), "--mesh", str(w["mesh"]), "--output", str(output),
            "--smoothing-km", *map(str, SIGMA)]
    for ev, folder in kernels.items():
        args += ["--event", ev, str(folder), str(w["root"] / f"{ev}.cmt")]
    return args + list(extra)


def _mpirun(n: int, argv: list[str], **kw) -> subprocess.CompletedProcess:
    cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "seisflows_eara.direction", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **MPI_ENV}, **kw)


def _in_process(argv: list[str]) -> dict:
    import argparse
    from seisflows_eara.commands.direction import _args, run
    p = argparse.ArgumentParser()
    _args(p)
    return run(p.parse_args(argv), SerialComm())


def _joined(folder: Path, sub: str) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    for s in range(4):
        with np.load(folder / sub / f"proc{s:06d}.npz") as z:
            for k in z.files:
                out.setdefault(k, []).append(z[k])
    return {k: np.concatenate(v) for k, v in out.items()}


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "direction.json"}


def _single_process(w: dict, previous=None, smooth: bool = True):
    """Today's whole-mesh path (the workflow's code before the job): read_fields/read_mesh of all
    slices concatenated, summed_gradient, process_gradient (Python smoothing), direction."""
    from seisflows_eara import params
    from seisflows_eara.io.stations import read_stations
    from seisflows_eara.kernels import geographic_to_xyz
    from seisflows_eara.measure import event_from_file
    from seisflows_eara.model import read_fields, read_mesh
    from seisflows_eara.optimize import structure as core
    v = params.load_parameters(w["config"])
    msh = read_mesh(str(w["mesh"]))
    m = read_fields(str(w["model"]), list(PARS))
    rec = read_stations(str(w["stations"]))
    rxyz = geographic_to_xyz(np.array([r.latitude for r in rec]),
                             np.array([r.longitude for r in rec]),
                             np.array([r.burial / 1000.0 for r in rec]))

    def events():
        for ev in ("EV1", "EV2"):
            e = event_from_file(str(w["root"] / f"{ev}.cmt"))
            k = read_fields(str(w["kernels"]), list(core.KERNEL_NAMES), kernel=True)
            yield core.EventKernels(ev, k.fields, geographic_to_xyz(e.latitude, e.longitude,
                                                                    e.depth_km)[0], rxyz)
    g, hess = core.summed_gradient(events(), msh, m.fields, v)
    if smooth:
        grad = core.process_gradient(g, hess, msh, v, *SIGMA)
    else:
        grad = core.process_gradient(g, hess, msh, v, *SIGMA, smoother=lambda f, h, z: f)
    return grad, core.direction(grad, previous, v["powell_threshold"]), msh, m, v


@pytest.fixture(scope="module")
def runs(world, tmp_path_factory) -> dict:
    """The command in this process (one rank) and under mpiexec -n 1, 2, 4."""
    out = tmp_path_factory.mktemp("runs")
    res = {"serial": out / "n1"}
    if not HAVE_MPI:            # one rank in this process (what the workflow runs with nproc 1)
        _in_process(_argv(world, res["serial"]))
        return res
    for n in (1, 2, 4):
        res[n] = out / f"n{n}"
        p = _mpirun(n, _argv(world, res[n]))
        assert p.returncode == 0, p.stderr[-3000:]
        assert f"4 slices on {n} rank(s)" in p.stdout
    return res


def test_slices_are_split_contiguously():
    assert [my_slices(441, r, 4) for r in (0, 3)] == [list(range(0, 111)), list(range(331, 441))]
    assert sum((my_slices(10, r, 3) for r in range(3)), []) == list(range(10))
    with pytest.raises(DirectionJobError, match="1 to 4"):
        my_slices(4, 0, 5)


@needs_mpi
def test_same_result_for_1_2_4_ranks(runs):
    ref = _files(runs["serial"])
    assert any(k.startswith("trial_model_eps0.01/proc000003_reg1_vsv.bin") for k in ref)
    for n in (2, 4):
        assert _files(runs[n]) == ref, n            # direction, gradient, trial model: bit for bit


def test_equals_the_single_process_path_on_the_same_slices(world, runs):
    grad, d, msh, m, v = _single_process(world)
    out = runs["serial"]
    dd, gg = _joined(out, "direction"), _joined(out, "gradient")
    dmax = max(float(np.abs(a).max()) for a in d.d.values())
    assert dmax == pytest.approx(1.0)
    for k in d.d:
        assert np.abs(dd[f"d_{k}"] - d.d[k]).max() <= 1e-6 * dmax, k
        gmax = float(np.abs(grad.g[k]).max())
        assert np.abs(gg[f"g_{k}"] - grad.g[k]).max() <= 1e-6 * gmax, k
        assert np.abs(gg[f"pg_{k}"] - grad.pg[k]).max() <= 1e-6 * float(np.abs(grad.pg[k]).max())
    info = json.loads((out / "direction.json").read_text())
    assert info["beta"] == 0.0 and info["restarted"] and info["slices"] == 4
    assert info["descent"] == pytest.approx(float(sum(np.vdot(grad.g[k], d.d[k]) for k in d.d)),
                                            rel=1e-9)
    # the trial model is today's update m + ε d of the same direction
    from seisflows_eara.model.parametrization import reference, tiso_mask, update_model
    new = update_model(m.fields, {k: 0.01 * a for k, a in d.d.items()},
                       reference(msh.radius, msh.element_radius()),
                       tiso_mask(msh.depth, v["tiso_max_depth"]), v["density_scaling"])
    from seisflows_eara.model import read_fields
    trial = read_fields(str(out / "trial_model_eps0.01"), list(PARS))
    assert trial.sizes == msh.sizes
    for p in PARS:
        a = new[p].astype(np.float32)
        assert np.abs(trial.fields[p] - a).max() <= 1e-6 * np.abs(a).max(), p


@needs_mpi
def test_second_iteration_with_beta_on_two_ranks_equals_pr_cg(world, runs, tmp_path):
    """Iteration 2 from iteration 1's per-slice state, other kernels (EV2's only, with its own
    damping): β ≠ 0 through per-slice reductions, the same as pr_direction on whole arrays."""
    first = runs["serial"]
    prev = ["--previous-gradient", str(first / "gradient"), "--previous-direction",
            str(first / "direction"), "--smoothing", "none", "--iteration", "2"]
    # iteration 2's kernels: EV2's modulated by cos(x / 80 km), so that Pg_2 is nearly orthogonal
    # to Pg_1 (Powell ratio < 0.2: no restart) and β ≠ 0; the Hessian as before
    from seisflows_eara.model import read_mesh
    from seisflows_eara.model.gll import read_gll, write_gll
    it2 = tmp_path / "kernels_it2"
    it2.mkdir()
    for s in range(4):
        x = read_mesh(str(world["mesh"]), iproc=s).xyz[:, 0]
        for f in world["kernels"].glob(f"proc{s:06d}_reg1_*_kernel.bin"):
            k = read_gll(f)
            write_gll(it2 / f.name, k if "hess" in f.name else k * np.cos(x / 80.0))
    kernels = {"EV2": it2}
    p = _mpirun(2, _argv(world, tmp_path / "it2_n2", *prev, kernels=kernels))
    assert p.returncode == 0, p.stderr[-3000:]
    serial = _in_process(_argv(world, tmp_path / "it2_serial", *prev, kernels=kernels))
    assert _files(tmp_path / "it2_n2") == _files(tmp_path / "it2_serial")
    g1, d1 = _joined(first, "gradient"), _joined(first, "direction")
    g2 = _joined(tmp_path / "it2_serial", "gradient")
    from seisflows_eara.optimize.pcg import pr_direction
    keys = [k[2:] for k in g2 if k.startswith("g_")]
    want = pr_direction({k: g2[f"g_{k}"] for k in keys}, {k: g2[f"pg_{k}"] for k in keys},
                        ({k: g1[f"g_{k}"] for k in keys}, {k: g1[f"pg_{k}"] for k in keys},
                         {k: d1[f"raw_{k}"] for k in keys}), 0.2)
    assert serial["beta"] == pytest.approx(want.beta, rel=1e-9) and want.beta != 0.0
    assert serial["reason"] == want.reason
    d2 = _joined(tmp_path / "it2_serial", "direction")
    for k in keys:
        assert np.abs(d2[f"d_{k}"] - want.d[k]).max() <= 1e-9


@needs_mpi
def test_kill_inside_the_job_and_rerun_is_bit_identical(world, runs, tmp_path):
    out = tmp_path / "killed"
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "seisflows_eara.direction",
           *_argv(world, out)]
    proc = subprocess.Popen(cmd, env={**os.environ, **MPI_ENV}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    raw = Path(str(out) + ".tmp") / "work" / "gradient_raw"
    t0 = time.time()
    while not (raw.is_dir() and len(list(raw.glob("proc*.npz"))) == 4) and time.time() - t0 < 600:
        assert proc.poll() is None, "the job ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)             # inside phase (b), the smoothing
    proc.wait()
    assert not out.exists()                          # nothing published
    p = _mpirun(2, _argv(world, out))
    assert p.returncode == 0, p.stderr[-3000:]
    assert _files(out) == _files(runs["serial"])
    assert not Path(str(out) + ".tmp").exists()


def _model_digest(w: dict) -> str:
    return hashlib.sha1(b"".join(f.read_bytes() for f in sorted(w["model"].iterdir()))).hexdigest()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_bad_slice_file_is_named_and_nothing_is_written(world, tmp_path, damage):
    bad = tmp_path / "EV2_kernels"
    bad.mkdir()
    for f in world["kernels"].glob("proc*_reg1_*_kernel.bin"):
        (bad / f.name).symlink_to(f)
    victim = bad / "proc000002_reg1_betav_kernel.bin"
    victim.unlink()
    if damage == "truncated":
        victim.write_bytes((world["kernels"] / victim.name).read_bytes()[:-100])
    before = _model_digest(world)
    out = tmp_path / "out"
    argv = _argv(world, out, "--smoothing", "none",
                 kernels={"EV1": world["kernels"], "EV2": bad})
    with pytest.raises(DirectionJobError) as e:
        _in_process(argv)
    msg = str(e.value)
    assert "event EV2" in msg and "slice 2" in msg and str(victim) in msg, msg
    assert ("missing" if damage == "missing" else "truncated") in msg
    assert not out.exists() and not Path(str(out) + ".tmp").exists()
    if HAVE_MPI and damage == "missing":             # every rank stops, the message names it
        p = _mpirun(2, argv)
        assert p.returncode != 0 and "event EV2" in p.stderr and "slice 2" in p.stderr
        assert str(victim) in p.stderr
        assert not out.exists() and not Path(str(out) + ".tmp").exists()
    assert _model_digest(world) == before


def test_python_smoother_refuses_hours(world, tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({"smoothing_program": "python",
                                   "python_smoothing_max_hours": 1e-6}))
    argv = _argv(world, tmp_path / "out")
    argv[argv.index("--config") + 1] = str(cfg)
    with pytest.raises(DirectionJobError, match="xsmooth_sem"):
        _in_process(argv)
    assert not (tmp_path / "out").exists()
    # the estimate: merged points x points within 3 σ, at the measured cost per pair
    boxes = {0: ([0, 0, 0], [1, 1, 1], 1.0e6, 100000)}
    h = engine.smoothing_estimate_hours(boxes, [0], (50.0, 25.0))
    pairs = 100000 * 0.1 * 4 / 3 * np.pi * 27 * 50 ** 2 * 25
    assert h == pytest.approx(pairs * engine.SMOOTH_SECONDS_PER_PAIR / 3600)


@needs_mpi
def test_optimize_plugin_runs_the_job_with_mpi_and_its_retries(world, runs, tmp_path, monkeypatch):
    """structure_direction as one job of nproc = 2 ranks (mpiexec), the same files as the
    command; then the retries (smaller ε; β = 0 restart from the per-slice gradient) and the model
    update, each complete or absent; the state index points the next iteration at the slices."""
    from seisflows_eara.optimize import OptimizerState
    from seisflows_eara.plugins.optimize import EaraPcg
    for k, val in MPI_ENV.items():
        monkeypatch.setenv(k, val)
    opt = EaraPcg(workdir=str(tmp_path / "w"), nproc=2, mpiexec=MPIEXEC,
                  smoothing_horizontal_km=[SIGMA[0]] * 2, smoothing_vertical_km=[SIGMA[1]] * 2)
    launched = []
    opt.run_parallel = lambda f: (launched.append(f.__name__), f())
    out = tmp_path / "w" / "output" / "directions" / "stage1_structure01_direction"
    info = opt.structure_direction(1, 1, 1, {e: str(world["kernels"]) for e in ("EV1", "EV2")},
                                   {e: str(world["root"] / f"{e}.cmt") for e in ("EV1", "EV2")},
                                   str(world["stations"]), str(world["model"]), str(world["mesh"]),
                                   str(out))
    assert launched == ["eara_direction_job"] and info["ranks"] == 2
    assert _files(out) == _files(runs["serial"])
    assert OptimizerState(opt.path.pcg).previous_folders(1, before=2) == \
        (str(out / "gradient"), str(out / "direction"))
    smaller = opt.retry_direction(info, restart=False)
    assert smaller["trial_step"] == pytest.approx(0.01 * opt.eara["step_retry_factor"])
    assert Path(smaller["trial_model"]).is_dir() and len(os.listdir(smaller["trial_model"])) == 24
    restart = opt.retry_direction(smaller, restart=True)
    assert restart["beta"] == 0.0 and restart["direction"] == str(out / "restart" / "direction")
    d0 = _joined(out, "direction")
    d1 = _joined(out / "restart", "direction")
    for k in ("vc", "vsv", "vs"):             # first iteration: the steepest descent already
        assert np.array_equal(d0[f"d_{k}"], d1[f"d_{k}"])
    assert OptimizerState(opt.path.pcg).previous_folders(1, before=2)[1] == restart["direction"]
    new = tmp_path / "models" / "it01"
    opt.write_updated_model(str(world["model"]), info["direction"], 0.01, str(new),
                            str(world["mesh"]))
    assert _files(new) == _files(out / "trial_model_eps0.01")
    assert not Path(str(new) + ".tmp").exists()


def test_xsmooth_sem_phases_use_what_the_smoother_wrote(world, tmp_path):
    """smoothing_program xsmooth_sem: --phase gradient leaves g and Pg as SPECFEM float32 kernel
    files (work/sem_in, one per slice and field), xsmooth_sem's outputs (here an identity
    "smoother": the files copied to *_kernel_smooth.bin) are what --phase finish reads; the result
    is the unsmoothed direction to float32 precision."""
    out = tmp_path / "sem"
    argv = _argv(world, out, "--smoothing", "xsmooth_sem")
    _in_process(argv + ["--phase", "gradient"])
    assert not out.exists()
    work = Path(str(out) + ".tmp") / "work"
    files = sorted((work / "sem_in").glob("proc*_reg1_*_kernel.bin"))
    assert len(files) == 4 * 12 and files[0].name == "proc000000_reg1_g_eta_kernel.bin"
    (work / "sem_out").mkdir()
    for f in files:
        shutil.copy(f, work / "sem_out" / f.name.replace("_kernel.bin", "_kernel_smooth.bin"))
    info = _in_process(argv + ["--phase", "finish"])
    assert info["smoothing"] == "xsmooth_sem" and not work.exists()
    _in_process(_argv(world, tmp_path / "none", "--smoothing", "none"))
    a, b = _joined(out, "direction"), _joined(tmp_path / "none", "direction")
    for k in ("vc", "vsv", "vsh", "eta", "vp", "vs"):
        assert np.abs(a[f"d_{k}"] - b[f"d_{k}"]).max() <= 1e-6, k


def test_a_launcher_and_mpi4py_of_different_mpis_are_refused(monkeypatch):
    """A launcher that started 2 ranks while mpi4py's library sees 1 (another MPI's mpiexec): every
    rank would redo the whole job, so the job stops and says why."""
    pytest.importorskip("mpi4py")
    from seisflows_eara.direction.comm import world
    for k in ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(DirectionJobError, match="different MPIs"):
        world()
