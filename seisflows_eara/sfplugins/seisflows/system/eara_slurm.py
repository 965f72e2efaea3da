"""SeisFlows looks up `system: eara_slurm` here (see pyproject.toml); the class lives in seisflows_eara."""
from seisflows_eara.plugins.system import EaraSlurm  # noqa: F401
