"""GLL model/kernel I/O, mesh, STW105 and the EARA parametrization (issue 5 items 1 and 3, SPEC §6)
on the real SPECFEM3D_GLOBE run in ../shared/fixtures/specfem3d_globe_tiny."""
from __future__ import annotations

import lzma
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_fixture
from seisflows_eara import params as eara_params
from seisflows_eara.model import (concatenate, gll_filename, read_fields, read_gll, read_kernels,
                                  read_mesh, read_model, split, write_gll, write_kernels,
                                  write_model)
from seisflows_eara.model.mesh import R_EARTH_KM, gll_points_weights
from seisflows_eara.model.parametrization import (INVERTED, KERNEL_FILES, MODEL_FILES, TISO,
                                                  apply_update, bulk_kernels, derived,
                                                  kernels_to_gradient, mesh_reference, mesh_tiso,
                                                  model_to_perturbation, perturbation_to_model,
                                                  reference, tiso_mask, to_perturbation,
                                                  update_model)
from seisflows_eara.model.reference import DISCONTINUITY_TOL_KM, stw105_at, stw105_table

PARAMS = {k: eara_params.defaults()[k] for k in ("tiso_max_depth", "density_scaling")}


@pytest.fixture(scope="module")
def tiny() -> Path:
    return shared_fixture("specfem3d_globe_tiny")


@pytest.fixture(scope="module")
def mesh(tiny_databases):
    return read_mesh(tiny_databases, materials=True)


@pytest.fixture(scope="module")
def model(tiny) -> dict[str, np.ndarray]:
    return concatenate(read_model(tiny / "MODEL_GLL", MODEL_FILES))


@pytest.fixture(scope="module")
def kernels(tiny) -> dict[str, np.ndarray]:
    return concatenate(read_kernels(tiny / "KERNELS", KERNEL_FILES + ("bulk_c", "bulk_betav",
                                                                      "bulk_betah")))


# ------------------------------------------------------------------------------------ GLL files
def test_every_model_and_kernel_file_round_trips_bit_exact(tiny, tmp_path):
    files = sorted((tiny / "KERNELS").glob("*.bin")) + sorted((tiny / "MODEL_GLL").glob("*.bin.xz"))
    assert len(files) > 20
    for f in files:
        values = read_gll(f)
        assert values.dtype == np.dtype("<f4") and values.ndim == 1
        out = tmp_path / f.name.removesuffix(".xz")
        write_gll(out, values)
        original = lzma.open(f).read() if f.name.endswith(".xz") else f.read_bytes()
        assert out.read_bytes() == original, f.name
    assert not list(tmp_path.glob(".*tmp"))                 # atomic writes leave no temporaries
    assert isinstance(read_gll(tiny / "KERNELS" / "proc000000_reg1_hess_kernel.bin"), np.memmap)


def test_folder_io_discovers_processes_and_round_trips(tiny, tmp_path):
    k = read_kernels(tiny / "KERNELS", ["betav", "hess_kernel"])
    assert list(k) == ["betav", "hess_kernel"] and [a.size for a in k["betav"]] == [920000]
    write_kernels(tmp_path / "k", {"betav": k["betav"], "hess": k["hess_kernel"]})
    for name in ("betav", "hess"):
        f = gll_filename(0, 1, f"{name}_kernel")
        assert (tmp_path / "k" / f).read_bytes() == (tiny / "KERNELS" / f).read_bytes()
    m = read_model(tiny / "MODEL_GLL", MODEL_FILES)
    write_model(tmp_path / "m", m)
    for name in MODEL_FILES:
        f = gll_filename(0, 1, name)
        assert (tmp_path / "m" / f).read_bytes() == lzma.open(tiny / "MODEL_GLL" / f"{f}.xz").read()
    # three "processes": written per process, discovered, concatenated back in process order
    whole = np.asarray(k["betav"][0])
    sizes = [300000, 320000, 300000]
    write_kernels(tmp_path / "p", split({"betav": whole}, sizes))
    back = read_kernels(tmp_path / "p", ["betav"])["betav"]
    assert [a.size for a in back] == sizes
    assert np.array_equal(concatenate({"b": back})["b"], whole)
    f = read_fields(str(tmp_path / "p"), ["betav"], kernel=True)
    assert f.sizes == sizes and np.array_equal(f["betav"], whole)


