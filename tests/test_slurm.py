"""The Slurm system: exact sbatch scripts, retry logic on a scripted scheduler, and the plugin
against a REAL single-node Slurm (munged + slurmctld + slurmd started here, no accounting)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from seisflows_eara import params
from seisflows_eara.system import slurm as core

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import slurm_tasks  # noqa: E402  (task functions the jobs import by reference)

WALL = {"forward": 2.0, "adjoint": 3.0, "kernel": 4.5, "serial": 1.0, "master": 2880.0}


# ====================================================================== generated scripts (exact)
def test_bundled_batch_script_generic_site():
    site = core.site_from_values("generic", walltime_minutes=WALL,
                                 environment=["module load specfem", "export OMP_NUM_THREADS=1"],
                                 sbatch_options=["--mem=0"], account="geo123")
    text = core.batch_script(site, label="kernel", task_type="kernel", task_ids=[4, 9],
                             ranks_per_task=441, command="python run --funcs 'f p'",
                             log_dir="/w/logs", status_dir="/w/st", attempt=2)
    assert text.splitlines() == [
        "#!/bin/bash",
        "#SBATCH --job-name=kernel",
        "#SBATCH --output=/w/logs/kernel.slurm-%j.out",
        "#SBATCH --ntasks=882",
        "#SBATCH --time=0-00:04:30",
        "#SBATCH --account=geo123",
        "#SBATCH --mem=0",
        "module load specfem",
        "export OMP_NUM_THREADS=1",
        "( ( export SEISFLOWS_TASKID=4 EARA_TASK_OFFSET=0; python run --funcs 'f p' ) > "
        "/w/logs/kernel.task0004.try2.log 2>&1; echo $? > /w/st/4.try2.rc.tmp && "
        "mv -f /w/st/4.try2.rc.tmp /w/st/4.try2.rc ) &",
        "( ( export SEISFLOWS_TASKID=9 EARA_TASK_OFFSET=441; python run --funcs 'f p' ) > "
        "/w/logs/kernel.task0009.try2.log 2>&1; echo $? > /w/st/9.try2.rc.tmp && "
        "mv -f /w/st/9.try2.rc.tmp /w/st/9.try2.rc ) &",
        "wait",
        'for f in /w/st/4.try2.rc /w/st/9.try2.rc; do [ "$(cat "$f" 2>/dev/null)" = 0 ] || exit 1; done',
    ]


def test_stampede2_preset_whole_nodes_and_master_script():
    site = core.site_from_values("stampede2", walltime_minutes=WALL, account="TG-EAR140030")
    assert site.mpiexec == "ibrun -o $EARA_TASK_OFFSET" and site.cores_per_node == 48
    text = core.batch_script(site, label="forward", task_type="forward", task_ids=[0, 1, 2],
                             ranks_per_task=441, command="x", log_dir="/l", status_dir="/s",
                             attempt=1)
    # 441 cores -> 10 whole 48-core nodes per event, 3 events bundled in one allocation
    assert text.splitlines()[3:8] == ["#SBATCH --nodes=30", "#SBATCH --ntasks=1323",
                                      "#SBATCH --time=0-00:02:00", "#SBATCH --partition=skx-normal",
                                      "#SBATCH --account=TG-EAR140030"]
    assert "EARA_TASK_OFFSET=882;" in text.splitlines()[10]
    master = core.master_script(site, label="eara", command="python submit_workflow.py", output="/o")
    assert master.splitlines() == [
        "#!/bin/bash", "#SBATCH --job-name=eara", "#SBATCH --output=/o", "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1", "#SBATCH --time=2-00:00:00", "#SBATCH --partition=skx-normal",
        "#SBATCH --account=TG-EAR140030", "python submit_workflow.py"]
    # an explicit value wins over the preset
    assert core.site_from_values("stampede2", partition="skx-dev").partition == "skx-dev"


def test_site_errors_and_helpers():
    with pytest.raises(ValueError, match="unknown Slurm site preset 'frontier'.*generic"):
        core.site_from_values("frontier")
    site = core.site_from_values("generic", walltime_minutes={"forward": 0.01})
    assert site.walltime("forward") == "0-00:00:01"          # rounded up, never 0
    with pytest.raises(ValueError, match="no walltime for kernel"):
        site.walltime("kernel")
    assert core.bundles(range(7), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        core.bundles([1], 0)
    assert core.parse_squeue("12|RUNNING|None\n13|PENDING|Dependency\n") == {
        "12": ("RUNNING", "None"), "13": ("PENDING", "Dependency")}


def test_parameters_are_in_table_and_validated():
    names = {p.name for p in params.for_component("system")}
    assert {"slurm_site", "slurm_task_retries", "slurm_walltime_kernel"} <= names
    for key, bad in (("slurm_site", "summit"), ("slurm_task_retries", -1),
                     ("slurm_cores_per_node", 0), ("slurm_environment", "module load x")):
        with pytest.raises(params.ParameterError, match=key):
            params.BY_NAME[key].validate(bad)


def test_plugin_check_names_the_problem(tmp_path):
    from seisflows_eara.plugins.system import EaraSlurm
    par = tmp_path / "parameters.yaml"
    par.write_text("system: eara_slurm\n")
    base = dict(workdir=str(tmp_path), path_par_file=str(par), ntask=2, walltime=60)
    with pytest.raises(params.ParameterError, match=r"'mpiexec' is null but nproc = 4.*srun --exact"):
        EaraSlurm(nproc=4, mpiexec=None, **base).check()
    with pytest.raises(params.ParameterError, match=r"'mpiexec' is null.*ibrun -o \$EARA_TASK_OFFSET"):
        EaraSlurm(nproc=4, mpiexec=None, slurm_site="stampede2", **base).check()
    with pytest.raises(params.ParameterError, match="slurm_task_retries"):
        EaraSlurm(nproc=1, slurm_task_retries=-1, **base).check()
    system = EaraSlurm(nproc=1, slurm_site="stampede2", slurm_account="TG-X",
                       environs="OMP_NUM_THREADS=1", **base)
    site = system.site
    assert (site.partition, site.account, site.walltime("master")) == ("skx-normal", "TG-X",
                                                                      "0-01:00:00")
    assert site.environment == ("export OMP_NUM_THREADS=1",)


def test_swap_to_eara_slurm_writes_documented_keys(tmp_path):
    """`seisflows swap system eara_slurm` on the repository's parameters.yaml keeps its values and
    documents every slurm_* key (what `seisflows configure` reads from the class docstring)."""
    import yaml
    text = (TESTS.parent / "parameters.yaml").read_text().replace("slurm_task_retries: 2",
                                                                  "slurm_task_retries: 5")
    (tmp_path / "parameters.yaml").write_text(text)
    exe = str(Path(sys.executable).with_name("seisflows"))
    subprocess.run([exe, "swap", "system", "eara_slurm"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=300)
    new = (tmp_path / "parameters.yaml").read_text()
    values = yaml.safe_load(new)
    assert values["system"] == "eara_slurm" and values["slurm_task_retries"] == 5
    for p in params.for_component("system"):
        assert f":param {p.name}: [{p.unit}]" in new and new.count(f"\n{p.name}:") == 1, p.name


# ====================================================================== retry logic, scripted Slurm
class ScriptedSlurm:
    """sbatch runs the script at once with bash; squeue then knows no job (as after MinJobAge)."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.next_id = 100

    def __call__(self, args: list[str]) -> subprocess.CompletedProcess:
        self.calls.append(args)
        if args[0] == "sbatch":
            subprocess.run(["bash", args[-1]], check=False)
            self.next_id += 1
            return subprocess.CompletedProcess(args, 0, f"{self.next_id}\n", "")
        return subprocess.CompletedProcess(args, 0, "", "")


