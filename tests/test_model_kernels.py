"""GLL model/kernel I/O, mesh, STW105, EARA parametrization, damping, preconditioner, smoothing
(issue 5, items 1-3 and 7) on the REAL SPECFEM3D_GLOBE files of shared/fixtures/specfem3d_globe_tiny."""
from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest

from seisflows_eara.kernels import KernelSum, damping_mask, gaussian_smooth, geographic_to_xyz, \
    preconditioner, xsmooth_sem_command
from seisflows_eara.model import read_fields, read_gll, read_mesh, write_fields, write_gll
from seisflows_eara.model.parametrization import (INVERTED, derived, kernels_to_gradient,
                                                  reference, tiso_mask, to_perturbation,
                                                  update_model)
from seisflows_eara.model.reference import stw105_at

TINY = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "specfem3d_globe_tiny"
pytestmark = pytest.mark.skipif(not TINY.exists(), reason=f"fixture {TINY} not found")


@pytest.fixture(scope="module")
def mesh():
    return read_mesh(str(TINY / "DATABASES_MPI" / "proc000000_reg1_solver_data.bin.xz"))


def test_kernel_and_model_files_round_trip_bit_exact(tmp_path):
    for f in sorted((TINY / "KERNELS").glob("*.bin")):
        out = tmp_path / f.name
        write_gll(out, read_gll(f))
        assert out.read_bytes() == f.read_bytes(), f.name
    for f in sorted((TINY / "MODEL_GLL").glob("*.bin.xz")):
        out = tmp_path / f.name[:-3]
        write_gll(out, read_gll(f))
        assert out.read_bytes() == lzma.open(f).read(), f.name
    m = read_fields(str(TINY / "KERNELS"), ["betav", "hess"], kernel=True)
    assert m.sizes == [920000]
    write_fields(str(tmp_path / "k"), m, kernel=True)
    assert (tmp_path / "k" / "proc000000_reg1_hess_kernel.bin").read_bytes() == \
        (TINY / "KERNELS" / "proc000000_reg1_hess_kernel.bin").read_bytes()


def test_broken_file_is_named(tmp_path):
    bad = tmp_path / "proc000000_reg1_vsv.bin"
    bad.write_bytes((TINY / "KERNELS" / "proc000000_reg1_eta_kernel.bin").read_bytes()[:-4])
    with pytest.raises(ValueError, match="proc000000_reg1_vsv.bin"):
        read_gll(bad)
    with pytest.raises(FileNotFoundError, match="rho"):
        read_fields(str(tmp_path), ["rho"])


def test_mesh_geometry(mesh):
    r = mesh.radius
    assert r.min() == pytest.approx(0.546 * 6371, rel=1e-3) and r.max() == pytest.approx(6371, rel=1e-6)
    # the 20°x20° chunk from the CMB to the surface: volume = Ω/3 (R³ − r³), Ω of a cubed-sphere
    # chunk of angular width w: 4 arcsin(sin²(w/2)) sr
    omega = 4 * np.arcsin(np.sin(np.radians(10.0)) ** 2)
    expected = omega / 3 * (6371.0 ** 3 - r.min() ** 3)
    assert mesh.volume.sum() == pytest.approx(expected, rel=2e-3)
    assert mesh.ispec_is_tiso.sum() == 2304 * 125
    lat, lon = mesh.latlon()
    assert 29 < lat.min() < lat.max() < 51 and 8 < lon.min() < lon.max() < 42


def test_stw105_knots():
    v = stw105_at(np.array([6371.0, 0.0]))
    assert v["rho"] == pytest.approx([2.6, 13.08848]) and v["vpv"][0] == pytest.approx(5.8)
    assert v["vsv"][0] == pytest.approx(3.2)
    # a point on the 410 discontinuity takes the side of its element
    above = stw105_at(np.array([5961.0]), np.array([5965.0]))["rho"][0]
    below = stw105_at(np.array([5961.0]), np.array([5955.0]))["rho"][0]
    assert below > above + 0.1


def _specfem_kernels(chi_grad: dict[str, np.ndarray], m: dict[str, np.ndarray]) -> dict:
    """SPECFEM's TISO kernels of a function given its derivatives w.r.t. ln(vpv, vph, vsv, vsh,
    eta, rho) at fixed others, combined as save_kernels.F90 does (κ_v = κ_h models)."""
    ka, kah, kb, kbh = chi_grad["vpv"], chi_grad["vph"], chi_grad["vsv"], chi_grad["vsh"]
    bulk_sq = m["vpv"] ** 2 - 4 / 3 * m["vsv"] ** 2
    av2, ah2 = m["vpv"] ** 2, m["vph"] ** 2
    return {"alphav": ka, "alphah": kah, "betav": kb, "betah": kbh, "eta": chi_grad["eta"],
            "rho": chi_grad["rho"],
            "bulk_c": bulk_sq / av2 * ka + bulk_sq / ah2 * kah,
            "bulk_betav": kb + 4 / 3 * m["vsv"] ** 2 / av2 * ka,
            "bulk_betah": kbh + 4 / 3 * m["vsh"] ** 2 / ah2 * kah}


