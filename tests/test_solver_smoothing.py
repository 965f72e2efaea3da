"""The solver plugin runs SPECFEM's smoothing program (smoothing_program = xsmooth_sem, issue 5
item 6): exact command line, per-process files in and out, and — with SPECFEM_BIN — the real
xsmooth_sem on the tiny run's mesh against our Python operator."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_fixture
from specfem_build import mesh_bin, needs
from test_kernels import _specfem_smooth_at
from seisflows_eara.kernels.smoothing import TRUNCATE_FLOAT32, smooth_mesh
from seisflows_eara.model import read_mesh
from seisflows_eara.model.gll import read_gll

#: a stand-in xsmooth_sem: records its arguments, checks what SPECFEM needs, writes 2 x input
STANDIN = '''#!{python}
import glob, os, sys
import numpy as np
sys.path.insert(0, {tests!r})
from specfem_files import read_gll, write_gll
sh, sv, name, inp, out = sys.argv[1:]
assert os.path.exists("DATA/Par_file"), "xsmooth_sem reads DATA/Par_file"
with open("calls.txt", "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
for fin in sorted(glob.glob(os.path.join(inp, "proc*_reg1_" + name + ".bin"))):
    fout = os.path.join(out, os.path.basename(fin).replace(name, name + "_smooth"))
    write_gll(fout, 2 * read_gll(fin))
'''


def _solver(tmp: Path, bin_dir: Path, **kw):
    from seisflows_eara.plugins.solver import EaraGlobe
    data = tmp / "specfem_data"
    data.mkdir(parents=True)
    shutil.copy(shared_fixture("specfem3d_globe_tiny") / "DATA" / "Par_file.forward",
                data / "Par_file")
    s = EaraGlobe(workdir=str(tmp), path_specfem_bin=str(bin_dir), path_specfem_data=str(data),
                  ntask=1, smoothing_program="xsmooth_sem", **kw)
    run = Path(s.path.mainsolver)
    (run / "DATA").mkdir(parents=True)
    shutil.copy(data / "Par_file", run / "DATA" / "Par_file")
    (run / "bin").symlink_to(bin_dir)
    return s, run


def test_smooth_runs_xsmooth_sem_per_field_and_reassembles_processes(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "xsmooth_sem"
    exe.write_text(STANDIN.format(python=sys.executable, tests=str(Path(__file__).parent / "standin")))
    exe.chmod(0o755)
    s, run = _solver(tmp_path / "work", bin_dir)
    assert "xsmooth_sem" in s._required_binaries
    rng = np.random.default_rng(0)
    fields = {"g_vsv": rng.normal(size=8), "pg_vc": rng.normal(size=8)}
    out = s.smooth(fields, 50.0, 25.0, sizes=[3, 5])            # two processes
    calls = (run / "calls.txt").read_text().splitlines()
    assert calls == ["50 25 g_vsv_kernel SMOOTH/INPUT/ SMOOTH/OUTPUT/",
                     "50 25 pg_vc_kernel SMOOTH/INPUT/ SMOOTH/OUTPUT/"]
    assert sorted(os.listdir(run / "SMOOTH" / "INPUT")) == [
        "proc000000_reg1_g_vsv_kernel.bin", "proc000000_reg1_pg_vc_kernel.bin",
        "proc000001_reg1_g_vsv_kernel.bin", "proc000001_reg1_pg_vc_kernel.bin"]
    for k, v in fields.items():
        np.testing.assert_allclose(out[k], 2 * v.astype(np.float32), rtol=0, atol=0)


def test_smooth_names_the_missing_output(tmp_path):
    from seisflows_eara.plugins.solver import SolverError
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xsmooth_sem").write_text("#!/bin/sh\nexit 0\n")   # SPECFEM's STOP exits 0
    (bin_dir / "xsmooth_sem").chmod(0o755)
    s, run = _solver(tmp_path / "work", bin_dir)
    with pytest.raises(SolverError, match=r"wrote no .*proc000000_reg1_g_kernel_smooth\.bin"):
        s.smooth({"g": np.ones(4)}, 10.0, 10.0, sizes=[4])


@needs("fixture", "xsmooth_sem")
def test_real_xsmooth_sem_through_the_plugin_equals_python(tmp_path, tiny_databases):
    """xsmooth_sem 20 10 on the real betav kernel of the tiny run, through EaraGlobe.smooth, vs
    smooth_mesh with SPECFEM's float32 truncation: max difference 2.2e-3 of max|K̃| (99 % of
    points below 1.3e-4), all of it SPECFEM's float32 arithmetic (θ = acos of a float32 cosine,
    worse relative to a 20 km than to a 50 km width): a float32 transcription of smooth_sem
    reproduces SPECFEM at the worst points to 2e-7 (measured, 18 min on a loaded core)."""
    s, run = _solver(tmp_path / "work", mesh_bin("fixture"),
                     mpiexec="mpirun --allow-run-as-root --oversubscribe", nproc=1)
    (run / "DATABASES_MPI").symlink_to(tiny_databases)
    (run / "OUTPUT_FILES").mkdir()
    k = np.asarray(read_gll(shared_fixture("specfem3d_globe_tiny") / "KERNELS" /
                            "proc000000_reg1_betav_kernel.bin"), float)
    mesh = read_mesh(tiny_databases / "proc000000_reg1_solver_data.bin")
    theirs = s.smooth({"betav": k}, 20.0, 10.0, sizes=mesh.sizes)["betav"]
    ours = smooth_mesh({"k": k}, mesh, 20.0, 10.0, truncate=TRUNCATE_FLOAT32)["k"]
    diff, scale = np.abs(ours - theirs), np.abs(theirs).max()
    print(f"\n[plugin xsmooth_sem 20 10] ours vs SPECFEM: max {diff.max() / scale:.2e}, 99 % of "
          f"points < {np.percentile(diff, 99) / scale:.2e} of max|K~|")
    assert diff.max() < 5e-3 * scale and np.percentile(diff, 99) < 5e-4 * scale
    for p in np.argsort(-diff)[:3]:
        assert _specfem_smooth_at(mesh, k, p, 20.0, 10.0) == pytest.approx(theirs[p], rel=1e-5)