def test_exit_codes_retries_and_report_without_a_scheduler(tmp_path):
    fake = ScriptedSlurm()
    site = core.site_from_values("generic", walltime_minutes=WALL)
    runner = core.SlurmRunner(site, str(tmp_path / "w"), str(tmp_path / "logs"), tasks_per_job=2,
                              max_concurrent_jobs=1, retries=2, poll_seconds=0.01, run=fake)
    count = tmp_path / "count"
    count.mkdir()
    # task 1 fails twice then succeeds, task 3 always fails with exit 7, others succeed
    cmd = (f"echo x >> {count}/$SEISFLOWS_TASKID; n=$(wc -l < {count}/$SEISFLOWS_TASKID); "
           "if [ $SEISFLOWS_TASKID = 3 ]; then exit 7; fi; "
           "if [ $SEISFLOWS_TASKID = 1 ] && [ $n -le 2 ]; then exit 1; fi; exit 0")
    with pytest.raises(core.TaskFailureError) as err:
        runner.run(range(5), f"sh -c '{cmd}'", task_type="forward", ranks_per_task=1,
                   label="forward", names={i: f"EV{i}" for i in range(5)})
    assert [f.name for f in err.value.failures] == ["EV3"]
    f = err.value.failures[0]
    assert (f.exit_code, f.attempts) == (7, 3) and f.log.endswith("forward.task0003.try3.log")
    assert "EV3: exit code 7 after 3 attempt(s)" in str(err.value)
    runs = {p.name: len(p.read_text().splitlines()) for p in count.iterdir()}
    assert runs == {"0": 1, "1": 3, "2": 1, "3": 3, "4": 1}      # only failures are repeated
    sbatch = [c for c in fake.calls if c[0] == "sbatch"]
    # round 1: 3 bundles chained one at a time; round 2: [1, 3] in one job; round 3 likewise
    assert len(sbatch) == 5
    assert sbatch[1][2] == "--dependency=afterany:101" and sbatch[2][2] == "--dependency=afterany:102"


