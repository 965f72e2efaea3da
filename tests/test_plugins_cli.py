"""The package as a user meets it: SeisFlows' own CLI finds our five plugins, writes and checks our
parameters, and rejects bad values with errors that name the key and the allowed range."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from seisflows_eara import params

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLUGINS = {"workflow": "eara_inversion", "preprocess": "eara_nzcc", "optimize": "eara_pcg",
           "solver": "eara_globe", "system": "eara_slurm"}


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    exe = cmd[0] if os.path.isabs(cmd[0]) else str(BIN / cmd[0])
    proc = subprocess.run([exe, *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _user_directory(tmp: Path) -> Path:
    """What a user prepares before `seisflows check`: the repo's parameters.yaml and DATA, a
    SPECFEM bin/ (stand-in executables: CI cannot build SPECFEM), an initial model and data."""
    work = tmp / "run"
    work.mkdir()
    shutil.copy(REPO / "parameters.yaml", work / "parameters.yaml")
    shutil.copytree(REPO / "specfem_data", work / "specfem_data")
    binary = work / "bin"
    binary.mkdir()
    for exe in ("xspecfem3D", "xmeshfem3D", "xcombine_sem", "xsmooth_sem", "xsmooth_laplacian_sem",
                "xcombine_vol_data_vtk"):
        (binary / exe).write_text("#!/bin/sh\nexit 0\n")
        (binary / exe).chmod(0o755)
    model = work / "model_init"
    model.mkdir()
    for name in ("vpv", "vph", "vsv", "vsh", "eta", "rho"):
        (model / f"proc000000_reg1_{name}.bin").write_bytes(b"")
    (work / "data").mkdir()
    for key, val in (("path_specfem_bin", binary), ("path_model_init", model), ("path_data", work / "data")):
        run(["seisflows", "par", key, str(val)], work)
    return work


def _check(work: Path) -> str:
    proc = run(["seisflows", "check"], work, check=False)
    return proc.stdout + proc.stderr


def test_seisflows_finds_every_plugin_by_name(tmp_path):
    code = ("from seisflows.tools.config import custom_import\n"
            + "".join(f"print(custom_import('{c}', '{n}').__module__)\n" for c, n in PLUGINS.items()))
    out = run([sys.executable, "-c", code], tmp_path).stdout.split()
    assert out == [f"seisflows_eara.plugins.{c}" for c in PLUGINS]


def test_configure_writes_documented_eara_parameters(tmp_path):
    run(["seisflows", "setup", "-f"], tmp_path)
    for comp, name in PLUGINS.items():
        run(["seisflows", "par", comp, name], tmp_path)
    run(["seisflows", "configure"], tmp_path)
    text = (tmp_path / "parameters.yaml").read_text()
    values = yaml.safe_load(text)
    for p in params.PARAMETERS:
        assert values[p.name] == p.default, p.name
        assert f":param {p.name}: [{p.unit}]" in text, f"no documentation written for {p.name}"
    # and SeisFlows' own line-based reader gets every EARA value back
    out = run(["seisflows", "par", "stage_body_bands"], tmp_path).stdout
    assert "stage_body_bands: [[10.0, 40.0], [8.0, 40.0], [8.0, 40.0]]" in out


def test_repository_parameter_file_matches_the_table():
    """parameters.yaml holds every EARA key with its default, so docs and values never drift."""
    values = yaml.safe_load((REPO / "parameters.yaml").read_text())
    assert {values[c] for c in ("workflow", "preprocess", "optimize", "solver")} == \
        {PLUGINS[c] for c in ("workflow", "preprocess", "optimize", "solver")}
    for p in params.PARAMETERS:
        if p.component == "system" and values["system"] != PLUGINS["system"]:
            continue
        assert p.name in values, f"parameters.yaml lacks {p.name}"
        assert values[p.name] == pytest.approx(p.default) if isinstance(p.default, float) \
            else values[p.name] == p.default, p.name
    params.validate(values)


def test_eara_par_prints_documentation():
    proc = run(["seisflows-eara", "par", "quality_snr"], REPO)
    assert "quality_snr (preprocess, unit: dB)" in proc.stdout
    assert "f2 cosine taper" in proc.stdout and "[10.0, 15.0]" in proc.stdout
    bad = run(["seisflows-eara", "par", "no_such_key"], REPO, check=False)
    assert bad.returncode == 2 and "not an EARA parameter" in bad.stderr


def test_repository_parameters_pass_seisflows_check(tmp_path):
    work = _user_directory(tmp_path)
    out = _check(work)
    assert "error" not in out.lower(), out


@pytest.mark.parametrize("key, value, words", [
    ("quality_cc", "[0.8, 0.7]", ["quality_cc", "low < high", "[-1.0, 1.0]"]),
    ("structure_trial_step", "0", ["structure_trial_step", "(0.0, 1.0]"]),
    ("misfit", "l2", ["misfit", "nzcc", "cc_traveltime", "multitaper"]),
    ("stage_surface_bands", "[[40.0, 120.0]]", ["stage_surface_bands", "one entry per stage"]),
    ("source_bo_iterations", "2.5", ["source_bo_iterations", "integer"]),
])
def test_bad_values_are_named(tmp_path, key, value, words):
    work = _user_directory(tmp_path)
    run(["seisflows", "par", key, value], work)
    out = _check(work)
    assert "parameter errror" in out.lower() or "parameter error" in out.lower(), out
    for w in words:
        assert w in out, (w, out)


def test_unreadable_parameter_file_is_named(tmp_path):
    bad = tmp_path / "parameters.yaml"
    bad.write_text("stage_body_bands: [[10, 40]\n")
    with pytest.raises(params.ParameterError, match="parameters.yaml"):
        params.load_parameters(bad)


def test_smoothing_schedule():
    v = params.defaults()
    assert params.smoothing_for_iteration(v, 1) == (50.0, 25.0)
    assert params.smoothing_for_iteration(v, 5) == (50.0, 25.0)
    assert params.smoothing_for_iteration(v, 6) == (25.0, 10.0)
    assert params.smoothing_for_iteration(v, 30) == (25.0, 10.0)


def test_wheel_registers_plugins_without_editable_install(tmp_path):
    """A normal (non-editable) install: the wheel carries the .pth at its root and the shims."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(REPO)], tmp_path) if _has_hatchling() else pytest.skip(
        "hatchling not importable for an offline wheel build")
    wheel = next((tmp_path / "dist").glob("seisflows_eara-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "seisflows_eara_plugins.pth" in names
    assert "seisflows_eara/sfplugins/seisflows/workflow/eara_inversion.py" in names
    target = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        tmp_path)
    # a fresh interpreter that sees only the wheel's site dir (processing its .pth) + the dependencies
    deps = [p for p in sys.path if p.endswith("site-packages")]
    code = (f"import sys, site; sys.path.insert(0, {str(target)!r}); site.addsitedir({str(target)!r});"
            f"sys.path.extend({deps!r});"
            "from seisflows.tools.config import custom_import;"
            "import seisflows_eara; c = custom_import('solver', 'eara_globe');"
            "print(seisflows_eara.__file__)")
    out = run([sys.executable, "-S", "-c", code], tmp_path).stdout
    assert out.strip().startswith(str(target))


def _has_hatchling() -> bool:
    try:
        import hatchling  # noqa: F401
        return True
    except ImportError:
        return False
