"""CMT source inversion (SPEC §5, paper Appendix B): src_frechet, non-dimensional steepest descent,
eq. (B3) extrapolated misfit, Bayesian-optimization line search, per-event iteration and history.

The instaseis provider (synthetics and source derivatives from real Green's-function databases)
lives in seisflows_eara.source.instaseis_provider and is imported on demand.
"""
from seisflows_eara.source.fastmisfit import ExtrapolatedMisfit
from seisflows_eara.source.frechet import (SourceGradient, SrcFrechetError, check_src_frechet,
                                           format_src_frechet, homogeneity_ratio, read_src_frechet,
                                           write_src_frechet)
from seisflows_eara.source.gradient import (SourceStep, apply_step, centroid_offset, descent_step,
                                            extrapolate_source, move_centroid, sigmas, trial_source)
from seisflows_eara.source.inversion import (IterationRecord, SourceUpdate, event_info,
                                             invert_source, line_search_update, prepare_trial,
                                             trial_from_files, update_from_files)
from seisflows_eara.source.linesearch import (LineSearchResult, SourceLineSearchError,
                                              bayesian_line_search)

__all__ = ["ExtrapolatedMisfit", "IterationRecord", "LineSearchResult", "SourceGradient",
           "SourceLineSearchError", "SourceStep", "SourceUpdate", "SrcFrechetError", "apply_step",
           "bayesian_line_search", "centroid_offset", "check_src_frechet", "descent_step",
           "event_info", "extrapolate_source", "format_src_frechet", "homogeneity_ratio",
           "invert_source", "line_search_update", "move_centroid", "prepare_trial",
           "read_src_frechet", "sigmas", "trial_from_files", "trial_source", "update_from_files",
           "write_src_frechet"]
