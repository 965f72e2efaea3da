"""The same five plugins under SeisFlows 3.x (3.5.6, built from GitHub main; ../shared/vendor) as
under PyPI's 2.3.1 (issue 19).

This interpreter runs SeisFlows 2.3.1; 3.5.6 cannot share its environment (pyatoa 0.4 vs <= 0.2.2),
so `bash scripts/setup_env.sh` installs it with seisflows_eara into a second virtual environment,
.venv-sf3 (EARA_SF3_VENV overrides), and these tests drive that environment's `seisflows` in
subprocesses: the CLI (configure, par, check, swap) and one workflow run through `seisflows
submit` — killed in the middle of the structure line search and submitted again — whose models,
sources, measurements and misfit history must equal, byte for byte, those of the 2.3.1 run of
tests/test_workflow.py (the same stand-in solver, data and parameters).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from seisflows_eara import params
from seisflows_eara.plugins import compat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_plugins_cli import PLUGINS, _user_directory, run  # noqa: E402
from test_workflow import (_assert_same_as, _project, _seisflows, _simulations,  # noqa: E402,F401
                           reference_run, world)         # the fixtures: shared per session

SF3_VENV = Path(os.environ.get("EARA_SF3_VENV", HERE.parent / ".venv-sf3"))
SF3_PYTHON, SF3_SEISFLOWS = SF3_VENV / "bin" / "python", SF3_VENV / "bin" / "seisflows"

MISSING = (f"no SeisFlows 3.x environment at {SF3_VENV}: `bash scripts/setup_env.sh` creates it "
           "from ../shared/vendor/seisflows-3.5.6-py3-none-any.whl")
# skipped where the environment was not made; in CI (which runs setup_env.sh) a missing one fails
pytestmark = pytest.mark.skipif(not SF3_SEISFLOWS.exists() and os.environ.get("CI") != "true",
                                reason=MISSING)


@pytest.fixture(scope="module")
def sf3() -> dict:
    """What the 3.x environment imports: its SeisFlows version, the adapter classes our plugins
    got, the CLI names, and where SeisFlows' lookup finds each plugin."""
    assert SF3_SEISFLOWS.exists(), MISSING
    code = ("import json; from seisflows.tools.config import custom_import\n"
            "from seisflows_eara.plugins import compat\n"
            "classes = {c: custom_import(c, n) for c, n in %r.items()}\n"
            "print(json.dumps(dict(version=compat.SEISFLOWS_VERSION, cli=compat.CLI,\n"
            "    modules={c: k.__module__ for c, k in classes.items()},\n"
            "    mro={c: [b.__module__ + '.' + b.__name__ for b in k.__mro__]\n"
            "         for c, k in classes.items()})))\n" % PLUGINS)
    out = run([str(SF3_PYTHON), "-c", code], HERE).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_each_environment_gets_its_adapter(sf3):
    assert compat.SEISFLOWS_VERSION == "2.3.1" and compat.CLI["new_parameter_file"] == "setup"
    assert sf3["version"].startswith("3.") and sf3["cli"]["new_parameter_file"] == "init"
    assert sf3["modules"] == {c: f"seisflows_eara.plugins.{c}" for c in PLUGINS}
    assert "seisflows_eara.plugins.compat.sf3.SolverCompat" in sf3["mro"]["solver"]
    assert "seisflows_eara.plugins.compat.sf3.WorkflowCompat" in sf3["mro"]["workflow"]
    assert "seisflows.solver.specfem3d_globe.Specfem3DGlobe" in sf3["mro"]["solver"]


def _sf3(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(SF3_SEISFLOWS), *cmd], cwd, check=check)


def test_configure_par_under_seisflows3(sf3, tmp_path):
    """`init` (3.x's new parameter file), the five plugin names, `configure`: every EARA key
    documented with its default; the solver keys in 3.x's spelling for EARA's TISO + density
    model; `par` reads and sets values that SeisFlows' line reader and yaml agree on."""
    _sf3([sf3["cli"]["new_parameter_file"], "-f"], tmp_path)
    for comp, name in PLUGINS.items():
        _sf3(["par", comp, name], tmp_path)
    _sf3(["configure"], tmp_path)
    text = (tmp_path / "parameters.yaml").read_text()
    values = yaml.safe_load(text)
    for p in params.PARAMETERS:
        assert values[p.name] == p.default, p.name
        assert f":param {p.name}: [{p.unit}]" in text, f"no documentation written for {p.name}"
    assert (values["materials"], values["update_density"], values["smooth_type"]) == \
        ("transverse_isotropic", True, "laplacian")
    assert "path_mainsolver" not in text
    out = _sf3(["par", "stage_body_bands"], tmp_path).stdout
    assert "stage_body_bands: [[10.0, 40.0], [8.0, 40.0], [8.0, 40.0]]" in out
    _sf3(["par", "source_bo_iterations", "12"], tmp_path)
    assert yaml.safe_load((tmp_path / "parameters.yaml").read_text())["source_bo_iterations"] == 12


