"""Our PR-CG direction (seisflows_eara.optimize.structure.direction / pcg.pr_direction) against
SPECFEM3D_GLOBE's own `xadd_model_tiso_cg` (src/tomography/add_model_tiso_cg.f90 +
get_cg_direction.f90, v7.0.x) on the real kernels of ../shared/fixtures/specfem3d_globe_tiny
(issue 9 item 4).

What xadd_model_tiso_cg does (this build: USE_SEPARATE_CG_STEPLENGTHS = .false.,
USE_DEPTH_RANGE_MAXIMUM = .true. with R_TOP/R_BOTTOM = 50/100 km depth, see constants_tomography.h):
  reads INPUT_MODEL/ (vpv..rho), INPUT_GRADIENT/*_kernel_smooth.bin (g: bulk_c, bulk_betav, bulk_betah,
  eta), KERNEL_OLD_DIR = KERNELS/OUTPUT_SUM.old/ (g_old, same names, and the old raw directions
  dbulk_c, dbetav, dbetah, deta), topo/ (solver_data.bin: ibool, coordinates, ispec_is_tiso);
  β = Σ_p Σ (g − g_old)·g / Σ_p Σ g_old·g_old   (plain sums over the local GLL points, float32),
  clipped at 0; prints the Powell ratios g·g_old/g_old·g_old (warns when all > 0.2, no restart);
  d = −g + β d_old, written (unscaled) to INPUT_GRADIENT/dbulk_c.. ; then the update
  step_fac·d / max|d_betav, d_betah| over 50 < depth < 100 km, applied as ln(v_new/v_old) to
  vsv, vsh (TISO elements; dbetav + dbetah in isotropic ones), eta, vpv/vph (bulk) and rho
  (scaled). The tests compare β, the Powell ratios, the raw direction and the update of vsv, vsh,
  eta and vpv (bulk); ρ's scaling is a model-update rule, not part of the direction.

Ours is fed the same two gradients with P = I (pg = g) and the same previous direction, keyed by
SPECFEM's parameter names; our inner products are plain sums over the same local points (no volume
weights), so the mathematics is the same except for the documented, tested differences:
  * SPECFEM sums in float32, sequentially: its β is off the exact one by 1.6e-4 (relative) on these
    kernels; a float32 sequential transcription reproduces every number it prints;
  * β < 0: SPECFEM clips to 0 (PR+), ours keeps the Polak-Ribière β (SPEC §6 restarts only on Powell
    and on loss of descent);
  * Powell: SPECFEM only prints a warning; ours restarts (β = 0) when R > threshold for every
    parameter; with the threshold at ∞ ours equals SPECFEM;
  * normalization: ours max|d| = 1 over all parameters and points, SPECFEM's step_fac over the
    maximum of |d_betav|, |d_betah| between 50 and 100 km depth;
  * this SPECFEM version stops when the old directions are missing (read_kernels_cg.f90 reduces
    the missing-file flag over the processes and exits, so the −g − β g_old branch of
    get_cg_direction.f90 is unreachable): the previous direction is always supplied.
"""
from __future__ import annotations

import lzma
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_fixture
from seisflows_eara.model import R_EARTH_KM, read_gll, read_mesh, write_gll
from seisflows_eara.optimize.structure import Gradient, direction
from test_kernels import _mpirun, _specfem_run_dir, fixture_bin, specfem

CG = ("bulk_c", "bulk_betav", "bulk_betah", "eta")                      # SPECFEM's names = our keys
DIRECTION_FILE = {"bulk_c": "dbulk_c", "bulk_betav": "dbetav", "bulk_betah": "dbetah",
                  "eta": "deta"}                         # old/new raw directions (write_gradient)
PRINTED = {"bulk": "bulk_c", "betav": "bulk_betav", "betah": "bulk_betah", "eta": "eta"}
MODEL = ("vpv", "vph", "vsv", "vsh", "eta", "rho")
STEP_FAC = 0.03
POWELL = 0.2                                                             # SPEC §6 / powell_threshold
POWELL_TITLE = "Powell ratio: (> 0.2 then restart with steepest descent)"


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def tiny() -> Path:
    return shared_fixture("specfem3d_globe_tiny")