def test_parametrization_chain_rule_by_finite_differences():
    """χ(m) = Σ c·f(m) on a column of points through both regions; the gradient with respect to
    the EARA perturbations x (density scaled) from SPECFEM-style kernels equals central finite
    differences of χ(update_model(m, h e_j)) — checks kernels_to_gradient and update_model."""
    rng = np.random.default_rng(3)
    radius = np.linspace(6361.0, 5400.0, 40)
    ref = reference(radius)
    tiso = tiso_mask(6371.0 - radius, 670.0)
    m = {k: ref[k] * (1 + 0.02 * rng.standard_normal(radius.size)) for k in
         ("vpv", "vsv", "vsh", "eta", "rho")}
    # κ_v = κ_h (SPECFEM's bulk kernels assume it); isotropic below 670 km
    m["vsh"] = np.where(tiso, m["vsh"], m["vsv"])
    m["vph"] = np.sqrt(m["vpv"] ** 2 - 4 / 3 * m["vsv"] ** 2 + 4 / 3 * m["vsh"] ** 2)
    m["eta"] = np.where(tiso, m["eta"], 1.0)
    c = {k: rng.uniform(0.5, 2.0, radius.size) for k in ("vpv", "vph", "vsv", "vsh", "eta", "rho")}

    def chi(mm):
        return float(sum(np.sum(c[k] * np.sin(mm[k])) for k in c))

    dlog = {k: c[k] * np.cos(m[k]) * m[k] for k in c}        # ∂χ/∂ln m_k
    k = _specfem_kernels(dlog, m)
    g = kernels_to_gradient(k, m, ref, tiso, 0.33)
    h = 1e-6
    for name in INVERTED:
        for p in range(0, radius.size, 7):
            on = tiso[p] if name in ("vc", "vsv", "vsh", "eta") else not tiso[p]
            if not on:
                assert g[name][p] == 0.0
                continue
            dx = {n: np.zeros(radius.size) for n in INVERTED}
            dx[name][p] = h
            plus = chi(update_model(m, dx, ref, tiso, 0.33))
            dx[name][p] = -h
            minus = chi(update_model(m, dx, ref, tiso, 0.33))
            fd = (plus - minus) / (2 * h)
            assert g[name][p] == pytest.approx(fd, rel=1e-6, abs=1e-9), (name, p)


def test_update_round_trip_and_density_scaling():
    radius = np.linspace(6360.0, 4000.0, 30)
    ref = reference(radius)
    tiso = tiso_mask(6371.0 - radius, 670.0)
    m = {k: ref[k].copy() for k in ("vpv", "vph", "vsv", "vsh", "eta", "rho")}
    x0 = to_perturbation(m, ref, tiso)
    assert all(np.allclose(x0[k], 0, atol=1e-12) for k in x0)
    dx = {k: np.full(radius.size, 0.01) for k in INVERTED}
    new = update_model(m, dx, ref, tiso, 0.33)
    x1 = to_perturbation(new, ref, tiso)
    for k in INVERTED:
        on = tiso if k in ("vc", "vsv", "vsh", "eta") else ~tiso
        assert np.allclose(x1[k][on], 0.01, atol=1e-9), k
    dvs = (derived(new)["vs"] - derived(m)["vs"]) / ref["vs"]
    assert np.allclose((new["rho"] - m["rho"]) / ref["rho"], 0.33 * dvs)
    zero = update_model(m, {k: np.zeros(radius.size) for k in INVERTED}, ref, tiso, 0.33)
    assert all(np.allclose(zero[k], m[k]) for k in m)


def test_damping_on_the_real_mesh(mesh):
    src = geographic_to_xyz(37.0, 22.0, 90.0)[0]
    rec = geographic_to_xyz(np.array([40.0, 42.0]), np.array([25.0, 20.0]), np.zeros(2))
    w = damping_mask(mesh.xyz, src, rec, 50.0, 10.0)
    d_src = np.linalg.norm(mesh.xyz - src, axis=1)
    d_rec = np.min(np.linalg.norm(mesh.xyz[:, None, :] - rec[None], axis=2), axis=1)
    i0 = np.argmin(d_src)                           # ~0 at the source: nearest GLL point
    assert d_src[i0] < 30.0 and w[i0] < 0.31
    assert w[i0] == pytest.approx(1 - np.exp(-(d_src[i0] / 50.0) ** 2), rel=1e-6)
    j0 = np.argmin(d_rec)                           # receiver factor, with the source factor
    assert w[j0] == pytest.approx((1 - np.exp(-(d_rec[j0] / 10.0) ** 2))
                                  * (1 - np.exp(-(d_src[j0] / 50.0) ** 2)), rel=1e-6)
    assert w[j0] < 0.5
    far = (d_src > 150.0) & (d_rec > 30.0)
    assert w[far].min() > 0.9998                    # ~1 beyond 3 radii
    i = np.argmin(np.abs(d_src - 50.0) + 1e3 * (d_rec < 40.0))
    assert w[i] == pytest.approx(1 - np.exp(-(d_src[i] / 50.0) ** 2), rel=1e-6)