def test_bad_files_raise_errors_naming_them(tiny, tmp_path):
    good = (tiny / "KERNELS" / "proc000000_reg1_eta_kernel.bin").read_bytes()
    bad = tmp_path / "proc000000_reg1_vsv.bin"
    bad.write_bytes(good[:-4])                                  # truncated
    with pytest.raises(ValueError, match="proc000000_reg1_vsv.bin"):
        read_gll(bad)
    bad.write_bytes(good[:-4] + b"\x00\x00\x00\x00")             # wrong trailing marker
    with pytest.raises(ValueError, match="markers"):
        read_gll(bad)
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match="proc000000_reg1_vsv.bin"):
        read_gll(bad)
    xz = tmp_path / "proc000000_reg1_vsh.bin.xz"
    xz.write_bytes(b"not xz")
    with pytest.raises(ValueError, match="proc000000_reg1_vsh.bin.xz"):
        read_gll(xz)
    with pytest.raises(FileNotFoundError, match="rho"):
        read_model(tmp_path, ["rho"])
    gap = tmp_path / "gap"
    gap.mkdir()
    (gap / "proc000001_reg1_vsv.bin").write_bytes(good)          # process 0 missing
    with pytest.raises(FileNotFoundError, match="0..N-1"):
        read_model(gap, ["vsv"])
    mixed = tmp_path / "mixed"
    write_model(mixed, {"vsv": np.ones(10), "vsh": np.ones(12)})
    with pytest.raises(ValueError, match="vsh"):
        read_model(mixed, ["vsv", "vsh"])
    with pytest.raises(ValueError, match="non-finite"):
        write_gll(tmp_path / "nan.bin", np.array([1.0, np.nan]))
    assert not (tmp_path / "nan.bin").exists()


# ----------------------------------------------------------------------------------------- mesh
def test_gll_points_and_weights_are_the_analytic_ones():
    x, w = gll_points_weights(5)
    assert x == pytest.approx([-1, -np.sqrt(3 / 7), 0, np.sqrt(3 / 7), 1], abs=1e-14)
    assert w == pytest.approx([1 / 10, 49 / 90, 32 / 45, 49 / 90, 1 / 10], abs=1e-14)
    for deg in range(8):                                          # exact to degree 2n − 3 = 7
        assert np.sum(w * x ** deg) == pytest.approx((1 - (-1) ** (deg + 1)) / (deg + 1), abs=1e-13)


def test_mesh_records_are_those_of_save_arrays_solver(mesh, model):
    """The record names (save_arrays_solver.f90) are right: the material records rebuild the GLL
    model files the mesher wrote, to float32 precision."""
    assert (mesh.nspec, mesh.nglob, mesh.npoint) == (7360, 492549, 920000)
    assert mesh.ibool.shape == (7360, 5, 5, 5)
    assert np.unique(mesh.ibool).size == mesh.nglob            # every global point used, 0-based
    assert mesh.element_is_tiso.sum() == 2304
    assert sorted(mesh.materials) == ["eta_aniso", "kappah", "kappav", "muh", "muv", "rho",
                                      "rho_vp", "rho_vs"]
    db = mesh.database_model()
    for name in MODEL_FILES:
        assert np.max(np.abs(db[name] - model[name]) / model[name]) < 1e-6, name


