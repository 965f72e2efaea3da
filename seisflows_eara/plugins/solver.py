"""Solver plugin `eara_globe`: SPECFEM3D_GLOBE with model updates applied (SPEC §5-6).

Per event, in the event's working directory scratch/solver/<event>/ (set up by SeisFlows):

  import_model(dir)            GLL files proc*_reg1_<par>.bin -> DATA/GLL/, Par_file MODEL = GLL;
                               the mesher re-runs before the next simulation (SeisFlows 2.3.1 never
                               did this, so its GLOBE model updates were silently ignored, #175)
  forward_simulation(...)      SIMULATION_TYPE 1 -> OUTPUT_FILES/*.sem.ascii moved to `save_traces`
                               (synthetic_format = asdf: OUTPUT_FILES/synthetic.h5 + the
                               output_solver.txt its reader needs, io.specfem_asdf)
  adjoint_simulation(...)      SIMULATION_TYPE 3 with SEM/*.adj -> every proc*_reg?_*_kernel.bin
                               (TISO kernels and the pseudo-Hessian `hess`) moved to `save_kernels`
  source_adjoint_simulation()  SIMULATION_TYPE 2 -> OUTPUT_FILES/src_frechet.000001 to a file
  smooth(fields, σh, σv)       SPECFEM's xsmooth_sem on GLL fields, in the main solver directory
                               (smoothing_program = xsmooth_sem)

bundle_launch = simultaneous_runs: the workflow runs a bundle's events in threads of one task
(`for_event`) with a `gang` (seisflows_eara.system.gang); each solver launch waits for the others
and `launch_simultaneous` starts ONE SPECFEM run with NUMBER_OF_SIMULTANEOUS_RUNS = the events
waiting, from scratch/solver/_simultaneous_runs/: its DATA/Par_file (the first event's, with
NUMBER_OF_SIMULTANEOUS_RUNS set) is read by every run; run0001/, run0002/, ... hold links to the
events' directories' entries (SPECFEM prefixes DATA/CMTSOLUTION, STATIONS, SEM, OUTPUT_FILES and
LOCAL_PATH with them; their DATA/ has no Par_file, which SPECFEM would refuse). The mesher still
runs per event.

A failing binary raises SolverError naming the event, command and log (2.3.1 called sys.exit,
which kills the whole task without a trace of which event failed). SPECFEM builds that compile the
Par_file into the solver (v7.0.x) need one binary per simulation type: `specfem_solver_binaries`.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shlex
import shutil
import subprocess
import threading
from contextlib import contextmanager

import numpy as np

from seisflows import logger
from seisflows.solver.specfem3d_globe import Specfem3DGlobe
from seisflows.tools.specfem import getpar, setpar

from seisflows_eara import params
from seisflows_eara.io.atomic import atomic_write_text
from seisflows_eara.io.specfem_asdf import SOLVER_LOG, SYNTHETIC_FILE
from seisflows_eara.kernels import xsmooth_sem_command
from seisflows_eara.model.gll import GllFields, gll_filename, read_gll, write_fields
from seisflows_eara.plugins.base import EaraParameters
from seisflows_eara.plugins.compat import SolverCompat

GLL_DIR = os.path.join("DATA", "GLL")                 # SPECFEM3D_GLOBE PATHNAME_GLL_modeldir
MODEL_STAMP = os.path.join(GLL_DIR, "model_id.txt")   # which model DATA/GLL holds
MESH_STAMP = "meshed_model_id.txt"                     # in LOCAL_PATH: which model was meshed
FRECHET = os.path.join("OUTPUT_FILES", "src_frechet.000001")
SIMULTANEOUS_DIR = "_simultaneous_runs"               # launch directory, under scratch/solver

#: the event a thread works on (bundled events run in threads of one task)
_thread = threading.local()


class SolverError(RuntimeError):
    """A SPECFEM binary failed or left no output; the message names the event, command and log."""


class EaraGlobe(EaraParameters, SolverCompat, Specfem3DGlobe):
    _eara_component = "solver"
    __doc__ = Specfem3DGlobe.__doc__ + params.docstring(
        "EARA SPECFEM3D_GLOBE Solver", "solver",
        "One chunk of SPECFEM3D_GLOBE; writes GLL model updates and re-runs the mesher, collects\n"
        "kernels, the pseudo-Hessian and source Frechet derivatives (SPEC.md §5-6).")

    def __init__(self, materials: str = "anisotropic", density: bool = True, regions: str = "1",
                 **kwargs):
        super().__init__(materials=materials, density=density, regions=regions, **kwargs)
        self._init_eara(kwargs)
        # the model files EARA reads and writes (crust/mantle, SPEC §6)
        self.model_parameters = ["vpv", "vph", "vsv", "vsh", "eta", "rho"]
        # what EARA runs (summation, preconditioning and the CG are ours; smoothing falls back to
        # Python when xsmooth_sem is absent)
        self._required_binaries = sorted({self.specfem_mesher_binary, *self.specfem_solver_binaries}
                                         | ({self.specfem_smooth_binary}
                                            if self.smoothing_program == "xsmooth_sem" else set()))
        #: set by the workflow while a bundle's events run together (bundle_launch)
        self.gang = None

    # ------------------------------------------------------------------ which event
    @property
    def source_name(self) -> str:
        """The event of this thread (bundled events) or of this task (SEISFLOWS_TASKID)."""
        event = getattr(_thread, "event", None)
        return event if event is not None else super().source_name

    @contextmanager
    def for_event(self, event: str):
        """Within the block, this thread works on `event` (source_name, cwd)."""
        before = getattr(_thread, "event", None)
        _thread.event = event
        try:
            yield
        finally:
            _thread.event = before

    def check(self) -> None:
        self._check_eara()
        super().check()
        if self.synthetic_format == "asdf":
            self._check_asdf()

    def _check_asdf(self) -> None:
        """synthetic_format = asdf needs a forward binary built with ASDF (configure --with-asdf:
        write_output_ASDF.f90, which names OUTPUT_FILES/synthetic.h5, is compiled in; otherwise
        SPECFEM links a write_asdf stub that writes nothing) and WRITE_SEISMOGRAMS_BY_MASTER off
        (SPECFEM refuses ASDF with it)."""
        import mmap
        exe = os.path.join(self.path.specfem_bin, self._binaries[1])
        with open(exe, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if m.find(SYNTHETIC_FILE.encode()) < 0:
                raise params.ParameterError(
                    f"parameter 'synthetic_format' = 'asdf': {exe} was built without ASDF "
                    f"support (no {SYNTHETIC_FILE} in it); rebuild SPECFEM with ./configure "
                    "--with-asdf ASDF_LIBS=... or set synthetic_format: ascii")
        par = os.path.join(self.path.specfem_data, "Par_file")
        try:
            by_master = getpar("WRITE_SEISMOGRAMS_BY_MASTER", par)[1].strip().lower()
        except KeyError:        # a Par_file without the key: SPECFEM's default is .false.
            by_master = ".false."
        if by_master in (".true.", "true"):
            raise params.ParameterError(
                f"parameter 'synthetic_format' = 'asdf': {par} sets WRITE_SEISMOGRAMS_BY_MASTER = "
                ".true., which SPECFEM refuses with OUTPUT_SEISMOS_ASDF")

    @property
    def _binaries(self) -> dict[int, str]:
        return dict(zip((1, 3, 2), self.specfem_solver_binaries))

    # ------------------------------------------------------------------ model
    def import_model(self, path_model: str) -> None:
        """Install the GLL model in `path_model` as DATA/GLL of this event's directory, unless it
        is already there; the mesher re-runs before the next simulation when the model changed."""
        files = sorted(glob.glob(os.path.join(path_model, "proc*_reg1_*.bin")))
        if not files:
            raise SolverError(f"event {self.source_name}: no GLL model files proc*_reg1_*.bin in "
                              f"{path_model}")
        stamp = _model_id(files)
        gll = os.path.join(self.cwd, GLL_DIR)
        current = os.path.join(self.cwd, MODEL_STAMP)
        if os.path.exists(current) and open(current).read() == stamp:
            return
        os.makedirs(gll, exist_ok=True)
        for f in files:
            tmp = os.path.join(gll, f".{os.path.basename(f)}.tmp")
            shutil.copyfile(f, tmp)
            os.replace(tmp, os.path.join(gll, os.path.basename(f)))
        atomic_write_text(current, stamp)
        if self.par_value("MODEL").lower() != "gll":
            setpar(key="MODEL", val="GLL", file=os.path.join(self.cwd, "DATA", "Par_file"))

    def _mesh_if_needed(self) -> None:
        """Run the mesher when the event's DATABASES hold no mesh of the current model."""
        local = os.path.join(self.cwd, self.model_databases)
        want = open(os.path.join(self.cwd, MODEL_STAMP)).read() \
            if os.path.exists(os.path.join(self.cwd, MODEL_STAMP)) else "built-in"
        have = os.path.join(local, MESH_STAMP)
        if os.path.exists(have) and open(have).read() == want:
            return
        os.makedirs(local, exist_ok=True)
        for old in glob.glob(os.path.join(local, "proc*_solver_data.bin")):
            os.remove(old)
        self._run(self.specfem_mesher_binary, "mesher.log")
        if not glob.glob(os.path.join(local, "proc*_solver_data.bin")):   # SPECFEM's STOP exits 0
            raise SolverError(f"event {self.source_name}: {self.specfem_mesher_binary} wrote no "
                              f"mesh ({local}/proc*_solver_data.bin); see "
                              f"{os.path.join(self.cwd, 'OUTPUT_FILES', 'output_mesher.txt')}")
        atomic_write_text(have, want)

    # ------------------------------------------------------------------ simulations
    def forward_simulation(self, executables=None, save_traces: str | bool = False,
                           export_traces: str | bool = False, save_forward: bool = True,
                           **kwargs) -> None:
        """SIMULATION_TYPE 1; the synthetics go to `save_traces` (replacing what was there): the
        *.sem.ascii files, or with synthetic_format = asdf SPECFEM's synthetic.h5 and a copy of
        output_solver.txt (its start time −t0, io.specfem_asdf)."""
        asdf = self.synthetic_format == "asdf"
        formats = dict(OUTPUT_SEISMOS_ASDF=f".{str(asdf).lower()}.",
                       OUTPUT_SEISMOS_ASCII_TEXT=f".{str(not asdf).lower()}.")
        try:
            self.par_value("OUTPUT_SEISMOS_ASDF")
        except KeyError:        # a Par_file older than ASDF output: ascii as it says
            if asdf:
                raise SolverError(f"event {self.source_name}: synthetic_format = asdf but the "
                                  "Par_file has no OUTPUT_SEISMOS_ASDF (SPECFEM older than 7.0?)")
            formats = {}
        self._set_par(SIMULATION_TYPE="1", SAVE_FORWARD=f".{str(bool(save_forward)).lower()}.",
                      **formats)
        self._mesh_if_needed()
        out = os.path.join(self.cwd, "OUTPUT_FILES")
        try:
            self._run_and_collect(self._binaries[1], "forward.log",
                                  os.path.join(out, SYNTHETIC_FILE if asdf else "*.sem.ascii"),
                                  save_traces, export_traces)
        except SolverError as e:
            if asdf:            # a build without ASDF links a write_asdf that writes nothing
                raise SolverError(f"{e} (synthetic_format = asdf: is SPECFEM built with "
                                  "--with-asdf?)") from e
            raise
        for dest in (export_traces, save_traces) if asdf else ():
            if dest:
                shutil.copy(os.path.join(out, SOLVER_LOG), os.path.join(dest, SOLVER_LOG))

    def adjoint_simulation(self, executables=None, save_kernels: str | bool = False,
                           export_kernels: str | bool = False,
                           adjoint_sources: str | None = None) -> None:
        """SIMULATION_TYPE 3 with the adjoint sources in `adjoint_sources` (default traces/adj);
        all kernel files of the run, the Hessian included, are moved to `save_kernels`. The saved
        forward wavefields stay for a repeated kernel run: the workflow removes them once this step
        is recorded done (`keep_wavefields`, saved_wavefield_files); SeisFlows' `prune_scratch` is
        not used here (2.3.1's pattern names no SPECFEM3D_GLOBE file, and removing them before the
        step is recorded would break a resumed kernel run)."""
        self._prepare_adjoint(adjoint_sources)
        self._set_par(SIMULATION_TYPE="3", SAVE_FORWARD=".false.", ANISOTROPIC_KL=".true.",
                      SAVE_TRANSVERSE_KL_ONLY=".true.", APPROXIMATE_HESS_KL=".true.")
        local = os.path.join(self.cwd, self.model_databases)
        self._run_and_collect(self._binaries[3], "kernel.log",
                              os.path.join(local, "proc*_reg?_*_kernel.bin"), save_kernels,
                              export_kernels)

    def source_adjoint_simulation(self, save_frechet: str,
                                  adjoint_sources: str | None = None) -> None:
        """SIMULATION_TYPE 2: source Fréchet derivatives only (no wavefield reconstruction, so no
        saved forward needed); OUTPUT_FILES/src_frechet.000001 is moved to `save_frechet`."""
        self._prepare_adjoint(adjoint_sources)
        self._set_par(SIMULATION_TYPE="2", SAVE_FORWARD=".false.")
        out = os.path.join(self.cwd, FRECHET)
        if os.path.exists(out):
            os.remove(out)
        self._run(self._binaries[2], "source_adjoint.log")
        if not os.path.exists(out):
            raise SolverError(f"event {self.source_name}: the source-adjoint run wrote no "
                              f"{FRECHET}; see {os.path.join(self.cwd, 'source_adjoint.log')}")
        os.makedirs(os.path.dirname(os.path.abspath(save_frechet)), exist_ok=True)
        shutil.move(out, save_frechet)

    def saved_wavefield_files(self) -> list[str]:
        """What a SAVE_FORWARD run left in this event's directory for its kernel run (SPECFEM3D_GLOBE
        names): LOCAL_TMP_PATH/proc*_save_forward_arrays.bin (last frame, save_forward_arrays.f90),
        proc*_save_frame_at*.bin (UNDO_ATTENUATION snapshots), save_forward_arrays.bp and
        save_frame_at*.bp (ADIOS), LOCAL_PATH/proc*_reg?_absorb_*.bin (Stacey boundary buffers,
        prepare_timerun.f90). The workflow removes them once the kernel step is recorded done."""
        local = os.path.join(self.cwd, self.model_databases)
        try:
            tmp = os.path.join(self.cwd, self.par_value("LOCAL_TMP_PATH").strip() or
                               self.model_databases)
        except (KeyError, ValueError, OSError):
            tmp = local
        found = set()
        for folder in {local, tmp}:
            for pattern in ("proc*_save_forward_arrays.bin", "proc*_save_frame_at*.bin",
                            "save_forward_arrays.bp", "save_frame_at*.bp", "proc*_reg?_absorb_*.bin"):
                found.update(glob.glob(os.path.join(folder, pattern)))
        return sorted(found)

    # ------------------------------------------------------------------ helpers
    def _run_and_collect(self, binary: str, log: str, pattern: str, save: str | bool,
                         export: str | bool) -> None:
        """Remove old outputs matching `pattern`, run, then copy them to `export` and move them
        to `save` (a fresh folder); no output at all is an error naming the event and log."""
        for old in glob.glob(pattern):
            os.remove(old)
        self._run(binary, log)
        files = glob.glob(pattern)
        if not files:
            raise SolverError(f"event {self.source_name}: {binary} wrote no {pattern}; see "
                              f"{os.path.join(self.cwd, log)}")
        if export:
            os.makedirs(export, exist_ok=True)
            for f in files:
                shutil.copy(f, export)
        if save:
            _fresh_dir(save)
            for f in files:
                shutil.move(f, os.path.join(save, os.path.basename(f)))

    def _prepare_adjoint(self, adjoint_sources: str | None) -> None:
        """SEM -> the folder of adjoint sources; STATIONS_ADJOINT must exist."""
        src = os.path.abspath(adjoint_sources or os.path.join(self.cwd, "traces", "adj"))
        if not glob.glob(os.path.join(src, "*.adj")):
            raise SolverError(f"event {self.source_name}: no adjoint sources *.adj in {src}")
        sem = os.path.join(self.cwd, "SEM")
        if os.path.islink(sem) or os.path.isfile(sem):
            os.remove(sem)
        elif os.path.isdir(sem):
            shutil.rmtree(sem)
        os.symlink(src, sem)
        if not os.path.exists(os.path.join(self.cwd, "DATA", "STATIONS_ADJOINT")):
            raise SolverError(f"event {self.source_name}: DATA/STATIONS_ADJOINT missing in "
                              f"{self.cwd} (the preprocess writes it with the adjoint sources)")

    def _set_par(self, **values: str) -> None:
        par = os.path.join(self.cwd, "DATA", "Par_file")
        for key, val in values.items():
            setpar(key=key, val=val, file=par)

    def _run(self, binary: str, log: str, args: list[str] | None = None,
             cwd: str | None = None) -> None:
        """Run bin/<binary> [args] (under `mpiexec -n nproc` when set) in the event's directory
        (or `cwd`); a solver binary of bundled events waits for the gang's common launch."""
        if self.gang is not None and cwd is None and binary in self.specfem_solver_binaries:
            self.gang.run(self.source_name, binary, (self.cwd, log))
            return
        if cwd is None:
            self._ensure_single_run()
        self._launch(binary, log, args, cwd or self.cwd, f"event {self.source_name}"
                     if cwd is None else os.path.basename(cwd), self.nproc)

    def _launch(self, binary: str, log: str, args: list[str] | None, cwd: str, who: str,
                ranks: int, exe_dir: str | None = None) -> None:
        exe = os.path.join(exe_dir, "bin", binary) if exe_dir else os.path.join("bin", binary)
        if not os.path.exists(os.path.join(cwd, exe)):
            raise SolverError(f"{who}: executable {exe} not found in "
                              f"{cwd} (copied from path_specfem_bin at setup)")
        cmd = " ".join([exe if exe_dir else f"./{exe}", *(shlex.quote(a) for a in args or [])])
        if self._mpiexec:
            cmd = f"{self._mpiexec} -n {ranks} {cmd}"
        logger.debug(f"{who}: {cmd}")
        with open(os.path.join(cwd, log), "w") as f:
            rc = subprocess.run(cmd, shell=True, cwd=cwd, stdout=f, stderr=subprocess.STDOUT
                                ).returncode
        if rc != 0:
            with open(os.path.join(cwd, log)) as f:
                tail = "".join(f.readlines()[-5:])
            raise SolverError(f"{who}: `{cmd}` exited with {rc}; log "
                              f"{os.path.join(cwd, log)} ends with:\n{tail}")

    def _ensure_single_run(self) -> None:
        """The event's Par_file says NUMBER_OF_SIMULTANEOUS_RUNS = 1 (a simultaneous launch
        interrupted before it restored the value must not leak into a single run)."""
        if not os.path.exists(os.path.join(self.cwd, "DATA", "Par_file")):
            return
        try:
            value = self.par_value("NUMBER_OF_SIMULTANEOUS_RUNS").strip()
        except (KeyError, ValueError):      # a Par_file without the key: one run
            return
        if value != "1":
            self._set_par(NUMBER_OF_SIMULTANEOUS_RUNS="1")

    def launch_simultaneous(self, binary: str, members: dict[str, tuple[str, str]]
                            ) -> dict[str, Exception | None]:
        """ONE run of `binary` for the events of `members` ({event: (directory, log)}, in order)
        with NUMBER_OF_SIMULTANEOUS_RUNS = len(members) and nproc × that many MPI ranks; each
        event's log receives a copy of the run's. Returns {event: SolverError or None}."""
        events = list(members)
        if len(events) == 1:
            cwd, log = members[events[0]]
            try:
                with self.for_event(events[0]):
                    self._ensure_single_run()
                self._launch(binary, log, None, cwd, f"event {events[0]}", self.nproc)
            except SolverError as e:
                return {events[0]: e}
            return {events[0]: None}
        launch = os.path.join(self.path.scratch, SIMULTANEOUS_DIR)
        _fresh_dir(launch)
        for k, event in enumerate(events, 1):
            _link_run_dir(os.path.abspath(members[event][0]), os.path.join(launch, f"run{k:04d}"))
        # SPECFEM (v7.0.x) reads DATA/Par_file of the launch directory for every run and refuses
        # a run0001/DATA/Par_file beside it: the runs' DATA hold everything but the Par_file
        os.makedirs(os.path.join(launch, "DATA"))
        par = os.path.join(launch, "DATA", "Par_file")
        shutil.copyfile(os.path.join(members[events[0]][0], "DATA", "Par_file"), par)
        setpar(key="NUMBER_OF_SIMULTANEOUS_RUNS", val=str(len(events)), file=par)
        try:        # every event has its own mesh
            setpar(key="BROADCAST_SAME_MESH_AND_MODEL", val=".false.", file=par)
        except KeyError:
            pass
        who = f"events {', '.join(events)} (one run, NUMBER_OF_SIMULTANEOUS_RUNS = {len(events)})"
        log = members[events[0]][1]
        error = None
        try:
            self._launch(binary, log, None, launch, who, self.nproc * len(events),
                         exe_dir=os.path.abspath(members[events[0]][0]))
        except SolverError as e:
            error = e
        for event in events:
            cwd, own = members[event]
            if os.path.exists(os.path.join(launch, log)):
                shutil.copyfile(os.path.join(launch, log), os.path.join(cwd, own))
        return {event: error for event in events}

    # ------------------------------------------------------------------ SPECFEM's smoothing
    def smooth(self, fields: dict[str, np.ndarray], sigma_h_km: float, sigma_v_km: float,
               sizes: list[int]) -> dict[str, np.ndarray]:
        """SPECFEM's own Gaussian smoothing (`xsmooth_sem SIGMA_H SIGMA_V NAME_kernel IN/ OUT/`,
        crust/mantle region) of GLL fields (concatenated over processes of `sizes` points), run
        in the main solver directory, whose DATA/Par_file and mesh databases it reads. Used when
        smoothing_program = xsmooth_sem; seisflows_eara.kernels.smoothing is the same operator
        in Python (tests/test_kernels.py compares them)."""
        run = self.path.mainsolver
        base = os.path.join(run, "SMOOTH")
        inp, out = os.path.join(base, "INPUT"), os.path.join(base, "OUTPUT")
        for d in (inp, out):
            _fresh_dir(d)
        write_fields(inp, GllFields({k: np.asarray(v, np.float32) for k, v in fields.items()},
                                    list(sizes), 1), kernel=True)
        self.smooth_files(list(fields), sigma_h_km, sigma_v_km, inp, out)
        smoothed = {}
        for name in fields:
            parts = [read_gll(os.path.join(out, gll_filename(i, 1, f"{name}_kernel_smooth")))
                     for i in range(len(sizes))]
            smoothed[name] = np.concatenate(parts).astype(np.float64)
        return smoothed

    def smooth_files(self, names: list[str], sigma_h_km: float, sigma_v_km: float,
                     input_dir: str, output_dir: str) -> None:
        """xsmooth_sem (nproc MPI ranks, one per slice, from the main solver directory whose
        DATA/Par_file and mesh databases it reads) on per-slice files
        input_dir/proc*_reg1_<name>_kernel.bin -> output_dir/proc*_reg1_<name>_kernel_smooth.bin,
        one run per name; what the direction job runs between its phases (SPEC §6 step 4)."""
        run = self.path.mainsolver
        os.makedirs(output_dir, exist_ok=True)
        logs = os.path.join(os.path.abspath(output_dir), "logs")
        os.makedirs(logs, exist_ok=True)
        def rel(path: str) -> str:        # inside the run folder: as SPECFEM's examples write it
            path = os.path.abspath(path)
            inside = os.path.commonpath([path, os.path.abspath(run)]) == os.path.abspath(run)
            return os.path.join(os.path.relpath(path, run) if inside else path, "")
        for name in names:
            args = xsmooth_sem_command(sigma_h_km, sigma_v_km, f"{name}_kernel", rel(input_dir),
                                       rel(output_dir))[1:]
            log = os.path.join(logs, f"{name}.log")
            self._run(self.specfem_smooth_binary, log, args, cwd=run)
            nslices = len(glob.glob(os.path.join(input_dir, f"proc*_reg1_{name}_kernel.bin")))
            for i in range(nslices):
                f = os.path.join(output_dir, gll_filename(i, 1, f"{name}_kernel_smooth"))
                if not os.path.exists(f):
                    raise SolverError(f"{self.specfem_smooth_binary} wrote no {f}; see {log}")

    def par_value(self, key: str) -> str:
        """A value of the event's Par_file (e.g. RECORD_LENGTH_IN_MINUTES)."""
        return getpar(key=key, file=os.path.join(self.cwd, "DATA", "Par_file"))[1]


def _model_id(files: list[str]) -> str:
    """Identity of a model: the names and content digests of its files."""
    h = hashlib.sha1()
    for f in files:
        h.update(os.path.basename(f).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def _link_run_dir(event_dir: str, run_dir: str) -> None:
    """run000k/ of a simultaneous launch: links to every entry of the event's directory (outputs
    land in the event's own OUTPUT_FILES, LOCAL_PATH, ...), DATA/ a folder of links to the event's
    DATA entries except the Par_file."""
    os.makedirs(os.path.join(run_dir, "DATA"))
    for name in os.listdir(event_dir):
        if name != "DATA":
            os.symlink(os.path.join(event_dir, name), os.path.join(run_dir, name))
    for name in os.listdir(os.path.join(event_dir, "DATA")):
        if name != "Par_file":
            os.symlink(os.path.join(event_dir, "DATA", name), os.path.join(run_dir, "DATA", name))


def _fresh_dir(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
