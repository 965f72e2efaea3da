"""Model assessment (issue 8, SPEC §7): derived fields, spectral-element map views and sections,
PSF perturbations on the real mesh, and every `seisflows-eara plot` command on real outputs.

Real inputs (tests/data): the SPECFEM3D_GLOBE tiny run (mesh, 1-D TISO PREM model, transverse
kernels); measurement tables of the Greece event (SPECFEM's full-physics reference run against a
1-D run) and of Darfield at IU.KBL (raw data against a SPECFEM synthetic) in the stage bands, laid
out as a workflow's output folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from seisflows_eara import params
from seisflows_eara.assess.fields import (area_mean, derived_field, discontinuity_mask,
                                          radial_anisotropy,
                                          relative_to_mean, vp_voigt, vs_voigt)
from seisflows_eara.assess.figures import CATEGORY_LABELS, misfit_curve_points
from seisflows_eara.assess.psf import gaussian_perturbation, psf_centres
from seisflows_eara.assess.sections import (GllInterpolator, depth_slice, geographic_latitude,
                                            great_circle, map_grid)
from seisflows_eara.cli import main
from seisflows_eara.commands import plot
from seisflows_eara.commands.demo import category_misfits, load_kbl_pair, tiny_mesh_dir
from seisflows_eara.io.specfem_traces import read_synthetics
from seisflows_eara.io.stations import read_stations
from seisflows_eara.kernels import geographic_to_xyz
from seisflows_eara.kernels.damping import geocentric_latitude
from seisflows_eara.measure import Config, event_from_file, measure_event
from seisflows_eara.model import read_fields, read_mesh
from seisflows_eara.model.parametrization import MODEL_FILES
from seisflows_eara.model.reference import DISCONTINUITY_TOL_KM

DATA = Path(__file__).parent / "data"
TINY = DATA / "specfem3d_globe_tiny"
GRC = DATA / "regional_greece"
DARF = DATA / "pytomo3d_darfield"
#: coarse figure sampling for the tests (the defaults are for real use)
FAST = dict(assess_grid_spacing_deg=1.0, assess_depth_step_km=50.0, assess_mean_grid_deg=2.0,
            assess_slice_depths_km=[100.0, 220.0, 400.0])


def _prem_tiso_lvz(depth_km: float) -> dict[str, float]:
    """PREM (Dziewonski & Anderson 1981, Table 1) between 24.4 and 220 km, x = r/6371 km: the
    model SPECFEM's 1D_transversely_isotropic_prem puts there."""
    x = (6371.0 - depth_km) / 6371.0
    return dict(vpv=0.8317 + 7.2180 * x, vph=3.5908 + 4.6172 * x, vsv=5.8582 - 1.4678 * x,
                vsh=-1.0839 + 5.7176 * x)


def _images(fig) -> list[np.ndarray]:
    return [np.ma.filled(im.get_array().astype(float), np.nan) for ax in fig.axes for im in ax.images]


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def mesh():
    return read_mesh(tiny_mesh_dir())


@pytest.fixture(scope="module")
def model() -> dict[str, np.ndarray]:
    return read_fields(str(TINY / "MODEL_GLL"), list(MODEL_FILES)).fields


@pytest.fixture(scope="module")
def interp(mesh):
    return GllInterpolator(mesh.xyz, mesh.ngll)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "parameters.yaml"
    path.write_text(yaml.safe_dump({**params.defaults(), **FAST}))
    return path


def _tables() -> dict[int, pd.DataFrame]:
    """Both real events measured in every stage band (one table per stage)."""
    v = params.defaults()
    ev = event_from_file(str(GRC / "CMTSOLUTION"))
    sta = read_stations(GRC / "STATIONS")
    obs = read_synthetics(str(GRC / "REF_SEIS"), ev.time)
    syn = read_synthetics(str(GRC / "tiny_1d"), ev.time)
    by = {s.code: obs.select(network=s.network, station=s.station) for s in sta}
    evd, kbl, obs_d, inv, syn_d = load_kbl_pair(DARF)
    out = {}
    for s in range(1, params.stage_count(v) + 1):
        a = measure_event(ev, sta, by, syn, Config(v, s), observed_processed=True).table
        b = measure_event(evd, kbl, {"IU.KBL": obs_d}, syn_d, Config(v, s), inventory=inv).table
        out[s] = pd.concat([a, b], ignore_index=True)
    return out


