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

import json
import os
import shutil
import threading
import traceback

from seisflows import logger
from seisflows.workflow.inversion import Inversion

from seisflows_eara import params
from seisflows_eara.io.atomic import atomic_write_text
from seisflows_eara.io.cmtsolution import SourceHistory, read_cmtsolution
from seisflows_eara.plugins.base import EaraParameters
from seisflows_eara.plugins.compat import WorkflowCompat
from seisflows_eara.schedule import EventMarkers, Step, WorkflowState, plan


class EventTaskError(RuntimeError):
    """One or more events failed in a simulation step; the message names them and their logs."""


class EaraInversion(EaraParameters, WorkflowCompat, Inversion):
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
        marker exists; per-event failures are recorded and reported together, by event name.
        A system that honours task exit codes (eara_slurm) gets the exception re-raised, so the
        task exits non-zero and is retried; the workstation system goes on with the next event.
        With bundle_launch = simultaneous_runs one system task runs `events_per_job` events, each
        in a thread, and their solver launches start together (SPECFEM NUMBER_OF_SIMULTANEOUS_RUNS)."""
        markers = self.markers
        reraise = getattr(self.system, "honours_task_exit_codes", False)
        events = list(self.solver.source_names)

        def one_event(event: str, **kw) -> bool:
            if markers.done(step, event):
                logger.info(f"{step.key}: {event} already finished, not repeated")
                return True
            failed = os.path.join(markers.root, step.key, f"{event}.failed")
            try:
                task(step, **kw)
            except Exception:
                atomic_write_text(failed, traceback.format_exc())
                logger.critical(f"{step.key}: event {event} failed; traceback in {failed}")
                if reraise:
                    raise
                return False
            if os.path.exists(failed):
                os.remove(failed)
            markers.mark(step, event)
            return True

        simultaneous = self.eara["bundle_launch"] == "simultaneous_runs"
        if not simultaneous:
            def eara_event_task(**kw):
                one_event(self.solver.source_name, **kw)
            names = events
        else:
            size = int(self.eara["events_per_job"])
            bundles = [events[i:i + size] for i in range(0, len(events), size)]
            names = ["+".join(b) for b in bundles]

            def eara_event_task(**kw):
                from seisflows.tools.config import get_task_id
                from seisflows_eara.system.gang import Gang
                members = [e for e in bundles[get_task_id()] if not markers.done(step, e)]
                gang = Gang(members, self.solver.launch_simultaneous)
                errors: dict[str, BaseException] = {}

                def member(event: str) -> None:
                    try:
                        with self.solver.for_event(event):
                            one_event(event, **kw)
                    except BaseException as e:     # re-raised below (reraise systems)
                        errors[event] = e
                    finally:
                        gang.leave(event)

                self.solver.gang = gang
                try:
                    threads = [threading.Thread(target=member, args=(e,), name=e) for e in members]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                finally:
                    self.solver.gang = None
                if errors:
                    raise EventTaskError(f"{step.key}: event(s) {', '.join(errors)} failed "
                                         f"(bundle {'+'.join(bundles[get_task_id()])})")

        eara_event_task.eara_step = step.task                     # job type for the system
        eara_event_task.eara_task_names = names                   # task id -> event(s)
        eara_event_task.eara_ranks_factor = int(self.eara["events_per_job"]) if simultaneous else 1
        ntask = self.system.ntask
        self.system.ntask = len(names)
        try:
            self.system.run([eara_event_task], **kwargs)
        finally:
            self.system.ntask = ntask
        missing = [e for e in events if not markers.done(step, e)]
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

    def frechet_path(self, step: Step, event: str) -> str:
        return os.path.join(self.path.eval_grad, "src_frechet", step.key, f"{event}.txt")

    def direction_path(self, step: Step) -> str:
        return os.path.join(self.path.output, "directions", step.key.replace("/", "_"))

    # ------------------------------------------------------------------ SeisFlows entry points
    def setup(self) -> None:
        """SeisFlows' setup (working directories, modules), then the EARA state: the current model
        starts as path_model_init; the misfit history and markers live beside the state file."""
        super().setup()
        state = self.state
        if "model" not in state.records:
            if not self.path.model_init or not os.path.isdir(self.path.model_init):
                raise FileNotFoundError(f"path_model_init {self.path.model_init!r} is not a folder "
                                        "of GLL model files (proc*_reg1_<par>.bin)")
            state.records["model"] = os.path.abspath(self.path.model_init)
            state.save()

    def run(self) -> None:
        """Every pending step of the schedule in order; the state is saved after each step, so
        `seisflows submit` again (2.3.1 also: `seisflows resume`) continues where a run stopped."""
        state = self.state
        steps = self.steps
        self.optimize.run_parallel = self._run_parallel_job     # direction jobs via the system
        if any(s.kind == "source" for s in steps):
            self._check_observed_times()
        logger.info(f"EARA schedule: {len(steps)} steps, {len(state.completed)} done")
        for i, step in enumerate(steps):
            if state.is_done(step):       # a cleanup a kill interrupted is finished first
                self._clean_after(step, later_done=any(state.is_done(s) for s in steps[i + 1:]))
                state = self.state
                continue
            logger.info(f"step {step.key}")
            getattr(self, f"_step_{step.task}")(step)
            state = self.state            # handlers may have updated the records
            state.mark_done(step)
            self._clean_after(step)
            state = self.state
            if self.stop_after and self.stop_after in (step.key, step.task):
                logger.info(f"stop_after {self.stop_after}: stopping after {step.key}")
                return
        logger.info("EARA schedule finished")

    # ------------------------------------------------------------------ cleanup
    def _clean_after(self, step: Step, later_done: bool = False) -> None:
        """Remove what `step`, recorded done, was the last to need, once (state records
        `cleaned`), unless kept by keep_trial_synthetics / keep_wavefields / keep_event_kernels:

          source_update done   synthetics of the perturbed-source forward (scratch/traces/<step>)
          model_update done    synthetics of the trial forward at m + εd (the line search read
                               its terms; a retry re-runs it inside model_update)
          either               the frozen windows and adjoint store of the iteration's forward
                               (keep_frozen_measurements; its table stays in output/measurements)
          kernel done          the saved forward wavefields in every event's directory
                               (solver.saved_wavefield_files)
          direction done       the event kernels (the retries start from the per-slice gradient)

        Only after the step is in the state file: a kill before re-runs the step with its files, a
        kill during the cleanup finishes it on resume. What resume, the measured forwards'
        synthetics and tables, the models, directions and the plot commands read is kept. Saved
        wavefields live in the event's directory, which the next forward writes again: a resumed
        run removes them only if no later step is done (a run begun before cleanups existed)."""
        v = self.eara
        what = {"source_update": True, "model_update": True,
                "kernel": not v["keep_wavefields"] and not later_done,
                "direction": not v["keep_event_kernels"]}
        state = self.state
        cleaned = state.records.get("cleaned", [])
        if step.task not in what or step.key in cleaned:
            return
        removed = 0
        if what[step.task]:
            if step.task in ("source_update", "model_update"):
                trial = step.sibling("perturbed_forward" if step.task == "source_update"
                                     else "trial_forward")
                if not v["keep_trial_synthetics"]:
                    removed = _remove_tree(os.path.join(self.path.workdir, "scratch", "traces",
                                                        trial.key))
                if not v["keep_frozen_measurements"]:
                    fwd = step.sibling("forward").key.replace("/", "_")
                    pre = self.preprocess
                    removed += _remove_files(
                        f for event in self.solver.source_names
                        for f in (pre.prepared_file(fwd, event), pre.adjoint_store_file(fwd, event),
                                  pre.adjoint_parts_file(fwd, event)))
            elif step.task == "kernel":
                for event in self.solver.source_names:
                    with self.solver.for_event(event):
                        files = self.solver.saved_wavefield_files()
                    removed += _remove_files(files)
            else:
                removed = _remove_tree(self.kernels_path(step.sibling("kernel")))
        if removed:
            logger.info(f"{step.key}: removed {removed / 1e6:.4g} MB no longer needed")
        state = self.state
        state.records.setdefault("cleaned", []).append(step.key)
        state.save()

    # ------------------------------------------------------------------ steps
    def _current_model(self) -> str:
        return self.state.records["model"]

    def _step_forward(self, step: Step) -> None:
        """Forward of every event with the current model and sources, measured; structure steps
        save the wavefield for the kernel run."""
        model = self._current_model()

        def task(step: Step) -> None:
            self._forward(step, model, save_forward=step.kind == "structure")
        self._run_events(step, task)
        self._record_misfit(step)

    def _step_final_forward(self, step: Step) -> None:
        model = self._current_model()
        self._run_events(step, lambda step: self._forward(step, model, save_forward=False))
        self._record_misfit(step)

    def _step_source_adjoint(self, step: Step) -> None:
        """SIMULATION_TYPE 2 per event with the adjoint sources of this iteration's forward."""
        model = self._current_model()

        def task(step: Step) -> None:
            event = self.solver.source_name
            self._set_source(event)
            self.solver.import_model(path_model=model)
            self.solver.source_adjoint_simulation(
                save_frechet=self.frechet_path(step, event),
                adjoint_sources=os.path.join(self.solver.cwd, "traces", "adj"))
            self._log_simulation(step, "source_adjoint")
        self._run_events(step, task)

    def _step_perturbed_forward(self, step: Step) -> None:
        """The CMTSOLUTION at the trial step ε along the non-dimensional steepest descent (SPEC §5),
        then one forward with it (not measured: the line search re-measures extrapolations)."""
        model = self._current_model()
        adjoint_step = step.sibling("source_adjoint")

        def task(step: Step) -> None:
            event = self.solver.source_name
            trial = self.source_path(event, f"{_tag(step)}_trial")
            self.optimize.source_trial(self._source_file(event),
                                       self.frechet_path(adjoint_step, event), trial, event)
            self._forward(step, model, source=f"{_tag(step)}_trial", save_forward=False,
                          measure=False)
        self._run_events(step, task)

    def _step_source_update(self, step: Step) -> None:
        """Bayesian optimization of (α, t') on extrapolated synthetics (eq. B3), per event; the new
        CMTSOLUTION is kept in the event's history and becomes its current source."""
        fwd, trial = step.sibling("forward"), step.sibling("perturbed_forward")

        def task(step: Step) -> None:
            event = self.solver.source_name
            start = self.source_path(event, f"{_tag(step)}_start")
            if not os.path.exists(start):      # the source this iteration started from
                atomic_write_text(start, open(self._source_file(event)).read())
            history = SourceHistory(os.path.dirname(self.source_path(event)))
            if not history.rows():
                history.record("initial", read_cmtsolution(start))
            result = self.optimize.source_update(
                prepared=self.preprocess.load_prepared(fwd.key, event),
                cmt_path=start, trial_path=self.source_path(event, f"{_tag(step)}_trial"),
                s0_path=self.traces_path(fwd, event), strial_path=self.traces_path(trial, event),
                output=self.source_path(event, _tag(step)), event=event,
                history=history.folder, tag=_tag(step))
            atomic_write_text(self.source_path(event), open(self.source_path(event, _tag(step))).read())
            atomic_write_text(self.source_path(event, f"{_tag(step)}_linesearch.json"),
                              json.dumps(result, indent=1, default=float))
        self._run_events(step, task)

    def _step_kernel(self, step: Step) -> None:
        """Adjoint sources recombined with the all-event W_c, then the kernel run per event."""
        fwd = step.sibling("forward")
        wc = self.state.records["wc"][fwd.key]
        model = self._current_model()

        def task(step: Step) -> None:
            event = self.solver.source_name
            folder = os.path.join(self.solver.cwd, "traces", "adj")
            self.preprocess.write_weighted_adjoint_sources(
                fwd.key, event, wc, os.path.join(self.solver.cwd, "DATA"), folder)
            self._set_source(event)
            self.solver.import_model(path_model=model)
            self.solver.adjoint_simulation(save_kernels=self.kernels_path(step, event),
                                           adjoint_sources=folder)
            self._log_simulation(step, "kernel")
        self._run_events(step, task)

    def _step_direction(self, step: Step) -> None:
        """Damp, sum, precondition, smooth the event kernels; PR-CG direction; trial model m + εd."""
        kernel_step = step.sibling("kernel")
        events = {e: self.kernels_path(kernel_step, e) for e in self.solver.source_names}
        sources = {e: self._source_file(e) for e in self.solver.source_names}
        stations = os.path.join(self.solver.path.specfem_data, "STATIONS")
        info = self.optimize.structure_direction(
            stage=step.stage, iteration=step.iteration, structure_index=step.structure_index,
            event_kernels=events, sources=sources, stations=stations,
            model=self._current_model(), mesh=self._mesh_path(), output=self.direction_path(step),
            smoother=self.solver.smooth_files if self.solver.smoothing_program == "xsmooth_sem"
            else None)
        state = self.state
        state.records.setdefault("directions", {})[step.key] = info
        state.save()

    def _run_parallel_job(self, func) -> None:
        """`func()` as ONE job of the system with nproc ranks (eara_slurm: a `direction` job of
        slurm_walltime_direction; workstation: in this process, which launches mpiexec itself):
        the optimize plugin's direction, trial-model and model-update jobs."""
        def eara_direction_task(**kwargs) -> None:
            func()
        eara_direction_task.eara_step = "direction"
        eara_direction_task.eara_task_names = ["direction"]
        self.system.run([eara_direction_task], single=True)

    def _step_trial_forward(self, step: Step) -> None:
        """One forward per event at m + ε d (eq. C6), not measured; in the same event task, the
        event's line-search terms (optimize.structure_line_search_terms): the master's line
        search then reads only these small files. The terms file carries the trial it belongs to
        (`_trial_key`), so a resumed or retried line search never mixes trials."""
        fwd, dstep = step.sibling("forward"), step.sibling("direction")
        info = self.state.records["directions"][dstep.key]
        trial, eps, key = info["trial_model"], float(info["trial_step"]), _trial_key(info)

        def task(step: Step) -> None:
            event = self.solver.source_name
            self._forward(step, trial, save_forward=False, measure=False)
            self.optimize.structure_line_search_terms(
                prepared=self.preprocess.load_prepared(fwd.key, event),
                s0=self.traces_path(fwd, event), strial=self.traces_path(step, event),
                trial_step=eps, output=self.line_search_terms_path(step, event), event=event,
                key=key)
        self._run_events(step, task)

    def line_search_terms_path(self, step: Step, event: str) -> str:
        """The event's line-search terms of a trial forward (scratch/line_search/<step>/<event>.npz)."""
        return os.path.join(self.path.workdir, "scratch", "line_search", step.key, f"{event}.npz")

    def _ensure_trial_terms(self, trial: Step, info: dict) -> None:
        """Every event's terms belong to the current trial (`info`); events whose file is missing
        or of another trial (a kill between a retry's state and its markers, or a run begun before
        the terms existed) run their trial forward again; finished ones are not repeated."""
        from seisflows_eara.optimize.reduced import term_key
        key, stale = _trial_key(info), []
        for e in self.solver.source_names:
            if self.markers.done(trial, e) and term_key(self.line_search_terms_path(trial, e)) != key:
                self.markers.unmark(trial, e)
                stale.append(e)
        if stale:
            logger.info(f"{trial.key}: line-search terms of {', '.join(stale)} are not of the "
                        "current trial; their trial forward runs again")
        if any(not self.markers.done(trial, e) for e in self.solver.source_names):
            self._step_trial_forward(trial)

    def _step_model_update(self, step: Step) -> None:
        """Line search on the events' line-search terms (closed-form χ(α) of the linearly
        extrapolated synthetics, eq. C6); the accepted model becomes current. No decrease: a
        smaller trial step (new trial forward), then a restart with β = 0; never accept an
        increase."""
        fwd, trial, dstep = (step.sibling(t) for t in ("forward", "trial_forward", "direction"))
        wc = self.state.records["wc"][fwd.key]
        events = self.solver.source_names
        info = self.state.records["directions"][dstep.key]
        self._ensure_trial_terms(trial, info)
        result = self.optimize.structure_line_search(
            terms={e: self.line_search_terms_path(trial, e) for e in events}, wc=wc,
            trial_step=info["trial_step"])
        state = self.state
        state.records.setdefault("line_searches", {})[step.key] = {
            k: v for k, v in result.items() if k != "model"}
        if result["accepted"]:
            new = self.model_path(f"stage{step.stage}_it{step.iteration:02d}")
            self.optimize.write_updated_model(self._current_model(), info["direction"],
                                              result["alpha"], new, info["mesh"])
            state.records["model"] = new
            state.save()
            return
        retries = info.get("retries", 0)
        if retries >= self.optimize.max_step_retries + 1:
            raise LineSearchError(
                f"{step.key}: no step in {self.optimize.structure_step_range} decreased the misfit "
                f"after {retries} retries (smaller trial steps, then a steepest-descent restart); "
                "the model is unchanged. Inspect output/directions and the line-search records in "
                f"{self.path.eara_state}")
        # retry: a new direction step (smaller ε, or β = 0 after the ε retries), then a new trial
        restart = retries >= self.optimize.max_step_retries
        new_info = self.optimize.retry_direction(info, restart=restart)
        new_info["retries"] = retries + 1
        state.records["directions"][dstep.key] = new_info
        state.save()
        self.markers.clear(trial)
        self._step_trial_forward(trial)
        self._step_model_update(step)

    def _mesh_path(self) -> str:
        """The mesh database (geometry does not change with the model): the main solver's."""
        return os.path.join(self.solver.path.mainsolver, self.solver.model_databases)

    # ------------------------------------------------------------------ simulation tasks (per event)
    def _source_file(self, event: str) -> str:
        src = self.source_path(event)
        if os.path.exists(src):
            return src
        return os.path.join(self.solver.path.specfem_data, f"{self.solver.source_prefix}_{event}")

    def _set_source(self, event: str, name: str = "current") -> None:
        """Make the solver's DATA/CMTSOLUTION this event's source `name`. SeisFlows links it to the
        user's file; replacing the link (atomic rename) never writes through to the user's input."""
        src = self.source_path(event, name) if name != "current" else self._source_file(event)
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
            self._stage_observed(event)
            residuals = self.residuals_path(step, event)
            os.makedirs(os.path.dirname(residuals), exist_ok=True)
            self.preprocess.quantify_misfit(
                source_name=event, save_residuals=residuals,
                save_adjsrcs=os.path.join(self.solver.cwd, "traces", "adj"),
                syn_path=self.traces_path(step, event), stage=step.stage,
                iteration=step.structure_index or step.iteration, step_count=0, step_key=step.key)

    def _check_observed_times(self) -> None:
        """A source inversion moves the centroid time, SPECFEM's time zero; observed files that
        carry only times relative to it (*.sem.ascii) would move with it and hide every origin-time
        error. Stop before any simulation and name the files."""
        relative = [os.path.join(self.path.data, e) for e in self.solver.source_names
                    if self.path.data and os.path.isdir(os.path.join(self.path.data, e)) and
                    any(f.endswith(".sem.ascii") for f in os.listdir(os.path.join(self.path.data, e)))]
        if relative:
            raise ValueError(
                f"source iterations are scheduled (stage_source_iterations = "
                f"{self.eara['stage_source_iterations']}) but the observed data in "
                f"{', '.join(relative)} are SPECFEM ascii files, whose times are relative to the "
                "centroid time the source inversion changes. Store observed data with absolute "
                "times (MiniSEED, SAC, ASDF: e.g. obspy Stream.write after adding the true "
                "centroid time), or set stage_source_iterations to 0. Stopped before any simulation.")

    def _stage_observed(self, event: str) -> None:
        """Link the event's observed files (path_data/<event>/*: any format obspy reads, ASDF,
        StationXML beside them) into traces/obs; links, so observed data are never written to.
        (SeisFlows 2.3.1's `data_case: data` staging globs a literal '*' and copies nothing.)"""
        obs = os.path.join(self.solver.cwd, "traces", "obs")
        os.makedirs(obs, exist_ok=True)
        if os.listdir(obs):
            return
        src = os.path.join(self.path.data or "", event)
        if not self.path.data or not os.path.isdir(src) or not os.listdir(src):
            raise FileNotFoundError(f"event {event}: no observed data in {src!r} (path_data/<event>/)")
        for f in sorted(os.listdir(src)):
            os.symlink(os.path.abspath(os.path.join(src, f)), os.path.join(obs, f))

    # ------------------------------------------------------------------ misfit history
    def _record_misfit(self, step: Step) -> None:
        """Eq. (2) per category and in total after a measured forward: the all-event W_c (kept for
        the kernel and line-search steps) and one history row per category (Fig. 3)."""
        events = self.solver.source_names
        wc = self.preprocess.global_category_weights(step.key, events)
        misfit = self.preprocess.weighted_misfit(step.key, events, wc)
        counts = self.preprocess.window_counts(step.key, events)
        state = self.state
        state.records.setdefault("wc", {})[step.key] = wc
        rows = state.records.setdefault("history", [])
        rows[:] = [r for r in rows if r["step"] != step.key]
        kinds = [("source", step.iteration - 1)] if step.kind == "source" else \
            [("structure", step.iteration - 1)] if step.kind == "structure" else \
            [("final", step.structure_index)]
        if step.kind == "source" and step.iteration == 1:
            kinds.insert(0, ("pre_source", 0))
        for kind, it in kinds:
            for cat in sorted(misfit):
                rows.append(dict(stage=step.stage, kind=kind, iteration=it, category=cat,
                                 misfit=misfit[cat], windows=counts.get(cat, 0), step=step.key))
        state.save()
        self._write_history(rows)
        logger.info(f"{step.key}: misfit {misfit['total']:.6g} over {counts.get('total', 0)} windows")

    def _write_history(self, rows: list[dict]) -> None:
        cols = ["stage", "kind", "iteration", "category", "misfit", "windows", "step"]
        text = ",".join(cols) + "\n" + "".join(
            ",".join(f"{r[c]:.10g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + "\n"
            for r in rows)
        atomic_write_text(os.path.join(self.path.output, "misfit_history.csv"), text)


class LineSearchError(RuntimeError):
    """No step decreased the misfit, even after the documented fallbacks."""


def _trial_key(info: dict) -> str:
    """Which trial of a structure iteration a direction record describes (retries change it)."""
    return json.dumps([info["direction"], info["trial_model"], float(info["trial_step"]),
                       int(info.get("retries", 0))])


def _remove_files(paths) -> int:
    """Remove the files of `paths` that exist; the bytes they held."""
    size = 0
    for f in paths:
        if os.path.exists(f):
            size += os.path.getsize(f)
            os.remove(f)
    return size


def _remove_tree(path: str) -> int:
    """Remove a folder (if there); the bytes its files held."""
    if not os.path.isdir(path):
        return 0
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    shutil.rmtree(path)
    return size


def _tag(step: Step) -> str:
    """File tag of a source iteration: stage1_src01."""
    return f"stage{step.stage}_src{step.iteration:02d}"
