"""Kernel damping, summation, pseudo-Hessian preconditioning and smoothing (issue 5 items 2 and 7,
SPEC §6 steps 1-4) on the real SPECFEM3D_GLOBE run in ../shared/fixtures/specfem3d_globe_tiny."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erfc

from conftest import shared_fixture
from seisflows_eara import params as eara_params
from seisflows_eara.io.stations import read_stations
from seisflows_eara.kernels import (KernelSum, damp, damping_mask, gaussian_smooth,
                                    geographic_to_xyz, nonnegative_hessian, precondition,
                                    preconditioner, smooth_mesh, smooth_points, smoothed_filename,
                                    sum_kernel_folders, sum_kernels, xsmooth_sem_command)
from seisflows_eara.kernels import smoothing
from seisflows_eara.kernels.damping import DAMPING_REACH
from seisflows_eara.kernels.smoothing import TRUNCATE_FLOAT32
from seisflows_eara.measure import event_from_file
from seisflows_eara.model import Mesh, read_gll, read_kernels, read_mesh, write_gll
from seisflows_eara.model.mesh import gll_points_weights
from specfem_build import mesh_bin, needs

DEFAULTS = eara_params.defaults()
R_SRC, R_REC = DEFAULTS["source_damping_radius_km"], DEFAULTS["receiver_damping_radius_km"]


@pytest.fixture(scope="module")
def tiny() -> Path:
    return shared_fixture("specfem3d_globe_tiny")


@pytest.fixture(scope="module")
def mesh(tiny_databases):
    return read_mesh(tiny_databases)


@pytest.fixture(scope="module")
def positions(tiny):
    ev = event_from_file(str(tiny / "DATA" / "CMTSOLUTION"))
    st = read_stations(tiny / "DATA" / "STATIONS")
    src = geographic_to_xyz(ev.latitude, ev.longitude, ev.depth_km)[0]
    rec = geographic_to_xyz([s.latitude for s in st], [s.longitude for s in st],
                            [s.burial / 1000.0 for s in st])
    return src, rec


# -------------------------------------------------------------------------------------- damping
def _lagrange(x: np.ndarray, t: float) -> np.ndarray:
    return np.array([np.prod([(t - x[m]) / (x[k] - x[m]) for m in range(x.size) if m != k])
                     for k in range(x.size)])


def test_source_position_is_where_specfem_located_it(tiny, mesh, positions):
    """SPECFEM put the source in element 1996 at (ξ, η, γ) printed in output_solver.txt; GLL
    interpolation of that element's points there is our geographic_to_xyz of the CMTSOLUTION
    centroid (geocentric latitude, R = 6371 km) to float32 precision of the mesh coordinates."""
    log = (tiny / "OUTPUT_FILES" / "output_solver.txt").read_text()
    ispec = int(re.search(r"source located in slice\s+0\s+in element\s+(\d+)", log).group(1)) - 1
    xi, eta, gamma = (float(re.search(rf"{c} coordinate of source in that element:\s+(\S+)",
                                      log).group(1)) for c in ("xi", "eta", "gamma"))
    nodes, _ = gll_points_weights(5)
    li, lj, lk = (_lagrange(nodes, t) for t in (xi, eta, gamma))
    pts = mesh.xyz_glob[mesh.ibool[ispec]]                      # [k, j, i, xyz]
    located = np.einsum("k,j,i,kjic->c", lk, lj, li, pts)
    src, _ = positions
    assert np.linalg.norm(located - src) < 0.01                 # km
    ev = event_from_file(str(tiny / "DATA" / "CMTSOLUTION"))
    naive = geographic_to_xyz(ev.latitude, ev.longitude, ev.depth_km, geocentric=False)[0]
    assert np.linalg.norm(naive - src) > 15.0                   # the conversion matters at 10 km


def test_damping_on_the_real_mesh(mesh, positions):
    src, rec = positions
    xyz = mesh.xyz
    centres = np.vstack([src, rec])
    w = damping_mask(np.vstack([xyz, centres]), src, rec, R_SRC, R_REC)
    assert np.all(w[-7:] == 0.0)                                # exactly 0 at source and receivers
    w = w[:-7]
    # brute force over every point and centre
    radii = np.array([R_SRC] + [R_REC] * len(rec))
    d = np.linalg.norm(xyz[:, None, :] - centres[None], axis=2)
    exact = np.prod(1.0 - np.exp(-(d / radii) ** 2), axis=1)
    assert np.abs(w - exact).max() < 2 * np.finfo(np.float32).eps
    near = d[:, 0] < R_SRC
    assert near.sum() > 50 and w[near].max() < 1 - np.exp(-1)    # ~0 near the source
    far = np.all(d > 3 * radii, axis=1)
    assert w[far].min() > 1 - 7 * np.exp(-9) and far.mean() > 0.99  # ~1 beyond 3 radii
    i0 = np.argmin(d[:, 0])
    assert w[i0] == pytest.approx(1 - np.exp(-(d[i0, 0] / R_SRC) ** 2), rel=1e-12)
    assert DAMPING_REACH == pytest.approx(np.sqrt(-np.log(np.finfo(np.float32).eps)))
    k = damp({"betav": np.ones(mesh.npoint)}, w)
    assert np.array_equal(k["betav"], w)
    with pytest.raises(ValueError, match="finite"):
        damping_mask(xyz[:10], np.array([np.nan, 0, 0]), rec, R_SRC, R_REC)


# ------------------------------------------------------------------------------- preconditioner
def test_preconditioner_thresholds_are_exact():
    h = np.array([-231.0, -1.0, 0.0, 0.1, 0.231, 70.0])
    assert preconditioner(h, 1e-3, "abs") == pytest.approx(
        [1.0, 231.0, 1000.0, 1000.0, 1000.0, 231.0 / 70.0], rel=1e-15)
    assert preconditioner(h, 1e-3, "clip") == pytest.approx(
        [1000.0, 1000.0, 1000.0, 700.0, 70.0 / 0.231, 1.0], rel=1e-15)
    assert preconditioner(h, 0.25, "abs") == pytest.approx([1, 4, 4, 4, 4, 231 / 70], rel=1e-15)
    with pytest.raises(ValueError, match="Hessian"):
        preconditioner(np.zeros(3), 1e-3)
    with pytest.raises(ValueError, match="hessian_rule"):
        preconditioner(h, 1e-3, "square")
    with pytest.raises(ValueError, match="threshold"):
        preconditioner(h, 0.0)
    assert precondition({"vsv": np.ones(6)}, preconditioner(h, 1e-3))["vsv"][2] == 1000.0


def _specfem_invert_hess(hess: np.ndarray, threshold: float) -> np.ndarray:
    """sum_preconditioned_kernels.f90's invert_hess, transcribed (float32, as SPECFEM)."""
    h = hess.astype(np.float32)
    h = h / np.float32(np.max(np.abs(h)))
    return np.where(np.abs(h) > np.float32(threshold), np.float32(1) / h,
                    np.float32(1) / np.float32(threshold))