@pytest.fixture(scope="module")
def kernels(tiny) -> dict[str, np.ndarray]:
    names = ("bulk_c", "bulk_betav", "bulk_betah", "eta", "rho", "hess", "alphav", "alphah",
             "betav", "betah")
    return {n: np.asarray(read_gll(tiny / "KERNELS" / f"proc000000_reg1_{n}_kernel.bin"), float)
            for n in names}


@pytest.fixture(scope="module")
def depth_band(tiny_databases) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points strictly inside SPECFEM's 50-100 km depth range, its float32 radius test;
    float32 non-dimensional radius of every local point; ispec_is_tiso per point)."""
    mesh = read_mesh(tiny_databases)
    x, y, z = (np.asarray(c / R_EARTH_KM, np.float32) for c in mesh.xyz.T)   # the file's float32
    r = np.sqrt(x * x + y * y + z * z)                                       # as Fortran, float32
    top = np.float32((6371.0 - 50.0) / R_EARTH_KM)                           # R_TOP
    bottom = np.float32((6371.0 - 100.0) / R_EARTH_KM)                       # R_BOTTOM
    return (r < top) & (r > bottom), r, mesh.ispec_is_tiso


@dataclass
class TomoRun:
    stdout: str
    printed: dict[str, dict[str, float]]   # block title -> our key -> value
    g: dict[str, np.ndarray]               # the inputs as SPECFEM read them (float32 -> float64)
    g_old: dict[str, np.ndarray]
    d_old: dict[str, np.ndarray]
    d: dict[str, np.ndarray]               # SPECFEM's raw direction (INPUT_GRADIENT/dbulk_c, ...)
    old: dict[str, np.ndarray]             # INPUT_MODEL
    new: dict[str, np.ndarray]             # OUTPUT_MODEL/*_new.bin
    kernel_max: float                      # "maximum kernel value" (depth range)
    depth_of_max: float
    step_length: float

    @property
    def beta(self) -> float:
        b = self.printed["alpha gradient:"]
        assert len(set(b.values())) == 1                    # one steplength for all parameters
        return b["bulk_c"]

    def ours(self, powell_threshold: float = POWELL):
        """Our direction from the same g, g_old and d_old, P = I."""
        return direction(Gradient(self.g, self.g, 1.0), (self.g_old, self.g_old, self.d_old),
                         powell_threshold)


def _blocks(text: str) -> dict[str, dict[str, float]]:
    """Every printed block of four '  bulk : value' lines, by its title line (stripped)."""
    out = {}
    line = r"[ \t]+(?:bulk|betav|betah|eta)[ \t]*:[ \t]*\S+[ \t]*\n"
    for m in re.finditer(rf"^ ([^\n]*)\n((?:{line}){{4}})", text, re.M):
        out[m.group(1).strip()] = {PRINTED[k]: float(v) for k, v in
                                   re.findall(r"(bulk|betav|betah|eta)\s*:\s*(\S+)", m.group(2))}
    return out


def _number(text: str, label: str) -> float:
    return float(re.search(re.escape(label) + r"\s*:\s*(\S+)", text).group(1))


def _tomo_dir(tiny: Path, databases: Path, tmp: Path) -> Path:
    run = _specfem_run_dir(tmp, databases)
    for d in ("INPUT_MODEL", "INPUT_GRADIENT", "KERNELS/OUTPUT_SUM.old", "OUTPUT_MODEL", "topo"):
        (run / d).mkdir(parents=True)
    (run / "topo" / "proc000000_reg1_solver_data.bin").symlink_to(
        databases / "proc000000_reg1_solver_data.bin")
    for n in MODEL:
        with lzma.open(tiny / "MODEL_GLL" / f"proc000000_reg1_{n}.bin.xz") as f, \
                open(run / "INPUT_MODEL" / f"proc000000_reg1_{n}.bin", "wb") as out:
            shutil.copyfileobj(f, out)
    return run


def _xadd_model_tiso_cg() -> list[str]:
    return [fixture_bin("xadd_model_tiso_cg"), str(STEP_FAC)]


def _write_inputs(run: Path, g_old: dict, g: dict, d_old: dict | None) -> None:
    for p in CG:
        write_gll(run / "KERNELS" / "OUTPUT_SUM.old" / f"proc000000_reg1_{p}_kernel_smooth.bin",
                  g_old[p])
        write_gll(run / "INPUT_GRADIENT" / f"proc000000_reg1_{p}_kernel_smooth.bin", g[p])
        if d_old is not None:
            name = f"proc000000_reg1_{DIRECTION_FILE[p]}.bin"
            write_gll(run / "KERNELS" / "OUTPUT_SUM.old" / name, d_old[p])


def _run(tiny: Path, databases: Path, tmp: Path, g_old: dict, g: dict, d_old: dict) -> TomoRun:
    run = _tomo_dir(tiny, databases, tmp)
    old_dir, grad_dir = run / "KERNELS" / "OUTPUT_SUM.old", run / "INPUT_GRADIENT"
    _write_inputs(run, g_old, g, d_old)
    out = _mpirun(_xadd_model_tiso_cg(), run, 600)
    read = lambda path: np.asarray(read_gll(path), float)                     # noqa: E731
    return TomoRun(
        stdout=out, printed=_blocks(out),
        g={p: read(grad_dir / f"proc000000_reg1_{p}_kernel_smooth.bin") for p in CG},
        g_old={p: read(old_dir / f"proc000000_reg1_{p}_kernel_smooth.bin") for p in CG},
        d_old={p: read(old_dir / f"proc000000_reg1_{DIRECTION_FILE[p]}.bin") for p in CG},
        d={p: read(grad_dir / f"proc000000_reg1_{DIRECTION_FILE[p]}.bin") for p in CG},
        old={n: read(run / "INPUT_MODEL" / f"proc000000_reg1_{n}.bin") for n in MODEL},
        new={n: read(run / "OUTPUT_MODEL" / f"proc000000_reg1_{n}_new.bin") for n in MODEL},
        kernel_max=_number(out, "maximum kernel value"),
        depth_of_max=_number(out, "depth of maximum kernel value"),
        step_length=_number(out, "step length "))


def _f32_sum(a: np.ndarray) -> np.float32:
    """gfortran's sum() of a float32 array: sequential, in file order, float32 accumulator."""
    return np.cumsum(np.asarray(a, np.float32), dtype=np.float32)[-1]