STEPS = {1: "stage1_source01_forward", 2: "stage2_structure01_forward",
         3: "stage3_final_final_forward"}


@pytest.fixture(scope="module")
def run_output(tmp_path_factory) -> Path:
    """A workflow output folder from real measurement tables: measurements/<step>/<event>.csv and a
    misfit history with the per-category eq. (2) misfits of those tables."""
    out = tmp_path_factory.mktemp("run") / "output"
    tables = _tables()
    rows = []
    for s, t in tables.items():
        for ev, part in t.groupby("event"):
            d = out / "measurements" / STEPS[s]
            d.mkdir(parents=True, exist_ok=True)
            part.to_csv(d / f"{ev}.csv", index=False)
        mis, counts = category_misfits(t)
        kinds = [("pre_source", 0), ("source", 0), ("source", 1), ("structure", 0), ("structure", 1)]
        if s == 3:
            kinds.append(("final", 6))
        for n, (kind, it) in enumerate(kinds):
            # a falling sequence within the stage, anchored on the real misfits
            f = 0.9 ** max(n - 1, 0)
            rows += [dict(stage=s, kind=kind, iteration=it, category=c, misfit=x * f,
                          windows=counts.get(c, 0), step=STEPS[s]) for c, x in mis.items()]
    pd.DataFrame(rows).to_csv(out / "misfit_history.csv", index=False)
    return out


# ------------------------------------------------------------------------------ derived fields
def test_derived_fields_by_hand():
    assert vs_voigt(4.0, 5.0) == pytest.approx(np.sqrt((2 * 16 + 25) / 3))
    assert vp_voigt(8.0, 9.0) == pytest.approx(np.sqrt((64 + 4 * 81) / 5))
    assert radial_anisotropy(4.0, 5.0) == pytest.approx(1.0 / np.sqrt(19.0))
    assert radial_anisotropy(4.5, 4.5) == 0.0
    m = {"vsv": np.array([4.0]), "vsh": np.array([5.0])}
    assert derived_field("vs", m) == pytest.approx(np.sqrt(19.0))
    assert derived_field("vs", {**m, "vs": np.array([0.07])}) == 0.07   # a perturbation folder
    # cos-latitude weights: (1·cos 0 + 3·cos 60) / (cos 0 + cos 60) = 2.5 / 1.5; NaN ignored
    assert area_mean(np.array([1.0, 3.0, np.nan]), np.array([0.0, 60.0, 30.0])) == \
        pytest.approx(5.0 / 3.0)
    assert relative_to_mean(np.array([4.4, 4.6]), 4.5) == pytest.approx([-1 / 45, 1 / 45])
    z = np.array([349.9, 350.0, 410.0, 470.0, 470.1, 599.9, 600.0, 720.0, 720.1])
    assert discontinuity_mask(z, [410.0, 660.0], 60.0).tolist() == \
        [False, True, True, True, False, False, True, True, False]


def test_geographic_latitude_inverts_specfem_geocentric():
    lat = np.array([-80.0, -33.3, 0.0, 12.5, 40.0, 89.0])
    assert geographic_latitude(geocentric_latitude(lat)) == pytest.approx(lat, abs=1e-12)


