"""Summation of event kernels (SPEC §6 step 2), one event in memory at a time."""
from __future__ import annotations

import numpy as np


class KernelSum:
    """Running Σ_e w_e K_e per field name."""

    def __init__(self) -> None:
        self.fields: dict[str, np.ndarray] = {}
        self.events: list[str] = []

    def add(self, event: str, kernels: dict[str, np.ndarray], weight: float | np.ndarray = 1.0) -> None:
        if event in self.events:
            raise ValueError(f"event {event} added twice to the kernel sum")
        for name, k in kernels.items():
            if name in self.fields and self.fields[name].shape != k.shape:
                raise ValueError(f"event {event}: kernel {name} has {k.shape} points, "
                                 f"the sum {self.fields[name].shape}")
            self.fields.setdefault(name, np.zeros(k.shape))
            self.fields[name] += weight * np.asarray(k, float)
        self.events.append(event)
