"""Workflow plugin `eara_inversion`: the three-stage EARA schedule (SPEC §1, §5, §6, §8).

Data flow, one step at a time (the list comes from seisflows_eara.schedule.plan):

  source iteration (every event):   forward + measure  ->  source adjoint (src_frechet)
                                     ->  perturbed forward at eps  ->  Bayesian line search, new CMT
  structure iteration:               forward (saving wavefield) + measure + adjoint sources
                                     ->  kernel run  ->  damp, sum, precondition, smooth, PR-CG d
                                     ->  one trial forward at m + eps d  ->  line search, new model
  end of run:                        final forward + measure

Simulation steps run once per event through `system.run`; each event's task leaves a marker file
when it finishes, so a resumed run repeats no finished simulation. The master records completed
steps and the misfit history in a JSON state file written atomically after every step.
"""
from __future__ import annotations

import os
import traceback

from seisflows import logger
from seisflows.workflow.inversion import Inversion

from seisflows_eara import params
from seisflows_eara.io.atomic import atomic_write_text
from seisflows_eara.plugins.base import EaraParameters
from seisflows_eara.schedule import EventMarkers, Step, WorkflowState, plan


class EventTaskError(RuntimeError):
    """One or more events failed in a simulation step; the message names them and their logs."""


class EaraInversion(EaraParameters, Inversion):
    _eara_component = "workflow"
    __doc__ = Inversion.__doc__ + params.docstring(
        "EARA Inversion", "workflow",
        "Stages of increasing frequency; each runs source iterations for all events, then\n"
        "structure iterations with a one-forward line search (Xi et al. 2024, SPEC.md).")

    def __init__(self, modules=None, **kwargs):
        super().__init__(modules=modules, **kwargs)
        self._init_eara(kwargs)
        self.path["eara_state"] = os.path.join(self.path.workdir, "eara_state.json")
        self.path["markers"] = os.path.join(self.path.workdir, "scratch", "eara_markers")
        self.path["simulation_log"] = os.path.join(self.path.output, "simulations.log")

    # ------------------------------------------------------------------ contract with SeisFlows
    def check(self) -> None:
        """Validate every EARA key first (all components), so the user sees EARA errors at once."""
        self._check_eara()
        params.validate(self.eara)
        super().check()

    @property
    def steps(self) -> list[Step]:
        return plan(self.eara)

    @property
    def state(self) -> WorkflowState:
        return WorkflowState.load(self.path.eara_state)

    @property
    def markers(self) -> EventMarkers:
        return EventMarkers(self.path.markers)

    # ------------------------------------------------------------------ per-event task running
    def _run_events(self, step: Step, task, **kwargs) -> None:
        """Run `task(step, **kwargs)` once per event through the system, skipping events whose
        marker exists; per-event failures are recorded and reported together, by event name."""
        markers = self.markers

        def eara_event_task(**kw):
            event = self.solver.source_name
            if markers.done(step, event):
                logger.info(f"{step.key}: {event} already finished, not repeated")
                return
            failed = os.path.join(markers.root, step.key, f"{event}.failed")
            try:
                task(step, **kw)
            except Exception:
                atomic_write_text(failed, traceback.format_exc())
                logger.critical(f"{step.key}: event {event} failed; traceback in {failed}")
                return
            if os.path.exists(failed):
                os.remove(failed)
            markers.mark(step, event)

        self.system.run([eara_event_task], **kwargs)
        missing = [e for e in self.solver.source_names if not markers.done(step, e)]
        if missing:
            raise EventTaskError(
                f"{step.key}: {len(missing)} event(s) did not finish: {', '.join(missing)}; see "
                f"{os.path.join(markers.root, step.key)}/<event>.failed and the task logs. "
                "Fix the cause and run `seisflows submit` again: finished events are not repeated.")

    def _log_simulation(self, step: Step, kind: str) -> None:
        """Append one line per solver run (the simulation accounting that tests count)."""
        os.makedirs(os.path.dirname(self.path.simulation_log), exist_ok=True)
        with open(self.path.simulation_log, "a") as f:
            f.write(f"{step.key} {self.solver.source_name} {kind}\n")

    # ------------------------------------------------------------------ locations
    def model_path(self, name: str) -> str:
        """Models of the run live in output/models/<name> (GLL files, replaced atomically)."""
        return os.path.join(self.path.output, "models", name)

    def source_path(self, event: str, name: str = "current") -> str:
        """CMTSOLUTION history per event: output/sources/<event>/CMTSOLUTION_<name>."""
        return os.path.join(self.path.output, "sources", event, f"CMTSOLUTION_{name}")

    def traces_path(self, step: Step, event: str, tag: str = "syn") -> str:
        """Synthetics of one simulation step, kept per step so a line search can reuse them."""
        return os.path.join(self.path.workdir, "scratch", "traces", step.key, event, tag)

    def residuals_path(self, step: Step, event: str) -> str:
        return os.path.join(self.path.eval_grad, "residuals", step.key, f"{event}.txt")

    def kernels_path(self, step: Step, event: str | None = None) -> str:
        base = os.path.join(self.path.eval_grad, "kernels", step.key)
        return base if event is None else os.path.join(base, event, "")

    # ------------------------------------------------------------------ simulation tasks (per event)
    def _set_source(self, event: str, name: str = "current") -> None:
        """Make the solver's DATA/CMTSOLUTION this event's current source. SeisFlows links it to the
        user's file; replacing the link (atomic rename) never writes through to the user's input."""
        src = self.source_path(event, name)
        if not os.path.exists(src):
            src = os.path.join(self.solver.path.specfem_data, f"{self.solver.source_prefix}_{event}")
        with open(src) as f:
            text = f.read()
        atomic_write_text(os.path.join(self.solver.cwd, "DATA", self.solver.source_prefix), text)

    def _forward(self, step: Step, path_model: str, source: str = "current",
                 save_forward: bool = True, measure: bool = True) -> None:
        """One forward simulation of the current event; optionally measure it (misfit, adjoint
        sources and measurement table through the preprocess plugin)."""
        event = self.solver.source_name
        self._set_source(event, source)
        self.solver.import_model(path_model=path_model)
        self.solver.forward_simulation(save_traces=self.traces_path(step, event),
                                       save_forward=save_forward)
        self._log_simulation(step, "forward")
        if measure:
            residuals = self.residuals_path(step, event)
            os.makedirs(os.path.dirname(residuals), exist_ok=True)
            if os.path.exists(residuals):
                os.remove(residuals)   # a re-run of this event starts its residuals afresh
            self.preprocess.quantify_misfit(
                source_name=event, save_residuals=residuals,
                save_adjsrcs=os.path.join(self.solver.cwd, "traces", "adj"),
                syn_path=self.traces_path(step, event), stage=step.stage,
                iteration=step.structure_index or step.iteration, step_count=0, step_key=step.key)

    def _kernel(self, step: Step) -> None:
        """Adjoint (kernel) simulation of the current event; kernels and Hessian kept per step."""
        event = self.solver.source_name
        self.solver.adjoint_simulation(save_kernels=self.kernels_path(step, event))
        self._log_simulation(step, "kernel")
