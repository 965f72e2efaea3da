"""SeisFlows looks up `solver: eara_globe` here (see pyproject.toml); the class lives in seisflows_eara."""
from seisflows_eara.plugins.solver import EaraGlobe  # noqa: F401
