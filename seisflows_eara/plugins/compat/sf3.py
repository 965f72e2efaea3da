"""SeisFlows 3.x (GitHub main, 3.5.6): the three contract changes that reach our plugins.

solver    3.x renamed `density` to `update_density`, calls transverse isotropy
          `transverse_isotropic` (its `anisotropic` is the 21-parameter c_ij model, for which it
          asserts ANISOTROPIC_KL in the Par_file), keeps the main solver directory as the hidden
          path `_mainsolver` and defaults `smooth_type` to the slow `gaussian`.
workflow  3.x's Workstation.run stops the workflow (sys.exit) once any task has run longer than
          `tasktime` minutes (default 1) — too short for any SPECFEM run; check() warns.
CLI       `init` writes a new parameter file (2.3.1 `setup`), `setup` checks and sets up (2.3.1
          `init`), and there is no `resume`: `seisflows submit` again continues a run.
Everything else our plugins use is unchanged: module lookup (`seisflows.<component>.<name>` through
pkgutil.extend_path), `__init__(**kwargs)`, `system.run(funcs, single, **kwargs)` with
SEISFLOWS_TASKID, `check`/`setup`, the runscripts. The EARA workflow runs its own schedule, so
3.x's Inversion task list (update_search, calculate_step_length, compute_trial_model, the
`finalize()` of every module) is never entered; tests/test_seisflows3.py checks that no SeisFlows
optimization vector is written.
"""
from __future__ import annotations

from seisflows import logger

CLI = {"new_parameter_file": "init", "check_and_setup": "setup", "resume": "submit"}


class SolverCompat:
    """Translate the 2.3.1 solver keys our plugin and parameters.yaml use into 3.x's."""

    def __init__(self, materials: str = "transverse_isotropic", density: bool | None = None,
                 update_density: bool | None = None, smooth_type: str = "laplacian", **kwargs):
        if isinstance(materials, str) and materials.lower() == "anisotropic":
            materials = "transverse_isotropic"      # 2.3.1's name for vpv, vph, vsv, vsh, eta
        if update_density is None:
            update_density = True if density is None else bool(density)
        super().__init__(materials=materials, update_density=update_density,
                         smooth_type=smooth_type, **kwargs)
        # an attribute of the path Dict (not a key), as in 2.3.1: `configure` does not write it
        self.path.mainsolver = self.path._mainsolver


class WorkflowCompat:
    """3.x's Inversion with a warning about Workstation's task time limit."""

    def check(self) -> None:
        super().check()
        system = self._modules.system if self._modules else None
        tasktime = getattr(system, "tasktime", None)
        if tasktime and not getattr(system, "honours_task_exit_codes", False):
            logger.warning(
                f"system `tasktime` = {tasktime} min: SeisFlows 3.x's {type(system).__name__} "
                "stops the workflow after any task that ran longer (every EARA step runs SPECFEM "
                "once per event). Set `tasktime` to the longest step in minutes, or null for no "
                "limit.")
