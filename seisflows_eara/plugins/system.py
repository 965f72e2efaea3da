"""System plugin `eara_slurm`: Slurm with bundled events, exit codes honoured and retries.

SeisFlows' system contract on top of the science-free core seisflows_eara.system.slurm:
`submit` (the master job), `run(funcs, single=False, **kwargs)` (every task id, or task 0 when
`single`), `check` and `setup`. What SeisFlows 2.3.1's own Slurm system lacks and this one adds:
several events per job (`events_per_job`, job steps of one allocation; or, with bundle_launch =
simultaneous_runs, one task per bundle with nproc x events_per_job ranks for ONE SPECFEM launch
with NUMBER_OF_SIMULTANEOUS_RUNS), per-task exit codes (a
failed task fails, whatever the job state), retries (`slurm_task_retries`) and a report by event
name, job states from squeue (no accounting database needed), concurrency limited by dependency
chains (`ntask_max` tasks at once) and its own runscript paths (the 2.3.1 wheel lacks `run`).
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile

from seisflows import ROOT_DIR, logger
from seisflows.system.slurm import Slurm
from seisflows.tools.config import pickle_function_list

from seisflows_eara import params
from seisflows_eara.plugins.base import EaraParameters
from seisflows_eara.system import slurm as core

#: SeisFlows' runscripts as shipped in the 2.3.1 wheel (Cluster points at `run`/`submit`, absent)
RUN_FUNCS = os.path.join(ROOT_DIR, "system", "runscripts", "run_funcs.py")
SUBMIT_WORKFLOW = os.path.join(ROOT_DIR, "system", "runscripts", "submit_workflow.py")

#: workflow step (seisflows_eara.schedule task names) -> job type: walltime and cores. Steps not
#: listed (the source line search) are single-core `serial` tasks.
STEP_TASK_TYPES = {"forward": "forward", "final_forward": "forward", "perturbed_forward": "forward",
                   "trial_forward": "forward", "source_adjoint": "adjoint", "kernel": "kernel"}
SOLVER_TYPES = frozenset({"forward", "adjoint", "kernel"})
#: single jobs of nproc ranks (MPI over the mesh slices): the structure direction, trial model and
#: model update of seisflows_eara.direction
PARALLEL_STEPS = frozenset({"direction"})


class EaraSlurm(EaraParameters, Slurm):
    _eara_component = "system"
    __doc__ = Slurm.__doc__ + params.docstring(
        "EARA Slurm System", "system",
        "A generic Slurm site: several events per job, task exit codes honoured, failed tasks\n"
        "retried and reported by event, job states read without an accounting database.\n"
        "`walltime` is the master job's (minutes), `ntask_max` the tasks running at once;\n"
        "`tasktime` is not used (per-type walltimes slurm_walltime_*).")

    #: tells the EARA workflow that a raising task is reported through its exit code
    honours_task_exit_codes = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._init_eara(kwargs)
        self._mpiexec_param = kwargs.get("mpiexec")   # what the solver reads (Slurm overwrites ours)

    # ------------------------------------------------------------------ configuration
    @property
    def site(self) -> core.SlurmSite:
        """The site: the preset of `slurm_site` with the non-null slurm_* values over it."""
        walltimes = {t: getattr(self, f"slurm_walltime_{t}") for t in ("forward", "adjoint",
                                                                       "kernel", "serial",
                                                                       "direction")}
        walltimes["master"] = float(self.walltime)
        environment = list(self.slurm_environment)
        for item in filter(None, (self.environs or "").split(",")):
            environment.append(f"export {item}")
        return core.site_from_values(
            self.slurm_site, partition=self.slurm_partition,
            master_partition=self.slurm_master_partition, account=self.slurm_account,
            cores_per_node=self.slurm_cores_per_node, walltime_minutes=walltimes,
            environment=environment, sbatch_options=list(self.slurm_sbatch_options))

    @property
    def tasks_per_job(self) -> int:
        """Tasks per Slurm job: events_per_job, or 1 when each task is already a bundle of events
        launched together (bundle_launch = simultaneous_runs)."""
        if self.eara["bundle_launch"] == "simultaneous_runs":
            return 1
        return int(self.eara["events_per_job"])

    def check(self) -> None:
        """EARA keys, then SeisFlows' basic checks; replaces Slurm.check (its partition table is
        empty in 2.3.1 and it asks for --parsable in a call this plugin does not make)."""
        self._check_eara()
        if not os.path.exists(self.path.par_file):
            raise params.ParameterError(f"parameter file {self.path.par_file} does not exist")
        if self.ntask < 1:
            raise params.ParameterError(f"parameter 'ntask' = {self.ntask}: must be >= 1")
        if not float(self.walltime) > 0:
            raise params.ParameterError(f"parameter 'walltime' = {self.walltime!r}: the master "
                                        "job's walltime in minutes, must be > 0")
        if self.nproc > 1 and not self._mpiexec_param:
            raise params.ParameterError(
                f"parameter 'mpiexec' is null but nproc = {self.nproc}: set the MPI launcher the "
                f"solver uses (site {self.slurm_site!r}: "
                f"'{core.PRESETS[self.slurm_site].get('mpiexec', 'srun')}')")
        for exe in ("sbatch", "squeue", "scancel"):
            if shutil.which(exe) is None:
                raise params.ParameterError(f"system 'eara_slurm': Slurm's `{exe}` is not on PATH "
                                            "of this machine")
        self.site.walltime("master")           # raises if a walltime is missing

    def _runner(self, work_dir: str) -> core.SlurmRunner:
        return core.SlurmRunner(
            self.site, work_dir, self.path.log_files, tasks_per_job=self.tasks_per_job,
            max_concurrent_jobs=max(1, int(self.ntask_max) // self.tasks_per_job),
            retries=int(self.slurm_task_retries), poll_seconds=float(self.slurm_poll_seconds),
            notify=logger.info)

    # ------------------------------------------------------------------ SeisFlows' contract
    def submit(self, workdir: str | None = None, parameter_file: str = "parameters.yaml") -> str:
        """sbatch the master job, which runs the workflow (check, setup, run); returns its id."""
        workdir = os.path.abspath(workdir or self.path.workdir)
        q = shlex.quote
        command = (f"{q(sys.executable)} {q(SUBMIT_WORKFLOW)} --workdir {q(workdir)} "
                   f"--parameter_file {q(parameter_file)}")
        os.makedirs(self.path.scratch, exist_ok=True)
        job_id = core.submit_master(self.site, os.path.join(self.path.scratch, "eara_master.sh"),
                                    label=self.title, command=command, output=self.path.output_log)
        logger.info(f"submitted the master job {job_id}; its log is {self.path.output_log}")
        return job_id

    def run(self, funcs, single: bool = False, **kwargs) -> None:
        """Run `funcs(**kwargs)` once per task id (0..ntask-1; only 0 when `single`) as bundled
        Slurm jobs; raises core.TaskFailureError naming the tasks (events) that still fail after
        `slurm_task_retries` retries."""
        step = getattr(funcs[0], "eara_step", None)
        if step in PARALLEL_STEPS:
            task_type = step                   # one job of nproc ranks (the direction step)
        elif single:
            task_type = "serial"
        elif step is not None:
            task_type = STEP_TASK_TYPES.get(step, "serial")
        else:
            task_type = "forward"              # SeisFlows' own per-event tasks run the solver
        ranks = (int(self.nproc) if task_type in SOLVER_TYPES | PARALLEL_STEPS else 1) * \
            int(getattr(funcs[0], "eara_ranks_factor", 1))       # bundled simultaneous runs
        ids = [0] if single else list(range(int(self.ntask)))
        names = dict(enumerate(getattr(funcs[0], "eara_task_names", None) or []))
        label = step or "_".join(f.__name__ for f in funcs)
        base = os.path.join(self.path.scratch, "eara_slurm")
        os.makedirs(base, exist_ok=True)
        call_dir = tempfile.mkdtemp(prefix=f"{label}.", dir=base)
        funcs_fid, kwargs_fid = pickle_function_list(funcs, path=call_dir, **kwargs)
        q = shlex.quote
        command = f"{q(sys.executable)} {q(RUN_FUNCS)} --funcs {q(funcs_fid)} --kwargs {q(kwargs_fid)}"
        logger.info(f"running {label} for {len(ids)} task(s) as {task_type} jobs of "
                    f"{self.tasks_per_job} task(s), {ranks} core(s) each")
        try:
            self._runner(call_dir).run(ids, command, task_type=task_type, ranks_per_task=ranks,
                                       label=label, names=names)
        except core.TaskFailureError as e:
            logger.critical(str(e))
            raise
        logger.info(f"{label}: all {len(ids)} task(s) finished")