def _specfem_f32(t: TomoRun) -> dict[str, dict[str, float]]:
    """get_cg_direction.f90's printed sums and β, transcribed in float32."""
    g32 = {p: t.g[p].astype(np.float32) for p in CG}
    g032 = {p: t.g_old[p].astype(np.float32) for p in CG}
    old = {p: _f32_sum(g032[p] * g032[p]) for p in CG}
    diff = {p: _f32_sum((g32[p] - g032[p]) * g32[p]) for p in CG}
    ratio = {p: _f32_sum(g032[p] * g32[p]) / old[p] for p in CG}
    beta = (diff["bulk_c"] + diff["bulk_betav"] + diff["bulk_betah"] + diff["eta"]) / \
        (old["bulk_c"] + old["bulk_betav"] + old["bulk_betah"] + old["eta"])
    return {"norm squared old gradient:": old, "norm squared difference gradient:": diff,
            POWELL_TITLE: ratio, "beta": {"clipped": max(beta, np.float32(0)), "unclipped": beta}}


def _exact(t: TomoRun) -> tuple[float, dict[str, float]]:
    """β (unclipped) and Powell ratios in float64."""
    num = sum(np.dot(t.g[p] - t.g_old[p], t.g[p]) for p in CG)
    den = sum(np.dot(t.g_old[p], t.g_old[p]) for p in CG)
    return num / den, {p: np.dot(t.g[p], t.g_old[p]) / np.dot(t.g_old[p], t.g_old[p]) for p in CG}


def _rel(a: dict, b: dict) -> dict[str, float]:
    """max|a − b| / max|b| per parameter."""
    return {p: float(np.abs(a[p] - b[p]).max() / np.abs(b[p]).max()) for p in b}


# ---------------------------------------------------------------------------- gradient pairs
def _swapped(k):
    """A second real gradient: the α_v kernel for bulk_c, the betah/betav kernels exchanged, the η
    kernel shifted by one element. β ≈ 1.23 > 0, Powell ratios 0.33, −0.22, −0.30, −0.008."""
    return {"bulk_c": k["alphav"], "bulk_betav": k["bulk_betah"], "bulk_betah": k["bulk_betav"],
            "eta": np.roll(k["eta"], 125)}


def _hessian_weighted(k):
    """g_old·|H|/max|H|: β ≈ −0.043 < 0, Powell ratios 0.04-0.07."""
    w = np.abs(k["hess"]) / np.abs(k["hess"]).max()
    return {p: k[p] * w for p in CG}


