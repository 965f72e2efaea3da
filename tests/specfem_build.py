"""Where the `specfem` tests find SPECFEM3D_GLOBE: SPECFEM_BIN = the OUT_DIR of
scripts/build_specfem_tiny.sh, described by OUT_DIR/manifest.json (one folder of binaries per mesh,
since SPECFEM compiles a mesh's array sizes into its programs). Every test asks for the mesh it
runs on and is skipped with the reason when that build is missing or is not the mesh it needs."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

SPECFEM_BIN = os.environ.get("SPECFEM_BIN", "")
SPECFEM_DATA = os.environ.get("SPECFEM_DATA", "")
#: the mesh of ../shared/fixtures/specfem3d_globe_tiny (its Par_file.forward, values_from_mesher.h)
FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "specfem3d_globe_tiny"
BUILD = "bash scripts/build_specfem_tiny.sh SPECFEM_SRC OUT_DIR, then SPECFEM_BIN=OUT_DIR"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nspec(values_from_mesher: Path) -> int:
    m = re.search(r"NSPEC_CRUST_MANTLE\s*=\s*(\d+)", values_from_mesher.read_text())
    return int(m.group(1))


def problem(mesh: str, *binaries: str, data_dirs: tuple[str, ...] = ()) -> str:
    """Why the `mesh` build of SPECFEM_BIN cannot serve a test ("" when it can)."""
    if not SPECFEM_BIN:
        return f"SPECFEM_BIN not set ({BUILD})"
    manifest = Path(SPECFEM_BIN) / "manifest.json"
    if not manifest.is_file():
        return f"{manifest} missing: SPECFEM_BIN is not an OUT_DIR of a finished build ({BUILD})"
    try:
        entry = json.loads(manifest.read_text())["meshes"][mesh]
    except (ValueError, KeyError) as err:
        return f"{manifest}: no mesh {mesh!r} ({err}); rebuild ({BUILD})"
    folder = Path(SPECFEM_BIN) / entry["dir"]
    if mesh == "fixture":
        if not FIXTURE.is_dir():
            return f"shared fixture {FIXTURE} not found"
        want = _nspec(FIXTURE / "OUTPUT_FILES" / "values_from_mesher.h")
        if entry["nspec_crust_mantle"] != want:
            return (f"{manifest}: the fixture build has NSPEC_CRUST_MANTLE "
                    f"{entry['nspec_crust_mantle']}, the fixture mesh {want}; rebuild ({BUILD})")
        if entry["par_file_sha256"] != _sha256(FIXTURE / "DATA" / "Par_file.forward"):
            return (f"{manifest}: the fixture build's Par_file is not "
                    f"{FIXTURE / 'DATA' / 'Par_file.forward'}; rebuild ({BUILD})")
    if mesh == "gll" and entry["MODEL"] != "GLL":
        return f"{manifest}: mesh 'gll' was built with MODEL = {entry['MODEL']}, not GLL"
    missing = [b for b in binaries if not (os.access(folder / b, os.X_OK) if b.startswith("x")
                                           else (folder / b).is_file())]
    if missing:
        return f"{folder}: missing {', '.join(missing)} (the manifest lists them; rebuild)"
    if data_dirs:
        if not SPECFEM_DATA:
            return "SPECFEM_DATA (SPECFEM's DATA folder: " + ", ".join(data_dirs) + ") not set"
        gone = [d for d in data_dirs if not (Path(SPECFEM_DATA) / d).is_dir()]
        if gone:
            return f"SPECFEM_DATA={SPECFEM_DATA} lacks {', '.join(gone)}"
    if shutil.which("mpirun") is None:
        return "mpirun (OpenMPI) not on PATH"
    return ""


def marks(mesh: str, *binaries: str, data_dirs: tuple[str, ...] = ()) -> list:
    """[@pytest.mark.specfem, a skip (with the reason) unless SPECFEM_BIN's `mesh` build ("gll" or
    "fixture") has `binaries` and SPECFEM_DATA has `data_dirs`] — for a module's pytestmark."""
    reason = problem(mesh, *binaries, data_dirs=data_dirs)
    return [pytest.mark.specfem, pytest.mark.skipif(bool(reason), reason=reason)]


def needs(mesh: str, *binaries: str, data_dirs: tuple[str, ...] = ()):
    """Decorator form of `marks`."""
    def decorate(test):
        for m in marks(mesh, *binaries, data_dirs=data_dirs):
            test = m(test)
        return test
    return decorate


def mesh_bin(mesh: str) -> Path:
    """The folder of SPECFEM_BIN's binaries for `mesh` (call only from tests marked by `needs`)."""
    entry = json.loads((Path(SPECFEM_BIN) / "manifest.json").read_text())["meshes"][mesh]
    return Path(SPECFEM_BIN).resolve() / entry["dir"]
