"""Source inversion core (SPEC §5): CMTSOLUTION I/O against SPECFEM's reader and obspy, src_frechet
from a real SPECFEM3D_GLOBE run (layout, frame, units checked by identities of its own adjoint
sources), the non-dimensional step, the eq. (B3) misfit against the measurement core, the BO line
search, bad input."""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import obspy
import pytest

from conftest import shared_fixture
from seisflows_eara import params
from seisflows_eara.io.cmtsolution import (VALUE_LABELS, CMTSolutionError, SourceHistory,
                                           format_cmtsolution, from_obspy_event, parse_cmtsolution,
                                           read_cmtsolution, write_cmtsolution)
from seisflows_eara.source import (SourceGradient, SourceLineSearchError, SrcFrechetError,
                                   apply_step, bayesian_line_search, centroid_offset,
                                   check_src_frechet, descent_step, extrapolate_source,
                                   format_src_frechet, homogeneity_ratio, line_search_update,
                                   move_centroid, read_src_frechet, trial_from_files, trial_source)
from seisflows_eara.source.frechet import fortran_g

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
CMT_FILES = sorted(glob.glob(str(REPO / "specfem_data" / "CMTSOLUTION_*"))) + \
    [str(DATA / "regional_greece" / "CMTSOLUTION")]


def _tiny() -> Path:
    return shared_fixture("specfem3d_globe_tiny")


# ---------------------------------------------------------------- CMTSOLUTION
@pytest.mark.parametrize("path", CMT_FILES, ids=os.path.basename)
def test_cmtsolution_round_trips_byte_for_byte(path, tmp_path):
    src = read_cmtsolution(path)
    write_cmtsolution(tmp_path / "CMTSOLUTION", src)
    assert (tmp_path / "CMTSOLUTION").read_bytes() == Path(path).read_bytes()


@pytest.mark.parametrize("path", CMT_FILES, ids=os.path.basename)
def test_cmtsolution_values_agree_with_obspy(path):
    """obspy's CMTSOLUTION reader (independent) reads the same centroid, time and tensor."""
    src = read_cmtsolution(path)
    ev = obspy.read_events(path)[0]
    org = next(o for o in ev.origins if str(o.origin_type) == "centroid")
    t = ev.focal_mechanisms[0].moment_tensor.tensor
    assert org.time == src.centroid_time
    assert (org.latitude, org.longitude) == (src.latitude, src.longitude)
    assert org.depth == pytest.approx(src.depth * 1000.0)
    np.testing.assert_allclose([t.m_rr, t.m_tt, t.m_pp, t.m_rt, t.m_rp, t.m_tp],
                               src.moment_tensor * 1e-7, rtol=1e-12)


def _specfem_columns(text: str) -> list[float]:
    """The 11 values as get_cmt.f90 reads them: free format from a fixed column (1-based 12, 15,
    10, 11, 7, then 5) of lines 3-13."""
    cols = (12, 15, 10, 11, 7, 5, 5, 5, 5, 5, 5)
    lines = text.splitlines()
    return [float(lines[2 + i][c - 1:].split()[0]) for i, c in enumerate(cols)]


def test_updated_cmtsolution_keeps_specfem_columns(tmp_path):
    """A changed source keeps each line's field width, notation and decimals; SPECFEM's fixed
    columns read the new values; obspy reads the file too."""
    path = CMT_FILES[-1]
    src = read_cmtsolution(path)
    new = src.with_values(time_shift=1.2345, latitude=src.latitude + 0.01234, depth=95.5,
                          moment=src.moment_tensor * 1.1)
    write_cmtsolution(tmp_path / "C", new)
    text = (tmp_path / "C").read_text()
    old_lines, new_lines = Path(path).read_text().splitlines(), text.splitlines()
    for a, b in zip(old_lines, new_lines):
        assert len(a) == len(b)
    assert _specfem_columns(text) == pytest.approx(
        [1.2345, 3.0, src.latitude + 0.01234, src.longitude, 95.5, *(src.moment_tensor * 1.1)],
        rel=1e-6, abs=1e-3)
    back = read_cmtsolution(tmp_path / "C")
    assert back == new.rounded()
    ev = obspy.read_events(str(tmp_path / "C"))[0]
    assert ev.origins[0].time == back.centroid_time or ev.origins[1].time == back.centroid_time


