"""Source Fréchet derivatives in SPECFEM3D_GLOBE's `src_frechet.NNNNNN` convention (SPEC §5).

What SPECFEM writes (src/specfem3D/save_kernels.F90, save_kernels_source_derivatives, after the
SIMULATION_TYPE = 2 run accumulated them in compute_seismograms_adjoint / compute_adj_source_frechet):
one file per point source, 11 numbers, one per line, Fortran format g16.5:

  1-6   ∂χ/∂Mrr, ∂χ/∂Mtt, ∂χ/∂Mpp, ∂χ/∂Mrt, ∂χ/∂Mrp, ∂χ/∂Mtp, per dyne·cm (N·m values × 1e-7).
        Off-diagonal entries are derivatives with respect to the CMTSOLUTION's independent component
        (Mrt stands for Mrt and Mtr: a factor 2 on the tensor entry), so δχ = Σ_k ∂χ/∂M_k δM_k
        over the six CMTSOLUTION numbers.
  7-9   ∂χ/∂x_east, ∂χ/∂x_north, ∂χ/∂depth per metre (sloc_der(2), sloc_der(1), −sloc_der(3); the
        source comment "order [Xr, Xt, Xp]" does not match what is written).
  10    ∂χ/∂t_shift per second: δχ for the whole source delayed by δt (the time shift / origin time),
        = −Σ_r ∫ f†_r · ∂_t s_r dt.
  11    ∂χ/∂τ_g per second, τ_g = half duration / 1.628 (SPECFEM's Gaussian width,
        SOURCE_DECAY_MIMIC_TRIANGLE); τ is fixed in EARA (SPEC §5) and this value is not used.
Sign: derivatives of the misfit whose adjoint sources drove the run (positive = misfit grows when
the parameter grows).

Frame (checked on ../shared/fixtures/specfem3d_globe_tiny, commit 49bb9d37 of v7.0.x): the strain
and its gradient are accumulated in the mesh's Cartesian frame and rotated with
νᵀ·E·ν (νᵀ·g for the location), where ν's rows are the local north, east, up unit vectors at the
source's geocentric position (locate_sources.f90) — the transpose of the rotation ν·E·νᵀ that takes
Cartesian to local components. The written derivatives are therefore in the wrong frame. Proof: the
NZCC misfit is invariant under M -> cM, so Σ_k M_k ∂χ/∂M_k must vanish (it equals Σ_r ∫ f†·s dt,
1.6e-10 for the fixture's adjoint sources). As written: Σ M_k ∂χ/∂M_k = −0.758 against Σ|M_k ∂χ/∂M_k|
= 0.812; after undoing the rotation (frame="corrected"): 3.5e-4 against 1.32, i.e. zero to the 5
digits of g16.5. Line 10 checked independently: −Σ∫ f†·ṡ dt from the fixture's adjoint sources and
synthetics gives −1.3397 against −1.3422 written. `frame="corrected"` (the default) undoes the
rotation: E_true = (νν) E_written (νν)ᵀ and g_true = (νν) g_written; "as_written" keeps SPECFEM's
numbers (for a SPECFEM version that rotates correctly).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from seisflows_eara.io.atomic import atomic_write_text
from seisflows_eara.io.cmtsolution import CMTSource
from seisflows_eara.kernels.damping import geocentric_latitude

#: number of values in a src_frechet file
SRC_FRECHET_VALUES = 11
FRAMES = ("corrected", "as_written")
#: Fortran g16.5: field width and significant digits of save_kernels_source_derivatives
_G_WIDTH, _G_DIGITS = 16, 5
#: Fortran drops the 'E' of a 3-digit exponent (0.12345-100)
_FORTRAN_EXP3 = re.compile(r"^([-+]?\d*\.\d*)([-+]\d{3})$")


class SrcFrechetError(ValueError):
    """A missing, malformed or inconsistent src_frechet file; the message names the file."""


@dataclass(frozen=True)
class SourceGradient:
    """∂χ/∂(source) in the src_frechet convention, in the local frame of the source.

    moment: (6,) per dyne·cm, CMTSOLUTION order and independent components;
    location: (3,) per metre, (east, north, depth); time_shift: per s; half_duration: per s of
    SPECFEM's Gaussian width τ_g (None when not computed)."""
    moment: np.ndarray
    location: np.ndarray
    time_shift: float
    half_duration: float | None = None
    origin: str = ""

    def as_array(self) -> np.ndarray:
        """The 11 numbers in file order (NaN for a half-duration derivative not computed)."""
        hd = np.nan if self.half_duration is None else self.half_duration
        return np.concatenate([self.moment, self.location, [self.time_shift, hd]])


