"""Preprocess plugin `eara_nzcc`: EARA processing, windows, NZCC misfit and weights (SPEC §2-4)."""
from __future__ import annotations

from seisflows.preprocess.default import Default

from seisflows_eara import params
from seisflows_eara.plugins.base import EaraParameters


class EaraNzcc(EaraParameters, Default):
    _eara_component = "preprocess"
    __doc__ = Default.__doc__ + params.docstring(
        "EARA NZCC Preprocess", "preprocess",
        "Processing, predicted-traveltime windows in six categories, 1 - NZCC misfit with its exact\n"
        "adjoint source, and categorical / geographic / quality weights (SPEC.md §2-4).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._init_eara(kwargs)

    def check(self) -> None:
        self._check_eara()
        super().check()
