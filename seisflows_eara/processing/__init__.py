"""Observed and synthetic processing (SPEC §2, paper §2.1), with obspy doing the signal work.

observed:   detrend, taper, instrument response -> displacement, ->ZNE, misorientation, ->ZRT
synthetic:  detrend, taper, NE -> RT
both, per band: 2nd-order zero-phase Butterworth band-pass, then interpolation onto a common time
axis — the synthetics' grid at `sampling_rate`, limited to where both records exist.
The synthetic chain and the band-pass/resampling call obspy's and scipy's functions directly, many
traces per call (`filter_and_resample_many`): the same numbers as the Stream methods, without
their per-trace overhead (every Stream method looks its function up in the package metadata).
"""
from seisflows_eara.processing.chain import (Band, bandpass_stream, TimeAxis, common_axis, correct_misorientation,
                                             filter_and_resample, filter_and_resample_many,
                                             prepare_observed, prepare_synthetic,
                                             read_misorientation_table, response_prefilter,
                                             rotate_to_zrt)

__all__ = ["Band", "bandpass_stream", "TimeAxis", "common_axis", "correct_misorientation", "filter_and_resample",
           "filter_and_resample_many", "prepare_observed", "prepare_synthetic",
           "read_misorientation_table", "response_prefilter", "rotate_to_zrt"]
