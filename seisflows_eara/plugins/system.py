"""System plugin `eara_slurm`: Slurm with bundled events, exit codes honoured and retries."""
from __future__ import annotations

from seisflows.system.slurm import Slurm

from seisflows_eara import params
from seisflows_eara.plugins.base import EaraParameters


class EaraSlurm(EaraParameters, Slurm):
    _eara_component = "system"
    __doc__ = Slurm.__doc__ + params.docstring(
        "EARA Slurm System", "system",
        "A generic Slurm site: several events per job, task exit codes honoured, failed tasks\n"
        "retried and reported by event, job states read without an accounting database.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._init_eara(kwargs)

    def check(self) -> None:
        self._check_eara()
        super().check()
