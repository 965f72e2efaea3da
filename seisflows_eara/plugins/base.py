"""What every EARA plugin shares: attributes, docstring and validation taken from params.py."""
from __future__ import annotations

import copy
from typing import Any

from seisflows_eara import params


class EaraParameters:
    """Mixin: set this component's EARA parameters as attributes and validate them.

    SeisFlows passes every parameters.yaml key to every module and `seisflows configure` writes each
    public attribute back, so attribute names equal the keys of params.PARAMETERS.
    """
    _eara_component: str = ""

    def _init_eara(self, kwargs: dict[str, Any]) -> None:
        for p in params.for_component(self._eara_component):
            setattr(self, p.name, copy.deepcopy(kwargs.get(p.name, p.default)))
        # keep the other components' EARA values too (read-only use, e.g. bands for the solver)
        self._eara_all = {p.name: copy.deepcopy(kwargs.get(p.name, p.default)) for p in params.PARAMETERS}
        for p in params.for_component(self._eara_component):
            self._eara_all[p.name] = getattr(self, p.name)

    def _check_eara(self) -> None:
        """Validate this component's keys; raises params.ParameterError naming the key and range."""
        for p in params.for_component(self._eara_component):
            p.validate(getattr(self, p.name))
            self._eara_all[p.name] = getattr(self, p.name)
        params.validate(self._eara_all, names=[])

    @property
    def eara(self) -> dict[str, Any]:
        """All EARA parameter values (this component's and the others'), as plain data."""
        return self._eara_all
