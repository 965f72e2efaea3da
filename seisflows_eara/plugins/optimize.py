"""Optimize plugin `eara_pcg`: pseudo-Hessian preconditioned Polak-Ribière CG (SPEC §5-6).

Structure iteration (called by the workflow's master steps):
  structure_direction   event kernel folders + CMTSOLUTIONs + STATIONS + current GLL model + mesh
                        -> ONE parallel job of `seisflows-eara direction` (seisflows_eara.direction:
                           per-slice damp, sum, precondition, smooth, PR-CG; nproc ranks)
                        -> output/directions/<step>/{gradient,direction}/proc*.npz (per slice),
                           trial_model_eps<ε>/ (GLL), direction.json; the PR-CG state is those
                           folders, indexed in scratch/optimize/pcg (resume continues it)
  structure_line_search_terms  (in each event's trial-forward task) frozen windows + s0 window
                        segments of the forward + trial synthetics -> per-window NZCC inner products
                        (or the misfit on an α grid) in a small .npz (seisflows_eara.optimize.reduced)
  structure_line_search the events' .npz files + all-event W_c -> χ(α) in closed form, α chosen,
                        accepted only if χ decreases (no waveforms in the master)
  write_updated_model   m + α d per slice as a new GLL folder (a parallel job; complete folder renamed
                        into place)
  retry_direction       fallback when no α decreases χ: smaller ε, then β = 0 (steepest descent)
Source iteration (SPEC §5, per event):
  source_trial          CMTSOLUTION + src_frechet -> seisflows_eara.source: check, σ_M, σ_X,
                        non-dimensional descent -> trial CMTSOLUTION at ε
  source_update         frozen windows + forward and trial synthetics -> Bayesian optimization of
                        (α, t') on eq. (B3) extrapolations -> next CMTSOLUTION (the previous one
                        when no step lowers the misfit or the search fails) + history.csv row
SeisFlows' own Gradient machinery (m_new.npz vectors, bracketing line search) is not used.
"""
from __future__ import annotations

import json
import os

import numpy as np
from seisflows.optimize.gradient import Gradient

from seisflows_eara import params
from seisflows_eara.direction.engine import trial_name
from seisflows_eara.direction.launch import run_phases
from seisflows_eara.direction.slices import count_slices
from seisflows_eara.io.atomic import atomic_write_text
from seisflows_eara.io.specfem_traces import read_synthetics
from seisflows_eara.model.parametrization import INVERTED
from seisflows_eara.optimize import OptimizerState
from seisflows_eara.optimize import reduced
from seisflows_eara.plugins.base import EaraParameters
from seisflows_eara import source as source_core
from seisflows_eara.io.cmtsolution import SourceHistory, read_cmtsolution