# ------------------------------------------------------------------------------ interpolation
def test_interpolation_is_the_spectral_element_field(mesh, interp, model):
    """Linear fields exactly; the GLL values at element-interior nodes exactly; NaN outside."""
    rng = np.random.default_rng(8)
    ext = interp.extent()
    lat = rng.uniform(ext.lat_centre - 8, ext.lat_centre + 8, 300)
    lon = rng.uniform(ext.lon_centre - 8, ext.lon_centre + 8, 300)
    xyz = geographic_to_xyz(lat, lon, rng.uniform(0, 2800, 300))
    a = np.array([0.3, -1.2, 0.7])
    got = interp({"f": mesh.xyz @ a}, xyz, upper_side=False)["f"]
    assert np.isfinite(got).all()
    assert np.abs(got - xyz @ a).max() < 1e-8 * np.abs(xyz @ a).max()
    r = np.linalg.norm(xyz, axis=1)
    raised = xyz * ((r + DISCONTINUITY_TOL_KM) / r)[:, None]       # the upper-side rule's 6 m
    got = interp({"f": mesh.xyz @ a}, xyz)["f"]
    assert np.abs(got - raised @ a).max() < 1e-8 * np.abs(xyz @ a).max()
    n = mesh.ngll
    inner = np.zeros((n, n, n), bool)
    inner[1:-1, 1:-1, 1:-1] = True                      # nodes of one element only
    pick = rng.choice(np.nonzero(np.tile(inner.ravel(), mesh.nspec))[0], 500, replace=False)
    assert interp({"vsv": model["vsv"]}, mesh.xyz[pick], upper_side=False)["vsv"] == \
        pytest.approx(model["vsv"][pick], rel=1e-9)
    # on a discontinuity (PREM's 220 km): the upper side, as model.reference takes it
    on = np.nonzero(np.abs(mesh.depth - 220.0) < 1e-3)[0]
    above = on[mesh.element_depth()[on] < 220.0]
    below = on[mesh.element_depth()[on] > 220.0]
    assert len(above) and len(below)
    v220 = interp({"vsv": model["vsv"]}, mesh.xyz[below[:50]])["vsv"]
    assert v220 == pytest.approx(np.median(model["vsv"][above]), rel=1e-5)
    assert np.median(model["vsv"][below]) > v220.max() + 0.05
    outside = geographic_to_xyz([ext.lat_centre, -ext.lat_centre, ext.lat_centre],
                                [ext.lon_centre, ext.lon_centre, ext.lon_centre + 90.0],
                                [ext.max_depth_km + 50.0, 100.0, 100.0])
    assert np.isnan(interp({"vsv": model["vsv"]}, outside)["vsv"]).all()


def test_map_view_of_the_1d_model_is_prem(interp, model):
    """At 100 and 150 km every map point holds PREM's TISO values (independent formulas) to the
    float32 precision of the GLL files."""
    lat, lon = map_grid(interp.extent(), 1.0)
    for z in (100.0, 150.0):
        s = depth_slice(interp, {k: model[k] for k in ("vpv", "vph", "vsv", "vsh")}, z, lat, lon)
        prem = _prem_tiso_lvz(z)
        assert np.isfinite(s["vsv"]).mean() > 0.7
        for k, v in prem.items():
            assert np.nanmax(np.abs(s[k] - v)) < 2e-5, (z, k)


def test_great_circle_section(interp, model):
    ext = interp.extent()
    path = great_circle(ext.lat_centre, ext.lon_centre - 5, ext.lat_centre, ext.lon_centre + 5, 0.5)
    assert path.distance_deg[-1] == pytest.approx(10 * np.cos(np.radians(ext.lat_centre)), rel=0.02)
    assert path.lat[0] == pytest.approx(ext.lat_centre) and path.lon[-1] == pytest.approx(ext.lon_centre + 5)
    from seisflows_eara.assess.sections import cross_section
    sec = cross_section(interp, {"vsv": model["vsv"]}, path, np.array([100.0, 150.0]))["vsv"]
    assert sec.shape == (2, path.lat.size)
    assert sec[0] == pytest.approx(_prem_tiso_lvz(100.0)["vsv"], abs=2e-5)


