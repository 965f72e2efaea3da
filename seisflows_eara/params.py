"""The EARA parameter table: every tunable number of SPEC.md under one named key, with units.

This table is the single source of truth. The SeisFlows plugins take their attributes, class
docstrings (which `seisflows configure` writes into parameters.yaml) and `check()` validation from it;
the science core receives plain values through :func:`load_parameters`. Nothing here imports SeisFlows.

Keys are flat and values are scalars or (nested) lists, never mappings, so SeisFlows' own line-based
`seisflows par KEY` can read and set every one of them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import yaml

#: SeisFlows components our plugins belong to
COMPONENTS = ("workflow", "system", "solver", "preprocess", "optimize")


class ParameterError(ValueError, AssertionError):
    """A parameter value outside its allowed range; the message names the key and the range.

    Also an AssertionError because SeisFlows' `check`/`init` commands report AssertionErrors as
    parameter errors (a framed message) rather than as a traceback."""


@dataclass(frozen=True)
class Param:
    """One parameter: `name` in parameters.yaml, its default, unit, documentation and validator."""
    name: str
    default: Any
    unit: str
    doc: str
    component: str
    check: Callable[[Any], str | None] | None = None

    def validate(self, value: Any) -> None:
        """Raise ParameterError naming this key when `value` is not allowed."""
        if self.check is None:
            return
        problem = self.check(value)
        if problem:
            raise ParameterError(f"parameter '{self.name}' = {value!r}: {problem}")


# --------------------------------------------------------------------------------------------------
# Validators: each returns None when fine, else a short text that states the allowed range.
def _num(lo: float | None = None, hi: float | None = None, integer: bool = False,
         lo_open: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        kind = "an integer" if integer else "a number"
        rng = f"{'(' if lo_open else '['}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            return f"must be {kind} in {rng}"
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
            return f"must be {kind} in {rng}"
        return None
    return check


def _pair(lo: float | None = None, hi: float | None = None, increasing: bool = True,
          ) -> Callable[[Any], str | None]:
    """[a, b] with lo <= a < b <= hi (a <= b when not strictly increasing)."""
    def check(v: Any) -> str | None:
        rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        ok = (isinstance(v, (list, tuple)) and len(v) == 2
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v))
        if ok:
            a, b = v
            ok = (lo is None or a >= lo) and (hi is None or b <= hi) and (a < b if increasing else a <= b)
        return None if ok else f"must be a pair [low, high] with low < high, both in {rng}"
    return check


def _bands(v: Any) -> str | None:
    """A list (one per stage) of [short period, long period] pairs in seconds."""
    if not isinstance(v, (list, tuple)) or not v:
        return "must be a non-empty list (one per stage) of [min_period_s, max_period_s] pairs"
    for i, band in enumerate(v):
        msg = _pair(0.0)(band)
        if msg:
            return f"stage {i + 1}: {msg} (periods in s, > 0)"
        if band[0] <= 0:
            return f"stage {i + 1}: periods must be > 0 s"
    return None


def _int_list(lo: int = 0) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if (not isinstance(v, (list, tuple)) or not v
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= lo for x in v)):
            return f"must be a non-empty list of integers >= {lo}"
        return None
    return check


def _pos_list(v: Any) -> str | None:
    if (not isinstance(v, (list, tuple)) or not v
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v)):
        return "must be a non-empty list of numbers > 0"
    return None


def _str_list(v: Any) -> str | None:
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
        return "must be a list of non-empty strings"
    return None


def _pattern_list(v: Any) -> str | None:
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) for x in v):
        return "must be a non-empty list of strings ('' is the blank location code)"
    return None


def _choice(*options: Any) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {list(options)}"
    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _optional_str(v: Any) -> str | None:
    return None if v is None or (isinstance(v, str) and v) else "must be a non-empty string or null"


def _optional_int(lo: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= lo)
        return None if ok else f"must be an integer >= {lo} or null"
    return check


def _optional_path(v: Any) -> str | None:
    return None if v is None or isinstance(v, str) else "must be a path or null"


CATEGORIES = ("pz", "pr", "sh", "rayleigh_z", "rayleigh_r", "love_t")
#: MassDownloader's channel priorities with BH first (periods >= 8 s need no more than 20 sps);
#: then the synthetic-style codes (SPECFEM MX?, instaseis LX?) and already rotated Z/R/T data
CHANNEL_PRIORITIES = ("BH[ZNE12]", "HH[ZNE12]", "LH[ZNE12]", "MH[ZNE12]", "EH[ZNE12]",
                      "SH[ZNE12]", "HL[ZNE12]", "BL[ZNE12]", "?X[ZNE12]", "??[ZRT]")
#: MassDownloader's location priorities
LOCATION_PRIORITIES = ("", "00", "10", "01", "20", "02", "30", "03", "40", "04", "50", "05", "60",
                       "06", "70", "07", "80", "08", "90", "09")
BODY_P_SV = ["P", "pP", "sP", "PP", "S", "sS", "SS"]
BODY_SH = ["S", "sS", "SS", "ScS"]

# --------------------------------------------------------------------------------------------------
PARAMETERS: tuple[Param, ...] = (
    # ---- workflow: stage schedule (SPEC §1, §6; paper Fig. 3) ----
    Param("stage_body_bands", [[10.0, 40.0], [8.0, 40.0], [8.0, 40.0]], "s",
          "Body-wave band per stage, [min_period, max_period] (SPEC §2)", "workflow", _bands),
    Param("stage_surface_bands", [[40.0, 120.0], [30.0, 120.0], [20.0, 120.0]], "s",
          "Surface-wave band per stage, [min_period, max_period] (SPEC §2)", "workflow", _bands),
    Param("stage_source_iterations", [3, 3, 3], "count",
          "Source-inversion iterations at the start of each stage (SPEC §5)", "workflow", _int_list(0)),
    Param("stage_structure_iterations", [10, 10, 10], "count",
          "Structure iterations per stage (SPEC §6; stage 1 is 5 + 5 around the smoothing change)",
          "workflow", _int_list(0)),
    Param("smoothing_horizontal_km", [50.0, 25.0], "km",
          "Gaussian smoothing half-width, horizontal, per smoothing phase (SPEC §6 step 4)",
          "workflow", _pos_list),
    Param("smoothing_vertical_km", [25.0, 10.0], "km",
          "Gaussian smoothing half-width, vertical, per smoothing phase (SPEC §6 step 4)",
          "workflow", _pos_list),
    Param("smoothing_phase_iterations", [5], "count",
          "Structure iterations (counted over the whole inversion) spent in each smoothing phase but "
          "the last; the last phase runs to the end", "workflow", _int_list(1)),
    Param("source_damping_radius_km", 50.0, "km",
          "Radius of the Gaussian sphere that damps each event kernel at its source (SPEC §6 step 1)",
          "workflow", _num(0.0, None)),
    Param("receiver_damping_radius_km", 10.0, "km",
          "Radius of the Gaussian sphere that damps each event kernel at every receiver",
          "workflow", _num(0.0, None)),
    # ---- workflow: model assessment and point-spread functions (SPEC §7; paper §3, App. D) ----
    Param("assess_slice_depths_km", [100.0, 200.0, 300.0, 500.0, 700.0, 900.0], "km",
          "Depths of the map views drawn by `seisflows-eara plot model`", "workflow", _pos_list),
    Param("assess_grid_spacing_deg", 0.25, "deg",
          "Lateral sampling of map views and cross-sections (interpolated from the GLL points)",
          "workflow", _num(0.0, None, lo_open=True)),
    Param("assess_section_depths_km", [0.0, 1000.0], "km",
          "Depth range of cross-sections (paper Fig. 7: surface to 1000 km)", "workflow", _pair(0.0)),
    Param("assess_depth_step_km", 10.0, "km", "Depth sampling of cross-sections", "workflow",
          _num(0.0, None, lo_open=True)),
    Param("assess_mean_grid_deg", 1.0, "deg",
          "Lateral sampling of the layer mean (area-weighted average at each depth, the 1-D "
          "reference of dlnVs and dlnVp)", "workflow", _num(0.0, None, lo_open=True)),
    Param("assess_mask_depths_km", [410.0, 660.0], "km",
          "Discontinuities whose neighbourhood is masked in map views and sections (paper Figs 4-7)",
          "workflow", _pos_list),
    Param("assess_mask_halfwidth_km", 60.0, "km",
          "Half-width of the semi-transparent band masked around each of assess_mask_depths_km",
          "workflow", _num(0.0, None)),
    Param("psf_radius_km", 50.0, "km",
          "Radius R of each Gaussian PSF perturbation A exp(-(d/R)^2) (paper App. D: 50 km)",
          "workflow", _num(0.0, None, lo_open=True)),
    Param("psf_spacing_deg", 2.0, "deg",
          "Lateral separation of the PSF perturbations (latitude and longitude grid; App. D: 2 deg)",
          "workflow", _num(0.0, None, lo_open=True)),
    Param("psf_depths_km", [100.0, 300.0, 500.0, 700.0, 900.0], "km",
          "Depths of the layers of PSF perturbations (App. D: 100, 300, 500, 700, 900 km)",
          "workflow", _pos_list),
    Param("psf_amplitude", 0.02, "dln",
          "Peak relative perturbation A of each Gaussian (not stated in the paper; small, so the "
          "gradient stays in the linear regime)", "workflow", _num(0.0, 1.0, lo_open=True)),
    Param("psf_parameter", "vsv", "name",
          "Inverted parameter the PSF perturbs (App. D: vsv); vc, vsh and eta stay fixed",
          "workflow", _choice("vsv", "vsh", "vc", "eta")),
    Param("psf_pattern", "checkerboard", "name",
          "Signs of the PSF perturbations: checkerboard (alternating in latitude, longitude and "
          "depth, paper Fig. 9a) or positive", "workflow", _choice("checkerboard", "positive")),
    # ---- workflow: what a finished iteration removes (issue 18 item 4; README "What a run does") ----
    Param("keep_trial_synthetics", False, "flag",
          "Keep the synthetics of the trial forwards (perturbed source, m + eps d) after their line "
          "search is done; off: removed then (the measured forwards' synthetics are always kept)",
          "workflow", _bool),
    Param("keep_wavefields", False, "flag",
          "Keep the saved forward wavefields (SPECFEM SAVE_FORWARD: proc*_save_forward_arrays.bin, "
          "absorbing-boundary buffers) after the kernel step is done; off: removed then",
          "workflow", _bool),
    Param("keep_event_kernels", False, "flag",
          "Keep the event kernels after the structure direction is written; off: removed then "
          "(the direction's per-slice gradient is kept)", "workflow", _bool),
    Param("keep_frozen_measurements", False, "flag",
          "Keep the frozen windows and adjoint store of a measured forward (scratch/preprocess/"
          "<step>/<event>.pkl, .adjoint_windows.npz) after its iteration's line search is done; "
          "off: removed then (the measurement tables stay)", "workflow", _bool),
    Param("events_per_job", 4, "count",
          "Events bundled in one scheduler job (SPECFEM NUMBER_OF_SIMULTANEOUS_RUNS or job steps)",
          "solver", _num(1, None, integer=True)),
    Param("bundle_launch", "job_steps", "name",
          "How a bundle's events run: job_steps (one MPI launch per event, nproc ranks each) or "
          "simultaneous_runs (ONE SPECFEM launch of nproc x events_per_job ranks with "
          "NUMBER_OF_SIMULTANEOUS_RUNS, directories run0001... linked to the events'; also on a "
          "workstation)", "solver", _choice("job_steps", "simultaneous_runs")),
    # ---- system: Slurm site, bundling, retries (SPEC §8); cost estimate (`seisflows-eara estimate`) ----
    # (the master job's walltime is SeisFlows' `walltime`, concurrent tasks its `ntask_max`)
    Param("slurm_site", "generic", "name",
          "Site preset giving the values of the null slurm_* keys (generic: Slurm places the tasks; "
          "stampede2: TACC SKX nodes, 48 cores, skx-normal, ibrun)", "system",
          _choice("generic", "stampede2")),
    Param("slurm_partition", None, "name", "Partition of the event jobs (null: the preset's, or "
          "the cluster's default)", "system", _optional_str),
    Param("slurm_master_partition", None, "name", "Partition of the master job (null: the preset's, "
          "else slurm_partition)", "system", _optional_str),
    Param("slurm_account", None, "name", "Account (allocation) charged for every job (null: none)",
          "system", _optional_str),
    Param("slurm_cores_per_node", None, "count", "Cores per node: each event gets whole nodes "
          "(null: the preset's; generic leaves placement to Slurm)", "system", _optional_int(1)),
    Param("slurm_environment", [], "shell lines", "Lines run in every job before its tasks (module "
          "loads, exports)", "system", _str_list),
    Param("slurm_sbatch_options", [], "sbatch options", "Extra options written as #SBATCH lines, e.g. "
          "--mem=0 or --qos=normal", "system", _str_list),
    Param("slurm_walltime_forward", 60.0, "min", "Walltime of a forward-simulation job (the paper: "
          "~30 min on 441 cores)", "system", _num(0.0, None, lo_open=True)),
    Param("slurm_walltime_adjoint", 60.0, "min", "Walltime of a source-adjoint (src_frechet) job",
          "system", _num(0.0, None, lo_open=True)),
    Param("slurm_walltime_kernel", 150.0, "min", "Walltime of a kernel job (the paper: ~70 min on "
          "441 cores)", "system", _num(0.0, None, lo_open=True)),
    Param("slurm_walltime_serial", 60.0, "min", "Walltime of a single-core task (source line search, "
          "single tasks)", "system", _num(0.0, None, lo_open=True)),
    Param("slurm_walltime_direction", 60.0, "min", "Walltime of the structure-direction job (nproc "
          "ranks, one per slice: damping, summation, preconditioning, smoothing, PR-CG, trial model)",
          "system", _num(0.0, None, lo_open=True)),
    Param("slurm_task_retries", 2, "count", "Resubmissions of a failed task before it is reported by "
          "event name", "system", _num(0, None, integer=True)),
    Param("slurm_poll_seconds", 10.0, "s", "Interval between job-state queries (squeue)", "system",
          _num(0.0, None, lo_open=True)),
    Param("estimate_minutes_per_forward", 30.0, "min", "Wall time of one forward simulation per event "
          "for the cost estimate (paper §2.2: ~30 min on 441 cores)", "system",
          _num(0.0, None, lo_open=True)),
    Param("estimate_kernel_cost", 2.0, "forwards", "Cost of a kernel run (SIMULATION_TYPE 3: "
          "reconstructed forward + adjoint wavefields) in forward runs (paper: 70/30 min)", "system",
          _num(0.0, None, lo_open=True)),
    Param("estimate_source_adjoint_cost", 1.0, "forwards", "Cost of a source-adjoint run "
          "(SIMULATION_TYPE 2: the adjoint wavefield only) in forward runs", "system",
          _num(0.0, None, lo_open=True)),
    Param("estimate_mesher_cost", 0.03, "forwards", "Cost of one mesher run (re-run per event when "
          "the model changes) in forward runs (tiny fixture run: 2 s vs 76 s)", "system",
          _num(0.0, None)),
    Param("estimate_window_seconds_per_station", 4100.0, "s", "Total window length per station "
          "for the storage estimate (adjoint store, frozen measurements): the real IU.KBL record "
          "at 120 deg has 4126 s in 8 windows of 6 categories; regional stations have less",
          "system", _num(0.0, None)),
    Param("estimate_windows_per_station", 8.0, "count", "Windows per station for the storage "
          "estimate (measurement tables; IU.KBL at 120 deg: 8)", "system", _num(0.0, None)),
    # ---- preprocess: data processing (SPEC §2) ----
    Param("sampling_rate", 10.0, "Hz",
          "Sampling rate of processed observed and synthetic traces (on the synthetics' time axis)",
          "preprocess", _num(0.0, None, lo_open=True)),
    Param("filter_corners", 2, "count",
          "Butterworth order of the zero-phase band-pass (SPEC §2: 2nd order)",
          "preprocess", _num(1, 8, integer=True)),
    Param("taper_fraction", 0.05, "fraction",
          "Cosine taper applied to each end of a trace before response removal and filtering",
          "preprocess", _num(0.0, 0.5)),
    Param("response_water_level", 60.0, "dB",
          "Water level of the instrument-response deconvolution (obspy remove_response)",
          "preprocess", _num(0.0, None)),
    Param("misorientation_file", None, "path",
          "Optional table 'NET.STA angle_deg' of known horizontal misorientations (clockwise from N)",
          "preprocess", _optional_path),
    Param("misfit", "nzcc", "name",
          "Misfit on the EARA windows and weights: nzcc (EARA), cc_traveltime or multitaper (pyadjoint)",
          "preprocess", _choice("nzcc", "cc_traveltime", "multitaper")),
    Param("measure_workers", 1, "count",
          "Processes measuring (and preparing) an event's stations in parallel, each a run of "
          "stations (same result as 1); 0 = every core of the allocation (SLURM_CPUS_PER_TASK, "
          "else the cores the process may run on)", "preprocess", _num(0, None, integer=True)),
    Param("measure_keep_freed_memory", True, "flag",
          "Keep freed memory in the measuring process for reuse (glibc mallopt: no page faults "
          "for each new block array; the process stays at its peak memory; measure/memory.py)",
          "preprocess", _bool),
    Param("measure_huge_pages", False, "flag",
          "Let numpy ask for transparent huge pages for large arrays in the measuring process "
          "(numpy's default; on bare metal fewer page faults, on a VM whose freed memory returns "
          "to the host 5x dearer fresh memory, measured; measure/memory.py)",
          "preprocess", _bool),
    # ---- preprocess: data selection and quality control (issue 17; README "Observed data") ----
    Param("channel_priorities", list(CHANNEL_PRIORITIES), "channel patterns",
          "Per station the first pattern (obspy MassDownloader convention, fnmatch on the channel "
          "code) that a complete Z + two horizontals set matches is measured; others are listed "
          "as unused", "preprocess", _str_list),
    Param("location_priorities", list(LOCATION_PRIORITIES), "location codes",
          "Among sets of the chosen band, the location first in this list is measured (patterns; "
          "'' is the blank code); locations matching none are listed as unused",
          "preprocess", _pattern_list),
    Param("measure_all_locations", False, "flag",
          "Measure every location of a station separately (each its best band) and sum their "
          "adjoint sources per component, instead of one location per station",
          "preprocess", _bool),
    Param("observed_displacement", False, "flag",
          "Observed data with no instrument response (no StationXML for their channel and epoch) "
          "are displacement in m; off: such data are rejected (integer counts always are)",
          "preprocess", _bool),
    Param("gap_interpolation_max", 0.0, "s",
          "Gaps up to this length are interpolated linearly (noted in the table); longer gaps and "
          "disagreeing overlaps reject the windows they touch", "preprocess", _num(0.0, None)),
    # ---- preprocess: windows (SPEC §3) ----
    Param("taup_model", "ak135", "name", "1-D model of the predicted travel times (obspy.taup)",
          "preprocess", _choice("ak135", "iasp91", "prem")),
    Param("body_window_before", 20.0, "s", "Body-wave window starts this long before each phase",
          "preprocess", _num(0.0, None)),
    Param("body_window_after", 50.0, "s", "Body-wave window ends this long after each phase",
          "preprocess", _num(0.0, None)),
    Param("phases_pz", BODY_P_SV, "TauP names", "Phases windowed on Z in category pz",
          "preprocess", _str_list),
    Param("phases_pr", BODY_P_SV, "TauP names", "Phases windowed on R in category pr",
          "preprocess", _str_list),
    Param("phases_sh", BODY_SH, "TauP names", "Phases windowed on T in category sh",
          "preprocess", _str_list),
    Param("surface_velocity_range", [3.3, 4.6], "km/s",
          "Surface-wave window from distance/max - pad to distance/min + pad", "preprocess",
          _pair(0.0)),
    Param("surface_window_pad", 50.0, "s", "Padding on both sides of the surface-wave window",
          "preprocess", _num(0.0, None)),
    Param("surface_max_depth", 150.0, "km", "Events deeper than this get no surface-wave windows",
          "preprocess", _num(0.0, None)),
    Param("window_min_length", 10.0, "s", "Windows shorter than this after clipping are dropped",
          "preprocess", _num(0.0, None)),
    Param("window_taper_fraction", 0.1, "fraction",
          "Hann taper on each end of a measurement window (misfit and adjoint source alike)",
          "preprocess", _num(0.0, 0.5)),
    Param("noise_end_before_p", 10.0, "s",
          "Noise window for SNR: origin time to this long before the first predicted P",
          "preprocess", _num(0.0, None)),
    Param("categories", list(CATEGORIES), "names",
          "Measurement categories in use (pz, pr, sh on body bands; rayleigh_z, rayleigh_r, love_t)",
          "preprocess", lambda v: (None if isinstance(v, list) and v and set(v) <= set(CATEGORIES)
                                   else f"must be a non-empty subset of {list(CATEGORIES)}")),
    # ---- preprocess: weights (SPEC §4, Table 1, Appendix A) ----
    Param("quality_cc", [0.5, 0.7], "dimensionless",
          "f1 cosine taper: weight 0 below the first CC value, 1 above the second", "preprocess",
          _pair(-1.0, 1.0)),
    Param("quality_snr", [10.0, 15.0], "dB",
          "f2 cosine taper: weight 0 below the first SNR, 1 above the second", "preprocess", _pair()),
    Param("quality_dt", [8.0, 10.0], "s",
          "f3 cosine taper: weight 1 below the first |dt|, 0 above the second", "preprocess",
          _pair(0.0)),
    Param("geographic_delta0_scan", [0.5, 8.0], "deg",
          "Range scanned for the geographic weighting distance Delta0 of each event", "preprocess",
          _pair(0.0)),
    Param("geographic_scan_points", 64, "count", "Number of Delta0 values in the scan",
          "preprocess", _num(2, None, integer=True)),
    Param("geographic_ratio_fraction", 1.0 / 3.0, "fraction",
          "Delta0 is where max/min of the weights reaches this fraction of its maximum over the scan",
          "preprocess", _num(0.0, 1.0, lo_open=True)),
    # ---- optimize: structure (SPEC §6, Appendix C) ----
    Param("structure_trial_step", 0.01, "dln",
          "Trial step eps of the one-forward line search: max relative model perturbation",
          "optimize", _num(0.0, 1.0, lo_open=True)),
    Param("structure_step_range", [0.0, 0.03], "dln",
          "Step lengths alpha searched on the extrapolated synthetics (EARA: 0 to 0.03)", "optimize",
          _pair(0.0)),
    Param("structure_step_samples", 61, "count",
          "Number of alpha values evaluated across structure_step_range", "optimize",
          _num(3, None, integer=True)),
    Param("structure_line_search_grid", 61, "count",
          "misfit cc_traveltime/multitaper: alpha values across structure_step_range at which each "
          "event task measures its extrapolated misfit (the master takes the best grid point)",
          "optimize", _num(3, None, integer=True)),
    Param("powell_threshold", 0.2, "dimensionless",
          "Powell restart when Pg_i.Pg_(i-1) / Pg_(i-1).Pg_(i-1) exceeds this for every parameter",
          "optimize", _num(0.0, None, lo_open=True)),
    Param("hessian_threshold", 1.0e-3, "fraction of max",
          "Pseudo-Hessian water level delta, relative to max H (SPECFEM THRESHOLD_HESS)",
          "optimize", _num(0.0, 1.0, lo_open=True)),
    Param("hessian_rule", "abs", "name",
          "How to make H positive before the water level: abs (as SPECFEM) or clip (negatives -> 0)",
          "optimize", _choice("abs", "clip")),
    Param("density_scaling", 0.33, "dimensionless",
          "dln(rho) = density_scaling * dln(Vs) folded into the gradient (SPEC §6)", "optimize",
          _num(0.0, None)),
    Param("tiso_max_depth", 670.0, "km",
          "Transverse isotropy (rho, Vc, Vsv, Vsh, eta) above this depth, isotropic below",
          "optimize", _num(0.0, None)),
    Param("step_retry_factor", 0.5, "fraction",
          "When no step decreases the misfit, retry with the trial step times this factor",
          "optimize", _num(0.0, 1.0, lo_open=True)),
    Param("max_step_retries", 2, "count",
          "Retries with a smaller trial step (then a beta restart) before the iteration fails",
          "optimize", _num(0, None, integer=True)),
    # ---- optimize: source (SPEC §5, Appendix B) ----
    Param("source_trial_step", 0.01, "dimensionless",
          "Trial step eps of the source line search in the non-dimensional parameter space",
          "optimize", _num(0.0, None, lo_open=True)),
    Param("source_step_bounds", [0.0, 0.05], "dimensionless",
          "Bayesian-optimization bounds of the source step alpha", "optimize", _pair(0.0)),
    Param("source_time_shift_bounds", [-5.0, 5.0], "s",
          "Bayesian-optimization bounds of the origin-time change t' - t0", "optimize", _pair()),
    Param("source_bo_initial_points", 9, "count", "Random initial points of the Bayesian optimization",
          "optimize", _num(1, None, integer=True)),
    Param("source_bo_iterations", 20, "count", "Iterations of the Bayesian optimization",
          "optimize", _num(0, None, integer=True)),
    Param("source_bo_refinements", 2, "count",
          "L-BFGS-B refinements of the acquisition maximum per Bayesian-optimization step, from its "
          "best random samples (bayes_opt's n_smart; the library default 10 costs ~0.15 s per step "
          "and changes nothing measurable on a 2-parameter search)", "optimize",
          _num(1, None, integer=True)),
    Param("source_bo_seed", 1, "integer", "Random seed of the Bayesian optimization (reproducible runs)",
          "optimize", _num(0, None, integer=True)),
    Param("source_frechet_frame", "corrected", "name",
          "Frame of SPECFEM's src_frechet: corrected undoes the transposed rotation of v7.0.x "
          "save_kernels (proved by sum M*dchi/dM = 0), as_written trusts the file", "optimize",
          _choice("corrected", "as_written")),
    Param("source_frechet_tolerance", 0.02, "fraction",
          "Largest |sum M*dchi/dM| / sum|M*dchi/dM| accepted from src_frechet (0 for NZCC); larger "
          "means a wrong frame or another source's derivatives", "optimize", _num(0.0, 1.0)),
    # ---- solver: region (SPEC §1) ----
    Param("region_center_lat", 36.0, "deg", "Latitude of the chunk centre", "solver", _num(-90.0, 90.0)),
    Param("region_center_lon", 123.0, "deg", "Longitude of the chunk centre", "solver",
          _num(-180.0, 360.0)),
    Param("region_width", 60.0, "deg", "Angular width of the (square) chunk", "solver",
          _num(0.0, 90.0, lo_open=True)),
    Param("region_rotation", 10.0, "deg", "Anticlockwise rotation of the chunk", "solver",
          _num(-180.0, 180.0)),
    Param("reference_model", "stw105", "name",
          "1-D reference of the perturbations dln m (shipped table, SPEC §6)", "solver",
          _choice("stw105")),
    Param("specfem_solver_binaries", ["xspecfem3D", "xspecfem3D", "xspecfem3D"], "names in bin/",
          "Solver executables for SIMULATION_TYPE 1 (forward), 3 (kernel), 2 (source derivatives); "
          "differ only for SPECFEM builds that compile the Par_file in (v7.0.x)", "solver",
          lambda v: None if isinstance(v, list) and len(v) == 3 and all(isinstance(x, str) and x
                                                                          for x in v)
          else "must be a list of 3 executable names"),
    Param("specfem_mesher_binary", "xmeshfem3D", "name in bin/",
          "Mesher executable, re-run whenever the GLL model changes", "solver",
          lambda v: None if isinstance(v, str) and v else "must be an executable name"),
    Param("specfem_smooth_binary", "xsmooth_sem", "name in bin/",
          "SPECFEM's smoothing program, used when smoothing_program = xsmooth_sem", "solver",
          lambda v: None if isinstance(v, str) and v else "must be an executable name"),
    Param("smoothing_program", "python", "name",
          "Gaussian smoothing of the gradient (SPEC §6 step 4): python (seisflows_eara.kernels, "
          "the same operator, on the master) or xsmooth_sem (SPECFEM's program, MPI)", "solver",
          lambda v: None if v in ("python", "xsmooth_sem") else "must be python or xsmooth_sem"),
    Param("python_smoothing_max_hours", 2.0, "h",
          "The direction job refuses the Python smoother when its estimate per rank (merged points x "
          "points within 3 sigma) exceeds this; above a quarter of it, it warns (use xsmooth_sem)",
          "solver", _num(0.0, None, lo_open=True)),
    Param("synthetic_format", "ascii", "name",
          "Synthetics SPECFEM writes and the forward collects: ascii (OUTPUT_FILES/*.sem.ascii, "
          "~122 kB per station) or asdf (OUTPUT_SEISMOS_ASDF: OUTPUT_FILES/synthetic.h5 with "
          "output_solver.txt, ~16 kB per station; SPECFEM built with --with-asdf, "
          "WRITE_SEISMOGRAMS_BY_MASTER false, NTSTEP_BETWEEN_OUTPUT_SEISMOS >= NSTEP)", "solver",
          _choice("ascii", "asdf")),
)

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMETERS}


def for_component(component: str) -> tuple[Param, ...]:
    """The parameters a plugin of `component` owns."""
    return tuple(p for p in PARAMETERS if p.component == component)


def validate(values: dict[str, Any], names: Iterable[str] | None = None) -> None:
    """Validate `values` (missing keys take defaults); raise ParameterError naming the first bad key."""
    for name in (names if names is not None else BY_NAME):
        p = BY_NAME[name]
        p.validate(values.get(name, p.default))
    _cross_checks({n: values.get(n, BY_NAME[n].default) for n in BY_NAME})


def _cross_checks(v: dict[str, Any]) -> None:
    """Checks that tie several keys together (lengths of the per-stage lists)."""
    per_stage = ("stage_body_bands", "stage_surface_bands", "stage_source_iterations",
                 "stage_structure_iterations")
    n = len(v["stage_body_bands"])
    for key in per_stage[1:]:
        if len(v[key]) != n:
            raise ParameterError(f"parameter '{key}' has {len(v[key])} entries but "
                                 f"'stage_body_bands' has {n}: give one entry per stage")
    nphase = len(v["smoothing_horizontal_km"])
    if len(v["smoothing_vertical_km"]) != nphase:
        raise ParameterError("parameter 'smoothing_vertical_km' must have as many entries as "
                             f"'smoothing_horizontal_km' ({nphase})")
    if len(v["smoothing_phase_iterations"]) != nphase - 1:
        raise ParameterError(f"parameter 'smoothing_phase_iterations' must have {nphase - 1} "
                             "entries (one per smoothing phase but the last)")


def defaults() -> dict[str, Any]:
    """A fresh dict of every default value."""
    import copy
    return {p.name: copy.deepcopy(p.default) for p in PARAMETERS}


def load_parameters(path: str | os.PathLike, validate_values: bool = True) -> dict[str, Any]:
    """Read parameters.yaml; EARA keys absent from it take their defaults. Other keys pass through.

    Raises ParameterError naming the file when it cannot be read or parsed.
    """
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ParameterError(f"cannot read parameter file {os.fspath(path)!r}: {e}") from e
    if not isinstance(raw, dict):
        raise ParameterError(f"parameter file {os.fspath(path)!r} is not a YAML mapping")
    values = defaults()
    values.update(raw)
    if validate_values:
        validate(values)
    return values


def stage_count(values: dict[str, Any]) -> int:
    """Number of stages in the schedule."""
    return len(values["stage_body_bands"])


def smoothing_for_iteration(values: dict[str, Any], structure_iteration: int) -> tuple[float, float]:
    """(horizontal, vertical) smoothing in km for the n-th structure iteration (1-based, whole run)."""
    bounds, total = [], 0
    for n in values["smoothing_phase_iterations"]:
        total += n
        bounds.append(total)
    phase = sum(structure_iteration > b for b in bounds)
    return (float(values["smoothing_horizontal_km"][phase]), float(values["smoothing_vertical_km"][phase]))


def docstring(title: str, component: str, summary: str) -> str:
    """A class docstring in SeisFlows' format (read by `seisflows configure`) for our parameters."""
    lines = [f"\n    {title}", f"    {'-' * len(title)}"]
    lines += [f"    {ln}" for ln in summary.strip().splitlines()]
    lines += ["", "    Parameters", "    ----------"]
    for p in for_component(component):
        kind = type(p.default).__name__ if p.default is not None else "str"
        lines.append(f"    :type {p.name}: {kind}")
        lines.append(f"    :param {p.name}: [{p.unit}] {p.doc}")
    lines += ["", "    Paths", "    -----", "    ***", ""]
    return "\n".join(lines)
