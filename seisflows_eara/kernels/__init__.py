"""Kernel processing of a structure iteration, in SPEC §6 order: damp per event, sum over events,
precondition with the pseudo-Hessian, smooth."""
from seisflows_eara.kernels.damping import damp, damping_mask, geocentric_latitude, geographic_to_xyz
from seisflows_eara.kernels.precondition import nonnegative_hessian, precondition, preconditioner
from seisflows_eara.kernels.smoothing import (gaussian_smooth, smooth_mesh, smooth_points,
                                              smoothed_filename, xsmooth_sem_command)
from seisflows_eara.kernels.summation import KernelSum, sum_kernel_folders, sum_kernels

__all__ = ["damp", "damping_mask", "geocentric_latitude", "geographic_to_xyz", "nonnegative_hessian",
           "precondition", "preconditioner", "gaussian_smooth", "smooth_mesh", "smooth_points",
           "smoothed_filename", "xsmooth_sem_command", "KernelSum", "sum_kernel_folders",
           "sum_kernels"]
