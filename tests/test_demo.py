"""The README's first command runs the demo: real data in, tables, adjoint sources and figures out."""
import matplotlib
import numpy as np
import pandas as pd

from seisflows_eara.assess.figures import measurement_histograms, waveform_comparison
from seisflows_eara.commands.demo import run_demo


def test_demo_runs_on_real_data(tmp_path):
    out = run_demo(str(tmp_path / "demo"))
    for name in ("waveforms_darfield_IU.KBL_body.png", "waveforms_darfield_IU.KBL_surface.png",
                 "waveforms_greece_HT.LIT_body.png", "histograms.png", "report.md",
                 "measurements_stage1.csv", "measurements_stage3.csv"):
        assert (out / name).stat().st_size > 1000, name
    t = pd.read_csv(out / "measurements_stage1.csv")
    assert set(t.event) == {"C201009031635A", "200801060514A"}
    assert (t.status == "ok").sum() >= 20
    assert len(list((out / "SEM_greece").glob("*.adj"))) == 18


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