class EaraPcg(EaraParameters, Gradient):
    _eara_component = "optimize"
    __doc__ = Gradient.__doc__ + params.docstring(
        "EARA Preconditioned CG", "optimize",
        "Polak-Ribiere conjugate gradient with Powell restarts, pseudo-Hessian preconditioning and\n"
        "a line search of one trial forward per event (SPEC.md §5-6).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._init_eara(kwargs)
        self.path["pcg"] = os.path.join(self.path.scratch, "pcg")
        # the direction job's ranks and MPI launcher: the solver's (one rank per slice)
        self._nproc = int(kwargs.get("nproc") or 1)
        self._mpiexec = kwargs.get("mpiexec")

    def check(self) -> None:
        self._check_eara()
        super().check()

    # ------------------------------------------------------------------ source
    def source_trial(self, cmt_path: str, frechet_path: str, output: str, event: str = "") -> dict:
        """Trial CMTSOLUTION at ε = source_trial_step along the non-dimensional steepest descent;
        returns σ_M, σ_X and the gradients (SrcFrechetError names the event and file)."""
        return source_core.trial_from_files(cmt_path, frechet_path, output, self.eara, event)

    def source_update(self, prepared, cmt_path: str, trial_path: str, s0_path: str,
                      strial_path: str, output: str, event: str, history: str | None = None,
                      tag: str | None = None) -> dict:
        """(α, t') by Bayesian optimization on the eq. (B3) synthetics of the forward (`s0_path`,
        source `cmt_path`) and trial (`strial_path`, source `trial_path`) runs; writes the next
        CMTSOLUTION to `output` — the previous one (status "kept"/"failed") when no step lowers
        the misfit or the search fails — and, with `history` (a folder), its history.csv row."""
        t0 = read_cmtsolution(cmt_path).centroid_time     # SPECFEM's time zero (one source)
        s0 = read_synthetics(s0_path, t0)
        s_eps = read_synthetics(strial_path, t0)
        return source_core.update_from_files(
            event, prepared, s0, s_eps, cmt_path, trial_path, output, self.eara,
            SourceHistory(history) if history else None, tag)

    # ------------------------------------------------------------------ structure
    def structure_direction(self, stage: int, iteration: int, structure_index: int,
                            event_kernels: dict[str, str], sources: dict[str, str], stations: str,
                            model: str, mesh: str, output: str, smoother=None) -> dict:
        """Direction of one structure iteration and its trial model as ONE parallel job of
        `seisflows-eara direction` (seisflows_eara.direction: every rank reads only its slices);
        returns the JSON record (output/direction.json). `smoother(names, σh, σv, input_dir,
        output_dir)` is the solver's xsmooth_sem (smoothing_program = xsmooth_sem), run inside
        the job between its phases. The PR-CG state is the per-slice gradient/ and direction/
        folders, indexed in scratch/optimize/pcg; a repeated step (resume) reads the same
        previous iteration and rewrites the same files."""
        v = self.eara
        sh, sv = params.smoothing_for_iteration(v, structure_index)
        state = OptimizerState(self.path.pcg)
        prev = state.previous_folders(stage, before=iteration)
        job, cfg = self._job_folder(output)
        bad = [x for e, f in event_kernels.items() for x in (e, f, sources[e]) if any(
            c.isspace() for c in x)]
        if bad:
            raise ValueError(f"event names and paths must not contain spaces: {bad}")
        events = os.path.join(job, "events.txt")
        atomic_write_text(events, "".join(f"{e} {f} {sources[e]}\n"
                                          for e, f in event_kernels.items()))
        argv = ["--config", cfg, "--events-file", events, "--stations", stations, "--model", model,
                "--mesh", mesh, "--output", output, "--structure-index", str(structure_index),
                "--stage", str(stage), "--iteration", str(iteration),
                "--smoothing-km", repr(float(sh)), repr(float(sv))]
        if prev is not None:
            argv += ["--previous-gradient", prev[0], "--previous-direction", prev[1]]
        if v["smoothing_program"] == "xsmooth_sem":
            if smoother is None:
                raise ValueError("smoothing_program xsmooth_sem needs the solver's smoother")
            work = os.path.join(output.rstrip("/") + ".tmp", "work")
            names = [f"{p}_{k}" for p in ("g", "pg") for k in INVERTED]
            phases = [("direction", argv + ["--phase", "gradient", "--smoothing", "xsmooth_sem"]),
                      ("xsmooth_sem", dict(names=names, sigma_h_km=sh, sigma_v_km=sv,
                                           input_dir=os.path.join(work, "sem_in"),
                                           output_dir=os.path.join(work, "sem_out"))),
                      ("direction", argv + ["--phase", "finish", "--smoothing", "xsmooth_sem"])]
        else:
            phases = [("direction", argv + ["--phase", "all", "--smoothing", "python"])]
        self._direction_job(phases, mesh, job, smoother)
        with open(os.path.join(output, "direction.json")) as f:
            info = json.load(f)
        info["output"] = output
        state.record(stage, iteration, info["gradient"], info["direction"],
                     dict(beta=info["beta"], restarted=info["restarted"], reason=info["reason"]))
        return info

    #: set by the workflow: runs a function as ONE job of the system with nproc ranks
    run_parallel = None

    def _job_folder(self, output: str) -> tuple[str, str]:
        """scratch/optimize/jobs/<output's name>/ with the EARA parameters of the run."""
        import hashlib
        import yaml
        tag = hashlib.sha1(os.path.abspath(output).encode()).hexdigest()[:8]
        name = os.path.basename(output.rstrip("/"))
        job = os.path.join(self.path.scratch, "jobs", f"{name}.{tag}")
        os.makedirs(job, exist_ok=True)
        cfg = os.path.join(job, "parameters.yaml")
        atomic_write_text(cfg, yaml.safe_dump(dict(self.eara), sort_keys=False))
        return job, cfg

    def _direction_job(self, phases, mesh: str, job: str, smoother=None) -> None:
        """The phases as one parallel job of min(nproc, slices) ranks through the system
        (`run_parallel`), or in this process when no workflow set it (one serial rank)."""
        ranks = max(1, min(int(self._nproc), count_slices(mesh)))
        mpiexec = self._mpiexec

        def eara_direction_job(**kwargs) -> None:
            run_phases(phases, ranks, mpiexec, job, smoother)
        if self.run_parallel is None:
            eara_direction_job()
        else:
            self.run_parallel(eara_direction_job)

    def _write_trial(self, info: dict, output: str) -> str:
        path = os.path.join(output, trial_name(float(info["trial_step"])))
        self.write_updated_model(info["model"], info["direction"], info["trial_step"], path,
                                 info["mesh"])
        return path

    def write_updated_model(self, model: str, direction: str, alpha: float, output: str,
                            mesh: str) -> None:
        """m + α d (δln relative to STW105, SPEC §6) per slice as GLL files, a parallel job
        (`direction` is a direction/ folder of per-slice d); the folder appears complete or not at
        all (written under a temporary name, then renamed)."""
        job, cfg = self._job_folder(output)
        self._direction_job([("direction", [
            "--phase", "update", "--config", cfg, "--model", model, "--direction", direction,
            "--alpha", repr(float(alpha)), "--mesh", mesh, "--output", output])], mesh, job)

    def structure_line_search_terms(self, prepared, s0: str, strial: str, trial_step: float,
                                    output: str, event: str, key: str = "") -> int:
        """In the event's trial-forward task: the event's share of the line search (eq. C6),
        written to `output` — for NZCC the six inner products per window (closed form,
        seisflows_eara.optimize.reduced), for the pyadjoint misfits the event's misfit on the α
        grid (structure_line_search_grid points). s0 is the forward's measured window segments
        kept in `prepared`; `s0` (its synthetics folder) is read only for frozen windows pickled
        before they were kept. Returns the number of windows."""
        t0 = prepared.event.time
        s_trial = prepared.segments(read_synthetics(strial, t0))
        seg0 = getattr(prepared, "synthetic", None)
        if seg0 is None or seg0.size != s_trial.size:
            seg0 = prepared.segments(read_synthetics(s0, t0))
        if self.eara["misfit"] == "nzcc":
            t = reduced.event_terms(event, seg0, s_trial, prepared.U, prepared.taper, prepared.dt,
                                    prepared.offsets, prepared.weights, prepared.categories,
                                    trial_step, key)
            reduced.write_terms(output, t)
            return t.nwin
        alphas = reduced.search_grid(self.eara["structure_step_range"],
                                     self.eara["structure_line_search_grid"])
        g = reduced.grid_terms(event, seg0, s_trial, prepared.weights, prepared.categories,
                               lambda S: prepared.other_misfit(S)[0], alphas, trial_step, key)
        reduced.write_grid(output, g)
        return g.windows

    def structure_line_search(self, terms: dict[str, str], wc: dict[str, float],
                              trial_step: float) -> dict:
        """α from the events' line-search terms (files of structure_line_search_terms) with the
        all-event W_c (Table 1, eq. C6): closed-form NZCC minimized like
        extrapolated_line_search (grid + bounded refinement), or the best point of the summed
        grids for the pyadjoint misfits; accepted only if χ decreases."""
        parts = []
        for event, path in terms.items():
            p = reduced.read_terms(path)
            if not np.isclose(p.trial_step, trial_step, rtol=1e-12, atol=0.0):
                raise ValueError(f"event {event}: line-search terms {path} are for trial step "
                                 f"{p.trial_step}, the direction's is {trial_step}")
            parts.append(p)
        v = self.eara
        if all(isinstance(p, reduced.WindowTerms) for p in parts):
            allw = reduced.concatenate(parts)
            del parts
            r = reduced.line_search(allw, wc, v["structure_step_range"], v["structure_step_samples"])
            method, nwin = "nzcc_closed_form", allw.nwin
        elif all(isinstance(p, reduced.GridTerms) for p in parts):
            r = reduced.grid_line_search(parts, wc, v["structure_step_range"])
            method, nwin = "grid", sum(p.windows for p in parts)
        else:
            raise ValueError(f"line-search terms of mixed kinds in {sorted(terms.values())}")
        return dict(alpha=r.alpha, misfit=r.misfit, misfit0=r.misfit0, accepted=r.accepted,
                    alphas=r.alphas.tolist(), misfits=r.misfits.tolist(), trial_step=trial_step,
                    method=method, windows=nwin, events=len(terms))

    def retry_direction(self, info: dict, restart: bool) -> dict:
        """Fallback of a rejected line search: a smaller trial step on the same direction, or
        (restart) the steepest-descent direction −P g with the configured trial step (a parallel
        job on the step's per-slice gradient, into <output>/restart/)."""
        out = dict(info)
        if restart:
            base = info.get("output") or os.path.dirname(info["direction"])
            folder = os.path.join(base, "restart")
            job, cfg = self._job_folder(folder)
            step = float(self.eara["structure_trial_step"])
            self._direction_job([("direction", [
                "--phase", "steepest", "--config", cfg, "--gradient", info["gradient"],
                "--model", info["model"], "--mesh", info["mesh"], "--output", folder,
                "--trial-step", repr(step), "--stage", str(info["stage"]),
                "--iteration", str(info["iteration"])])], info["mesh"], job)
            with open(os.path.join(folder, "direction.json")) as f:
                rec = json.load(f)
            OptimizerState(self.path.pcg).record(
                info["stage"], info["iteration"], info["gradient"], rec["direction"],
                dict(beta=0.0, restarted=True, reason="line search failed: steepest descent"))
            out.update(direction=rec["direction"], trial_model=rec["trial_model"], beta=0.0,
                       restarted=True, reason="line search failed: steepest descent",
                       trial_step=step, descent=rec["descent"], scale=rec["scale"])
            return out
        out["trial_step"] = float(info["trial_step"]) * self.eara["step_retry_factor"]
        out["trial_model"] = self._write_trial(out, os.path.dirname(info["direction"]))
        return out