def local_basis(latitude: float, longitude: float) -> np.ndarray:
    """ν of locate_sources.f90: rows = north, east, up unit vectors (Cartesian components) at the
    geocentric position SPECFEM gives a geographic latitude/longitude."""
    th = np.radians(90.0 - float(geocentric_latitude(latitude)))
    ph = np.radians(longitude)
    st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(ph), np.cos(ph)
    return np.array([[-ct * cp, -ct * sp, st], [-sp, cp, 0.0], [st * cp, st * sp, ct]])


def _to_local_matrices(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """11 written numbers -> (moment_der in (n, e, z), sloc_der in (n, e, z)) as SPECFEM held them
    before writing (undoing the sign flips and the factor 2 of save_kernels)."""
    d = values
    md = np.empty((3, 3))
    md[2, 2], md[0, 0], md[1, 1] = d[0], d[1], d[2]
    md[0, 2] = md[2, 0] = -d[3] / 2.0
    md[1, 2] = md[2, 1] = d[4] / 2.0
    md[0, 1] = md[1, 0] = -d[5] / 2.0
    sl = np.array([d[7], d[6], -d[8]])
    return md, sl


def _from_local_matrices(md: np.ndarray, sl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of _to_local_matrices: (n, e, z) tensor and vector -> CMTSOLUTION-order moment
    derivatives and (east, north, depth) location derivatives."""
    moment = np.array([md[2, 2], md[0, 0], md[1, 1], -2.0 * md[0, 2], 2.0 * md[1, 2], -2.0 * md[0, 1]])
    location = np.array([sl[1], sl[0], -sl[2]])
    return moment, location


def _parse_number(text: str, path: str, lineno: int) -> float:
    t = text.strip()
    m = _FORTRAN_EXP3.match(t)
    if m:
        t = f"{m.group(1)}E{m.group(2)}"
    try:
        v = float(t)
    except ValueError as e:
        raise SrcFrechetError(f"{path}, line {lineno}: {text.strip()!r} is not a number") from e
    if not np.isfinite(v):
        raise SrcFrechetError(f"{path}, line {lineno}: non-finite source derivative {text.strip()!r} "
                              "(the adjoint run diverged or its adjoint sources were NaN)")
    return v


def read_src_frechet(path: str | os.PathLike, source: CMTSource | None = None,
                     frame: str = "corrected") -> SourceGradient:
    """Read SPECFEM's src_frechet file. With frame="corrected" (default) `source` (the CMTSOLUTION
    of the run) is needed to undo SPECFEM's transposed rotation (module docstring)."""
    path = os.fspath(path)
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
    if not os.path.exists(path):
        raise SrcFrechetError(f"src_frechet file {path} is missing (did the SIMULATION_TYPE = 2 run "
                              "finish and write OUTPUT_FILES/src_frechet.000001?)")
    with open(path) as f:
        lines = [(n, ln) for n, ln in enumerate(f, 1) if ln.strip()]
    if len(lines) != SRC_FRECHET_VALUES:
        raise SrcFrechetError(f"{path}: {len(lines)} values, expected {SRC_FRECHET_VALUES} (6 moment, "
                              "3 location, time shift, half duration): truncated or not a src_frechet "
                              "file")
    values = np.array([_parse_number(ln, path, n) for n, ln in lines])
    if frame == "as_written":
        return SourceGradient(values[:6], values[6:9], float(values[9]), float(values[10]), path)
    if source is None:
        raise ValueError(f"{path}: frame='corrected' needs the CMTSOLUTION of the run")
    md, sl = _to_local_matrices(values)
    nu = local_basis(source.latitude, source.longitude)
    r = nu @ nu
    moment, location = _from_local_matrices(r @ md @ r.T, r @ sl)
    return SourceGradient(moment, location, float(values[9]), float(values[10]), path)


def fortran_g(x: float, width: int = _G_WIDTH, digits: int = _G_DIGITS) -> str:
    """Fortran `Gw.d` output of one number (gfortran's rules: F editing with 4 trailing blanks
    when 0.1 <= |x| < 10**d after rounding, else E editing 0.ddddE±ee)."""
    ax = abs(x)
    if ax == 0.0:
        return f"{'0.' + '0' * (digits - 1):>{width - 4}}    "
    # exponent k with 10**(k-1) <= |x| < 10**k after rounding to `digits` significant digits
    mant, exp = f"{ax:.{digits - 1}e}".split("e")
    k = int(exp) + 1
    if 0 <= k <= digits and ax >= 0.1 - 0.5 * 10 ** (-digits - 1):
        text = f"{x:.{digits - k}f}"
        return f"{text:>{width - 4}}    "
    e = f"{x:.{digits - 1}e}"
    m, ex = e.split("e")
    sign = "-" if m.startswith("-") else ""
    digits_str = m.lstrip("-").replace(".", "")
    ex_i = int(ex) + 1
    exp_str = f"E{ex_i:+03d}" if abs(ex_i) < 100 else f"{ex_i:+04d}"
    return f"{sign + '0.' + digits_str + exp_str:>{width}}"


def format_src_frechet(gradient: SourceGradient, source: CMTSource | None = None,
                       frame: str = "corrected") -> str:
    """The file SPECFEM would write for `gradient` (true local frame). frame="corrected" applies
    SPECFEM's transposed rotation (needs `source`), so read_src_frechet(frame="corrected") returns
    `gradient` again; "as_written" writes the numbers unchanged."""
    values = gradient.as_array()
    if frame == "corrected":
        if source is None:
            raise ValueError("frame='corrected' needs the CMTSOLUTION of the run")
        md, sl = _to_local_matrices(values)
        nu = local_basis(source.latitude, source.longitude)
        r = (nu @ nu).T
        moment, location = _from_local_matrices(r @ md @ r.T, r @ sl)
        values = np.concatenate([moment, location, values[9:]])
    elif frame != "as_written":
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
    values = np.where(np.isfinite(values), values, 0.0)
    return "".join(fortran_g(float(v)) + "\n" for v in values)


def write_src_frechet(path: str | os.PathLike, gradient: SourceGradient,
                      source: CMTSource | None = None, frame: str = "corrected") -> None:
    """Write a src_frechet file (atomically) as SPECFEM does (see format_src_frechet)."""
    atomic_write_text(path, format_src_frechet(gradient, source, frame))


def homogeneity_ratio(gradient: SourceGradient, source: CMTSource) -> float:
    """|Σ_k M_k ∂χ/∂M_k| / Σ_k |M_k ∂χ/∂M_k|: zero for any amplitude-independent misfit (NZCC and
    traveltimes are unchanged by M -> cM), so a value far from zero flags derivatives in the wrong
    frame or of another source. NaN when the moment gradient is zero."""
    p = source.moment_tensor * gradient.moment
    denom = np.sum(np.abs(p))
    return float(abs(np.sum(p)) / denom) if denom > 0 else float("nan")


def check_src_frechet(gradient: SourceGradient, source: CMTSource, tolerance: float,
                      event: str = "") -> None:
    """Raise SrcFrechetError (naming the event and file) when the derivatives cannot belong to
    `source`: all-zero moment or location derivatives (σ undefined), or a homogeneity ratio above
    `tolerance` (see homogeneity_ratio)."""
    what = f"event {event}: " if event else ""
    where = f" ({gradient.origin})" if gradient.origin else ""
    if not np.any(gradient.moment) or not np.any(gradient.location):
        raise SrcFrechetError(f"{what}src_frechet{where} has zero moment or location derivatives: "
                              "no adjoint source reached the source (no measured window?)")
    ratio = homogeneity_ratio(gradient, source)
    if not ratio <= tolerance:
        raise SrcFrechetError(
            f"{what}src_frechet{where} is inconsistent with its CMTSOLUTION: |Σ M·∂χ/∂M| / "
            f"Σ|M·∂χ/∂M| = {ratio:.3g} > {tolerance} (an amplitude-independent misfit makes it 0); "
            "wrong frame (see source_frechet_frame) or derivatives of another source")
