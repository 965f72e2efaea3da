"""Slurm job handling: sites, bundled batch scripts, job states without accounting, per-task exit
codes and retries (SPEC §8: several events per Slurm job; a run resumes after any job failure).

Nothing here knows about seismology or SeisFlows: a *task* is an integer id that runs one shell
command (with ``SEISFLOWS_TASKID`` set to the id); the caller names the tasks for the report.

How :meth:`SlurmRunner.run` works
  1. Bundles: the task ids are split into groups of ``tasks_per_job``; each group is ONE sbatch job
     whose allocation holds all its tasks (``ranks_per_task`` cores each, on whole nodes of their
     own when the site gives ``cores_per_node``). The batch script starts every task in the
     background with ``SEISFLOWS_TASKID`` and ``EARA_TASK_OFFSET`` (the first rank of the task's
     slot in the allocation, for launchers such as TACC's ``ibrun -o``) exported, so each task's MPI
     launches (``srun``) are job steps of that one allocation.
  2. Exit codes: each task writes its shell exit status to ``<run>/status/<id>.try<k>.rc`` (written
     to a temporary name, then renamed: a reader never sees half a file). These files, not the job
     state, decide success: SeisFlows 2.3.1's cluster systems ignore task exit codes.
  3. Job states come from ``squeue --states=all``, which the controller answers without an
     accounting database (no slurmdbd/sacct needed). A job is finished when its state is terminal or
     when it has left the queue (after MinJobAge); a task without an exit-code file then failed
     (killed, timed out, node failure), reported with the job's last known state.
  4. Concurrency: at most ``max_concurrent_jobs`` jobs run at once through dependency chains: job j
     starts ``afterany`` job j − K, so a failed job never blocks the chain.
  5. Retries: failed tasks are bundled again and resubmitted up to ``retries`` times; what still
     fails raises :class:`TaskFailureError`, which names every task, its exit code or job state,
     and its log.
"""
from __future__ import annotations

import math
import os
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from seisflows_eara.io.atomic import atomic_write_text

#: task types with their own walltime: solver runs (forward, adjoint = source derivatives,
#: kernel), single-process tasks (serial), the slice-parallel structure direction (direction)
#: and the master job that runs the workflow
TASK_TYPES = ("forward", "adjoint", "kernel", "serial", "direction", "master")

#: Slurm job states after which a job runs no more (squeue/scontrol names)
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
    "DEADLINE", "PREEMPTED", "SPECIAL_EXIT", "REVOKED"})
#: reasons that keep a pending job pending forever: it is cancelled and its tasks count as failed
HOPELESS_REASONS = frozenset({"DependencyNeverSatisfied"})
#: consecutive failed `squeue` calls tolerated (controller restarts, timeouts) before giving up
QUERY_FAILURES_ALLOWED = 20

#: site presets: values used where parameters.yaml leaves a slurm_* key null. `mpiexec` is the
#: launcher to put in parameters.yaml (the solver reads it) so bundled tasks share one allocation.
PRESETS: dict[str, dict[str, Any]] = {
    # any Slurm cluster: default partition, Slurm places the tasks, srun steps of exactly the
    # requested cores so that the bundled events run side by side
    "generic": {"mpiexec": "srun --exact"},
    # TACC Stampede2 SKX nodes (48 cores, partition skx-normal), where EARA2024 ran (paper §2.2);
    # TACC launches MPI with ibrun, whose -o offsets a bundled event into the allocation
    "stampede2": {"partition": "skx-normal", "master_partition": "skx-normal",
                  "cores_per_node": 48, "mpiexec": "ibrun -o $EARA_TASK_OFFSET"},
}


class SlurmError(RuntimeError):
    """sbatch/squeue/scancel failed; the message names the command, script and Slurm's answer."""


@dataclass(frozen=True)
class TaskFailure:
    """One task that did not succeed in its last attempt."""
    task_id: int
    name: str
    attempts: int
    exit_code: int | None      # None: the task never wrote its exit code
    job_id: str
    job_state: str
    log: str

    def describe(self) -> str:
        why = (f"exit code {self.exit_code}" if self.exit_code is not None
               else f"no exit code (job {self.job_id} {self.job_state})")
        return f"{self.name}: {why} after {self.attempts} attempt(s); log {self.log}"


