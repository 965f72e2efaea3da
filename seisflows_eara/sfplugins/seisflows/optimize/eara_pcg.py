"""SeisFlows looks up `optimize: eara_pcg` here (see pyproject.toml); the class lives in seisflows_eara."""
from seisflows_eara.plugins.optimize import EaraPcg  # noqa: F401