# ------------------------------------------------------------------------------ PSF
def test_psf_gaussian_measured_on_the_mesh(mesh, interp):
    """One Gaussian at each PSF depth, integrated with the mesh's own GLL quadrature: volume
    integral A π^{3/2} R³, centroid at the centre, radius from the second moment
    ∫d² f dV / ∫f dV = 3R²/2 — to ≤ 1 % / 1 km."""
    v = params.defaults()
    amp, radius = v["psf_amplitude"], v["psf_radius_km"]
    ext = interp.extent()
    for depth in v["psf_depths_km"]:
        c = geographic_to_xyz(ext.lat_centre, ext.lon_centre, depth)[0]
        centre = pd.DataFrame(dict(x=[c[0]], y=[c[1]], z=[c[2]], sign=[-1.0]))
        f = -gaussian_perturbation(mesh.xyz, centre, amp, radius)
        w = f * mesh.volume
        d = np.linalg.norm(mesh.xyz - c, axis=1)
        assert w.sum() == pytest.approx(amp * np.pi ** 1.5 * radius ** 3, rel=0.01)
        assert np.linalg.norm((w[:, None] * mesh.xyz).sum(0) / w.sum() - c) < 1.0
        assert np.sqrt(2.0 / 3.0 * (w * d ** 2).sum() / w.sum()) == pytest.approx(radius, rel=0.01)
        assert 0.75 * amp < f.max() <= amp


@pytest.fixture(scope="module")
def psf_dir(tmp_path_factory) -> Path:
    """`seisflows-eara psf-model` on the real mesh and model (default psf_* parameters)."""
    out = tmp_path_factory.mktemp("psf")
    assert main(["psf-model", "--mesh", str(tiny_mesh_dir()), "--model",
                 str(TINY / "MODEL_GLL"), "--output", str(out / "psf")]) == 0
    return out


def test_psf_model_files(mesh, model, interp, psf_dir):
    """psf-model writes the checkerboard: peaks ±A at the centres (2° apart, 5 depths), Vsv
    perturbed by exactly δln, Vc and Vsh unchanged, density scaled to Vs (SPEC §6)."""
    v = params.defaults()
    tmp_path = psf_dir
    new = read_fields(str(tmp_path / "psf" / "model"), list(MODEL_FILES)).fields
    dln = read_fields(str(tmp_path / "psf" / "perturbation"), ["dlnvsv"]).fields["dlnvsv"]
    centres = pd.read_csv(tmp_path / "psf" / "centres.csv")
    assert sorted(centres.depth_km.unique()) == v["psf_depths_km"]
    assert set(np.diff(np.sort(centres.lat.unique())).round(9)) == {v["psf_spacing_deg"]}
    for (i, j, k), s in zip(centres[["i", "j", "k"]].to_numpy(), centres.sign):
        assert s == (1 if (i + j + k) % 2 == 0 else -1)
    near = psf_centres(interp, v["psf_spacing_deg"], v["psf_depths_km"], v["psf_pattern"])
    assert len(near) == len(centres)
    from scipy.spatial import cKDTree
    tree = cKDTree(mesh.xyz)
    for _, c in centres.sample(40, random_state=1).iterrows():
        idx = tree.query_ball_point([c.x, c.y, c.z], v["psf_radius_km"])
        peak = c.sign * dln[idx]
        assert 0.75 * v["psf_amplitude"] < peak.max() <= v["psf_amplitude"] * (1 + 1e-6)
    assert np.abs(new["vsv"] / model["vsv"] - 1 - dln).max() < 1e-6
    vc0 = np.sqrt(model["vpv"] ** 2 - 4 / 3 * model["vsv"] ** 2)
    vc1 = np.sqrt(new["vpv"] ** 2 - 4 / 3 * new["vsv"] ** 2)
    assert np.abs(vc1 / vc0 - 1).max() < 1e-6 and np.abs(new["vsh"] / model["vsh"] - 1).max() < 1e-6
    from seisflows_eara.model.parametrization import mesh_reference
    ref = mesh_reference(mesh)
    dxs = (vs_voigt(new["vsv"], new["vsh"]) - vs_voigt(model["vsv"], model["vsh"])) / ref["vs"]
    assert np.abs((new["rho"] - model["rho"]) / ref["rho"] - v["density_scaling"] * dxs).max() < 1e-6