def test_quakeml_gcmt_to_cmtsolution_matches_obspy_conversion():
    """The GCMT QuakeML of Darfield converts to the same numbers as the obspy-written file."""
    ev = obspy.read_events(str(DATA / "pytomo3d_darfield" / "C201009031635A.xml"))[0]
    src = from_obspy_event(ev)
    ref = read_cmtsolution(REPO / "specfem_data" / "CMTSOLUTION_C201009031635A")
    assert src.centroid_time == ref.centroid_time
    np.testing.assert_allclose(src.values, ref.values, rtol=1e-12)
    assert format_cmtsolution(src).splitlines()[1:] == \
        (REPO / "specfem_data" / "CMTSOLUTION_C201009031635A").read_text().splitlines()[1:]


def _lines(path):
    return Path(path).read_text().splitlines(keepends=True)


@pytest.mark.parametrize("line, text, message", [
    (4, "half_duration:   3.0000\n", "line 4: expected 'half duration:'"),
    (6, "longitude:      east\n", "line 6: 'longitude:' is not followed by one number"),
    (1, "PDEW 2008 13  6  5 14 23.70  37.2 22.6 75.0 6.1 6.2 X\n", "line 1: invalid month"),
    (1, "2008 1 6 5 14 23.7\n", "line 1: header must be a data-source tag"),
    (7, "depth:         -2.0\n", "line 7: depth -2.0 km is above the surface"),
])
def test_malformed_cmtsolution_names_file_and_line(tmp_path, line, text, message):
    lines = _lines(CMT_FILES[-1])
    lines[line - 1] = text
    bad = tmp_path / "CMTSOLUTION_bad"
    bad.write_text("".join(lines))
    with pytest.raises(CMTSolutionError, match=message) as e:
        read_cmtsolution(bad)
    assert str(bad) in str(e.value)


def test_truncated_and_zero_moment_cmtsolution(tmp_path):
    lines = _lines(CMT_FILES[-1])
    (tmp_path / "short").write_text("".join(lines[:9]))
    with pytest.raises(CMTSolutionError, match=r"short, line 10: file ends inside a source block "
                                               r"\(expected 'Mpp:'\)"):
        read_cmtsolution(tmp_path / "short")
    zero = lines[:7] + [f"{lab}       0.000000e+00\n" for lab in VALUE_LABELS[5:]]
    (tmp_path / "zero").write_text("".join(zero))
    with pytest.raises(CMTSolutionError, match=r"zero, lines 8-13: the moment tensor is zero"):
        read_cmtsolution(tmp_path / "zero")
    (tmp_path / "two").write_text("".join(lines) + "\n" + "".join(lines))
    assert len(parse_cmtsolution((tmp_path / "two").read_text())) == 2
    with pytest.raises(CMTSolutionError, match="holds 2 sources"):
        read_cmtsolution(tmp_path / "two")
    with pytest.raises(CMTSolutionError, match="cannot read CMTSOLUTION"):
        read_cmtsolution(tmp_path / "missing")


def test_source_history_keeps_every_iteration(tmp_path):
    src = read_cmtsolution(CMT_FILES[-1])
    h = SourceHistory(tmp_path / "ev")
    assert h.latest() is None
    h.record("it00", src)
    moved = src.with_values(time_shift=0.5).rounded()
    h.record("it01", moved, misfit=0.1, alpha=0.02, origin_time_change=0.5)
    h.record("it01", moved, misfit=0.1, alpha=0.02, origin_time_change=0.5)   # repeated task
    rows = h.rows()
    assert [r["tag"] for r in rows] == ["it00", "it01"]
    assert float(rows[1]["alpha"]) == 0.02 and float(rows[1]["time_shift"]) == 0.5
    assert h.latest() == moved
    assert read_cmtsolution(h.path("it00")) == src