def test_sbatch_error_names_the_script(tmp_path):
    def refuse(args):
        return subprocess.CompletedProcess(args, 1, "", "sbatch: error: invalid partition")
    site = core.site_from_values("generic", walltime_minutes=WALL)
    runner = core.SlurmRunner(site, str(tmp_path), str(tmp_path), tasks_per_job=1,
                              max_concurrent_jobs=1, retries=0, poll_seconds=0.01, run=refuse)
    with pytest.raises(core.SlurmError, match=r"sbatch .*try1\.job0000\.sh failed.*invalid partition"):
        runner.run([0], "true", task_type="serial", ranks_per_task=1, label="x")


# ====================================================================== a real Slurm
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol",
                  "scancel", "srun")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """munged, slurmctld and slurmd on this host (CPUs=2, no accounting); stopped at the end."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("a local Slurm needs root to start slurmctld/slurmd (not root here)")
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"Slurm cannot start: {', '.join(missing)} not installed "
                    "(Debian: apt-get install slurm-wlm munge)")
    root = Path(tempfile.mkdtemp(prefix="eara-slurm-"))
    (root / "munge").mkdir(mode=0o755)
    (root / "key").mkdir(mode=0o700)
    for d in ("state", "spool"):
        (root / d).mkdir()
    key = root / "key" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = root / "munge" / "socket"
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=earatest", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root",
        "SlurmdUser=root", "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
        "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "SlurmdParameters=config_overrides", "MinJobAge=300",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    env_before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in root.glob("*.log"))

    try:
        subprocess.run(["munged", "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--log-file={root}/munged.log", f"--pid-file={root}/munged.pid",
                        f"--seed-file={root}/munged.seed"], check=True, timeout=30)
        subprocess.run(["slurmctld", "-c", "-f", str(conf)], check=True, timeout=30)
        subprocess.run(["slurmd", "-f", str(conf)], check=True, timeout=30)
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout
            if out.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"local Slurm did not become idle in 60 s:\n{logs()}")
        yield {"root": root, "conf": conf}
    finally:
        subprocess.run(["scontrol", "shutdown"], capture_output=True, timeout=30)
        for name in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            pid = _pid(root / name)
            deadline = time.time() + 10
            while pid and time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                if name == "munged.pid" or time.time() > deadline - 5:
                    os.kill(pid, 15)
                time.sleep(0.2)
        if env_before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = env_before
        shutil.rmtree(root, ignore_errors=True)


def _system(tmp: Path, **over):
    """An EaraSlurm as `seisflows` builds it from parameters.yaml (keys as kwargs)."""
    from seisflows_eara.plugins.system import EaraSlurm
    par = tmp / "parameters.yaml"
    par.write_text("system: eara_slurm\n")
    kw = dict(workdir=str(tmp), path_par_file=str(par), path_output=str(tmp / "output"),
              path_system=str(tmp / "scratch"), path_log_files=str(tmp / "logs"),
              path_output_log=str(tmp / "sflog.txt"), ntask=2, nproc=1, mpiexec="srun --exact",
              walltime=5, ntask_max=100, events_per_job=2, slurm_poll_seconds=0.3,
              slurm_task_retries=0, slurm_walltime_forward=2.0, slurm_walltime_serial=2.0,
              slurm_environment=[f"export PYTHONPATH={TESTS}:${{PYTHONPATH:-}}"])
    kw.update(over)
    system = EaraSlurm(**kw)
    system.check()
    system.setup()
    return system


def _tasks(out: Path) -> dict[int, dict]:
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in out.glob("task*.json")}


@pytest.mark.slurm
def test_bundled_events_share_one_allocation(slurm_cluster, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    system = _system(tmp_path, ntask=5, events_per_job=2)
    monkeypatch.setattr(slurm_tasks.record, "eara_step", "forward", raising=False)
    system.run([slurm_tasks.record], out=str(out), sleep={0: 5.0, 1: 5.0})
    tasks = _tasks(out)
    assert sorted(tasks) == [0, 1, 2, 3, 4]
    jobs = [tasks[i]["job"] for i in range(5)]
    assert jobs[0] == jobs[1] and jobs[2] == jobs[3] and len(set(jobs)) == 3
    for t in tasks.values():           # each task's srun is a job step of its own bundle's job
        assert t["step_job"] == t["job"] and t["kwargs"] == []
    assert tasks[0]["step"] != tasks[1]["step"]
    assert (tasks[0]["offset"], tasks[1]["offset"], tasks[4]["offset"]) == (0, 1, 0)
    # the two events of a bundle run side by side (2 CPUs, one per event)
    assert max(tasks[0]["start"], tasks[1]["start"]) < min(tasks[0]["end"], tasks[1]["end"])


@pytest.mark.slurm
def test_dependency_chain_limits_concurrent_jobs(slurm_cluster, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    system = _system(tmp_path, ntask=3, events_per_job=1, ntask_max=1)
    monkeypatch.setattr(slurm_tasks.record, "eara_step", "forward", raising=False)
    runner_jobs = []
    real = system._runner

    def spy(work_dir):
        r = real(work_dir)
        runner_jobs.append(r)
        return r
    monkeypatch.setattr(system, "_runner", spy)
    system.run([slurm_tasks.record], out=str(out), sleep=1.0)
    tasks = _tasks(out)
    spans = sorted((t["start"], t["end"]) for t in tasks.values())
    assert len(spans) == 3 and len({t["job"] for t in tasks.values()}) == 3
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert e0 <= s1, "chained jobs overlapped although ntask_max = 1"
    assert all(j.state == "COMPLETED" for j in runner_jobs[0].jobs)   # read without sacct


@pytest.mark.slurm
def test_failed_task_is_retried_then_reported_by_event(slurm_cluster, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    system = _system(tmp_path, ntask=3, events_per_job=2, slurm_task_retries=1)
    names = ["C201009031635A", "200801060514A", "C201305240544A"]
    monkeypatch.setattr(slurm_tasks.flaky, "eara_step", "source_update", raising=False)
    monkeypatch.setattr(slurm_tasks.flaky, "eara_task_names", names, raising=False)
    with pytest.raises(core.TaskFailureError) as err:
        system.run([slurm_tasks.flaky], out=str(out), failures={1: 1, 2: 5})
    assert [f.name for f in err.value.failures] == ["C201305240544A"]
    f = err.value.failures[0]
    assert f.exit_code == 1 and f.attempts == 2
    assert "planned failure of task 2, attempt 2" in Path(f.log).read_text()   # the traceback
    attempts = {i: (out / f"attempts.{i}").stat().st_size for i in range(3)}
    assert attempts == {0: 1, 1: 2, 2: 2}
    assert (out / "done1").read_text() == "2" and not (out / "done2").exists()


@pytest.mark.slurm
def test_killed_job_is_reported_with_its_state(slurm_cluster, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    system = _system(tmp_path, ntask=2, events_per_job=1)
    monkeypatch.setattr(slurm_tasks.cancel_own_job, "eara_task_names", ["EV_A", "EV_B"],
                        raising=False)
    with pytest.raises(core.TaskFailureError) as err:
        system.run([slurm_tasks.cancel_own_job], out=str(out), victim=1)
    (f,) = err.value.failures
    assert f.name == "EV_B" and f.exit_code is None and f.job_state == "CANCELLED"
    assert "EV_B: no exit code (job" in str(err.value) and (out / "done0").exists()


@pytest.mark.slurm
def test_single_task_and_master_submission(slurm_cluster, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    system = _system(tmp_path, ntask=4)
    system.run([slurm_tasks.record], single=True, out=str(out))
    assert sorted(_tasks(out)) == [0]
    # the master job runs SeisFlows' submit_workflow script: a stand-in records its arguments
    from seisflows_eara.plugins import system as plugin
    fake = tmp_path / "submit_workflow.py"
    fake.write_text("import sys, os\nopen(os.path.join(os.environ['OUT'], 'master'), 'w')"
                    ".write(' '.join(sys.argv[1:]))\n")
    monkeypatch.setattr(plugin, "SUBMIT_WORKFLOW", str(fake))
    monkeypatch.setenv("OUT", str(out))
    job = system.submit(workdir=str(tmp_path))
    runner = core.SlurmRunner(system.site, str(tmp_path), str(tmp_path), tasks_per_job=1,
                              max_concurrent_jobs=1, retries=0, poll_seconds=0.3)
    runner._wait([core._Job(job, [0])])
    assert (out / "master").read_text() == f"--workdir {tmp_path} --parameter_file parameters.yaml"


# ====================================================================== the workflow on Slurm
try:       # the workflow test's world (stand-in solver on the real tiny mesh) and project layout
    from test_workflow import TRUE_EVENTS, _project, world  # noqa: F401  (world: a fixture)
except Exception as e:  # noqa: BLE001  (its fixtures missing: the slow test skips)
    WORKFLOW_IMPORT_ERROR = repr(e)
else:
    WORKFLOW_IMPORT_ERROR = None


@pytest.mark.slow
@pytest.mark.slurm
def test_workflow_through_seisflows_submit_on_slurm(slurm_cluster, request, tmp_path_factory):
    """`seisflows submit` with system: eara_slurm: the master job submits every per-event step as
    Slurm jobs (the workflow test's stand-in solver, 2 events, 1 structure iteration)."""
    if WORKFLOW_IMPORT_ERROR:
        pytest.skip(f"tests/test_workflow.py helpers unavailable: {WORKFLOW_IMPORT_ERROR}")
    import yaml
    work = _project(request.getfixturevalue("world"), tmp_path_factory.mktemp("slurm_run"), 0, 1)
    par = yaml.safe_load((work / "parameters.yaml").read_text())
    par.update(system="eara_slurm", walltime=30, ntask_max=2, events_per_job=1,
               slurm_poll_seconds=1.0, slurm_task_retries=0, slurm_walltime_forward=10.0,
               slurm_walltime_kernel=10.0, slurm_walltime_serial=10.0)
    (work / "parameters.yaml").write_text(yaml.safe_dump(par, sort_keys=False))
    exe = str(Path(sys.executable).with_name("seisflows"))
    subprocess.run([exe, "submit"], cwd=work, check=True, capture_output=True, timeout=120)
    deadline, master = time.time() + 1500, []
    while time.time() < deadline:
        out = subprocess.run(["squeue", "-h", "--states=all", "-o", "%j|%T"], capture_output=True,
                             text=True).stdout
        master = [ln.split("|")[1] for ln in out.splitlines() if ln.split("|")[0] == work.name]
        if master and master[-1] in core.TERMINAL_STATES:
            break
        time.sleep(2)
    log = (work / "sflog.txt").read_text() if (work / "sflog.txt").exists() else ""
    assert master and master[-1] == "COMPLETED", f"master job {master}:\n{log[-4000:]}"
    state = json.loads((work / "eara_state.json").read_text())
    assert len(state["completed"]) == 6, state["completed"]
    # forward, kernel, trial forward per event, then the final forward: 4 runs per event
    sims = (work / "output" / "simulations.log").read_text().splitlines()
    assert len(sims) == 4 * len(TRUE_EVENTS), sims
    for step in ("forward", "kernel", "trial_forward", "final_forward"):
        assert len(list((work / "logs").glob(f"{step}.task*.try1.log"))) == len(TRUE_EVENTS), step