# ------------------------------------------------------------------------------ figures
def test_plot_misfit_on_real_tables(run_output, tmp_path):
    fig = plot.plot_misfit(str(run_output.parent), str(tmp_path / "m.png"))
    h = pd.read_csv(run_output / "misfit_history.csv")
    total = fig.axes[0]
    assert total.get_title() == "overall" and "misfit" in total.get_ylabel()
    assert total.get_xlabel() == "structure iteration"
    lines = {(ln.get_marker(), ln.get_linestyle(), ln.get_markerfacecolor()): ln for ln in total.lines}
    solid = [ln for (mk, ls, fc), ln in lines.items() if ls == "-"]
    assert len(solid) == 3                                    # one curve per stage
    pts = misfit_curve_points(h)
    for ln, s in zip(solid, (1, 2, 3)):
        want = pts[(pts.stage == s) & (pts.category == "total") & (pts.marker == "structure")]
        assert ln.get_xdata().tolist() == sorted(want.x.tolist())
        assert np.allclose(ln.get_ydata(), want.sort_values("x").misfit)
    # stage starts: structure iterations 0, 2, 4; final after the last one; pre-source half before
    assert sorted(pts[pts.kind == "pre_source"].x.unique()) == [-0.5, 1.5, 3.5]
    assert pts[pts.kind == "final"].x.unique().tolist() == [6.0]
    opened = [ln for ln in total.lines if ln.get_markerfacecolor() == "white"]
    assert len(opened) == 3 and all(np.isfinite(ln.get_ydata()).all() for ln in opened)
    cats = {ax.get_title() for ax in fig.axes if ax.get_visible()}
    assert {"P-SV body, Z", "SH body, T"} <= cats
    assert (tmp_path / "m.png").stat().st_size > 10000
    plt.close(fig)


def test_plot_histograms_on_real_tables(run_output, tmp_path):
    fig = plot.plot_histograms(str(run_output), None, str(tmp_path / "h.png"))
    first = plot.load_tables(run_output, STEPS[1])
    assert len(fig.axes) % 3 == 0 and fig.axes[0].get_xlabel().startswith("δt")
    ax = fig.axes[0]                                   # first category, δt: initial and final
    assert len(ax.patches) == 2
    tops = [p.get_xy()[:, 1].max() for p in ax.patches]
    assert min(tops) >= 1
    assert "initial" in ax.get_legend().get_texts()[0].get_text()
    assert "final" in ax.get_legend().get_texts()[1].get_text()
    assert (first.status == "ok").sum() > 20 and set(first.event) == {"200801060514A",
                                                                     "C201009031635A"}
    cat = next(c for c, lab in CATEGORY_LABELS.items() if ax.get_ylabel().startswith(lab))
    n = ((first.category == cat) & (first.status == "ok")).sum()
    assert f"(n={n}," in ax.get_legend().get_texts()[0].get_text()
    fig2 = plot.plot_histograms(str(run_output), [STEPS[1], STEPS[2], STEPS[3]])
    assert len(fig2.axes[0].patches) == 3
    with pytest.raises(plot.PlotInputError, match="no_such_step"):
        plot.plot_histograms(str(run_output), ["no_such_step"])
    plt.close("all")


def _cmt_shifted(src: Path, dst: Path, shift: float) -> None:
    from seisflows_eara.io.cmtsolution import read_cmtsolution, write_cmtsolution
    s = read_cmtsolution(src)
    write_cmtsolution(dst, s.with_values(time_shift=s.time_shift + shift))


