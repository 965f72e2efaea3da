"""Summation of event kernels (SPEC §6 step 2): Σ_e w_e K_e with one event in memory at a time
(the sum itself is the only full-size state), the Hessian summed as Σ_e H'_e (H' by
`hessian_rule`, as SPECFEM's xsum_preconditioned_kernels)."""
from __future__ import annotations

import os
from typing import Iterable, Mapping

import numpy as np

from seisflows_eara.kernels.precondition import nonnegative_hessian
from seisflows_eara.model.gll import read_fields

HESSIAN = "hess"


class KernelSum:
    """Running Σ_e w_e K_e per field name (float64)."""

    def __init__(self, hessian_rule: str | None = None) -> None:
        """`hessian_rule` ('abs'/'clip'): the field named 'hess' is summed as Σ_e H'_e (no weight);
        None sums it like any kernel."""
        self.fields: dict[str, np.ndarray] = {}
        self.events: list[str] = []
        self.hessian_rule = hessian_rule

    def add(self, event: str, kernels: Mapping[str, np.ndarray],
            weight: float | np.ndarray = 1.0) -> None:
        if event in self.events:
            raise ValueError(f"event {event} added twice to the kernel sum")
        if self.events and set(kernels) != set(self.fields):
            raise ValueError(f"event {event}: kernels {sorted(kernels)}, the sum has {sorted(self.fields)}")
        arrays = {}
        for name, k in kernels.items():
            k = np.asarray(k)
            if name in self.fields and self.fields[name].shape != k.shape:
                raise ValueError(f"event {event}: kernel {name} has {k.shape} points, "
                                 f"the sum {self.fields[name].shape}")
            if not np.isfinite(k.sum(dtype=np.float64)) and not np.all(np.isfinite(k)):
                raise ValueError(f"event {event}: kernel {name} has non-finite values")
            arrays[name] = k
        for name, k in arrays.items():
            acc = self.fields.setdefault(name, np.zeros(np.shape(k)))
            if name == HESSIAN and self.hessian_rule is not None:
                acc += nonnegative_hessian(np.asarray(k, float), self.hessian_rule)
            elif np.ndim(weight) == 0 and weight == 1.0:
                acc += k                       # float32 files accumulate in float64
            else:
                acc += np.multiply(k, weight, dtype=np.float64)
        self.events.append(event)


def sum_kernels(events: Iterable[tuple[str, Mapping[str, np.ndarray]]],
                weights: Mapping[str, float] | None = None,
                hessian_rule: str | None = None) -> KernelSum:
    """Σ over an iterable of (event, kernels) pairs — a generator keeps one event in memory."""
    total = KernelSum(hessian_rule)
    for event, kernels in events:
        total.add(event, kernels, 1.0 if weights is None else weights[event])
    if not total.events:
        raise ValueError("no event kernels to sum")
    return total


def sum_kernel_folders(folders: Mapping[str, str | os.PathLike], names: Iterable[str],
                       region: int = 1, weights: Mapping[str, float] | None = None,
                       hessian_rule: str | None = None) -> KernelSum:
    """Σ of `<name>_kernel.bin` files of every event folder (as xcombine_sem, with weights and the
    Hessian rule); fields concatenated over processes (read_fields layout)."""
    names = list(names)

    def gen():
        for event, folder in folders.items():
            yield event, read_fields(os.fspath(folder), names, region, kernel=True).fields
    return sum_kernels(gen(), weights, hessian_rule)