class TaskFailureError(RuntimeError):
    """Tasks still failing after every retry; `failures` lists them (name, exit code, log)."""

    def __init__(self, label: str, failures: Sequence[TaskFailure], total: int):
        self.failures = list(failures)
        lines = "\n  ".join(f.describe() for f in self.failures)
        super().__init__(f"{label}: {len(self.failures)} of {total} task(s) failed:\n  {lines}\n"
                         "Tasks that finished are not repeated when the run is resumed.")


@dataclass(frozen=True)
class SlurmSite:
    """Where and how jobs run: partition, account, node size, walltime per task type (minutes),
    shell lines run before every task (module loads, exports) and extra sbatch options."""
    name: str = "generic"
    partition: str | None = None
    master_partition: str | None = None
    account: str | None = None
    cores_per_node: int | None = None
    walltime_minutes: Mapping[str, float] = field(default_factory=dict)
    environment: tuple[str, ...] = ()
    sbatch_options: tuple[str, ...] = ()
    mpiexec: str | None = None

    def walltime(self, task_type: str) -> str:
        """Slurm time limit for `task_type` as D-HH:MM:SS (rounded up to a whole second)."""
        if task_type not in TASK_TYPES:
            raise ValueError(f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
        if task_type not in self.walltime_minutes:
            raise ValueError(f"site {self.name!r} gives no walltime for {task_type} tasks")
        seconds = math.ceil(float(self.walltime_minutes[task_type]) * 60.0)
        days, rest = divmod(seconds, 86400)
        return f"{days}-{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"

    def nodes_per_task(self, ranks: int) -> int | None:
        """Whole nodes for one task of `ranks` cores (None: the site lets Slurm place tasks)."""
        if self.cores_per_node is None:
            return None
        return math.ceil(ranks / self.cores_per_node)


def site_from_values(site: str, **values: Any) -> SlurmSite:
    """The preset `site` with every non-None value of `values` (SlurmSite fields) put over it."""
    if site not in PRESETS:
        raise ValueError(f"unknown Slurm site preset {site!r}; known: {', '.join(PRESETS)}")
    merged: dict[str, Any] = {"name": site, **PRESETS[site]}
    merged.update({k: v for k, v in values.items() if v is not None})
    for key in ("environment", "sbatch_options"):
        merged[key] = tuple(merged.get(key, ()))
    return SlurmSite(**merged)


def bundles(task_ids: Sequence[int], per_job: int) -> list[list[int]]:
    """Consecutive groups of at most `per_job` task ids (one Slurm job each)."""
    if per_job < 1:
        raise ValueError(f"tasks per job must be >= 1, got {per_job}")
    ids = list(task_ids)
    return [ids[i:i + per_job] for i in range(0, len(ids), per_job)]


def _header(site: SlurmSite, job_name: str, output: str, ntasks: int, nodes: int | None,
            time_limit: str, partition: str | None) -> list[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --output={output}"]
    if nodes is not None:
        lines.append(f"#SBATCH --nodes={nodes}")
    lines += [f"#SBATCH --ntasks={ntasks}", f"#SBATCH --time={time_limit}"]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if site.account:
        lines.append(f"#SBATCH --account={site.account}")
    lines += [f"#SBATCH {opt}" for opt in site.sbatch_options]
    lines += list(site.environment)
    return lines


def rc_path(status_dir: str, task_id: int, attempt: int) -> str:
    """Where task `task_id` writes its exit code in attempt `attempt` (1-based)."""
    return os.path.join(status_dir, f"{task_id}.try{attempt}.rc")


def task_log(log_dir: str, label: str, task_id: int, attempt: int) -> str:
    return os.path.join(log_dir, f"{label}.task{task_id:04d}.try{attempt}.log")


def batch_script(site: SlurmSite, *, label: str, task_type: str, task_ids: Sequence[int],
                 ranks_per_task: int, command: str, log_dir: str, status_dir: str,
                 attempt: int) -> str:
    """The sbatch script of one bundle: every task in the background, each writing its exit code
    (see the module docstring); the job itself exits 1 if any task failed."""
    nodes = site.nodes_per_task(ranks_per_task)
    q = shlex.quote
    lines = _header(site, label, os.path.join(log_dir, f"{label}.slurm-%j.out"),
                    ranks_per_task * len(task_ids),
                    None if nodes is None else nodes * len(task_ids), site.walltime(task_type),
                    site.partition)
    for slot, tid in enumerate(task_ids):
        rc = rc_path(status_dir, tid, attempt)
        lines.append(
            f"( ( export SEISFLOWS_TASKID={tid} EARA_TASK_OFFSET={slot * ranks_per_task}; "
            f"{command} ) > {q(task_log(log_dir, label, tid, attempt))} 2>&1; "
            f"echo $? > {q(rc + '.tmp')} && mv -f {q(rc + '.tmp')} {q(rc)} ) &")
    lines.append("wait")
    rcs = " ".join(q(rc_path(status_dir, t, attempt)) for t in task_ids)
    lines.append(f'for f in {rcs}; do [ "$(cat "$f" 2>/dev/null)" = 0 ] || exit 1; done')
    return "\n".join(lines) + "\n"


def master_script(site: SlurmSite, *, label: str, command: str, output: str) -> str:
    """The sbatch script of the master job (one core, the `master` walltime and partition)."""
    lines = _header(site, label, output, 1, None if site.cores_per_node is None else 1,
                    site.walltime("master"), site.master_partition or site.partition)
    lines.append(command)
    return "\n".join(lines) + "\n"


Runner = Callable[[list[str]], subprocess.CompletedProcess]


def _run_command(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True)


def submit(script_path: str, dependency: str | None = None, run: Runner = _run_command) -> str:
    """sbatch a script; returns the job id. Raises SlurmError naming the script on failure."""
    args = ["sbatch", "--parsable"] + ([f"--dependency={dependency}"] if dependency else [])
    try:
        proc = run(args + [script_path])
    except FileNotFoundError as e:
        raise SlurmError(f"cannot run sbatch for {script_path}: {e}") from e
    job_id = proc.stdout.strip().split(";")[0]
    if proc.returncode != 0 or not job_id.isdigit():
        raise SlurmError(f"sbatch {script_path} failed (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()}")
    return job_id


def parse_squeue(text: str) -> dict[str, tuple[str, str]]:
    """`squeue -h -o %i|%T|%r` lines -> {job id: (state, reason)}."""
    states = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            states[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return states


def query_states(job_ids: Sequence[str], run: Runner = _run_command) -> dict[str, tuple[str, str]] | None:
    """States of `job_ids` still known to the controller (finished ones stay for MinJobAge);
    None when squeue itself failed (the caller retries)."""
    if not job_ids:
        return {}
    try:
        proc = run(["squeue", "-h", "--states=all", "-o", "%i|%T|%r", "-j", ",".join(job_ids)])
    except FileNotFoundError:
        return None
    if proc.returncode != 0:
        # squeue exits 1 with "Invalid job id" when none of the jobs is known any more
        return {} if "invalid job id" in (proc.stderr or "").lower() else None
    return parse_squeue(proc.stdout)


def read_exit_code(path: str) -> int | None:
    """The exit code a task wrote, or None when it wrote none (or garbage)."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


@dataclass
class _Job:
    job_id: str
    task_ids: list[int]
    state: str = "PENDING"
    reason: str = ""


class SlurmRunner:
    """Runs task ids as bundled Slurm jobs with exit codes, retries and concurrency limits."""

    def __init__(self, site: SlurmSite, work_dir: str, log_dir: str, *, tasks_per_job: int,
                 max_concurrent_jobs: int, retries: int, poll_seconds: float,
                 run: Runner = _run_command, notify: Callable[[str], None] | None = None):
        if max_concurrent_jobs < 1 or retries < 0 or poll_seconds <= 0:
            raise ValueError("max_concurrent_jobs >= 1, retries >= 0 and poll_seconds > 0 needed")
        self.site, self.work_dir, self.log_dir = site, work_dir, log_dir
        self.tasks_per_job, self.max_concurrent_jobs = tasks_per_job, max_concurrent_jobs
        self.retries, self.poll_seconds, self._run = retries, poll_seconds, run
        self._notify = notify or (lambda message: None)   # job state changes, e.g. to a log
        self.jobs: list[_Job] = []          # every job submitted by the last run(), for reports

    def run(self, task_ids: Sequence[int], command: str, *, task_type: str, ranks_per_task: int,
            label: str, names: Mapping[int, str] | None = None) -> None:
        """Run `command` once per task id (bundled, concurrent within limits); retry failures;
        raise TaskFailureError naming the tasks that still fail."""
        os.makedirs(self.work_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        run_dir = tempfile.mkdtemp(prefix=f"{label}.", dir=self.work_dir)
        status_dir = os.path.join(run_dir, "status")
        os.makedirs(status_dir)
        names = dict(names or {})
        self.jobs = []
        pending, failures = list(task_ids), {}
        for attempt in range(1, self.retries + 2):
            jobs = self._submit_round(pending, command, task_type, ranks_per_task, label,
                                      run_dir, status_dir, attempt)
            self._wait(jobs)
            failures = self._collect(jobs, status_dir, attempt, label, names)
            pending = sorted(failures)
            if not pending:
                return
        raise TaskFailureError(label, [failures[t] for t in sorted(failures)], len(task_ids))

    # ------------------------------------------------------------------ steps of run()
    def _submit_round(self, task_ids: list[int], command: str, task_type: str, ranks: int,
                      label: str, run_dir: str, status_dir: str, attempt: int) -> list[_Job]:
        jobs: list[_Job] = []
        try:
            for i, group in enumerate(bundles(task_ids, self.tasks_per_job)):
                script = os.path.join(run_dir, f"try{attempt}.job{i:04d}.sh")
                atomic_write_text(script, batch_script(
                    self.site, label=label, task_type=task_type, task_ids=group,
                    ranks_per_task=ranks, command=command, log_dir=self.log_dir,
                    status_dir=status_dir, attempt=attempt))
                before = i - self.max_concurrent_jobs
                dep = f"afterany:{jobs[before].job_id}" if before >= 0 else None
                jobs.append(_Job(submit(script, dep, self._run), group))
                self.jobs.append(jobs[-1])
        except BaseException:
            self.cancel(jobs)
            raise
        return jobs

    def _wait(self, jobs: list[_Job]) -> None:
        """Poll squeue until every job is terminal or gone; cancel them all if interrupted."""
        active = {j.job_id: j for j in jobs}
        failed_queries = 0
        try:
            while active:
                time.sleep(self.poll_seconds)
                states = query_states(list(active), self._run)
                if states is None:
                    failed_queries += 1
                    if failed_queries > QUERY_FAILURES_ALLOWED:
                        raise SlurmError(f"squeue failed {failed_queries} times in a row while "
                                         f"waiting for jobs {', '.join(active)}")
                    continue
                failed_queries = 0
                for job_id in list(active):
                    job = active[job_id]
                    if job_id not in states:            # left the queue (MinJobAge passed)
                        del active[job_id]
                        continue
                    if states[job_id] != (job.state, job.reason):
                        self._notify(f"job {job_id} (tasks {job.task_ids}): "
                                     f"{' '.join(x for x in states[job_id] if x != 'None')}")
                    job.state, job.reason = states[job_id]
                    if job.state in TERMINAL_STATES:
                        del active[job_id]
                    elif job.state == "PENDING" and job.reason in HOPELESS_REASONS:
                        self.cancel([job])
                        job.state = f"CANCELLED ({job.reason})"
                        del active[job_id]
        except BaseException:
            self.cancel(list(active.values()))
            raise

    def _collect(self, jobs: list[_Job], status_dir: str, attempt: int, label: str,
                 names: Mapping[int, str]) -> dict[int, TaskFailure]:
        """Exit codes of this round; missing files are re-read once after a poll interval (shared
        file systems may show them late)."""
        codes = {t: read_exit_code(rc_path(status_dir, t, attempt)) for j in jobs for t in j.task_ids}
        if any(c is None for c in codes.values()):
            time.sleep(self.poll_seconds)
            codes = {t: c if c is not None else read_exit_code(rc_path(status_dir, t, attempt))
                     for t, c in codes.items()}
        failures = {}
        for job in jobs:
            for t in job.task_ids:
                if codes[t] != 0:
                    failures[t] = TaskFailure(
                        t, names.get(t, f"task {t}"), attempt, codes[t], job.job_id, job.state,
                        task_log(self.log_dir, label, t, attempt))
        return failures

    def cancel(self, jobs: Sequence[_Job]) -> None:
        """scancel `jobs` (best effort: used while giving up or being interrupted)."""
        ids = [j.job_id for j in jobs]
        if ids:
            try:
                self._run(["scancel", *ids])
            except FileNotFoundError:
                pass


def submit_master(site: SlurmSite, script_path: str, *, label: str, command: str, output: str,
                  run: Runner = _run_command) -> str:
    """Write and sbatch the master job; returns its job id."""
    atomic_write_text(script_path, master_script(site, label=label, command=command, output=output))
    return submit(script_path, None, run)

