"""Bad input and failures of the plugins (issue 7 item 7): a full disk during a model write, a
solver or mesher run that leaves no output, an event without observed data."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_fixture
from seisflows_eara.model import read_mesh
from seisflows_eara.model.gll import read_gll, write_gll

PARS = ("vpv", "vph", "vsv", "vsh", "eta", "rho")


@pytest.fixture(scope="module")
def tiny_model(tiny_databases, tmp_path_factory) -> Path:
    import lzma
    out = tmp_path_factory.mktemp("model")
    for p in PARS:
        with lzma.open(shared_fixture("specfem3d_globe_tiny") / "MODEL_GLL" /
                       f"proc000000_reg1_{p}.bin.xz") as f:
            (out / f"proc000000_reg1_{p}.bin").write_bytes(f.read())
    return out


def test_full_disk_during_a_model_write_leaves_no_partial_model(tmp_path, tiny_databases,
                                                                tiny_model, monkeypatch):
    """ENOSPC in the middle of write_updated_model: the exception reaches the caller (the step is
    not marked done), no model folder appears, the current model is untouched, and the repeated
    write (what `seisflows submit` does on resume) gives the complete model."""
    from seisflows_eara.direction import engine
    from seisflows_eara.direction.slices import save_slice
    from seisflows_eara.plugins import optimize as plugin
    opt = plugin.EaraPcg(workdir=str(tmp_path / "w"))
    mesh_dir = str(tiny_databases)
    n = read_mesh(mesh_dir, iproc=0).npoint
    rng = np.random.default_rng(1)
    direction = tmp_path / "direction"           # a direction job's per-slice d
    save_slice(str(direction), 0, {f"d_{k}": rng.uniform(-1, 1, n)
                                   for k in ("vc", "vsv", "vsh", "eta", "vp", "vs")})
    before = {p: (tiny_model / f"proc000000_reg1_{p}.bin").read_bytes() for p in PARS}
    real_write_gll = engine.write_gll
    calls = []

    def full_disk(path, values):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write_gll(path, values)
    monkeypatch.setattr(engine, "write_gll", full_disk)
    out = tmp_path / "models" / "stage1_it01"
    with pytest.raises(Exception, match="No space left"):
        opt.write_updated_model(str(tiny_model), str(direction), 0.01, str(out), mesh_dir)
    assert not out.exists()
    assert all((tiny_model / f"proc000000_reg1_{p}.bin").read_bytes() == before[p] for p in PARS)
    monkeypatch.setattr(engine, "write_gll", real_write_gll)
    opt.write_updated_model(str(tiny_model), str(direction), 0.01, str(out), mesh_dir)
    assert sorted(os.listdir(out)) == sorted(f"proc000000_reg1_{p}.bin" for p in PARS)
    assert not (tmp_path / "models" / "stage1_it01.tmp").exists()
    dv = read_gll(out / "proc000000_reg1_vsv.bin") / read_gll(tiny_model / "proc000000_reg1_vsv.bin")
    assert 0.98 < dv.min() < 1.0 < dv.max() < 1.02            # a 1 % step was applied


def _event_dir(tmp_path: Path, mesher: str, solver: str):
    """EaraGlobe for one event with fake binaries (shell scripts) in its directory."""
    os.environ["SEISFLOWS_TASKID"] = "0"
    from seisflows_eara.plugins.solver import EaraGlobe
    data = tmp_path / "specfem_data"
    data.mkdir()
    tiny = shared_fixture("specfem3d_globe_tiny")
    shutil.copy(tiny / "DATA" / "Par_file.forward", data / "Par_file")
    shutil.copy(tiny / "DATA" / "CMTSOLUTION", data / "CMTSOLUTION_EV1")
    s = EaraGlobe(workdir=str(tmp_path / "w"), path_specfem_bin=str(tmp_path / "bin"),
                  path_specfem_data=str(data), ntask=1)
    cwd = Path(s.cwd)
    for sub in ("bin", "DATA", "OUTPUT_FILES", "DATABASES_MPI"):
        (cwd / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "Par_file", cwd / "DATA" / "Par_file")
    for name, body in (("xmeshfem3D", mesher), ("xspecfem3D", solver)):
        (cwd / "bin" / name).write_text("#!/bin/sh\n" + body + "\n")
        (cwd / "bin" / name).chmod(0o755)
    return s, cwd


def test_a_solver_run_that_writes_nothing_is_named(tmp_path):
    """SPECFEM's STOP exits 0: the plugin checks the files, names the event, binary and log."""
    from seisflows_eara.plugins.solver import SolverError
    s, cwd = _event_dir(tmp_path, "touch DATABASES_MPI/proc000000_reg1_solver_data.bin",
                        "echo 'STOP Error opening CMTSOLUTION file'; exit 0")
    with pytest.raises(SolverError, match=r"event EV1: xspecfem3D wrote no .*\*\.sem\.ascii.*"
                                          r"forward\.log"):
        s.forward_simulation(save_traces=str(tmp_path / "traces"))
    assert "STOP Error opening CMTSOLUTION" in (cwd / "forward.log").read_text()


