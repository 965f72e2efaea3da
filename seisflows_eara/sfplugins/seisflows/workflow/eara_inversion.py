"""SeisFlows looks up `workflow: eara_inversion` here (see pyproject.toml); the class lives in seisflows_eara."""
from seisflows_eara.plugins.workflow import EaraInversion  # noqa: F401