def test_real_hessian_sum_and_preconditioner_as_specfem(tiny):
    """Two events (the fixture's kernels and a copy with the Hessian negated and scaled): Σ_e |H_e|
    and P, as xsum_preconditioned_kernels computes them (USE_HESS_SUM, abs per event)."""
    h = np.asarray(read_gll(tiny / "KERNELS" / "proc000000_reg1_hess_kernel.bin"), float)
    k = np.asarray(read_gll(tiny / "KERNELS" / "proc000000_reg1_betav_kernel.bin"), float)
    assert h.min() < 0 < h.max()                                  # as the fixture README says
    total = sum_kernels(iter([("a", {"betav": k, "hess": h}), ("b", {"betav": k, "hess": -0.5 * h})]),
                        hessian_rule="abs")
    assert np.allclose(total.fields["hess"], 1.5 * np.abs(h), rtol=1e-15)
    p = preconditioner(total.fields["hess"], DEFAULTS["hessian_threshold"], DEFAULTS["hessian_rule"])
    ref = _specfem_invert_hess(np.abs(h) + np.abs(0.5 * h), DEFAULTS["hessian_threshold"])
    assert np.abs(p - ref).max() / ref.max() < 1e-6
    low = np.abs(h) / np.abs(h).max() <= DEFAULTS["hessian_threshold"]
    assert low.sum() > 1000 and np.all(p[low] == 1.0 / DEFAULTS["hessian_threshold"])
    assert p.min() == 1.0 and p[np.argmax(np.abs(h))] == 1.0
    assert np.array_equal(nonnegative_hessian(h, "clip"), np.maximum(h, 0))


