"""SeisFlows 2.3.1 (PyPI): the contract the plugins were first written for; nothing to adapt."""
from __future__ import annotations

#: the `seisflows` subcommands that differ between versions (what a user types)
CLI = {"new_parameter_file": "setup", "check_and_setup": "init", "resume": "resume"}


class SolverCompat:
    """2.3.1 names: `materials: anisotropic` is transversely isotropic (vpv vph vsv vsh eta),
    `density`, `path.mainsolver`; smooth_type defaults to laplacian."""


class WorkflowCompat:
    """2.3.1's Inversion: nothing to adapt."""