def _isotropic_mix(k):
    """α_v + α_h, β_v, β_h, η + ρ kernels: β ≈ 0.085 > 0, every Powell ratio > 0.2."""
    return {"bulk_c": k["alphav"] + k["alphah"], "bulk_betav": k["betav"],
            "bulk_betah": k["betah"],
            "eta": k["eta"] + 0.5 * k["rho"] * k["eta"].std() / k["rho"].std()}


def _g_old(k):
    return {p: k[p] for p in CG}


# ------------------------------------------------------------------------------------- tests
@specfem("xadd_model_tiso_cg")
@pytest.mark.parametrize("previous", ["minus_old_gradient", "earlier_cg_direction"])
def test_pr_cg_direction_equals_xadd_model_tiso_cg(tiny, tiny_databases, kernels, depth_band,
                                                   tmp_path, previous):
    """β, Powell ratios, raw direction and normalized update, ours vs xadd_model_tiso_cg, for
    d_old = −g_old (the brief's setting) and for a genuinely different previous direction
    d_old = −g_old + 0.5·(−g_iso) (USE_OLD_GRADIENT, −g + β d_old).

    Measured (both cases): SPECFEM's printed sums, Powell ratios and β = a float32 sequential
    transcription to 1e-6; β ours (float64) vs printed 1.6e-4 relative, Powell ratios up to 4e-4 —
    all of it SPECFEM's float32 summation over 920000 points; raw direction ours vs SPECFEM ≤ 2.1e-4
    of max|d| per parameter (the β difference × d_old), ≤ 7e-8 once our direction is evaluated with
    SPECFEM's β; normalized update ln(v_new/v_old)/step_fac vs ours (rescaled from max|d| = 1 to
    SPECFEM's 50-100 km betav/betah maximum) ≤ 6.6e-5 of its maximum, ≤ 1.9e-6 with SPECFEM's β
    (float32 model values, bulk recovered from vpv)."""
    k = kernels
    g_old, g = _g_old(k), _swapped(k)
    d_old = {p: -g_old[p] for p in CG}
    if previous == "earlier_cg_direction":
        iso = _isotropic_mix(k)
        d_old = {p: -g_old[p] - 0.5 * iso[p] for p in CG}
    t = _run(tiny, tiny_databases, tmp_path, g_old, g, d_old)

    # --- SPECFEM's printed numbers are its float32 sums; ours are the exact ones
    f32 = _specfem_f32(t)
    for title in ("norm squared old gradient:", "norm squared difference gradient:", POWELL_TITLE):
        for p in CG:
            assert t.printed[title][p] == pytest.approx(float(f32[title][p]), rel=1e-6), (title, p)
    assert t.beta == pytest.approx(float(f32["beta"]["clipped"]), rel=1e-6)
    beta64, ratios64 = _exact(t)
    ours = t.ours()
    assert not ours.restarted and ours.reason == ""
    assert ours.beta == pytest.approx(beta64, rel=1e-12)
    beta_rel = abs(ours.beta - t.beta) / t.beta
    assert 1e-6 < beta_rel < 1e-3                       # SPECFEM's float32 summation, not ours
    for p in CG:                                        # printed to ~7 digits: absolute check
        assert ours.powell_ratio[p] == pytest.approx(ratios64[p], rel=1e-12)
        assert abs(ours.powell_ratio[p] - t.printed[POWELL_TITLE][p]) < 1e-3
    assert "critical ratio" not in t.stdout

    # --- raw direction: −g + β d_old
    raw_rel = _rel(ours.raw, t.d)
    assert max(raw_rel.values()) < 5e-4, raw_rel
    with_their_beta = {p: ours.raw[p] + (t.beta - ours.beta) * t.d_old[p] for p in CG}
    same_beta_rel = _rel(with_their_beta, t.d)
    assert max(same_beta_rel.values()) < 1e-6, same_beta_rel
    # the two differences are the β term, nothing else
    assert max(raw_rel.values()) > 100 * max(same_beta_rel.values())

    # --- normalization: SPECFEM's maximum is over |d_betav|, |d_betah| at 50-100 km depth
    band, r32, tiso = depth_band
    shear = np.maximum(np.abs(t.d["bulk_betav"]), np.abs(t.d["bulk_betah"]))
    assert t.kernel_max == pytest.approx(shear[band].max(), rel=1e-7)
    imax = np.argmax(np.where(band, shear, 0))
    assert t.depth_of_max == pytest.approx(R_EARTH_KM * (1 - float(r32[imax])), abs=1e-3)
    assert t.step_length == pytest.approx(STEP_FAC / t.kernel_max, rel=1e-6)
    all_max = max(np.abs(v).max() for v in ours.raw.values())

    def band_max(d):
        return max(np.abs(d["bulk_betav"][band]).max(), np.abs(d["bulk_betah"][band]).max())
    assert all_max > 1.5 * band_max(ours.raw)           # the two normalizations really differ
    assert max(np.abs(v).max() for v in ours.d.values()) == pytest.approx(1.0, rel=1e-12)
    to_specfem = all_max / band_max(ours.raw)           # our max|d| = 1 -> SPECFEM's scaling
    ours_u = {p: ours.d[p] * to_specfem for p in CG}
    ours_u_b = {p: with_their_beta[p] / band_max(with_their_beta) for p in CG}

    # --- SPECFEM's model update ln(v_new/v_old) / step_fac, per parameter
    ln = {n: np.log(t.new[n] / t.old[n]) / STEP_FAC for n in ("vsv", "vsh", "eta")}
    assert np.abs(ln["vsv"] - ln["vsh"])[~tiso].max() < 1e-5   # isotropic: both get βv + βh
    assert np.all(t.new["eta"][~tiso] == t.old["eta"][~tiso])
    # bulk from vpv: vpv1² = vpv0² e^{2 dbulk} + 4/3 vsv0² (e^{2 dβ} − e^{2 dbulk}), dβ = ln(vsv1/vsv0)
    a0, a1, b0 = t.old["vpv"], t.new["vpv"], t.old["vsv"]
    b2 = 4 / 3 * b0 ** 2
    dbulk = 0.5 * np.log((a1 ** 2 - b2 * (t.new["vsv"] / b0) ** 2) / (a0 ** 2 - b2)) / STEP_FAC
    theirs = {"bulk_c": dbulk, "bulk_betav": ln["vsv"][tiso], "bulk_betah": ln["vsh"][tiso],
              "eta": ln["eta"][tiso], "betav+betah (isotropic)": ln["vsv"][~tiso]}
    scale = max(np.abs(v).max() for v in theirs.values())

    def rel_update(u):
        mine = {"bulk_c": u["bulk_c"], "bulk_betav": u["bulk_betav"][tiso],
                "bulk_betah": u["bulk_betah"][tiso], "eta": u["eta"][tiso],
                "betav+betah (isotropic)": (u["bulk_betav"] + u["bulk_betah"])[~tiso]}
        return {p: float(np.abs(mine[p] - theirs[p]).max() / scale) for p in theirs}
    upd, upd_b = rel_update(ours_u), rel_update(ours_u_b)
    assert max(upd.values()) < 5e-4, upd
    assert max(upd_b.values()) < 1e-5, upd_b
    print(f"\n[{previous}] beta SPECFEM {t.beta:.9g} ours {ours.beta:.9g} rel {beta_rel:.2e}\n"
          f"  raw direction max rel {_fmt(raw_rel)}\n"
          f"  same, with SPECFEM's beta {_fmt(same_beta_rel)}\n"
          f"  update max rel {_fmt(upd)}\n  same, with SPECFEM's beta {_fmt(upd_b)}\n"
          f"  Powell ratios SPECFEM {t.printed[POWELL_TITLE]}\n"
          f"  ours {_fmt(ours.powell_ratio, '.6f')}\n"
          f"  normalization: ours max|d| over all = {all_max:.6e}, SPECFEM's 50-100 km betav/betah "
          f"max = {t.kernel_max:.6e} at {t.depth_of_max:.1f} km")


