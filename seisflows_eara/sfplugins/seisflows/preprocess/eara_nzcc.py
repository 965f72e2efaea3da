"""SeisFlows looks up `preprocess: eara_nzcc` here (see pyproject.toml); the class lives in seisflows_eara."""
from seisflows_eara.plugins.preprocess import EaraNzcc  # noqa: F401