def test_plot_waveforms_aligns_initial_and_final(tmp_path):
    """Greece, observed = SPECFEM's reference run; initial = the 1-D run; final = the reference
    run itself written relative to a centroid 3 s later (as after a source update): drawn on the
    initial axis, the final trace must lie on the observed one."""
    plt.close("all")
    shift = 3.0
    _cmt_shifted(GRC / "CMTSOLUTION", tmp_path / "CMT_final", shift)
    final = tmp_path / "final"
    final.mkdir()
    for f in (GRC / "REF_SEIS").glob("*.sem.ascii"):
        t, x = np.loadtxt(f, unpack=True)
        np.savetxt(final / f.name, np.column_stack([t - shift, x]))
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump(params.defaults()))
    paths = plot.plot_waveforms(str(cfg), str(GRC / "CMTSOLUTION"), str(GRC / "STATIONS"),
                                str(GRC / "REF_SEIS"), str(GRC / "tiny_1d"), str(final),
                                str(tmp_path / "figs"), str(tmp_path / "CMT_final"),
                                station_codes=["HT.LIT"], stage=1)
    assert [Path(p).name for p in paths] == ["waveforms_200801060514A_HT.LIT_body.png",
                                            "waveforms_200801060514A_HT.LIT_surface.png"]
    fig = plt.figure(plt.get_fignums()[0])
    for ax, comp in zip(fig.axes, "ZRT"):
        obs, ini, fin = (ln.get_ydata() for ln in ax.lines[:3])
        assert ax.get_ylabel() == f"{comp} (norm.)"
        # processing records of different lengths (tapers, filter start-up) leaves a few % at
        # the ends; the alignment shows in the lag of best fit: 0 samples (3 s = 30 samples)
        dt = float(np.diff(ax.lines[0].get_xdata()[:2])[0])
        lags = np.arange(-60, 61)
        core = slice(200, -200)
        err = [np.sum((np.roll(fin, k)[core] - obs[core]) ** 2) for k in lags]
        assert lags[int(np.argmin(err))] == 0 and dt == pytest.approx(0.1)
        assert np.corrcoef(fin[core], obs[core])[0, 1] > 0.999
        assert np.abs(ini - obs).max() > 0.05 * np.abs(obs).max()   # 1-D run differs
    shaded = sum(len(ax.patches) for ax in fig.axes)
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert shaded >= 1 and any("→ 1.00" in s for s in labels)
    assert fig.axes[-1].get_xlabel() == "time after centroid (s)"
    plt.close("all")


