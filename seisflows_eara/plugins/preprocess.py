"""Preprocess plugin `eara_nzcc`: EARA processing, windows, NZCC misfit and weights (SPEC §2-4).

Data flow of `quantify_misfit` for one event (SeisFlows calls it in the event's task):
  solver DATA/CMTSOLUTION, DATA/STATIONS   -> event centroid, station list
  traces/obs (any obspy format or ASDF; StationXML beside them; io.waveforms)  -> observed
  traces/syn (SPECFEM *.sem.ascii, SPECFEM's ASDF synthetic.h5 + output_solver.txt, or any
             obspy format)  -> synthetics
  (files that cannot be read become rows of the table; only missing folders stop the event)
  observed prepared once per event and stage (measure.prepare_event -> scratch/preprocess/
  prepared/<event>.stage<N>.h5, reused by every forward and on resume; redone when a processing
  parameter, the event, STATIONS or an observed file changes: measure.prepared.cached_prepared)
  seisflows_eara.measure.measure_event     -> table, misfit, adjoint sources, frozen windows
  writes: adjoint sources NET.STA.MX[NEZ].adj for every station of STATIONS (zeros where nothing
  was measured) + DATA/STATIONS_ADJOINT; the residuals file (one weighted window misfit per line,
  so `sum_residuals` is eq. 2); output/measurements/<evaluation>/<event>.csv; and the frozen
  windows (scratch/preprocess/<evaluation>/<event>.pkl) for line searches.
"""
from __future__ import annotations

import os
import pickle
from collections import defaultdict

import numpy as np
import obspy
import pandas as pd
from seisflows.preprocess.default import Default

from seisflows_eara import params
from seisflows_eara.io.atomic import atomic_open, atomic_write_text
from seisflows_eara.io.specfem_traces import write_adjoint_source
from seisflows_eara.io.stations import read_stations, write_stations
from seisflows_eara.io.waveforms import read_synthetic_data, read_waveforms
from seisflows_eara.measure import Config, EventMeasurement, PreparedEvent, event_from_file, \
    measure_event, observed_parameters, prepare_event, progress_logger
from seisflows_eara.measure.prepared import cached_prepared, file_digest
from seisflows_eara.measure.adjoint_store import AdjointStoreError, recombine, \
    write_adjoint_store
from seisflows_eara.measure.event import combine_adjoint
from seisflows_eara.plugins.base import EaraParameters
from seisflows_eara.processing import read_misorientation_table


