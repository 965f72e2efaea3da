"""Misfit functions and their adjoint sources (SPEC §4)."""
from seisflows_eara.misfit.nzcc import nzcc, nzcc_misfit_and_adjoint

__all__ = ["nzcc", "nzcc_misfit_and_adjoint"]