def test_check_and_swap_under_seisflows3(sf3, tmp_path):
    """The repository's parameters.yaml (written by 2.3.1) passes 3.x's `seisflows check`, with
    the warning about 3.x's task time limit; a bad EARA value is named; `swap system eara_slurm`
    keeps the values and documents every slurm_* key."""
    work = _user_directory(tmp_path)
    out = _sf3(["check"], work).stdout
    assert "All module checks passed" in out and "error" not in out.lower(), out
    assert "`tasktime` = 1 min" in out, out
    _sf3(["par", "quality_cc", "[0.8, 0.7]"], work)
    bad = _sf3(["check"], work, check=False)
    out = bad.stdout + bad.stderr
    assert "PARAMETER ERR" in out and "quality_cc" in out and "low < high" in out, out  # ERRROR
    _sf3(["par", "quality_cc", "[0.5, 0.7]"], work)
    _sf3(["par", "slurm_task_retries", "5"], work)
    _sf3(["swap", "system", "eara_slurm"], work)
    new = (work / "parameters.yaml").read_text()
    values = yaml.safe_load(new)
    assert values["system"] == "eara_slurm" and values["slurm_task_retries"] == 5
    assert values["stage_body_bands"] == params.BY_NAME["stage_body_bands"].default
    for p in params.for_component("system"):
        assert f":param {p.name}: [{p.unit}]" in new and new.count(f"\n{p.name}:") == 1, p.name


@pytest.fixture(scope="module")
def sf3_run(sf3, world, tmp_path_factory) -> Path:
    """The workflow test's project (tests/test_workflow.py: 2 events, 1 source + 2 structure
    iterations) through 3.x's `seisflows submit`: SIGKILLed at the stand-in's 16th run (EV1's
    trial forward done, EV2's pending), then `seisflows submit` again (3.x has no `resume`)."""
    work = _project(world, tmp_path_factory.mktemp("sf3_run"), 1, 2)
    par = yaml.safe_load((work / "parameters.yaml").read_text())
    par["tasktime"] = None             # 3.x's Workstation: no per-task limit (default 1 min)
    (work / "parameters.yaml").write_text(yaml.safe_dump(par, sort_keys=False))
    count = work.parent / "count.txt"
    p = subprocess.run([str(SF3_SEISFLOWS), "submit"], cwd=work, capture_output=True, text=True,
                       timeout=1200, env={**os.environ, "STANDIN_KILL_AFTER": f"{count}:16"},
                       start_new_session=True)
    assert p.returncode != 0 and count.read_text() == "16", p.stderr[-2000:]   # killed
    sims = _simulations(work)
    assert "stage1/structure01/trial_forward EV1 forward" in sims
    assert not any(s.startswith("stage1/structure01/trial_forward EV2") for s in sims)
    _seisflows([sf3["cli"]["resume"]], work, exe=str(SF3_SEISFLOWS))
    return work


def _files(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*"))
            if f.is_file()}


def test_workflow_under_seisflows3_equals_seisflows2(sf3_run, reference_run):
    """Killed and resubmitted under 3.x, the run repeats no simulation and ends with the 2.3.1
    run's simulations, models (every iteration and trial), directions, sources, measurement
    tables and misfit history, byte for byte."""
    _assert_same_as(sf3_run, reference_run)
    out3, out2 = sf3_run / "output", reference_run / "output"
    for sub in ("models", "sources", "measurements"):
        a, b = _files(out3 / sub), _files(out2 / sub)
        assert a.keys() == b.keys() and a, sub
        assert [k for k in a if a[k] != b[k]] == [], sub
    assert (out3 / "misfit_history.csv").read_bytes() == (out2 / "misfit_history.csv").read_bytes()
    a, b = _files(out3 / "directions"), _files(out2 / "directions")
    assert a.keys() == b.keys()             # direction.json holds the run's own absolute paths
    assert [k for k in a if k.endswith(".bin") and a[k] != b[k]] == []      # trial models
    arrays = [k for k in a if k.endswith(".npz")]       # npz (zip) entries carry their write time
    assert arrays
    for k in arrays:
        with np.load(out3 / "directions" / k) as z3, np.load(out2 / "directions" / k) as z2:
            assert z3.files == z2.files and all(np.array_equal(z3[f], z2[f]) for f in z2.files), k


def test_seisflows3_optimization_machinery_is_not_entered(sf3_run):
    """The EARA schedule drives its own optimize methods: 3.x's Inversion tasks (gradient
    vectors, update_search, calculate_step_length, compute_trial_model) never ran — no
    SeisFlows optimization vector or line-search record, and its task state file has no entry."""
    scratch = sf3_run / "scratch" / "optimize"
    vectors = [f.name for f in scratch.iterdir() if f.is_file() and f.name != "checkpoint.npz"]
    assert vectors == [], vectors
    with np.load(scratch / "checkpoint.npz") as z:      # what Gradient.setup wrote, untouched
        assert int(z["step_count"]) == 0 and z["func_vals"].size == z["step_lens"].size == 0
    assert list((sf3_run / "output" / "optimize").iterdir()) == []     # 3.x's optimization stats
    state = [ln for ln in (sf3_run / "sfstate.txt").read_text().splitlines()
             if not ln.startswith("#")]
    assert state == [], state
    assert json.loads((sf3_run / "eara_state.json").read_text())["completed"]
