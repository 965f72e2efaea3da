"""One structure iteration's numerics (SPEC §6, Appendix C), on arrays: event kernels -> damped,
summed gradient in the EARA parametrization -> preconditioned, smoothed -> PR-CG direction (the
single-process form; seisflows_eara.direction runs the same steps slice by slice). The line search
on linearly extrapolated synthetics (eq. C6) is seisflows_eara.optimize.reduced."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from seisflows_eara.kernels import KernelSum, damping_mask, gaussian_smooth, precondition, \
    preconditioner
from seisflows_eara.model.mesh import Mesh
from seisflows_eara.model.parametrization import INVERTED, KERNELS_ISO, KERNELS_TISO, \
    kernels_to_gradient, reference, tiso_mask
from seisflows_eara.optimize.pcg import Direction, pr_direction

#: SPECFEM kernel names one structure iteration reads per event
KERNEL_NAMES = tuple(sorted(set(KERNELS_TISO) | set(KERNELS_ISO) | {"hess"}))


@dataclass
class EventKernels:
    """One event's kernels (SPECFEM names -> per-point arrays) and where its source/receivers are."""
    name: str
    kernels: dict[str, np.ndarray]
    source_xyz: np.ndarray          # (3,) km
    receivers_xyz: np.ndarray       # (n, 3) km


@dataclass
class Gradient:
    g: dict[str, np.ndarray]        # ∂χ/∂x per inverted parameter (smoothed)
    pg: dict[str, np.ndarray]       # P g (smoothed)
    hessian_max: float


def summed_gradient(events: Iterable[EventKernels], mesh: Mesh, model: dict[str, np.ndarray],
                    v: dict) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Σ_e damped event gradients (steps 1-2) in the EARA parametrization, and Σ_e H_e.
    The chain rule into the EARA parameters is linear in the kernels and depends only on the
    model, so it is applied once to Σ_e mask_e K_e (the same sum, one event in memory at a time)."""
    from scipy.spatial import cKDTree
    ref = reference(mesh.radius, mesh.element_radius())
    tiso = tiso_mask(mesh.depth, v["tiso_max_depth"])
    tree = cKDTree(mesh.xyz)
    total, hess = KernelSum(), KernelSum()
    for ev in events:
        mask = damping_mask(mesh.xyz, ev.source_xyz, ev.receivers_xyz,
                            v["source_damping_radius_km"], v["receiver_damping_radius_km"], tree)
        total.add(ev.name, {n: k for n, k in ev.kernels.items() if n != "hess"}, weight=mask)
        hess.add(ev.name, {"hess": ev.kernels["hess"]})
    if not total.events:
        raise ValueError("no event kernels to sum")
    return (kernels_to_gradient(total.fields, model, ref, tiso, v["density_scaling"]),
            hess.fields["hess"])


def process_gradient(g: dict[str, np.ndarray], hess: np.ndarray, mesh: Mesh, v: dict,
                     sigma_h: float, sigma_v: float,
                     smoother: Callable | None = None) -> Gradient:
    """Step 3 (P = 1/max(H', δ max H')) and step 4 (Gaussian smoothing of g and P g)."""
    p = preconditioner(hess, v["hessian_threshold"], v["hessian_rule"])
    pg = precondition(g, p)
    fields = {**{f"g_{k}": a for k, a in g.items()}, **{f"pg_{k}": a for k, a in pg.items()}}
    if smoother is None:
        sm = gaussian_smooth(fields, mesh.xyz, mesh.volume, mesh.element, sigma_h, sigma_v)
    else:
        sm = smoother(fields, sigma_h, sigma_v)
    tiso = tiso_mask(mesh.depth, v["tiso_max_depth"])
    keep = {k: (tiso if k in ("vc", "vsv", "vsh", "eta") else ~tiso) for k in INVERTED}
    return Gradient({k: np.where(keep[k], sm[f"g_{k}"], 0.0) for k in g},
                    {k: np.where(keep[k], sm[f"pg_{k}"], 0.0) for k in g}, float(np.abs(hess).max()))


def direction(grad: Gradient, previous, powell_threshold: float) -> Direction:
    """PR-CG direction with Powell / descent restarts, normalized to max|d| = 1 (eq. C1-C3)."""
    return pr_direction(grad.g, grad.pg, previous, powell_threshold)