# ---------------------------------------------------------------------------------- summation
def test_summation_two_copies_is_twice_and_streams(tiny, tmp_path):
    names = ["betav", "bulk_c", "hess"]
    a, b = tmp_path / "ev_a", tmp_path / "ev_b"
    for d in (a, b):
        d.mkdir()
        for n in names:
            (d / f"proc000000_reg1_{n}_kernel.bin").symlink_to(tiny / "KERNELS" / f"proc000000_reg1_{n}_kernel.bin")
    one = read_kernels(tiny / "KERNELS", names)
    s = sum_kernel_folders({"a": a, "b": b}, names)
    for n in names:
        assert np.array_equal(s.fields[n], 2.0 * np.asarray(one[n][0], float)), n
    w = sum_kernel_folders({"a": a, "b": b}, names, weights={"a": 0.25, "b": 0.5}, hessian_rule="abs")
    assert np.array_equal(w.fields["betav"], 0.75 * np.asarray(one["betav"][0], float))
    assert np.array_equal(w.fields["hess"], 2.0 * np.abs(np.asarray(one["hess"][0], float)))
    # one event in memory at a time: the generator is consumed lazily
    seen = []

    def events():
        for e in ("a", "b", "c"):
            seen.append(e)
            yield e, {"betav": np.ones(4)}
            assert len(seen) == {"a": 1, "b": 2, "c": 3}[e]
    assert np.array_equal(sum_kernels(events()).fields["betav"], np.full(4, 3.0))
    total = KernelSum()
    total.add("x", {"betav": np.ones(4)})
    with pytest.raises(ValueError, match="twice"):
        total.add("x", {"betav": np.ones(4)})
    with pytest.raises(ValueError, match="event y: kernel betav"):
        total.add("y", {"betav": np.ones(5)})
    with pytest.raises(ValueError, match="event z"):
        total.add("z", {"betah": np.ones(4)})
    with pytest.raises(ValueError, match="no event"):
        sum_kernels(iter([]))


# ---------------------------------------------------------------------------------- smoothing
def test_xsmooth_sem_command_matches_its_usage():
    assert xsmooth_sem_command(50, 25, "betav_kernel", "in/", "out/") == \
        ["xsmooth_sem", "50", "25", "betav_kernel", "in/", "out/"]
    assert xsmooth_sem_command(12.5, 10.0, "bulk_c_kernel", Path("a"), "b", binary="bin/xsmooth_sem",
                               launcher=["mpirun", "-np", "4"]) == \
        ["mpirun", "-np", "4", "bin/xsmooth_sem", "12.5", "10", "bulk_c_kernel", "a", "b"]
    assert smoothed_filename(3, "betav_kernel") == "proc000003_reg1_betav_kernel_smooth.bin"
    with pytest.raises(ValueError, match="positive"):
        xsmooth_sem_command(0, 10, "betav_kernel", "a", "b")


def _interior_point(mesh, depth_km: float) -> np.ndarray:
    """The global point nearest the chunk's central axis at `depth_km`."""
    axis = mesh.xyz_glob.mean(axis=0)
    target = axis / np.linalg.norm(axis) * (6371.0 - depth_km)
    return int(np.argmin(np.linalg.norm(mesh.xyz_glob - target, axis=1)))


