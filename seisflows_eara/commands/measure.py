"""`seisflows-eara measure`: the EARA measurement chain on one event, outside SeisFlows.

Writes DIR/measurements.csv (columns: docs/DEVELOPING.md and README), the same table with the
event in DIR/measurements.h5 (ASDF auxiliary data, seisflows_eara.io.asdf_table), adjoint sources
DIR/SEM/NET.STA.MX[NEZ].adj in SPECFEM3D_GLOBE's format with DIR/SEM/STATIONS_ADJOINT, their
provenance DIR/adjoint_provenance.csv (the observed NET.STA.LOC.CHA each was measured on), and prints
a one-line summary. A bad data file never stops the event (rows name it); only an unreadable event
file, STATIONS or parameter file does (exit 2). `--observed PREPARED.h5` (a file written by
`seisflows-eara prepare`, measure.prepared) gives the same table without redoing the observed
side; a file prepared with other processing parameters is refused (exit 2).

`seisflows-eara prepare`: the same inputs (synthetics not needed), writes the prepared observed
data of the event and stage to one ASDF file (--output FILE)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import defaultdict


from seisflows_eara import params
from seisflows_eara.cli import COMMANDS
from obspy import Stream

from seisflows_eara.io.asdf_table import write_table_asdf
from seisflows_eara.io.atomic import atomic_open
from seisflows_eara.io.specfem_traces import write_adjoint_source
from seisflows_eara.io.waveforms import read_inventory, read_synthetic_data, read_waveforms
from seisflows_eara.io.stations import read_stations, write_stations
from seisflows_eara.measure import (Config, event_from_file, measure_event, observed_parameters,
                                    prepare_event, progress_logger, read_prepared)
from seisflows_eara.measure.prepared import is_prepared
from seisflows_eara.processing import read_misorientation_table


def _config(config: str, stage: int) -> dict:
    values = params.load_parameters(config)
    nstage = params.stage_count(values)
    if not 1 <= stage <= nstage:
        raise params.ParameterError(f"--stage {stage}: the schedule in {config} has stages 1..{nstage}")
    return values


def _observed(observed: str, stationxml: str | None, event) -> tuple:
    """Raw observed data by NET.STA, the inventory, and the reader's notes."""
    obs = read_waveforms(observed, event.time, "observed")
    inv = read_inventory(stationxml)
    if obs.inventory is not None:           # StationXML found among the observed files
        inv = obs.inventory if inv is None else inv + obs.inventory
    by_station: dict[str, Stream] = defaultdict(Stream)
    for tr in obs.stream:
        by_station[f"{tr.stats.network}.{tr.stats.station}"] += tr
    return dict(by_station), inv, obs.notes


def run_prepare(config: str, cmtsolution: str, stations: str, observed: str, stage: int,
                output: str, stationxml: str | None = None, workers: int | None = None) -> dict:
    """Prepared observed data of one event and stage -> the ASDF file `output` (`workers`:
    default measure_workers of the parameter file)."""
    values = _config(config, stage)
    workers = values["measure_workers"] if workers is None else workers
    event = event_from_file(cmtsolution)
    sta = read_stations(stations)
    by_station, inv, notes = _observed(observed, stationxml, event)
    mis = read_misorientation_table(values["misorientation_file"])
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    p = prepare_event(event, sta, by_station, Config(values, stage), output, inventory=inv,
                      misorientation=mis, file_notes=notes, workers=workers,
                      progress=progress_logger(f"prepare {event.name}"))
    return dict(event=event.name, units=len(p.units),
                rejected=sum(bool(u.error) for u in p.units), digest=p.digest)