def test_preconditioner_thresholds():
    h = np.array([-231.0, -1.0, 0.0, 0.1, 70.0])
    p = preconditioner(h, 1e-3, "abs")
    assert p == pytest.approx([1.0, 231.0, 1000.0, 1000.0, 231.0 / 70.0])
    pc = preconditioner(h, 1e-3, "clip")
    assert pc == pytest.approx([1000.0, 1000.0, 1000.0, 700.0, 1.0])
    with pytest.raises(ValueError, match="Hessian"):
        preconditioner(np.zeros(3), 1e-3)


def test_real_hessian_is_handled():
    h = read_gll(TINY / "KERNELS" / "proc000000_reg1_hess_kernel.bin")
    assert h.min() < 0                               # as the fixture README says
    p = preconditioner(h, 1e-3, "abs")
    assert np.all(np.isfinite(p)) and p.min() == pytest.approx(1.0) and p.max() <= 1000.0 + 1e-9


def test_summation_of_real_kernels():
    k = read_fields(str(TINY / "KERNELS"), ["betav", "bulk_c"], kernel=True)
    s = KernelSum()
    s.add("a", k.fields)
    s.add("b", k.fields, weight=2.0)
    assert np.array_equal(s.fields["betav"], 3.0 * k["betav"])
    with pytest.raises(ValueError, match="twice"):
        s.add("a", k.fields)


def test_summed_gradient_equals_the_sum_of_damped_event_gradients(mesh):
    """summed_gradient applies the (linear) chain rule once to Σ_e mask_e K_e: equal to the sum of
    the per-event EARA gradients of the damped real kernels, two events with different damping."""
    from seisflows_eara import params
    from seisflows_eara.optimize.structure import EventKernels, summed_gradient
    v = params.defaults()
    names = ("bulk_c", "bulk_betav", "bulk_betah", "eta", "rho", "alphav", "alphah", "betav",
             "betah", "hess")
    k = {n: np.asarray(read_gll(TINY / "KERNELS" / f"proc000000_reg1_{n}_kernel.bin"), float)
         for n in names}
    model = {n: np.asarray(read_gll(TINY / "MODEL_GLL" / f"proc000000_reg1_{n}.bin.xz"), float)
             for n in ("vpv", "vph", "vsv", "vsh", "eta", "rho")}
    events = [EventKernels("a", k, geographic_to_xyz(40.0, 25.0, 30.0)[0],
                           geographic_to_xyz(np.array([38.0, 42.0]), np.array([22.0, 27.0]), np.zeros(2))),
              EventKernels("b", {n: 0.5 * a for n, a in k.items()}, geographic_to_xyz(36.0, 20.0, 100.0)[0],
                           geographic_to_xyz(np.array([44.0]), np.array([30.0]), np.zeros(1)))]
    g, hess = summed_gradient(events, mesh, model, v)
    ref = reference(mesh.radius, mesh.element_radius())
    tiso = tiso_mask(mesh.depth, v["tiso_max_depth"])
    expect = {p: 0.0 for p in INVERTED}
    for ev in events:
        mask = damping_mask(mesh.xyz, ev.source_xyz, ev.receivers_xyz,
                            v["source_damping_radius_km"], v["receiver_damping_radius_km"])
        ge = kernels_to_gradient({n: a * mask for n, a in ev.kernels.items() if n != "hess"},
                                 model, ref, tiso, v["density_scaling"])
        expect = {p: expect[p] + ge[p] for p in INVERTED}
    for p in INVERTED:
        assert np.allclose(g[p], expect[p], rtol=1e-12, atol=1e-12 * np.abs(expect[p]).max()), p
    assert np.array_equal(hess, 1.5 * k["hess"])


def test_python_smoothing_preserves_constants_and_spreads_a_spike(mesh):
    sel = mesh.element < 800                       # a sub-volume keeps the test fast
    xyz, vol, el = mesh.xyz[sel], mesh.volume[sel], mesh.element[sel]
    spike_el = 400
    f = {"one": np.ones(xyz.shape[0]), "spike": (el == spike_el).astype(float)}
    out = gaussian_smooth(f, xyz, vol, el, 80.0, 40.0)
    assert np.allclose(out["one"], 1.0)
    c = xyz[el == spike_el].mean(axis=0)
    d = np.linalg.norm(xyz - c, axis=1)
    s = out["spike"]
    assert s[d < 20].mean() > s[(d > 150) & (d < 250)].mean() > s[d > 400].mean()
    assert xsmooth_sem_command(50, 25, "betav_kernel", "in/", "out/") == \
        ["xsmooth_sem", "50", "25", "betav_kernel", "in/", "out/"]