def test_smoothing_operator_is_specfems_sum_over_local_points(mesh, tiny):
    """The exact reductions (local points merged per position) give SPECFEM's sum over all local
    GLL points, w = exp(−(r1 θ)²/2σh² − (r1 − r0)²/2σv²), computed here by brute force."""
    k = np.asarray(read_gll(tiny / "KERNELS" / "proc000000_reg1_betav_kernel.bin"), float)
    sh, sv = 50.0, 25.0
    xyz, vol = mesh.xyz, mesh.volume
    targets = mesh.point_index[np.arange(3, mesh.npoint, 91013)]
    r0 = np.linalg.norm(mesh.xyz_glob[targets], axis=1)
    r1 = np.linalg.norm(xyz, axis=1)
    brute = []
    for t, rt in zip(mesh.xyz_glob[targets], r0):
        theta = np.arccos(np.clip(xyz @ t / (r1 * rt), -1, 1))
        w = np.exp(-(r1 * theta) ** 2 / (2 * sh ** 2) - (r1 - rt) ** 2 / (2 * sv ** 2)) * vol
        brute.append(np.sum(w * k) / np.sum(w))
    got = smooth_points({"k": np.bincount(mesh.point_index, weights=k * vol) /
                         np.bincount(mesh.point_index, weights=vol)}, mesh.xyz_glob,
                        np.bincount(mesh.point_index, weights=vol), sh, sv,
                        targets=mesh.xyz_glob[targets], truncate=TRUNCATE_FLOAT32)["k"]
    scale = np.abs(k).max()
    assert np.abs(got - np.array(brute)).max() < 1e-6 * scale


@pytest.mark.parametrize("sh, sv", [(50.0, 25.0), (10.0, 40.0)])
def test_band_search_finds_every_pair_within_the_truncation(mesh, sh, sv):
    """The radially stretched KD-tree search returns exactly the pairs with
    d_h²/σh² + d_v²/σv² ≤ t² (brute force over all points), for σh > σv and σh < σv."""
    g, t = mesh.xyz_glob, 3.0
    r = np.linalg.norm(g, axis=1)
    tg = np.arange(0, mesh.nglob, 4099)
    found = set()
    for rows, i, j, q in smoothing._band_pairs(g[tg], g, r[tg], r, sh, sv, t, 64):
        found.update(zip(tg[rows[i]].tolist(), j.tolist()))
    expect = set()
    for a in tg:
        th = np.arctan2(np.linalg.norm(np.cross(g, g[a]), axis=1), g @ g[a])
        q = (r * th / sh) ** 2 + ((r - r[a]) / sv) ** 2
        expect.update((int(a), int(b)) for b in np.nonzero(q <= t ** 2 * (1 - 1e-12))[0])
    assert expect <= found and len(found - expect) <= len(expect) * 1e-4
    assert len(expect) > 1000


def test_default_truncation_is_close_to_the_full_gaussian(mesh, tiny):
    k = np.asarray(read_gll(tiny / "KERNELS" / "proc000000_reg1_betav_kernel.bin"), float)
    idx, vol = mesh.point_index, mesh.volume
    vol_g = np.bincount(idx, weights=vol)
    kg = np.bincount(idx, weights=k * vol) / vol_g
    tg = mesh.xyz_glob[np.arange(0, mesh.nglob, 997)]
    full = smooth_points({"k": kg}, mesh.xyz_glob, vol_g, 50.0, 25.0, targets=tg,
                         truncate=TRUNCATE_FLOAT32)["k"]
    cut = smooth_points({"k": kg}, mesh.xyz_glob, vol_g, 50.0, 25.0, targets=tg)["k"]
    assert 1e-4 < np.abs(cut - full).max() / np.abs(full).max() < 0.025