def run_measure(config: str, cmtsolution: str, stations: str, observed: str, synthetics: str,
                stage: int, output: str, stationxml: str | None = None,
                workers: int | None = None) -> dict:
    """Measure one event (module doc); `workers` (default: measure_workers of the parameter
    file) processes measuring stations in parallel, same files."""
    values = _config(config, stage)
    workers = values["measure_workers"] if workers is None else workers
    event = event_from_file(cmtsolution)
    sta = read_stations(stations)
    cfg = Config(values, stage)
    mis = read_misorientation_table(values["misorientation_file"])
    syn = read_synthetic_data(synthetics, event.time)
    progress = progress_logger(f"measure {event.name}")
    if is_prepared(observed):
        prep = read_prepared(observed, observed_parameters(cfg, mis, event=event, stations=sta))
        m = measure_event(event, sta, {}, syn.stream, cfg, misorientation=mis,
                          file_notes=syn.notes, prepared=prep, progress=progress,
                          workers=workers)
    else:
        by_station, inv, notes = _observed(observed, stationxml, event)
        m = measure_event(event, sta, by_station, syn.stream, cfg, inventory=inv,
                          misorientation=mis, file_notes=notes + syn.notes, progress=progress,
                          workers=workers)
    os.makedirs(os.path.join(output, "SEM"), exist_ok=True)
    m.table.to_csv(os.path.join(output, "measurements.csv"), index=False, float_format="%.6g")
    write_table_asdf(os.path.join(output, "measurements.h5"), m.table, event.name, stage, m.misfit,
                     cmtsolution)
    written = []
    for s in sta:
        if s.code in m.adjoint:
            for i, c in enumerate("NEZ"):
                write_adjoint_source(os.path.join(output, "SEM"), s.network, s.station, f"MX{c}",
                                     m.adjoint_times[s.code], m.adjoint[s.code][i])
            written.append(s)
    write_stations(os.path.join(output, "SEM", "STATIONS_ADJOINT"), written)
    with atomic_open(os.path.join(output, "adjoint_provenance.csv"), "w") as f:
        f.write("station,observed_channels\n")
        f.writelines(f"{code},{' '.join(ids)}\n" for code, ids in sorted(m.provenance.items()))
    ok = m.table[m.table.status == "ok"]
    return dict(event=event.name, kept=len(ok), rejected=int((m.table.status == "rejected").sum()),
                misfit=m.misfit, stations=len(written))


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="parameters.yaml")
    p.add_argument("--cmtsolution", required=True, help="CMTSOLUTION (or QuakeML) of the event")
    p.add_argument("--stations", required=True, help="SPECFEM STATIONS file")
    p.add_argument("--observed", required=True,
                   help="observed data: ASDF file, waveform file or directory (any obspy format), "
                   "or a file written by `seisflows-eara prepare`")
    p.add_argument("--stationxml", help="StationXML file or directory (StationXML files among the "
                   "observed files and in ASDF are read too); data without a response are "
                   "measured only with observed_displacement: true (README, Observed data)")
    p.add_argument("--synthetics", required=True,
                   help="synthetics: directory of *.sem.ascii, of SPECFEM's synthetic.h5 + "
                   "output_solver.txt, or of files in any obspy format, ASDF or one waveform file")
    p.add_argument("--stage", type=int, required=True, help="stage number (selects the bands)")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--workers", type=int, default=None,
                   help="processes working on stations in parallel (0: every core of the "
                   "allocation; default: measure_workers of --config); the files are the same")


def _log_progress() -> None:
    """Progress lines (measure.progress) on stderr unless logging is configured already."""
    log = logging.getLogger("seisflows_eara")
    if not log.handlers and not logging.getLogger().handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(h)
        log.setLevel(logging.INFO)


def _call(a: argparse.Namespace, work, summary) -> int:
    """Run `work()` with progress on stderr; bad input -> the error and exit 2, else
    `summary(result, seconds)` -> the output line and exit 0."""
    _log_progress()
    t = time.perf_counter()
    try:
        r = work()
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{summary(r, time.perf_counter() - t)} -> {a.output}")
    return 0


def _run(a: argparse.Namespace) -> int:
    return _call(a, lambda: run_measure(a.config, a.cmtsolution, a.stations, a.observed,
                                        a.synthetics, a.stage, a.output, a.stationxml,
                                        a.workers),
                 lambda r, s: f"{r['event']}: {r['kept']} windows kept, {r['rejected']} rejected, "
                 f"{r['stations']} stations with adjoint sources, total misfit "
                 f"{r['misfit']:.6g} ({s:.1f} s)")


def _prepare_args(p: argparse.ArgumentParser) -> None:
    _args(p)
    for a in p._actions:
        if a.dest == "synthetics":
            a.required, a.help = False, "not used (accepted so measure's inputs can be reused)"
        if a.dest == "output":
            a.help = "the prepared ASDF file to write (e.g. EVENT.prepared.h5)"


def _prepare_run(a: argparse.Namespace) -> int:
    return _call(a, lambda: run_prepare(a.config, a.cmtsolution, a.stations, a.observed, a.stage,
                                        a.output, a.stationxml, a.workers),
                 lambda r, s: f"{r['event']}: {r['units']} channel sets prepared ({r['rejected']} "
                 f"rejected), parameters digest {r['digest'][:12]} ({s:.1f} s)")


COMMANDS.append(("prepare", "prepare one event's observed data once per stage (ASDF file)",
                 _prepare_args, _prepare_run))
COMMANDS.append(("measure", "measure one event: windows, NZCC misfit, weights, adjoint sources",
                 _args, _run))
