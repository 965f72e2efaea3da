"""Structure optimization: PR-CG with Powell restarts and the one-forward line search (SPEC §6)."""
from seisflows_eara.optimize.linesearch import LineSearchResult, extrapolated_line_search
from seisflows_eara.optimize.pcg import Direction, OptimizerState, pr_direction

__all__ = ["Direction", "LineSearchResult", "OptimizerState", "extrapolated_line_search",
           "pr_direction"]
