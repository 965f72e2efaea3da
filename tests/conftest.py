"""Shared test helpers: the read-only fixtures in ../shared/fixtures (beside the repository, as in
CI); tests that need them skip when that folder is absent."""
from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def shared_fixture(name: str) -> Path:
    """Path of ../shared/fixtures/<name>; skips the calling test when it is missing."""
    path = SHARED_FIXTURES / name
    if not path.exists():
        pytest.skip(f"shared fixture {path} not found")
    return path


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """../shared/fixtures (skip when missing)."""
    if not SHARED_FIXTURES.exists():
        pytest.skip(f"shared fixtures {SHARED_FIXTURES} not found")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def tiny_databases(tmp_path_factory) -> Path:
    """DATABASES_MPI of fixtures/specfem3d_globe_tiny with solver_data.bin decompressed once per
    session (78 MB) into a temporary folder."""
    src = shared_fixture("specfem3d_globe_tiny") / "DATABASES_MPI"
    out = tmp_path_factory.mktemp("tiny_databases")
    for f in src.iterdir():
        if f.name.endswith(".xz"):
            with lzma.open(f) as fin, open(out / f.name[:-3], "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            (out / f.name).symlink_to(f)
    return out


def displacement_as_specfem(observed, inventory):
    """Synthetics made of the observed records themselves, as SPECFEM writes them: displacement
    (obspy's remove_response, 250-2.5 s pre-filter), Z/N/E, channels MX?, no location code."""
    disp = observed.copy()
    disp.remove_response(inventory=inventory, output="DISP", pre_filt=(0.004, 0.008, 0.4, 0.8))
    disp.rotate("->ZNE", inventory=inventory)
    for tr in disp:
        tr.stats.channel = "MX" + tr.stats.channel[-1]
        tr.stats.location = ""
    return disp