def test_plot_waveforms_from_a_workdir_through_the_cli(tmp_path):
    """`plot waveforms --workdir W --event E` finds STATIONS, observed, the first and last
    measured synthetics and the sources in SeisFlows' layout."""
    w = tmp_path / "w"
    ev = "200801060514A"
    (w / "specfem_data").mkdir(parents=True)
    shutil.copy(GRC / "STATIONS", w / "specfem_data" / "STATIONS")
    shutil.copy(GRC / "CMTSOLUTION", w / "specfem_data" / f"CMTSOLUTION_{ev}")
    shutil.copytree(GRC / "REF_SEIS", w / "data" / ev)
    traces = w / "scratch" / "traces" / "stage1"
    shutil.copytree(GRC / "tiny_1d", traces / "source01" / "forward" / ev / "syn")
    shutil.copytree(GRC / "REF_SEIS", traces / "final" / "final_forward" / ev / "syn")
    (w / "parameters.yaml").write_text(yaml.safe_dump({**params.defaults(), "path_data": "data"}))
    files = plot.resolve_workdir(str(w), ev)
    assert files["initial"].endswith("source01/forward/200801060514A/syn")
    assert files["final"].endswith("final_forward/200801060514A/syn")
    assert main(["plot", "waveforms", "--workdir", str(w), "--event", ev, "--station", "HT.LIT",
                 "--stage", "1", "--output", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / f"waveforms_{ev}_HT.LIT_body.png").stat().st_size > 10000
    assert main(["plot", "waveforms", "--workdir", str(w), "--event", "nope", "--output",
                 str(tmp_path / "x")]) == 2


def test_plot_model_maps_and_section(mesh, config, tmp_path):
    """1-D TISO PREM: δlnVs relative to the layer mean is 0 everywhere (also on the 220-km
    discontinuity: upper side for the points and the mean alike); the anisotropy map is PREM's
    (Vsh − Vsv)/Vs; the 400-km column is veiled (within 60 km of 410)."""
    f1, f2 = plot.plot_model(str(TINY / "MODEL_GLL"), str(tiny_mesh_dir()),
                             str(tmp_path / "model.png"), config=str(config), mesh=mesh)
    imgs = _images(f1)
    assert len(imgs) == 3 * len(FAST["assess_slice_depths_km"])
    dln, xi = imgs[:3], imgs[3:6]
    for a in dln:
        assert np.isfinite(a).mean() > 0.6 and np.nanmax(np.abs(a)) < 1e-3    # percent
    p = _prem_tiso_lvz(100.0)
    want = 100 * (p["vsh"] - p["vsv"]) / vs_voigt(p["vsv"], p["vsh"])
    assert np.nanmax(np.abs(xi[0] - want)) < 1e-3
    veiled = [ax for ax in f1.axes if any("masked" in t.get_text() for t in ax.texts)]
    assert [ax.get_title() for ax in veiled] == ["400 km"] * 3
    assert f1.axes[0].get_ylabel() == "latitude (°)"
    sec_axes = [ax for ax in f2.axes if ax.get_ylabel() == "depth (km)"]
    assert len(sec_axes) == 3
    vs = np.ma.filled(sec_axes[2].collections[0].get_array().astype(float), np.nan)
    assert np.nanmin(vs) > 2.5 and np.nanmax(vs) < 7.5 and np.isfinite(vs).mean() > 0.8
    bands = [p for p in sec_axes[0].patches]
    assert len(bands) == 2
    assert (tmp_path / "model_section.png").stat().st_size > 10000
    plt.close("all")


def test_plot_psf_with_kernels(mesh, config, psf_dir, tmp_path):
    """`plot psf`: the input checkerboard written by psf-model and the −g responses from real
    kernels (mechanics: these kernels are not from a PSF run)."""
    fig = plot.plot_psf(str(tiny_mesh_dir()), str(TINY / "MODEL_GLL"),
                        str(tmp_path / "psf.png"), str(psf_dir / "psf" / "perturbation"),
                        [str(TINY / "KERNELS")], config=str(config), mesh=mesh)
    assert (tmp_path / "psf.png").stat().st_size > 10000
    imgs = _images(fig)
    depths = params.defaults()["psf_depths_km"]
    assert len(imgs) == 4 * len(depths)
    for r in range(len(depths)):
        inp, vsv, vsh, vc = imgs[4 * r:4 * r + 4]
        # the 1° test grid passes ≥ 0.5° (55 km) from the centres: exp(-(55/50)²) ≈ 0.3
        assert np.nanmax(np.abs(inp)) > 0.25 * 100 * params.defaults()["psf_amplitude"]
        assert np.nanmax(np.abs(vsv)) == pytest.approx(1.0)          # normalised per depth
        assert np.isfinite(vsh).mean() > 0.6 and np.isfinite(vc).mean() > 0.6
    assert [ax.get_title() for ax in fig.axes[:4]] == \
        [f"input, {depths[0]:g} km", f"vsv, {depths[0]:g} km", f"vsh, {depths[0]:g} km",
         f"vc, {depths[0]:g} km"]
    plt.close("all")


def test_cli_errors_name_the_missing_file(tmp_path, capsys):
    assert main(["plot", "misfit", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    assert main(["plot", "model", str(tmp_path), "--mesh", str(tiny_mesh_dir()),
                 "--output", str(tmp_path / "m.png")]) == 2
    assert "no proc000000_reg1" in capsys.readouterr().err
    matplotlib.pyplot.close("all")
