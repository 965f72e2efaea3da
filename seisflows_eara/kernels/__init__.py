"""Kernel processing of a structure iteration, in SPEC §6 order: damp per event, sum over events,
precondition with the pseudo-Hessian, smooth."""
from seisflows_eara.kernels.damping import damping_mask, geographic_to_xyz
from seisflows_eara.kernels.precondition import precondition, preconditioner
from seisflows_eara.kernels.smoothing import gaussian_smooth, xsmooth_sem_command
from seisflows_eara.kernels.summation import KernelSum

__all__ = ["damping_mask", "geographic_to_xyz", "precondition", "preconditioner", "gaussian_smooth",
           "xsmooth_sem_command", "KernelSum"]
