"""The README's first command runs the demo: real data in, tables, adjoint sources and figures out.

Default run: the measurement part (seconds). Slow: the whole demo (measurement, source inversion
on instaseis PREM Green's functions, structure direction from real SPECFEM3D_GLOBE kernels,
figures, report; ~3 min on 2 cores), with the numbers it reports checked."""
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from seisflows_eara.assess.figures import measurement_histograms, waveform_comparison
from seisflows_eara.commands import plot
from seisflows_eara.commands.demo import run_demo
from seisflows_eara.model import read_fields
from seisflows_eara.model.parametrization import INVERTED, MODEL_FILES

#: the issue's budget for the whole demo (s)
DEMO_BUDGET_S = 300.0


def test_demo_measurement_part_on_real_data(tmp_path):
    out = run_demo(str(tmp_path / "demo"), parts=("measure",))
    for name in ("waveforms_darfield_IU.KBL_body.png", "waveforms_darfield_IU.KBL_surface.png",
                 "waveforms_greece_HT.LIT_body.png", "histograms_bands.png", "report.md",
                 "measurements_stage1.csv", "measurements_stage3.csv"):
        assert (out / name).stat().st_size > 1000, name
    t = pd.read_csv(out / "measurements_stage1.csv")
    assert set(t.event) == {"C201009031635A", "200801060514A"}
    assert (t.status == "ok").sum() >= 20
    assert len(list((out / "SEM_greece").glob("*.adj"))) == 18
    report = (out / "report.md").read_text()
    assert "waveforms_darfield_IU.KBL_body.png" in report and "Greece, stage 1" in report


@pytest.mark.slow
def test_whole_demo(tmp_path):
    t0 = time.perf_counter()
    out = run_demo(str(tmp_path / "demo"))
    elapsed = time.perf_counter() - t0
    print(f"\ndemo: {elapsed:.0f} s")
    assert elapsed < DEMO_BUDGET_S
    report = (out / "report.md").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    for name in ("misfit.png", "histograms_source.png", "direction.png", "direction_section.png",
                 "trial_model.png", "trial_model_section.png", "psf_input.png"):
        assert name in pngs and name in report, name
    assert sum(n.startswith("waveforms_C201009031635A_") for n in pngs) == 4
    # source inversion: a workflow's output layout, misfit down on frozen windows, source closer
    run = out / "run" / "output"
    h = pd.read_csv(run / "misfit_history.csv")
    assert set(h.kind) == {"pre_source", "source", "final"}
    tot = h[h.category == "total"].set_index("kind").misfit
    assert tot["final"] < tot["pre_source"]
    frozen = [float(x) for x in report.split("misfit on the start's windows and weights: ")[1]
              .split("\n")[0].split(" -> ")]
    assert all(b < a for a, b in zip(frozen, frozen[1:])) and frozen[-1] < 0.5 * frozen[0]
    angle = report.split("moment-tensor angle ")[1].split(",")[0]
    a0, a1 = (float(x.rstrip("°")) for x in angle.split(" → "))
    assert a1 < 0.5 * a0
    hist = pd.read_csv(run / "sources" / "C201009031635A" / "history.csv")
    assert hist.tag.tolist()[0] == "stage1_src00" and (hist.status[1:] == "updated").all()
    fig = plot.plot_misfit(str(run))
    assert any(np.isfinite(ln.get_ydata()).all() and len(ln.get_ydata()) for ln in fig.axes[0].lines)
    # structure: normalized direction, trial model m + ε d
    d = read_fields(str(out / "structure" / "direction"), list(INVERTED)).fields
    assert max(np.abs(v).max() for v in d.values()) == pytest.approx(1.0, abs=1e-6)
    trial = read_fields(str(out / "structure" / "trial_model"), list(MODEL_FILES)).fields
    m0 = read_fields(str(Path(__file__).parent / "data" / "specfem3d_globe_tiny" / "MODEL_GLL"),
                     ["vsv"]).fields["vsv"]
    change = np.abs(trial["vsv"] / m0 - 1)
    assert 0 < change.max() < 0.02
    assert "g·d = -" in report
    assert (out / "structure" / "psf" / "model" / "proc000000_reg1_vsv.bin").exists()
    matplotlib.pyplot.close("all")


def test_figures_hold_data():
    t = np.arange(1000) * 0.1
    obs = np.vstack([np.sin(t), np.cos(t), np.sin(2 * t)])
    win = pd.DataFrame(dict(component=["Z", "T"], win_start=[10.0, 20.0], win_end=[30.0, 40.0],
                            status=["ok", "rejected"], phases=["P", "S"], nzcc=[0.9, np.nan]))
    fig = waveform_comparison(t, obs, {"syn": obs * 0.5}, win, "test")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and np.isfinite(ax.lines[0].get_ydata()).all()
    assert ax.get_ylabel().startswith("Z") and fig.axes[-1].get_xlabel().startswith("time")
    assert len(ax.patches) == 1                        # the Z window is shaded
    tab = pd.DataFrame(dict(category=["pz"] * 5, status=["ok"] * 5, dt=np.arange(5.0),
                            nzcc=np.linspace(0, 1, 5), cc_max=np.linspace(0.5, 1, 5)))
    fig = measurement_histograms({"initial": tab, "final": tab.assign(dt=tab.dt / 2)})
    assert len(fig.axes) == 3
    tops = [p.get_xy()[:, 1].max() for p in fig.axes[0].patches]   # step histograms: polygons
    assert len(tops) == 2 and min(tops) >= 1
    matplotlib.pyplot.close("all")
