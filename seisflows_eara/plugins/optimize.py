"""Optimize plugin `eara_pcg`: pseudo-Hessian preconditioned Polak-Ribiere CG (SPEC §6)."""
from __future__ import annotations

from seisflows.optimize.gradient import Gradient

from seisflows_eara import params
from seisflows_eara.plugins.base import EaraParameters


class EaraPcg(EaraParameters, Gradient):
    _eara_component = "optimize"
    __doc__ = Gradient.__doc__ + params.docstring(
        "EARA Preconditioned CG", "optimize",
        "Polak-Ribiere conjugate gradient with Powell restarts, pseudo-Hessian preconditioning and\n"
        "a line search of one trial forward per event (SPEC.md §5-6).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._init_eara(kwargs)

    def check(self) -> None:
        self._check_eara()
        super().check()