def test_mesh_radii_volume_and_point_layout(mesh, tiny_databases):
    r = mesh.radius_km
    assert r.min() / R_EARTH_KM == pytest.approx(0.546, abs=5e-4)
    assert r.max() == pytest.approx(R_EARTH_KM, abs=1e-3)
    # ibool maps to [ispec, k, j, i]: k (γ) is SPECFEM's radial index, so r grows with k everywhere
    rk = r.reshape(mesh.nspec, 5, 5, 5)
    assert np.all(np.diff(rk, axis=1) > 0)
    # volumes: the 20°×20° chunk is a spherical rectangle of solid angle 4 arcsin(sin²(10°));
    # shells between the mesh's discontinuities (PREM 670 and the surface, CMB and 670)
    omega = 4 * np.arcsin(np.sin(np.radians(10.0)) ** 2)
    rc = np.linalg.norm(mesh.element_centres(), axis=1)
    vol_e = mesh.volume.reshape(mesh.nspec, -1).sum(1)
    r670, rcmb = 6371.0 - 670.0, r.min()
    for lo, hi in ((r670, R_EARTH_KM), (rcmb, r670), (rcmb, R_EARTH_KM)):
        got = vol_e[(rc > lo) & (rc < hi)].sum()
        assert got == pytest.approx(omega / 3 * (hi ** 3 - lo ** 3), rel=1e-4), (lo, hi)
    one = read_mesh(tiny_databases, iproc=0)
    assert np.array_equal(one.xyz, mesh.xyz)
    with pytest.raises(FileNotFoundError, match="process 1"):
        read_mesh(tiny_databases, iproc=1)


def test_broken_mesh_file_is_named(tiny_databases, tmp_path):
    raw = (tiny_databases / "proc000000_reg1_solver_data.bin").read_bytes()
    bad = tmp_path / "proc000000_reg1_solver_data.bin"
    bad.write_bytes(raw[:1000])
    with pytest.raises(ValueError, match="proc000000_reg1_solver_data.bin"):
        read_mesh(bad)
    with pytest.raises(FileNotFoundError, match="nothing: no such mesh"):
        read_mesh(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="solver_data.bin.* in .*empty"):
        read_mesh(tmp_path / "empty")


# --------------------------------------------------------------------------------------- STW105
def test_stw105_surface_centre_and_interpolation():
    v = stw105_at(np.array([R_EARTH_KM, 0.0]))
    assert v["rho"] == pytest.approx([2.6, 13.08848]) and v["vpv"] == pytest.approx([5.8, 11.2622])
    assert v["vsv"][0] == pytest.approx(3.2) and v["eta"] == pytest.approx([1.0, 1.0])
    t = stw105_table()
    knots = np.nonzero((np.diff(t[:, 0]) > 0)[:-1] & (np.diff(t[:, 0]) > 0)[1:])[0] + 1
    at = stw105_at(t[knots, 0])
    assert np.array_equal(at["vsh"], t[knots, 5])                 # exact at knots
    mid = stw105_at((t[knots, 0] + t[knots + 1, 0]) / 2)
    assert np.allclose(mid["rho"], (t[knots, 1] + t[knots + 1, 1]) / 2, rtol=1e-12)


def test_stw105_discontinuity_sides():
    r410 = 6371.0 - 410.0
    lower, upper = 3.74234, 3.55491
    assert stw105_at(np.array([r410]), above=np.array([True]))["rho"][0] == pytest.approx(upper)
    assert stw105_at(np.array([r410]), above=np.array([False]))["rho"][0] == pytest.approx(lower)
    assert stw105_at(np.array([r410 + 1e-4]), side_radius=np.array([r410 - 30]))["rho"][0] == \
        pytest.approx(lower)                                      # on it (float32 noise): element side
    # off the discontinuity the point's own radius decides, whatever its element
    assert stw105_at(np.array([r410 + 1.0]), side_radius=np.array([r410 - 100]))["rho"][0] < upper
    assert DISCONTINUITY_TOL_KM < 0.01
    with pytest.raises(ValueError, match="radius outside"):
        stw105_at(np.array([7000.0]))


def test_stw105_on_the_mesh_moho_takes_each_elements_side(mesh):
    """The PREM mesh has its Moho at 24.4 km, as STW105: points on it get crust values in crust
    elements and mantle values in mantle elements."""
    ref = mesh_reference(mesh)
    on = np.abs(mesh.radius_km - 6346.6) < DISCONTINUITY_TOL_KM
    assert on.sum() > 1000
    crust = on & (mesh.element_radius() > 6346.6)
    assert crust.any() and (on & ~crust).any()
    assert np.allclose(ref["rho"][crust], 2.9) and np.allclose(ref["rho"][on & ~crust], 3.28984)


