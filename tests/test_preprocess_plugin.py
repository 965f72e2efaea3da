"""The preprocess plugin in a SeisFlows solver-directory layout, on real SPECFEM3D_GLOBE records."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from seisflows_eara.measure import COLUMNS
from seisflows_eara.plugins.preprocess import EaraNzcc

GRC = Path(__file__).parent / "data" / "regional_greece"
EVENT = "200801060514A"


def _layout(tmp: Path) -> Path:
    cwd = tmp / "scratch" / "solver" / EVENT
    (cwd / "DATA").mkdir(parents=True)
    shutil.copy(GRC / "CMTSOLUTION", cwd / "DATA" / "CMTSOLUTION")
    stations = (GRC / "STATIONS").read_text() + "FAR        XX       10.0000    100.0000      0.0     0.0\n"
    (cwd / "DATA" / "STATIONS").write_text(stations)      # a station with no data at all
    shutil.copytree(GRC / "REF_SEIS", cwd / "traces" / "obs")
    shutil.copytree(GRC / "tiny_1d", cwd / "traces" / "syn")
    return cwd


def test_quantify_misfit_writes_specfem_adjoint_sources_and_residuals(tmp_path):
    cwd = _layout(tmp_path)
    pre = EaraNzcc(workdir=str(tmp_path), path_solver=str(tmp_path / "scratch" / "solver"),
                   path_output=str(tmp_path / "output"))
    pre.check()
    res = tmp_path / "residuals" / f"{EVENT}.txt"
    m = pre.quantify_misfit(source_name=EVENT, save_residuals=str(res),
                            save_adjsrcs=str(cwd / "traces" / "adj"), iteration=1, step_count=0)
    adj = sorted((cwd / "traces" / "adj").glob("*.adj"))
    assert len(adj) == 7 * 3                              # every STATIONS entry, N/E/Z
    far = np.loadtxt(cwd / "traces" / "adj" / "XX.FAR.MXZ.adj")
    assert far.shape[1] == 2 and not far[:, 1].any()       # zeros where nothing was measured
    z = np.loadtxt(cwd / "traces" / "adj" / "HT.LIT.MXZ.adj")
    syn = np.loadtxt(cwd / "traces" / "syn" / "HT.LIT.MXZ.sem.ascii")
    assert np.allclose(z[:, 0], syn[:, 0], atol=1e-5)       # the solver's time axis
    assert np.abs(z[:, 1]).max() > 0
    assert (cwd / "DATA" / "STATIONS_ADJOINT").read_text().count("\n") == 7
    assert np.isclose(pre.sum_residuals(np.loadtxt(res)), m.misfit)
    table = pd.read_csv(pre.measurement_file("i01s00", EVENT))
    assert list(table.columns) == COLUMNS
    assert "no observed data" in " ".join(table.reason.astype(str))
    prepared = pre.load_prepared("i01s00", EVENT)
    from seisflows_eara.io.specfem_traces import read_synthetics
    from seisflows_eara.measure import event_from_file
    ev = event_from_file(str(GRC / "CMTSOLUTION"))
    assert np.isclose(prepared.misfit(read_synthetics(str(GRC / "tiny_1d"), ev.time)), m.misfit)
    # observed data are never written to
    assert sorted(p.name for p in (cwd / "traces" / "obs").iterdir()) == \
        sorted(p.name for p in (GRC / "REF_SEIS").iterdir())