# ---------------------------------------------------------------- src_frechet
def test_src_frechet_layout_round_trips_specfem_file(tmp_path):
    path = _tiny() / "OUTPUT_FILES" / "src_frechet.000001"
    g = read_src_frechet(path, frame="as_written")
    assert format_src_frechet(g, frame="as_written") == path.read_text()
    src = read_cmtsolution(_tiny() / "DATA" / "CMTSOLUTION")
    gc = read_src_frechet(path, src)
    assert read_src_frechet(_write(tmp_path, format_src_frechet(gc, src)), src).as_array() == \
        pytest.approx(gc.as_array(), rel=1e-4)


def _write(tmp_path, text, name="src_frechet.000001"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_fortran_g16_5_format():
    assert fortran_g(-1.3422) == "     -1.3422    "
    assert fortran_g(0.34805e-26) == "     0.34805E-26"
    assert fortran_g(-0.12122) == "    -0.12122    "
    assert fortran_g(123456.0) == "     0.12346E+06"
    assert fortran_g(1e-100) == "     0.10000E-99"
    assert fortran_g(1e100) == "     0.10000+101"


def test_src_frechet_frame_by_homogeneity_of_nzcc():
    """NZCC is unchanged by M -> cM, so Σ M_k ∂χ/∂M_k = Σ_r ∫ f†·s dt, which the fixture's own
    adjoint sources make zero; SPECFEM's written (transposed-rotation) numbers violate it, the
    corrected frame satisfies it to the 5 digits of g16.5."""
    tiny = _tiny()
    src = read_cmtsolution(tiny / "DATA" / "CMTSOLUTION")
    dot, scale = 0.0, 0.0
    for f in sorted((tiny / "OUTPUT_FILES").glob("*.sem.ascii")):
        s = np.loadtxt(f)
        a = np.loadtxt(tiny / "SEM" / f.name.replace(".sem.ascii", ".adj"))
        dt = s[1, 0] - s[0, 0]
        dot += np.sum(s[:, 1] * a[:, 1]) * dt
        scale += np.sum(np.abs(s[:, 1] * a[:, 1])) * dt
    assert abs(dot) < 1e-6 * scale
    path = tiny / "OUTPUT_FILES" / "src_frechet.000001"
    as_written = read_src_frechet(path, frame="as_written")
    corrected = read_src_frechet(path, src)
    print(f"\n[src_frechet] |Σ M_k ∂χ/∂M_k| / Σ|M_k ∂χ/∂M_k|: as written "
          f"{homogeneity_ratio(as_written, src):.3g}, corrected {homogeneity_ratio(corrected, src):.2g}")
    assert homogeneity_ratio(as_written, src) > 0.5
    assert homogeneity_ratio(corrected, src) < 1e-3
    tol = params.defaults()["source_frechet_tolerance"]
    check_src_frechet(corrected, src, tol, "200801060514A")
    with pytest.raises(SrcFrechetError, match=r"event 200801060514A: src_frechet .* is inconsistent"):
        check_src_frechet(as_written, src, tol, "200801060514A")
    # the frame fix is a rotation: norms of the moment (as a symmetric tensor) and location keep
    def tensor_norm(m):
        return np.sqrt(m[0] ** 2 + m[1] ** 2 + m[2] ** 2 + (m[3] ** 2 + m[4] ** 2 + m[5] ** 2) / 2)
    assert tensor_norm(corrected.moment) == pytest.approx(tensor_norm(as_written.moment), rel=1e-10)
    assert np.linalg.norm(corrected.location) == pytest.approx(np.linalg.norm(as_written.location))


def test_src_frechet_time_shift_derivative_from_adjoint_sources():
    """Line 10 = ∂χ/∂t_shift = −Σ_r ∫ f†·∂_t s dt, from the fixture's synthetics and adjoint sources."""
    tiny = _tiny()
    total = 0.0
    for f in sorted((tiny / "OUTPUT_FILES").glob("*.sem.ascii")):
        s = np.loadtxt(f)
        a = np.loadtxt(tiny / "SEM" / f.name.replace(".sem.ascii", ".adj"))
        dt = s[1, 0] - s[0, 0]
        total -= np.sum(a[:, 1] * np.gradient(s[:, 1], dt)) * dt
    g = read_src_frechet(tiny / "OUTPUT_FILES" / "src_frechet.000001", frame="as_written")
    print(f"\n[src_frechet] line 10 {g.time_shift:.5g}, −Σ∫f†·ṡ dt {total:.5g}")
    assert total == pytest.approx(g.time_shift, rel=5e-3)


def test_src_frechet_half_duration_derivative_is_per_gaussian_width():
    """Line 11 = ∂χ/∂τ_g with τ_g = hdur/1.628 (SOURCE_DECAY_MIMIC_TRIANGLE): the Gaussian source
    obeys ∂s/∂τ_g = (τ_g/2) ∂²s/∂t², so ∂χ/∂τ_g = (τ_g/2) Σ_r ∫ f†·s̈ dt (to the 2nd differences
    of the 0.25-s samples)."""
    tiny = _tiny()
    src = read_cmtsolution(tiny / "DATA" / "CMTSOLUTION")
    tau = src.half_duration / 1.628
    total = 0.0
    for f in sorted((tiny / "OUTPUT_FILES").glob("*.sem.ascii")):
        s = np.loadtxt(f)
        a = np.loadtxt(tiny / "SEM" / f.name.replace(".sem.ascii", ".adj"))
        dt = s[1, 0] - s[0, 0]
        total += np.sum(a[:, 1] * np.gradient(np.gradient(s[:, 1], dt), dt)) * dt * tau / 2.0
    g = read_src_frechet(tiny / "OUTPUT_FILES" / "src_frechet.000001", frame="as_written")
    assert total == pytest.approx(g.half_duration, rel=0.05)
    assert total / 1.628 != pytest.approx(g.half_duration, rel=0.2)      # not per CMT half duration


def test_bad_src_frechet_files_name_the_file(tmp_path):
    src = read_cmtsolution(_tiny() / "DATA" / "CMTSOLUTION")
    lines = (_tiny() / "OUTPUT_FILES" / "src_frechet.000001").read_text().splitlines(keepends=True)
    with pytest.raises(SrcFrechetError, match="missing .*SIMULATION_TYPE = 2"):
        read_src_frechet(tmp_path / "nope", src)
    with pytest.raises(SrcFrechetError, match="10 values, expected 11"):
        read_src_frechet(_write(tmp_path, "".join(lines[:10]), "short"), src)
    with pytest.raises(SrcFrechetError, match="line 3: non-finite"):
        read_src_frechet(_write(tmp_path, "".join(lines[:2] + ["  NaN\n"] + lines[3:]), "nan"), src)
    with pytest.raises(SrcFrechetError, match=r"line 1: '\*\*\*\*' is not a number"):
        read_src_frechet(_write(tmp_path, "".join(["****\n"] + lines[1:]), "star"), src)
    zero = SourceGradient(np.zeros(6), np.ones(3), 0.0)
    with pytest.raises(SrcFrechetError, match="event E1: src_frechet has zero moment"):
        check_src_frechet(zero, src, 0.02, "E1")
    with pytest.raises(ValueError, match="needs the CMTSOLUTION"):
        read_src_frechet(_tiny() / "OUTPUT_FILES" / "src_frechet.000001")
    assert read_src_frechet(_write(tmp_path, "".join(lines[:8] + ["    0.10000-100\n"] + lines[9:]),
                                   "exp3"), frame="as_written").location[2] == 1e-101


# ---------------------------------------------------------------- the step (Appendix B, corrected)
def test_nondimensional_step_rule_and_unit_invariance():
    """M(α) = M − α σ_M² ∂χ/∂M, X(α) = X − α σ_X² ∂χ/∂X with σ_M = √2/|∂χ/∂M|, σ_X = 1/|∂χ/∂X|:
    |∂χ/∂M̂| = √2, |∂χ/∂X̂| = 1, and the physical step does not depend on the units of X."""
    g = SourceGradient(np.array([1e-26, -2e-26, 3e-27, 4e-26, -1e-26, 2e-26]),
                       np.array([3e-6, -4e-6, 1e-6]), 0.5)
    st = descent_step(g)
    gm, gx = np.linalg.norm(g.moment), np.linalg.norm(g.location)
    assert st.sigma_m == pytest.approx(np.sqrt(2) / gm) and st.sigma_x == pytest.approx(1 / gx)
    np.testing.assert_allclose(st.moment, -st.sigma_m ** 2 * g.moment)
    nd = st.nondimensional_gradient
    assert np.linalg.norm(nd[:6]) == pytest.approx(np.sqrt(2))
    assert np.linalg.norm(nd[6:]) == pytest.approx(1.0)
    # the same gradient per km instead of per m: σ_X in km, step in km = step in m / 1000
    st_km = descent_step(SourceGradient(g.moment, g.location * 1000.0, 0.5))
    np.testing.assert_allclose(st_km.location * 1000.0, st.location)
    assert np.linalg.norm(st.location) == pytest.approx(1.0 / gx)


def test_move_centroid_against_obspy_geodesics():
    """A 10 km move at the centroid's radius r = R − depth lands 10 km · R/r away at the surface in
    the requested azimuth (obspy on WGS84: to the ellipsoid-vs-sphere difference, < 0.5 %), and
    centroid_offset inverts it."""
    src = read_cmtsolution(CMT_FILES[-1])
    to_surface = 6371.0 / (6371.0 - src.depth)
    for east, north in ((10_000.0, 0.0), (0.0, -10_000.0), (6_000.0, 8_000.0)):
        lat, lon, depth = move_centroid(src.latitude, src.longitude, src.depth, east, north, 3000.0)
        dist, az, _ = obspy.geodetics.gps2dist_azimuth(src.latitude, src.longitude, lat, lon)
        assert dist == pytest.approx(np.hypot(east, north) * to_surface, rel=5e-3)
        assert np.radians(az) == pytest.approx(np.arctan2(east, north) % (2 * np.pi), abs=5e-3)
        assert depth == pytest.approx(src.depth + 3.0)
        moved = src.with_values(latitude=lat, longitude=lon, depth=depth)
        np.testing.assert_allclose(centroid_offset(src, moved), [east, north, 3000.0], atol=1.0)


def test_trial_source_from_specfem_files(tmp_path):
    """The trial CMTSOLUTION of the real fixture: M − ε σ_M² ∂χ/∂M within the file's decimals,
    and extrapolating the trial by α/ε reproduces apply_step."""
    tiny = _tiny()
    v = params.defaults()
    info = trial_from_files(tiny / "DATA" / "CMTSOLUTION", tiny / "OUTPUT_FILES" / "src_frechet.000001",
                            tmp_path / "CMTSOLUTION_trial", v, "200801060514A")
    src = read_cmtsolution(tiny / "DATA" / "CMTSOLUTION")
    trial = read_cmtsolution(tmp_path / "CMTSOLUTION_trial")
    g = read_src_frechet(tiny / "OUTPUT_FILES" / "src_frechet.000001", src)
    st = descent_step(g)
    assert info["sigma_m"] == pytest.approx(st.sigma_m)
    eps = v["source_trial_step"]
    np.testing.assert_allclose(trial.moment_tensor, src.moment_tensor + eps * st.moment,
                               atol=1e-6 * src.scalar_moment)
    np.testing.assert_allclose(centroid_offset(src, trial), eps * st.location, atol=12.0)  # 1e-4 deg
    assert trial.time_shift == src.time_shift and trial.half_duration == src.half_duration
    exact = apply_step(src, st, 3 * eps, origin_time_change=1.5)
    via_trial = extrapolate_source(src, apply_step(src, st, eps), 3.0, 1.5)
    np.testing.assert_allclose(via_trial.values, exact.values, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- Bayesian line search
def test_bayesian_line_search_finds_a_known_minimum():
    """A misfit bowl with its minimum at α = 0.031, t' − t0 = −1.7 s: 9 + 20 evaluations of
    bayes_opt get close, the current source is evaluation 0, the best point is accepted."""
    def chi(a, t):
        return 0.3 + 400.0 * (a - 0.031) ** 2 + 0.01 * (t + 1.7) ** 2
    v = params.defaults()
    r = bayesian_line_search(chi, v["source_step_bounds"], v["source_time_shift_bounds"],
                             v["source_bo_initial_points"], v["source_bo_iterations"],
                             v["source_bo_seed"], "E", v["source_bo_refinements"])
    assert len(r.evaluations) == 1 + 9 + 20
    assert tuple(r.evaluations[0]) == (0.0, 0.0, chi(0, 0))
    assert r.accepted and r.misfit < chi(0.031, 0.0)
    assert r.alpha == pytest.approx(0.031, abs=0.005) and r.origin_time_change == pytest.approx(-1.7, abs=0.7)
    again = [bayesian_line_search(chi, v["source_step_bounds"], v["source_time_shift_bounds"], 4, 3,
                                  v["source_bo_seed"]).evaluations for _ in range(2)]
    np.testing.assert_array_equal(again[0], again[1])      # seeded: reproducible
    # the library's default 10 L-BFGS-B refinements per step find no better minimum
    full = bayesian_line_search(chi, v["source_step_bounds"], v["source_time_shift_bounds"],
                                v["source_bo_initial_points"], v["source_bo_iterations"],
                                v["source_bo_seed"], "E", 10)
    assert r.misfit <= full.misfit + 0.002 * (chi(0, 0) - chi(0.031, -1.7))


def test_line_search_never_accepts_an_increase():
    r = bayesian_line_search(lambda a, t: 1.0 + a + 0.1 * abs(t), (0.0, 0.05), (-5.0, 5.0), 3, 3, 1)
    assert not r.accepted and r.misfit == r.misfit0 == 1.0 and (r.alpha, r.origin_time_change) == (0, 0)


def test_failed_line_search_keeps_the_previous_source():
    """A misfit that turns NaN (BO failure): SourceLineSearchError naming the event; through
    line_search_update the event keeps its source with status 'failed'."""
    def bad(a, t):
        return 0.5 if a == 0.0 else float("nan")
    with pytest.raises(SourceLineSearchError, match="event E7: misfit at alpha="):
        bayesian_line_search(bad, (0.0, 0.05), (-5.0, 5.0), 3, 3, 1, "E7")
    with pytest.raises(ValueError, match="must contain 0"):
        bayesian_line_search(bad, (0.0, 0.05), (1.0, 5.0), 3, 3, 1, "E7")
    src = read_cmtsolution(CMT_FILES[-1])
    up = line_search_update("E7", prepared=None, s0=obspy.Stream(), s_eps=obspy.Stream(), source=src,
                            trial=src, values=params.defaults())
    assert up.status == "failed" and up.source is src and "event E7" in up.reason
    assert up.as_dict()["status"] == "failed"
