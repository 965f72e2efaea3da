"""Workflow plugin `eara_inversion`: the three-stage EARA schedule (SPEC §1, §5, §6)."""
from __future__ import annotations

from seisflows.workflow.inversion import Inversion

from seisflows_eara import params
from seisflows_eara.plugins.base import EaraParameters


class EaraInversion(EaraParameters, Inversion):
    _eara_component = "workflow"
    __doc__ = Inversion.__doc__ + params.docstring(
        "EARA Inversion", "workflow",
        "Stages of increasing frequency; each runs source iterations for all events, then\n"
        "structure iterations with a one-forward line search (Xi et al. 2024, SPEC.md).")

    def __init__(self, modules=None, **kwargs):
        super().__init__(modules=modules, **kwargs)
        self._init_eara(kwargs)

    def check(self) -> None:
        """Validate every EARA key first (all components), so the user sees EARA errors at once."""
        self._check_eara()
        params.validate(self.eara)
        super().check()