class EaraNzcc(EaraParameters, Default):
    _eara_component = "preprocess"
    __doc__ = Default.__doc__ + params.docstring(
        "EARA NZCC Preprocess", "preprocess",
        "Processing, predicted-traveltime windows in six categories, 1 - NZCC misfit with its exact\n"
        "adjoint source, and categorical / geographic / quality weights (SPEC.md §2-4).")

    def __init__(self, path_output: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._init_eara(kwargs)
        workdir = kwargs.get("workdir", os.getcwd())
        self.path["output"] = path_output or os.path.join(workdir, "output")

    def check(self) -> None:
        """EARA keys by params.py; SeisFlows' own `misfit` list does not know ours, so its check
        runs without it."""
        self._check_eara()
        ours, self.misfit = self.misfit, None
        try:
            super().check()
        finally:
            self.misfit = ours

    # ------------------------------------------------------------------ locations
    def measurement_file(self, evaluation: str, event: str) -> str:
        return os.path.join(self.path.output, "measurements", evaluation, f"{event}.csv")

    def prepared_file(self, evaluation: str, event: str) -> str:
        return os.path.join(self.path.scratch, evaluation, f"{event}.pkl")

    def adjoint_parts_file(self, evaluation: str, event: str) -> str:
        """Adjoint sources per category before W_c as full (3, npts) arrays: the format of earlier
        versions, still read by write_weighted_adjoint_sources (runs in progress)."""
        return os.path.join(self.path.scratch, evaluation, f"{event}.adjoint_parts.pkl")

    def adjoint_store_file(self, evaluation: str, event: str) -> str:
        """The weighted window adjoints before W_c (measure.adjoint_store), placed by the frozen
        measurement of prepared_file, for the all-event W_c of the structure misfit."""
        return os.path.join(self.path.scratch, evaluation, f"{event}.adjoint_windows.npz")

    def load_table(self, evaluation: str, event: str) -> pd.DataFrame:
        path = self.measurement_file(evaluation.replace("/", "_"), event)
        try:
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
        except OSError as e:
            raise FileNotFoundError(f"event {event}: measurement table {path} missing ({e})") from e

    def global_category_weights(self, evaluation: str, events: list[str]) -> dict[str, float]:
        """W_c = 1 / (windows with W_w > 0 in category c over ALL events) — the structure misfit's
        categorical weight (Table 1); per-event W_c (eq. 9) is what quantify_misfit uses."""
        counts: dict[str, int] = defaultdict(int)
        for e in events:
            t = self.load_table(evaluation, e)
            ok = t[(t.status == "ok") & (t.w_quality > 0)]
            for c, n in ok.category.value_counts().items():
                counts[str(c)] += int(n)
        return {c: 1.0 / n for c, n in counts.items() if n}

    def weighted_misfit(self, evaluation: str, events: list[str], wc: dict[str, float]
                        ) -> dict[str, float]:
        """Eq. (2) with the given W_c: per category and 'total' over `events`."""
        out: dict[str, float] = defaultdict(float)
        for e in events:
            t = self.load_table(evaluation, e)
            ok = t[t.status == "ok"]
            part = ok.w_quality * ok.w_geographic * (1.0 - ok.nzcc) * ok.category.map(wc).fillna(0.0)
            for c, x in part.groupby(ok.category).sum().items():
                out[str(c)] += float(x)
        out["total"] = float(sum(v for k, v in out.items()))
        return dict(out)

    def window_counts(self, evaluation: str, events: list[str]) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for e in events:
            t = self.load_table(evaluation, e)
            ok = t[(t.status == "ok") & (t.weight > 0)]
            for c, n in ok.category.value_counts().items():
                counts[str(c)] += int(n)
        counts["total"] = int(sum(counts.values()))
        return dict(counts)

    def write_weighted_adjoint_sources(self, evaluation: str, event: str, wc: dict[str, float],
                                       data_dir: str, folder: str) -> None:
        """Adjoint sources of an earlier measurement recombined with the categorical weights `wc`
        (eq. 3), written like quantify_misfit's (all STATIONS, zeros where unmeasured)."""
        evaluation = evaluation.replace("/", "_")
        store = self.adjoint_store_file(evaluation, event)
        old = self.adjoint_parts_file(evaluation, event)
        if os.path.exists(store) or not os.path.exists(old):
            prepared = self.load_prepared(evaluation, event)
            try:
                adjoint, times = recombine(store, prepared, wc)
            except (OSError, AdjointStoreError) as e:
                raise FileNotFoundError(f"event {event}: adjoint store {store} unavailable ({e}); "
                                        "re-run the forward step of this iteration") from e
            # every measured station (zeros on its own axis where no window was kept), in the
            # order of the measurement's adjoint_times
            times.update({c: t for c, t in prepared.solver_times.items() if c not in times})
        else:       # written by an earlier version (full arrays per category and station)
            try:
                with open(old, "rb") as f:
                    by_category, times = pickle.load(f)
            except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
                raise FileNotFoundError(f"event {event}: adjoint parts {old} unavailable ({e}); "
                                        "re-run the forward step of this iteration") from e
            adjoint, _ = combine_adjoint(by_category, wc, times)
        m = EventMeasurement(pd.DataFrame(), 0.0, adjoint, times)
        self.write_adjoint_sources(m, data_dir, folder)

    # ------------------------------------------------------------------ SeisFlows contract
    def quantify_misfit(self, source_name: str | None = None, save_residuals: str | None = None,
                        export_residuals: str | None = None, save_adjsrcs: str | None = None,
                        iteration: int = 1, step_count: int = 0, syn_path: str | None = None,
                        stage: int = 1, step_key: str | None = None, **kwargs) -> EventMeasurement:
        """Measure one event and write its adjoint sources, residuals and table (module doc)."""
        from seisflows.tools.config import get_task_id
        event_name = source_name or self._source_names[get_task_id()]
        cwd = os.path.join(self.path.solver, event_name)
        syn_path = syn_path or os.path.join(cwd, "traces", "syn")
        obs_path = os.path.join(cwd, "traces", "obs")
        evaluation = (step_key or f"i{iteration:02d}s{step_count:02d}").replace("/", "_")
        m = self.measure(event_name, os.path.join(cwd, "DATA"), obs_path, syn_path, stage,
                         iteration, step_count)
        table = m.table
        out = self.measurement_file(evaluation, event_name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with atomic_open(out, "w") as f:
            table.to_csv(f, index=False, float_format="%.6g")
        with atomic_open(self.prepared_file(evaluation, event_name), "wb") as f:
            pickle.dump(m.prepared, f)
        write_adjoint_store(self.adjoint_store_file(evaluation, event_name), m.prepared,
                            m.adjoint_windows)
        if save_adjsrcs:
            self.write_adjoint_sources(m, os.path.join(cwd, "DATA"), save_adjsrcs)
        if save_residuals:
            ok = table[table.status == "ok"].misfit.to_numpy()
            os.makedirs(os.path.dirname(os.path.abspath(save_residuals)), exist_ok=True)
            atomic_write_text(save_residuals, "".join(f"{x:.12e}\n" for x in ok) or "0.0\n")
            if export_residuals:
                os.makedirs(export_residuals, exist_ok=True)
                atomic_write_text(os.path.join(export_residuals, os.path.basename(save_residuals)),
                                  open(save_residuals).read())
        return m

    @staticmethod
    def sum_residuals(residuals: np.ndarray) -> float:
        """Eq. (2): the residual files hold the weighted window misfits W_c W_es W_w (1 − NZCC)."""
        return float(np.sum(residuals))

    # ------------------------------------------------------------------ the work
    def measure(self, event_name: str, data_dir: str, obs_path: str, syn_path: str, stage: int,
                iteration: int = 0, step: int = 0) -> EventMeasurement:
        """Read the event's files and run the measurement chain; errors name the file/event."""
        cmt = os.path.join(data_dir, "CMTSOLUTION")
        event = event_from_file(cmt)
        stations = read_stations(os.path.join(data_dir, "STATIONS"))
        if not os.path.exists(obs_path) or (os.path.isdir(obs_path) and not os.listdir(obs_path)):
            raise FileNotFoundError(f"event {event_name}: no observed data in {obs_path}")
        syn = read_synthetic_data(syn_path, event.time)
        if not len(syn.stream):
            raise FileNotFoundError(f"event {event_name}: no readable synthetics in {syn_path} "
                                    f"({'; '.join(n.reason for n in syn.notes) or 'no files'})")
        cfg = Config(self.eara, stage)
        mis = read_misorientation_table(self.misorientation_file)
        path = self.observed_file(event_name, stage)
        want = observed_parameters(cfg, mis, event=event, stations=stations,
                                   inputs=file_digest([obs_path]))

        def prepare():
            obs = read_waveforms(obs_path, event.time, "observed")
            by_station: dict[str, obspy.Stream] = defaultdict(obspy.Stream)
            for tr in obs.stream:
                by_station[f"{tr.stats.network}.{tr.stats.station}"] += tr
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return prepare_event(event, stations, dict(by_station), cfg, path,
                                 inventory=obs.inventory, misorientation=mis,
                                 file_notes=obs.notes, parameters=want,
                                 workers=self.measure_workers,
                                 progress=progress_logger(f"prepare {event_name}"))
        return measure_event(event, stations, {}, syn.stream, cfg, misorientation=mis,
                             iteration=iteration, step=step, file_notes=syn.notes,
                             prepared=cached_prepared(path, want, prepare),
                             workers=self.measure_workers,
                             progress=progress_logger(f"measure {event_name}"))

    def observed_file(self, event: str, stage: int) -> str:
        """The event's prepared observed data for `stage` (measure.prepared)."""
        return os.path.join(self.path.scratch, "prepared", f"{event}.stage{stage}.h5")

    @staticmethod
    def write_adjoint_sources(m: EventMeasurement, data_dir: str, folder: str) -> None:
        """NET.STA.MX[NEZ].adj for every station of STATIONS (zeros where unmeasured, on the time
        axis of the event's synthetics) and DATA/STATIONS_ADJOINT listing them."""
        os.makedirs(folder, exist_ok=True)
        stations = read_stations(os.path.join(data_dir, "STATIONS"))
        if not m.adjoint_times:
            raise ValueError(f"no synthetics were read for any station of {data_dir}/STATIONS")
        any_axis = next(iter(m.adjoint_times.values()))
        for s in stations:
            times = m.adjoint_times.get(s.code, any_axis)
            adj = m.adjoint.get(s.code, np.zeros((3, times.size)))
            for i, c in enumerate("NEZ"):
                write_adjoint_source(folder, s.network, s.station, f"MX{c}", times, adj[i])
        write_stations(os.path.join(data_dir, "STATIONS_ADJOINT"), stations)

    def load_prepared(self, evaluation: str, event: str) -> PreparedEvent:
        """The frozen windows and weights of an earlier `quantify_misfit` (line searches)."""
        path = self.prepared_file(evaluation.replace("/", "_"), event)
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except (OSError, pickle.UnpicklingError) as e:
            raise FileNotFoundError(f"event {event}: frozen measurement {path} unavailable ({e}); "
                                    "re-run the forward step of this iteration") from e


def read_observed_dir(path: str, reference_time: obspy.UTCDateTime
                      ) -> tuple[obspy.Stream, obspy.Inventory | None]:
    """Observed data of one event: waveform files of any obspy format, SPECFEM ascii, or ASDF, with
    StationXML files beside them (io.waveforms.read_waveforms; files it cannot use are left out)."""
    data = read_waveforms(path, reference_time, "observed")
    return data.stream, data.inventory