def test_smoothing_keeps_constants_and_spreads_a_spike_with_the_gaussian_width(mesh):
    """A constant stays constant; a spike at one interior point spreads as the Gaussian: its
    volume-weighted second moments are 2σh² horizontally and σv² vertically, and the normalisation
    Σ w V equals the analytic (2π)^{3/2} σh² σv."""
    sh, sv = 50.0, 25.0
    idx = mesh.point_index
    vol_g = np.bincount(idx, weights=mesh.volume, minlength=mesh.nglob)
    s = _interior_point(mesh, 400.0)
    centre = mesh.xyz_glob[s]
    near = np.nonzero(np.linalg.norm(mesh.xyz_glob - centre, axis=1) < 5 * sh)[0]
    spike = np.zeros(mesh.nglob)
    spike[s] = 1.0
    out = smooth_points({"one": np.ones(mesh.nglob), "spike": spike}, mesh.xyz_glob, vol_g, sh, sv,
                        targets=mesh.xyz_glob[near], truncate=TRUNCATE_FLOAT32)
    assert np.allclose(out["one"], 1.0, rtol=1e-13)
    norm = smooth_points({"one": np.ones(mesh.nglob)}, mesh.xyz_glob, vol_g, sh, sv,
                         targets=mesh.xyz_glob[near], truncate=TRUNCATE_FLOAT32,
                         normalise=False)["one"]                                 # Σ_j w V_j
    inner = np.linalg.norm(mesh.xyz_glob[near] - centre, axis=1) < sh
    analytic = (2 * np.pi) ** 1.5 * sh ** 2 * sv
    assert np.abs(norm[inner] / analytic - 1).max() < 0.01
    p = mesh.xyz_glob[near]
    r0, rs = np.linalg.norm(p, axis=1), np.linalg.norm(centre)
    dh = rs * np.arctan2(np.linalg.norm(np.cross(p, centre), axis=1), p @ centre)
    dv = r0 - rs
    wv = out["spike"] * vol_g[near]
    assert np.sum(wv * dh ** 2) / np.sum(wv) == pytest.approx(2 * sh ** 2, rel=0.03)
    assert np.sum(wv * dv ** 2) / np.sum(wv) == pytest.approx(sv ** 2, rel=0.03)


def test_gaussian_smooth_on_local_points_equals_smooth_mesh(mesh, tiny):
    sel = np.arange(200 * 125)                                     # 200 elements, their local points
    k = np.asarray(read_gll(tiny / "KERNELS" / "proc000000_reg1_betav_kernel.bin"), float)
    a = gaussian_smooth({"k": k[sel]}, mesh.xyz[sel], mesh.volume[sel], None, 25.0, 10.0)["k"]
    sub = Mesh(
        nspec=200, nglob=mesh.nglob, ibool=mesh.ibool[:200], xyz_glob=mesh.xyz_glob,
        jacobian=mesh.jacobian[sel], gll_weights=mesh.gll_weights[sel],
        element_is_tiso=mesh.element_is_tiso[:200], idoubling=mesh.idoubling[:200], sizes=[sel.size])
    b = smooth_mesh({"k": k[sel]}, sub, 25.0, 10.0)["k"]
    assert np.allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(k).max())
    with pytest.raises(ValueError, match="field k"):
        gaussian_smooth({"k": k[:10]}, mesh.xyz[sel], mesh.volume[sel], None, 25.0, 10.0)


# ------------------------------------------------------------------- against SPECFEM's programs
def specfem(*binaries: str):
    """@pytest.mark.specfem for SPECFEM's programs built for the fixture's mesh (SPECFEM_BIN's
    manifest, tests/specfem_build.py); skipped with the reason when that build is not there."""
    return needs("fixture", *binaries)


def fixture_bin(name: str) -> str:
    """Path of SPECFEM's program `name` built for the fixture's mesh."""
    return str(mesh_bin("fixture") / name)