def test_a_mesher_that_writes_nothing_is_named_and_not_taken_for_a_mesh(tmp_path):
    from seisflows_eara.plugins.solver import SolverError
    s, cwd = _event_dir(tmp_path, "echo 'STOP model does not exist'; exit 0", "exit 0")
    with pytest.raises(SolverError, match=r"event EV1: xmeshfem3D wrote no mesh"):
        s.forward_simulation(save_traces=str(tmp_path / "traces"))
    assert not (cwd / "DATABASES_MPI" / "meshed_model_id.txt").exists()   # re-meshed next time


def test_a_failing_binary_is_named_with_its_exit_code_and_log(tmp_path):
    from seisflows_eara.plugins.solver import SolverError
    s, cwd = _event_dir(tmp_path, "touch DATABASES_MPI/proc000000_reg1_solver_data.bin",
                        "echo 'forward: out of memory' >&2; exit 7")
    with pytest.raises(SolverError, match=r"(?s)event EV1: `\./bin/xspecfem3D` exited with 7.*"
                                          r"out of memory"):
        s.forward_simulation(save_traces=str(tmp_path / "traces"))


@pytest.mark.slow
def test_an_event_without_observed_data_fails_alone_and_resumes(tmp_path):
    """path_data lacks EV2's folder: the first forward step finishes EV1, then stops naming EV2;
    once the data are there `seisflows submit` goes on without repeating EV1's forward."""
    sys.path.insert(0, str(Path(__file__).parent))
    import test_workflow as tw
    world = tw.world.__wrapped__(_Factory(tmp_path))
    obs2 = tmp_path / "held_back"
    shutil.move(world["obs"] / "EV2", obs2)
    (tmp_path / "run").mkdir()
    work = tw._project(world, tmp_path / "run", 0, 1)
    p = tw._seisflows(["submit"], work, check=False)
    assert p.returncode != 0
    assert "EV2" in (work / "sflog.txt").read_text()
    failed = work / "scratch" / "eara_markers" / "stage1" / "structure01" / "forward" / "EV2.failed"
    assert "event EV2: no observed data" in failed.read_text()
    assert tw._simulations(work) == ["stage1/structure01/forward EV1 forward",
                                     "stage1/structure01/forward EV2 forward"]
    shutil.move(obs2, world["obs"] / "EV2")
    tw._seisflows(["submit"], work)
    sims = tw._simulations(work)
    assert sims.count("stage1/structure01/forward EV1 forward") == 1
    assert len(sims) == len(set(sims)) + 1        # only EV2's unmeasured forward ran again


class _Factory:
    def __init__(self, root: Path):
        self.root = root

    def mktemp(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True)
        return p