@specfem("xadd_model_tiso_cg")
def test_negative_beta_specfem_clips_to_steepest_descent_ours_keeps_it(
        tiny, tiny_databases, kernels, tmp_path):
    """β < 0 (g = g_old·|H|/max|H|): xadd_model_tiso_cg sets β = 0 (PR+), its direction is exactly
    −g; ours keeps the Polak-Ribière β ≈ −0.043 (a descent direction, Powell ratios < 0.2, so no
    restart by SPEC §6's rules) and differs from SPECFEM by exactly β·d_old."""
    g_old = _g_old(kernels)
    t = _run(tiny, tiny_databases, tmp_path, g_old, _hessian_weighted(kernels),
             {p: -g_old[p] for p in CG})
    assert all(v == 0.0 for v in t.printed["alpha gradient:"].values())
    old = t.printed["norm squared old gradient:"]
    diff = t.printed["norm squared difference gradient:"]
    unclipped = sum(diff.values()) / sum(old.values())   # SPECFEM's β before the clip
    f32 = _specfem_f32(t)
    assert unclipped == pytest.approx(float(f32["beta"]["unclipped"]), rel=1e-6)
    for p in CG:
        assert diff[p] == pytest.approx(float(f32["norm squared difference gradient:"][p]),
                                        rel=1e-6)
        assert np.array_equal(t.d[p], -t.g[p]), p        # steepest descent, bit for bit
    ours = t.ours()
    beta64, _ = _exact(t)
    assert unclipped < 0 and ours.beta == pytest.approx(beta64, rel=1e-12) and ours.beta < 0
    beta_rel = abs(ours.beta - unclipped) / abs(unclipped)
    assert beta_rel < 1e-3
    assert not ours.restarted and all(r < POWELL for r in ours.powell_ratio.values())
    assert sum(np.dot(t.g[p], ours.raw[p]) for p in CG) < 0          # descent
    assert max(_rel({p: ours.raw[p] - ours.beta * t.d_old[p] for p in CG}, t.d).values()) < 1e-12
    differs = _rel(ours.raw, t.d)
    assert min(differs.values()) > 1e-3                 # a real difference, documented
    print(f"\n[beta < 0] SPECFEM unclipped beta {unclipped:.9g} (printed alpha 0), ours "
          f"{ours.beta:.9g} rel {beta_rel:.2e}; ours - beta d_old == SPECFEM's −g; "
          f"ours vs SPECFEM direction max rel {_fmt(differs)}")