def _specfem_run_dir(tmp: Path, databases: Path) -> Path:
    """A run folder for SPECFEM's tomography tools built for the fixture's mesh: DATA/Par_file
    (the forward run's), DATABASES_MPI (LOCAL_PATH) with the decompressed solver_data.bin."""
    run = tmp / "run"
    (run / "DATA").mkdir(parents=True)
    (run / "OUTPUT_FILES").mkdir()
    shutil.copy(shared_fixture("specfem3d_globe_tiny") / "DATA" / "Par_file.forward",
                run / "DATA" / "Par_file")
    (run / "DATABASES_MPI").symlink_to(databases)
    return run


def _mpirun(args: list[str], cwd: Path, timeout: float) -> str:
    launcher = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "1"]
    p = subprocess.run(launcher + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


@specfem("xsum_preconditioned_kernels")
def test_summed_preconditioned_kernels_equal_xsum_preconditioned_kernels(tiny, tiny_databases,
                                                                          tmp_path):
    """xsum_preconditioned_kernels (TISO: bulk_c, bulk_betav, bulk_betah, eta; Σ_e|H_e|, THRESHOLD_HESS
    = 1e-3 compiled in) on two events vs KernelSum + preconditioner at hessian_threshold: equal to
    float32 precision (measured ≤ 1e-7 of max|P Σ K|). The events differ in where their kernels and
    Hessians are (event 2: the fixture's kernels × 0.7 shifted by 1811 elements, its Hessian × −0.5
    shifted by 617), so Σ|H| ≠ |Σ H| and 52 % / 79 % / 97 % of the points have Σ|H|/max below 1e-4 /
    1e-3 / 1e-2: a threshold of 1e-2 or 1e-4, a signed Hessian sum or a clipped one each change P Σ K
    by more than 0.1 of its maximum (asserted below), so the comparison sees them."""
    run = _specfem_run_dir(tmp_path, tiny_databases)
    names = ["bulk_c", "bulk_betav", "bulk_betah", "eta", "hess"]
    real = {n: np.asarray(read_gll(tiny / "KERNELS" / f"proc000000_reg1_{n}_kernel.bin"), float)
            for n in names}
    given = {"ev1": real,
             "ev2": {n: (-0.5 * np.roll(v, 125 * 617) if n == "hess" else 0.7 * np.roll(v, 125 * 1811))
                     for n, v in real.items()}}
    events = {}
    for e, fields in given.items():
        d = run / "INPUT_KERNELS" / e
        d.mkdir(parents=True)
        for n, v in fields.items():
            write_gll(d / f"proc000000_reg1_{n}_kernel.bin", v)
        events[e] = {n: np.asarray(read_gll(d / f"proc000000_reg1_{n}_kernel.bin"), float)
                     for n in names}                             # the float32 values SPECFEM reads
    (run / "kernels_list.txt").write_text("ev1\nev2\n")
    (run / "OUTPUT_SUM").mkdir()
    _mpirun([fixture_bin("xsum_preconditioned_kernels")], run, 600)
    theirs = {n: np.asarray(read_gll(run / "OUTPUT_SUM" / f"proc000000_reg1_{n}_kernel.bin"), float)
              for n in names[:-1]}

    def rel(threshold: float, rule: str = DEFAULTS["hessian_rule"]) -> dict[str, float]:
        total = sum_kernels(iter(events.items()), hessian_rule=rule)
        p = preconditioner(total.fields["hess"], threshold, "abs")
        return {n: float(np.abs(p * total.fields[n] - theirs[n]).max() / np.abs(theirs[n]).max())
                for n in names[:-1]}

    ours = rel(DEFAULTS["hessian_threshold"])
    print(f"\n[xsum_preconditioned_kernels] ours (threshold {DEFAULTS['hessian_threshold']:g}) vs "
          f"SPECFEM, max rel: " + ", ".join(f"{n} {v:.1e}" for n, v in ours.items()))
    assert DEFAULTS["hessian_threshold"] == 1e-3 and DEFAULTS["hessian_rule"] == "abs"  # SPECFEM's
    assert max(ours.values()) < 1e-6, ours
    # the case sees the threshold and the per-event |H|: other choices are far off SPECFEM's result
    total = sum_kernels(iter(events.items()))                     # Σ H, no |.| per event
    p = preconditioner(np.abs(total.fields["hess"]), DEFAULTS["hessian_threshold"], "abs")
    wrong = {"threshold 1e-2": rel(1e-2), "threshold 1e-4": rel(1e-4),
             "clipped H": rel(DEFAULTS["hessian_threshold"], "clip"),
             "signed sum of H": {n: float(np.abs(p * total.fields[n] - theirs[n]).max()
                                          / np.abs(theirs[n]).max()) for n in names[:-1]}}
    for label, r in wrong.items():
        print(f"  {label}: min over kernels {min(r.values()):.2g}, max {max(r.values()):.2g}")
        assert min(r.values()) > 0.1, (label, r)


def _specfem_smooth_at(mesh, k: np.ndarray, p: int, sh: float, sv: float) -> float:
    """smooth_sem.F90 + smoothing_weights_vec at local point p, in float32 as SPECFEM computes it
    (non-dimensional coordinates, θ = acos of the float32 cosine, exp(val) cut below −86).
    Evaluated as gfortran does, independent of the CPU: the products and sums of the cosine one by
    one, left to right (not BLAS, whose float32 dot product may fuse or reorder), and acos / exp
    rounded from float64 like libm's correctly rounded acosf / expf (numpy's float32 SIMD acos
    differs by ulps on AVX-512 machines, which near θ = 0 moves θ by 1e-4 rad)."""
    x = (mesh.xyz / 6371.0).astype(np.float32)
    vol = (mesh.volume / 6371.0 ** 3).astype(np.float32)
    one = np.float32(1)
    sh2_inv = one / np.float32(2 * (sh / 6371.0) ** 2)
    sv2_inv = one / np.float32(2 * (sv / 6371.0) ** 2)
    x0, y0, z0 = x[p]
    x1, y1, z1 = x[:, 0], x[:, 1], x[:, 2]
    r0 = np.sqrt(x0 * x0 + y0 * y0 + z0 * z0)
    r1 = np.sqrt(x1 * x1 + y1 * y1 + z1 * z1)
    ratio = np.clip((x0 * x1 + y0 * y1 + z0 * z1) / (r0 * r1), -one, one)
    theta = np.arccos(ratio.astype(np.float64)).astype(np.float32)
    val = -((r1 * theta) * (r1 * theta)) * sh2_inv - ((r1 - r0) * (r1 - r0)) * sv2_inv
    w = np.where(val < -86, np.float32(0), np.exp(val.astype(np.float64)).astype(np.float32)) * vol
    return float(np.sum(w * k.astype(np.float32))) / float(np.sum(w))


@specfem("xsmooth_sem")
@pytest.mark.slow
def test_python_smoothing_equals_xsmooth_sem(tiny, tiny_databases, mesh, tmp_path):
    """xsmooth_sem 50 25 on the real betav kernel (≈ 16 min on one core) vs smooth_mesh (≈ 9 min)
    with SPECFEM's float32 truncation: max difference 2.7e-4 of max|K̃|, all of it SPECFEM's float32
    arithmetic (θ = acos of a float32 cosine is off by up to 3e-4 rad near θ = 0): a float32
    transcription of smooth_sem reproduces SPECFEM's values at the worst points to 1e-5, and a
    float64 brute force over all 920000 local points reproduces ours there — to 1e-12 of max|K̃| with
    the same truncation (q ≤ TRUNCATE_FLOAT32²), and within the truncated tail of the 3-D Gaussian,
    P(χ₃ > TRUNCATE_FLOAT32) ≈ 5e-7 (relative to max|K|, twice for numerator and normaliser),
    without it (measured ≤ 3e-10)."""
    run = _specfem_run_dir(tmp_path, tiny_databases)
    (run / "IN").mkdir()
    (run / "OUT").mkdir()
    shutil.copy(tiny / "KERNELS" / "proc000000_reg1_betav_kernel.bin", run / "IN")
    _mpirun(xsmooth_sem_command(50, 25, "betav_kernel", "IN/", "OUT/",
                                binary=fixture_bin("xsmooth_sem")), run, 7200)
    theirs = np.asarray(read_gll(run / "OUT" / smoothed_filename(0, "betav_kernel")), float)
    k = np.asarray(read_gll(run / "IN" / "proc000000_reg1_betav_kernel.bin"), float)
    ours = smooth_mesh({"k": k}, mesh, 50.0, 25.0, truncate=TRUNCATE_FLOAT32)["k"]
    diff, scale = np.abs(ours - theirs), np.abs(theirs).max()
    print(f"\n[xsmooth_sem 50 25] ours vs SPECFEM: max {diff.max() / scale:.2e}, 99 % of points "
          f"< {np.percentile(diff, 99) / scale:.2e} of max|K~|")
    assert diff.max() < 1e-3 * scale and np.percentile(diff, 99) < 1e-4 * scale
    t = TRUNCATE_FLOAT32
    tail = float(np.sqrt(2 / np.pi) * t * np.exp(-t * t / 2) + erfc(t / np.sqrt(2)))  # P(χ₃ > t)
    kmax = np.abs(k).max()
    for p in np.argsort(-diff)[:3]:
        assert _specfem_smooth_at(mesh, k, p, 50.0, 25.0) == pytest.approx(theirs[p], rel=1e-5)
        x, r = mesh.xyz, mesh.radius_km
        th = np.arctan2(np.linalg.norm(np.cross(x, x[p]), axis=1), x @ x[p])
        q = (r * th / 50.0) ** 2 + ((r - r[p]) / 25.0) ** 2
        w = np.exp(-q / 2) * mesh.volume
        cut = np.where(q <= t * t, w, 0.0)
        assert abs(np.sum(cut * k) / np.sum(cut) - ours[p]) < 1e-12 * kmax
        assert abs(np.sum(w * k) / np.sum(w) - ours[p]) < 2 * tail * kmax


@specfem("xcombine_sem")
def test_kernel_sum_equals_xcombine_sem(tiny, tiny_databases, tmp_path):
    """xcombine_sem betav_kernel,hess_kernel over two event folders vs sum_kernel_folders: equal to
    float32 rounding (SPECFEM sums in float32)."""
    run = _specfem_run_dir(tmp_path, tiny_databases)
    folders = {}
    for e, scale in (("ev1", 1.0), ("ev2", 0.3)):
        folders[e] = run / e
        folders[e].mkdir()
        for n in ("betav", "hess"):
            v = np.asarray(read_gll(tiny / "KERNELS" / f"proc000000_reg1_{n}_kernel.bin"), float)
            write_gll(folders[e] / f"proc000000_reg1_{n}_kernel.bin", scale * v)
    (run / "kernel_paths.txt").write_text("".join(f"{f}\n" for f in folders.values()))
    (run / "SUM").mkdir()
    _mpirun([fixture_bin("xcombine_sem"), "betav_kernel,hess_kernel", "kernel_paths.txt",
             "SUM"], run, 600)
    ours = sum_kernel_folders(folders, ["betav", "hess"])
    for n in ("betav", "hess"):
        theirs = np.asarray(read_gll(run / "SUM" / f"proc000000_reg1_{n}_kernel.bin"), float)
        ulp = np.spacing(np.abs(theirs).astype(np.float32)).astype(float)
        print(f"\n[xcombine_sem] {n}: ours vs SPECFEM max rel "
              f"{np.abs(ours.fields[n] - theirs).max() / np.abs(theirs).max():.1e}, max "
              f"{(np.abs(ours.fields[n] - theirs) / ulp).max():.2f} float32 ulp")
        assert np.all(np.abs(ours.fields[n] - theirs) <= ulp), n
