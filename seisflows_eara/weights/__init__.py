"""Weights of the EARA misfit (SPEC §4, paper Table 1 and Appendix A)."""
from seisflows_eara.weights.categorical import categorical_weights
from seisflows_eara.weights.geographic import choose_delta0, geographic_weights
from seisflows_eara.weights.quality import cosine_ramp, quality_weight

__all__ = ["categorical_weights", "choose_delta0", "cosine_ramp", "geographic_weights",
           "quality_weight"]