@specfem("xadd_model_tiso_cg")
def test_powell_specfem_only_warns_ours_restarts(tiny, tiny_databases, kernels, tmp_path):
    """Every Powell ratio > 0.2 (g = the α_v + α_h, β_v, β_h, η + ρ kernels), β ≈ 0.085 > 0:
    xadd_model_tiso_cg prints "critical ratio found!" and keeps −g + β d_old; ours restarts
    (β = 0, d = −g) at the SPEC threshold 0.2, and equals SPECFEM with the threshold at ∞."""
    g_old = _g_old(kernels)
    t = _run(tiny, tiny_databases, tmp_path, g_old, _isotropic_mix(kernels),
             {p: -g_old[p] for p in CG})
    assert "critical ratio found!" in t.stdout
    ratios = t.printed[POWELL_TITLE]
    assert all(r > POWELL for r in ratios.values()) and t.beta > 0
    f32 = _specfem_f32(t)
    restart = t.ours(POWELL)
    assert restart.restarted and restart.beta == 0.0 and "Powell" in restart.reason
    for p in CG:
        assert ratios[p] == pytest.approx(float(f32[POWELL_TITLE][p]), rel=1e-6), p
        assert abs(restart.powell_ratio[p] - ratios[p]) < 1e-3, p     # float32 sums: ~1e-4
        assert np.array_equal(restart.raw[p], -t.g[p])
    cg = t.ours(np.inf)
    assert not cg.restarted and cg.beta > 0
    beta_rel = abs(cg.beta - t.beta) / t.beta
    assert beta_rel < 1e-3                              # float32 sums (see the first test)
    cg_rel = _rel(cg.raw, t.d)
    assert max(cg_rel.values()) < 5e-4, cg_rel
    same_beta = _rel({p: cg.raw[p] + (t.beta - cg.beta) * t.d_old[p] for p in CG}, t.d)
    assert max(same_beta.values()) < 1e-6, same_beta
    restart_rel = _rel(restart.raw, t.d)
    assert min(restart_rel.values()) > 1e-2
    print(f"\n[Powell] ratios SPECFEM {ratios}; beta SPECFEM {t.beta:.9g}, ours (threshold ∞) "
          f"{cg.beta:.9g} rel {beta_rel:.2e}; direction max rel {_fmt(cg_rel)}, with SPECFEM's "
          f"beta {_fmt(same_beta)}; ours restarted (threshold 0.2) vs SPECFEM {_fmt(restart_rel)}")


def _fmt(d: dict, f: str = ".2e") -> str:
    return "{" + ", ".join(f"{k}: {v:{f}}" for k, v in d.items()) + "}"
