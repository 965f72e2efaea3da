"""Solver plugin `eara_globe`: SPECFEM3D_GLOBE with model updates applied (SPEC §6)."""
from __future__ import annotations

from seisflows.solver.specfem3d_globe import Specfem3DGlobe

from seisflows_eara import params
from seisflows_eara.plugins.base import EaraParameters


class EaraGlobe(EaraParameters, Specfem3DGlobe):
    _eara_component = "solver"
    __doc__ = Specfem3DGlobe.__doc__ + params.docstring(
        "EARA SPECFEM3D_GLOBE Solver", "solver",
        "One chunk of SPECFEM3D_GLOBE; writes GLL model updates and re-runs the mesher, collects\n"
        "kernels, the pseudo-Hessian and source Frechet derivatives (SPEC.md §5-6).")

    def __init__(self, materials: str = "anisotropic", density: bool = True, regions: str = "1",
                 **kwargs):
        super().__init__(materials=materials, density=density, regions=regions, **kwargs)
        self._init_eara(kwargs)

    def check(self) -> None:
        self._check_eara()
        super().check()