# ------------------------------------------------------------------------------- parametrization
def _love(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A, C, L, N, F, ρ of a GLL model (C = ρ vpv², A = ρ vph², L = ρ vsv², N = ρ vsh²,
    F = η (A − 2L)), as SPECFEM's compute_forces / save_kernels."""
    a, c = m["rho"] * m["vph"] ** 2, m["rho"] * m["vpv"] ** 2
    el, n = m["rho"] * m["vsv"] ** 2, m["rho"] * m["vsh"] ** 2
    return {"A": a, "C": c, "L": el, "N": n, "F": m["eta"] * (a - 2 * el), "rho": m["rho"]}


class LoveMisfit:
    """χ(m) = Σ_p V_p f(A, C, L, N, F, ρ) with f = Σ_k c_k sin(P_k/s_k) + b (A/s_A)(L/s_L)·(ρ/s_ρ)
    and its derivatives ∂f/∂P_k written out (the primary kernels an_kl of save_kernels.F90)."""

    def __init__(self, m0: dict[str, np.ndarray], volume: np.ndarray, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.s = _love(m0)
        self.c = {k: rng.uniform(0.5, 2.0, volume.size) for k in self.s}
        self.b = rng.uniform(0.5, 2.0, volume.size)
        self.v = volume

    def values(self, m: dict[str, np.ndarray]) -> np.ndarray:
        """V_p f_p per point (χ is their sum)."""
        p, s = _love(m), self.s
        f = sum(self.c[k] * np.sin(p[k] / s[k]) for k in p)
        return self.v * (f + self.b * (p["A"] / s["A"]) * (p["L"] / s["L"]) * (p["rho"] / s["rho"]))

    def __call__(self, m: dict[str, np.ndarray]) -> float:
        return float(np.sum(self.values(m)))

    def difference(self, m1: dict[str, np.ndarray], m2: dict[str, np.ndarray]) -> float:
        """χ(m1) − χ(m2), summed per point (unchanged points cancel exactly: no roundoff of χ)."""
        return float(np.sum(self.values(m1) - self.values(m2)))

    def kernels(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """SPECFEM's TISO kernels, transcribed from save_kernels_crust_mantle (an_kl = ∂f/∂(A, C,
        N, L, F); kernel densities, δχ = Σ V K δln m)."""
        p, s = _love(m), self.s
        d = {k: self.c[k] * np.cos(p[k] / s[k]) / s[k] for k in p}
        cross = self.b * (p["A"] / s["A"]) * (p["L"] / s["L"]) * (p["rho"] / s["rho"])
        d["A"] = d["A"] + cross / p["A"]
        d["L"] = d["L"] + cross / p["L"]
        d["rho"] = d["rho"] + cross / p["rho"]
        a, c, el, n, f, eta = p["A"], p["C"], p["L"], p["N"], p["F"], m["eta"]
        return {"alphav": 2 * c * d["C"], "alphah": 2 * a * d["A"] + 2 * a * eta * d["F"],
                "betav": 2 * el * d["L"] - 4 * el * eta * d["F"], "betah": 2 * n * d["N"],
                "eta": f * d["F"],
                "rho": a * d["A"] + c * d["C"] + n * d["N"] + el * d["L"] + f * d["F"]
                + p["rho"] * d["rho"]}


@pytest.fixture(scope="module")
def column(mesh, model):
    """60 real GLL points (30 inverted as TISO, 30 isotropic) with the fixture's model, perturbed
    by 2 % per field so that κ_h ≠ κ_v, vsh ≠ vsv and η ≠ 1 everywhere."""
    rng = np.random.default_rng(11)
    tiso = tiso_mask(mesh.element_depth(), PARAMS["tiso_max_depth"])
    pick = np.concatenate([rng.choice(np.nonzero(mesh.ispec_is_tiso)[0], 20, replace=False),
                           rng.choice(np.nonzero(tiso & ~mesh.ispec_is_tiso)[0], 10, replace=False),
                           rng.choice(np.nonzero(~tiso)[0], 30, replace=False)])
    m = {k: model[k][pick] * (1 + 0.02 * rng.standard_normal(pick.size)) for k in MODEL_FILES}
    ref = reference(mesh.radius_km[pick], mesh.element_radius()[pick])
    return m, ref, tiso[pick], mesh.volume[pick]


def test_specfem_tiso_kernels_are_log_derivatives_at_fixed_others(column):
    """The transcribed save_kernels formulas give ∂χ/∂ln m for m = vpv, vph, vsv, vsh, η, ρ with
    the other five fixed (ρ: velocities fixed) — the definition the chain rule builds on."""
    m, _, _, vol = column
    chi = LoveMisfit(m, vol)
    k = chi.kernels(m)
    h = 1e-6
    for name, kname in zip(MODEL_FILES, ("alphav", "alphah", "betav", "betah", "eta", "rho")):
        for p in range(0, vol.size, 9):
            up = {q: v.copy() for q, v in m.items()}
            dn = {q: v.copy() for q, v in m.items()}
            up[name][p] *= np.exp(h)
            dn[name][p] *= np.exp(-h)
            fd = chi.difference(up, dn) / (2 * h)
            assert vol[p] * k[kname][p] == pytest.approx(fd, rel=1e-7), (name, p)


def test_gradient_in_eara_parameters_matches_finite_differences(column):
    """∂χ/∂x from SPECFEM-defined kernels (kernels_to_gradient) equals central finite differences
    of χ(m(x)) through update_model, for every inverted parameter, with density scaled by
    δlnρ = 0.33 δlnVs: relative error < 1e-6 (float64)."""
    m, ref, tiso, vol = column
    assert np.ptp(derived(m)["q"][tiso]) > 0.01                   # κ_h ≠ κ_v exercised
    chi = LoveMisfit(m, vol)
    g = kernels_to_gradient(chi.kernels(m), m, ref, tiso, PARAMS["density_scaling"])
    h = 1e-6
    checked = 0
    for name in INVERTED:
        on = tiso if name in TISO else ~tiso
        assert np.all(g[name][~on] == 0.0)
        for p in np.nonzero(on)[0][::3]:
            dx = {n: np.zeros(vol.size) for n in INVERTED}
            dx[name][p] = h
            plus = update_model(m, dx, ref, tiso, PARAMS["density_scaling"])
            dx[name][p] = -h
            minus = update_model(m, dx, ref, tiso, PARAMS["density_scaling"])
            fd = chi.difference(plus, minus) / (2 * h)
            assert vol[p] * g[name][p] == pytest.approx(fd, rel=1e-6), (name, p)
            checked += 1
    assert checked >= 40


def test_specfem_bulk_kernel_files_and_the_exact_chain_rule(mesh, model, kernels):
    """save_kernels' bulk_c/bulk_betav/bulk_betah files are reproduced from the primary kernel files
    (float32 precision), and our vc gradient equals SPECFEM's bulk_c where κ_h = κ_v, and differs
    by (q vc²/vph² − vc²/(vc² + 4/3 vsh²)) K_αh where not (PREM's anisotropic layer)."""
    bulk = bulk_kernels(kernels, model)
    for name in ("bulk_c", "bulk_betav", "bulk_betah"):
        scale = np.abs(kernels[name]).max()
        assert np.abs(bulk[name] - kernels[name]).max() < 2e-6 * scale, name
    g = kernels_to_gradient(kernels, model, mesh, PARAMS)
    ref, tiso, d = mesh_reference(mesh), mesh_tiso(mesh, PARAMS), derived(model)
    k_vc = g["vc"] * d["vc"] / ref["vc"]
    q1 = tiso & (np.abs(d["q"] - 1) < 1e-6)
    assert q1.sum() > 100000
    scale = np.abs(kernels["bulk_c"]).max()
    assert np.abs(k_vc[q1] - kernels["bulk_c"][q1]).max() < 2e-6 * scale
    qa = tiso & (np.abs(d["q"] - 1) > 1e-3)
    expect = kernels["bulk_c"] + (d["q"] * d["vc"] ** 2 / model["vph"] ** 2 - d["vc"] ** 2 / (
        d["vc"] ** 2 + 4 / 3 * model["vsh"] ** 2)) * kernels["alphah"]
    assert np.abs(k_vc[qa] - expect[qa]).max() < 2e-6 * scale
    assert np.abs(k_vc[qa] - kernels["bulk_c"][qa]).max() > 1e-3 * scale
    assert all(np.all(np.isfinite(v)) for v in g.values())


def test_perturbations_round_trip_and_updates_compose(mesh, model):
    x = model_to_perturbation(model, mesh, PARAMS)
    tiso = mesh_tiso(mesh, PARAMS)
    assert all(np.all(x[k][~tiso] == 0) for k in TISO) and all(np.all(x[k][tiso] == 0) for k in ("vp", "vs"))
    back = perturbation_to_model(x, mesh, PARAMS, base=model)
    for k in MODEL_FILES:
        assert np.allclose(back[k], model[k], rtol=1e-12, atol=0), k
    ref_model = perturbation_to_model({k: np.zeros(mesh.npoint) for k in INVERTED}, mesh, PARAMS)
    assert np.allclose(ref_model["vsv"], mesh_reference(mesh)["vsv"], rtol=1e-14)
    rng = np.random.default_rng(5)
    d = {k: rng.uniform(-1, 1, mesh.npoint) for k in INVERTED}
    m1 = apply_update(model, d, 0.01, mesh, PARAMS)
    x1 = model_to_perturbation(m1, mesh, PARAMS)
    for k in INVERTED:
        on = tiso if k in TISO else ~tiso
        assert np.allclose(x1[k][on], x[k][on] + 0.01 * d[k][on], rtol=0, atol=1e-12), k
    m2 = apply_update(m1, d, 0.02, mesh, PARAMS)
    m3 = apply_update(model, d, 0.03, mesh, PARAMS)
    for k in MODEL_FILES:
        assert np.allclose(m2[k], m3[k], rtol=1e-12), k
    # density: Δ(ρ/ρ_ref) = 0.33 Δ(Vs/Vs_ref) with Voigt Vs; bulk modulus ratio κ_h/κ_v kept
    ref = mesh_reference(mesh)
    dvs = (derived(m1)["vs"] - derived(model)["vs"]) / ref["vs"]
    assert np.allclose((m1["rho"] - model["rho"]) / ref["rho"], 0.33 * dvs, atol=1e-14)
    assert np.allclose(derived(m1)["q"][tiso], derived(model)["q"][tiso], rtol=1e-10)
    assert np.array_equal(m1["eta"][~tiso], model["eta"][~tiso])
    same = apply_update(model, d, 0.0, mesh, PARAMS)
    assert all(np.allclose(same[k], model[k], rtol=1e-14) for k in MODEL_FILES)
    # an update to x = −1 (zero shear velocity) is refused
    with pytest.raises(ValueError, match="non-positive"):
        apply_update(model, {k: np.full(mesh.npoint, -2.0) for k in INVERTED}, 1.0, mesh, PARAMS)


def test_model_written_after_update_round_trips(mesh, model, tmp_path):
    d = {k: np.full(mesh.npoint, 1.0) for k in INVERTED}
    new = apply_update(model, d, 0.01, mesh, PARAMS)
    write_model(tmp_path, split({k: new[k] for k in MODEL_FILES}, mesh.sizes))
    back = concatenate(read_model(tmp_path, MODEL_FILES))
    for k in MODEL_FILES:
        assert np.array_equal(back[k], new[k].astype(np.float32)), k
    assert sorted(os.listdir(tmp_path)) == sorted(gll_filename(0, 1, k) for k in MODEL_FILES)
