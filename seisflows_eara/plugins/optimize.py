"""Optimize plugin `eara_pcg`: pseudo-Hessian preconditioned Polak-Ribière CG (SPEC §5-6).

Structure iteration (called by the workflow's master steps):
  structure_direction   event kernel folders + CMTSOLUTIONs + STATIONS + current GLL model + mesh
                        -> seisflows_eara.optimize.structure: damp, sum, precondition, smooth, PR-CG
                        -> output/directions/<step>/direction.npz, trial model (m + ε d) GLL folder,
                           PR-CG state (g, Pg, d) in scratch/optimize/pcg (resume continues it)
  structure_line_search_terms  (in each event's trial-forward task) frozen windows + s0 window
                        segments of the forward + trial synthetics -> per-window NZCC inner products
                        (or the misfit on an α grid) in a small .npz (seisflows_eara.optimize.reduced)
  structure_line_search the events' .npz files + all-event W_c -> χ(α) in closed form, α chosen,
                        accepted only if χ decreases (no waveforms in the master)
  write_updated_model   m + α d written as a new GLL folder (complete folder renamed into place)
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
import shutil

import numpy as np
from seisflows.optimize.gradient import Gradient

from seisflows_eara import params
from seisflows_eara.io.atomic import atomic_write_bytes
from seisflows_eara.io.specfem_traces import read_synthetics
from seisflows_eara.io.stations import read_stations
from seisflows_eara.kernels import geographic_to_xyz
from seisflows_eara.measure import event_from_file
from seisflows_eara.model import GllFields, read_fields, read_mesh, write_fields
from seisflows_eara.model.parametrization import MODEL_FILES, reference, tiso_mask, update_model
from seisflows_eara.optimize import OptimizerState
from seisflows_eara.optimize import reduced
from seisflows_eara.optimize import structure as core
from seisflows_eara.optimize.pcg import scale
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
        """Direction of one structure iteration and its trial model; returns the JSON record.
        `smoother(fields, σh, σv, sizes)` replaces the Python smoothing (the solver's xsmooth_sem)."""
        v = self.eara
        msh = read_mesh(mesh)
        m = read_fields(model, list(MODEL_FILES))
        receivers = read_stations(stations)
        rxyz = geographic_to_xyz(np.array([s.latitude for s in receivers]),
                                 np.array([s.longitude for s in receivers]),
                                 np.array([s.burial / 1000.0 for s in receivers]))

        def events():
            for name, folder in event_kernels.items():
                ev = event_from_file(sources[name])
                k = read_fields(folder, list(core.KERNEL_NAMES), kernel=True)
                if k.sizes != m.sizes:
                    raise ValueError(f"event {name}: kernels in {folder} have {k.sizes} points per "
                                     f"process, the model {model} {m.sizes}")
                yield core.EventKernels(name, k.fields, geographic_to_xyz(
                    ev.latitude, ev.longitude, ev.depth_km)[0], rxyz)

        g, hess = core.summed_gradient(events(), msh, m.fields, v)
        sh, sv = params.smoothing_for_iteration(v, structure_index)
        smooth = None if smoother is None else \
            (lambda fields, h, z: smoother(fields, h, z, msh.sizes))
        grad = core.process_gradient(g, hess, msh, v, sh, sv, smoother=smooth)
        state = OptimizerState(self.path.pcg)
        d = core.direction(grad, state.previous(stage, before=iteration), v["powell_threshold"])
        state.save(stage, iteration, grad.g, grad.pg, d.raw,
                   dict(beta=d.beta, restarted=d.restarted, reason=d.reason))
        os.makedirs(output, exist_ok=True)
        _save_npz(os.path.join(output, "direction.npz"), d.d)
        _save_npz(os.path.join(output, "gradient.npz"), {**{f"g_{k}": a for k, a in grad.g.items()},
                                                          **{f"pg_{k}": a for k, a in grad.pg.items()}})
        info = dict(direction=os.path.join(output, "direction.npz"), model=model, mesh=mesh,
                    trial_step=float(v["structure_trial_step"]), beta=d.beta,
                    restarted=d.restarted, reason=d.reason, powell_ratio=d.powell_ratio,
                    smoothing_km=[sh, sv], stage=stage, iteration=iteration,
                    descent=float(sum(np.vdot(grad.g[k], d.d[k]) for k in d.d)))
        info["trial_model"] = self._write_trial(info, output)
        with open(os.path.join(output, "direction.json"), "w") as f:
            json.dump(info, f, indent=1, default=float)
        return info

    def _write_trial(self, info: dict, output: str) -> str:
        path = os.path.join(output, f"trial_model_eps{info['trial_step']:.6g}")
        self.write_updated_model(info["model"], info["direction"], info["trial_step"], path,
                                 info["mesh"])
        return path

    def write_updated_model(self, model: str, direction: str, alpha: float, output: str,
                            mesh: str) -> None:
        """m + α d (δln relative to STW105, SPEC §6) as GLL files; the folder appears complete or
        not at all (written under a temporary name, then renamed)."""
        msh = read_mesh(mesh)
        m = read_fields(model, list(MODEL_FILES))
        with np.load(direction) as z:
            d = {k: z[k] for k in z.files}
        ref = reference(msh.radius, msh.element_radius())
        tiso = tiso_mask(msh.depth, self.eara["tiso_max_depth"])
        new = update_model(m.fields, scale(d, alpha), ref, tiso, self.eara["density_scaling"])
        tmp = output.rstrip("/") + ".tmp"
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
        write_fields(tmp, GllFields(new, m.sizes, m.region))
        if os.path.isdir(output):
            shutil.rmtree(output)
        os.replace(tmp, output)

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
        (restart) the steepest-descent direction −P g with the configured trial step."""
        out = dict(info)
        folder = os.path.dirname(info["direction"])
        if restart:
            state = OptimizerState(self.path.pcg)
            with np.load(os.path.join(folder, "gradient.npz")) as z:
                g = {k[2:]: z[k] for k in z.files if k.startswith("g_")}
                pg = {k[3:]: z[k] for k in z.files if k.startswith("pg_")}
            d = core.direction(core.Gradient(g, pg, 0.0), None, self.eara["powell_threshold"])
            state.save(info["stage"], info["iteration"], g, pg, d.raw,
                       dict(beta=0.0, restarted=True, reason="line search failed: steepest descent"))
            path = os.path.join(folder, "direction_restart.npz")
            _save_npz(path, d.d)
            out.update(direction=path, beta=0.0, restarted=True,
                       reason="line search failed: steepest descent",
                       trial_step=float(self.eara["structure_trial_step"]))
        else:
            out["trial_step"] = float(info["trial_step"]) * self.eara["step_retry_factor"]
        out["trial_model"] = self._write_trial(out, folder)
        return out


def _save_npz(path: str, fields: dict[str, np.ndarray]) -> None:
    import io
    buf = io.BytesIO()
    np.savez(buf, **fields)
    atomic_write_bytes(path, buf.getvalue())
