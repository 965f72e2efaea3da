"""Task functions for tests/test_slurm.py: pickled by SeisFlows' run_funcs (by reference), so the
jobs import this module (the test site puts tests/ on PYTHONPATH in its environment lines)."""
from __future__ import annotations

import json
import os
import subprocess
import time


def _tid() -> str:
    return os.environ["SEISFLOWS_TASKID"]


def _attempt(out: str) -> int:
    """Count this call in out/attempts.<task id> and return the count (1 on the first call)."""
    path = os.path.join(out, f"attempts.{_tid()}")
    with open(path, "a") as f:
        f.write("x")
    return os.path.getsize(path)


def record(out: str, sleep: float | dict[int, float] = 0.0, **kwargs) -> None:
    """Run one srun job step, sleep (seconds, or {task id: seconds}), then write out/task<id>.json
    with the job and step ids and the times."""
    if isinstance(sleep, dict):
        sleep = sleep.get(int(_tid()), 0.0)
    _attempt(out)
    step = subprocess.run(["srun", "--exact", "-n", "1", "sh", "-c",
                           "echo $SLURM_JOB_ID $SLURM_STEP_ID"],
                          capture_output=True, text=True, check=True).stdout.split()
    start = time.time()
    time.sleep(sleep)
    with open(os.path.join(out, f"task{_tid()}.json"), "w") as f:
        json.dump({"task": int(_tid()), "job": os.environ["SLURM_JOB_ID"], "step_job": step[0],
                   "step": int(step[1]), "start": start, "end": time.time(),
                   "offset": int(os.environ["EARA_TASK_OFFSET"]), "kwargs": sorted(kwargs)}, f)


def flaky(out: str, failures: dict[int, int], **kwargs) -> None:
    """Fail (raise) for the first failures[task] attempts of a task, then succeed."""
    n = _attempt(out)
    if n <= failures.get(int(_tid()), 0):
        raise RuntimeError(f"planned failure of task {_tid()}, attempt {n}")
    with open(os.path.join(out, f"done{_tid()}"), "w") as f:
        f.write(str(n))


def cancel_own_job(out: str, victim: int, **kwargs) -> None:
    """Task `victim` cancels its own job (a killed job: no exit code is ever written)."""
    _attempt(out)
    if int(_tid()) == victim:
        subprocess.run(["scancel", os.environ["SLURM_JOB_ID"]], check=True)
        time.sleep(60)
    with open(os.path.join(out, f"done{_tid()}"), "w") as f:
        f.write("ok")
