"""A fake Slurm for the tests: ``sbatch``, ``srun``, ``sacct``, ``squeue``, ``scancel`` and
``scontrol`` as submitit 1.5.4 calls them, answering as Slurm does.

``python fake_slurm.py COMMAND ARGS...`` is one command; the tests put a wrapper per command on
``PATH`` (``exec python fake_slurm.py sbatch "$@"``, ...). Nothing of the code under test is
replaced: submitit writes its batch script, ``sbatch`` queues it and a detached *runner* (the
"cluster") runs it with ``bash`` in the submission folder, with the submitter's environment
plus the ``SLURM_*`` variables a job gets, one process per array task; the script's ``srun``
execs its command (submitit's ``python -u -m submitit.core._submit FOLDER``) with the step's
variables and output files. ``sacct`` reports the tasks' states, ``scancel`` cancels (SIGTERM,
then SIGKILL after ``KillWait``) or signals them, ``scontrol requeue`` requeues a running task
(it is stopped and runs again, ``SLURM_RESTART_COUNT`` one higher).

The cluster's state is in ``$FAKE_SLURM_DIR``:

* ``jobs/<id>.json``: one job (a state file per job): its directives, its tasks, each task's
  state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, REQUEUED), the list of states
  it went through (``history``) and how many times it started (``runs``);
* ``jobs/<id>.sh``: the batch script as submitted (Slurm keeps a copy);
* ``calls/<command>.jsonl``: every invocation, one JSON line each: ``argv``, ``cwd`` and, for
  ``sbatch``, the directives it read and the job id it gave; for ``srun``, the job's ids;
* ``steps/<job>.pid``: the process id of a task's running step;
* ``runner-<id>.log``: what the runner of job ``id`` did.

Knobs (the environment of ``sbatch``, i.e. of the sweep):

* ``FAKE_SLURM_PARTITIONS``: the partitions that exist (comma-separated; default: any name);
  ``sbatch`` refuses others as Slurm does;
* ``FAKE_SLURM_HOLD=1``: a busy cluster; jobs stay PENDING until cancelled;
* ``FAKE_SLURM_TIME_LIMIT_ON=GLOB``: the simulated clock. A running task reaches "its time
  limit minus the delay of ``--signal``" when a file matching GLOB is written after the task
  (re)started; the runner then sends the ``--signal`` signal (``USR2@90``: SIGUSR2) to its
  step, and ``FAKE_SLURM_KILL_WAIT`` seconds later, if it still runs, ends it as TIMEOUT;
* ``FAKE_SLURM_TIME_LIMIT_RUNS=N``: how many runs of each task reach their time limit (default
  1: the first run only);
* ``FAKE_SLURM_KILL_WAIT``: seconds between SIGTERM and SIGKILL (Slurm's ``KillWait``), and
  between the time-limit signal and the time limit (default 2).

Limits: one node and one task per job step; no dependencies, reservations or accounting of
resources (a job's CPUs and GPUs are recorded, not enforced).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import glob
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NODE = "fakenode1"
#: seconds between ``scontrol requeue`` and the node stopping the job (see :func:`scontrol`)
REQUEUE_LATENCY = 0.5
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
#: the sbatch options this fake knows (those submitit 1.5.4 can write), and whether each takes a
#: value; any other is refused, as Slurm refuses an unknown option
SBATCH_OPTIONS = {
    "job-name": True, "partition": True, "time": True, "nodes": True, "ntasks-per-node": True,
    "cpus-per-task": True, "cpus-per-gpu": True, "gpus-per-node": True, "gpus-per-task": True,
    "qos": True, "mem": True, "mem-per-gpu": True, "mem-per-cpu": True, "signal": True,
    "comment": True, "constraint": True, "exclude": True, "account": True, "gres": True,
    "mail-type": True, "mail-user": True, "nodelist": True, "dependency": True,
    "exclusive": False, "array": True, "output": True, "error": True, "open-mode": True,
    "wckey": True, "parsable": False,
}
SRUN_VALUE = {"--output": "output", "-o": "output", "--error": "error", "-e": "error",
              "--input": "input", "-i": "input", "--ntasks": "ntasks", "-n": "ntasks",
              "--nodes": "nodes", "-N": "nodes", "--cpus-per-task": "cpus", "-c": "cpus",
              "--job-name": "name", "-J": "name", "--export": "export", "--gpus": "gpus",
              "--gres": "gres", "--mem": "mem", "--time": "time", "-t": "time"}
SRUN_FLAGS = {"--unbuffered", "-u", "--exclusive", "--overlap", "--label", "-l", "--quiet",
              "-Q", "--verbose", "-v"}


# ------------------------------------------------------------------------------------ state
def home() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """The cluster's lock: every read-modify-write of a job's state holds it."""
    home().mkdir(parents=True, exist_ok=True)
    with open(home() / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def job_path(job_id: str) -> Path:
    return home() / "jobs" / f"{job_id}.json"


def load(job_id: str) -> dict[str, Any] | None:
    path = job_path(job_id)
    return json.loads(path.read_text()) if path.is_file() else None


def save(job: dict[str, Any]) -> None:
    path = job_path(str(job["id"]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(job, indent=1))
    tmp.replace(path)


def set_state(task: dict[str, Any], state: str) -> None:
    task["state"] = state
    task["history"].append(state)


def record(command: str, **extra: Any) -> None:
    """Append this invocation to ``calls/<command>.jsonl``."""
    calls = home() / "calls"
    calls.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"argv": sys.argv[2:], "cwd": os.getcwd(), "time": time.time(), **extra})
    with locked(), open(calls / f"{command}.jsonl", "a") as fh:
        fh.write(line + "\n")


def task_name(job: dict[str, Any], index: str) -> str:
    """The id Slurm shows for a task: ``<array job id>_<index>``, or the job id."""
    return f"{job['id']}_{index}" if job["array"] else str(job["id"])


def find(job_ref: str) -> tuple[dict[str, Any], list[str]] | None:
    """(job, the indices of its tasks) that ``123`` or ``123_4`` names, or None."""
    main, _, index = job_ref.partition("_")
    if not main.isdigit():
        return None
    job = load(main)
    if job is None:
        return None
    if not index:
        return job, list(job["tasks"])
    return (job, [index]) if job["array"] and index in job["tasks"] else None


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(message + "\n")
    return code


# ------------------------------------------------------------------------------------ sbatch
def parse_option(args: list[str], i: int, known: dict[str, bool], where: str
                 ) -> tuple[str, str | bool, int]:
    """One ``--name=value`` / ``--name value`` / ``--flag`` at ``args[i]``: (name, value, next)."""
    name, eq, value = args[i][2:].partition("=")
    if name not in known:
        raise ValueError(f"{where}: unrecognized option '--{name}'")
    if not known[name]:
        return name, True, i + 1
    if eq:
        return name, value, i + 1
    if i + 1 >= len(args):
        raise ValueError(f"{where}: option '--{name}' requires an argument")
    return name, args[i + 1], i + 2


def directives(script: str) -> dict[str, str | bool]:
    """The ``#SBATCH`` options of a batch script (read up to its first command, as sbatch)."""
    found: dict[str, str | bool] = {}
    for line in script.splitlines()[1:]:
        text = line.strip()
        if text and not text.startswith("#"):
            break
        if text.startswith("#SBATCH"):
            words = shlex.split(text[len("#SBATCH"):])
            i = 0
            while i < len(words):
                if not words[i].startswith("--"):
                    raise ValueError(f"sbatch: error: cannot read the directive {text!r}")
                name, value, i = parse_option(words, i, SBATCH_OPTIONS, "sbatch")
                found[name] = value
    return found


def minutes(value: str) -> int:
    """Slurm's ``--time``: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``."""
    days, _, rest = value.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        parts += [0] * (3 - len(parts))
        return int(days) * 1440 + parts[0] * 60 + parts[1] + (parts[2] > 0)
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts[0] + (parts[1] > 0)
    return parts[0] * 60 + parts[1] + (parts[2] > 0)


def array_indices(spec: str) -> tuple[list[int], int | None]:
    """``0-3%2`` -> ([0, 1, 2, 3], 2); also ``1,4,7-9`` and ``0-9:3``."""
    spec, _, cap = spec.partition("%")
    out: list[int] = []
    for part in spec.split(","):
        rng, _, step = part.partition(":")
        lo, _, hi = rng.partition("-")
        out += range(int(lo), int(hi or lo) + 1, int(step or 1))
    return out, int(cap) if cap else None


def sbatch(args: list[str]) -> int:
    opts: dict[str, str | bool] = {}
    i = 0
    try:
        while i < len(args) and args[i].startswith("--"):
            name, value, i = parse_option(args, i, SBATCH_OPTIONS, "sbatch")
            opts[name] = value
        if i >= len(args):
            return fail("sbatch: error: this fake reads the batch script from a file only")
        script_path = Path(args[i])
        text = script_path.read_text()
        if not text.startswith("#!"):
            return fail("sbatch: error: This does not look like a batch script.  The first\n"
                        "sbatch: error: line must start with #! followed by the path to an "
                        "interpreter.")
        found = {**directives(text), **opts}
        limit = minutes(str(found["time"])) if "time" in found else None
        indices, cap = array_indices(str(found["array"])) if "array" in found else ([0], None)
    except ValueError as e:
        record("sbatch", refused=str(e))
        return fail(str(e) if str(e).startswith("sbatch") else f"sbatch: error: {e}")
    partitions = os.environ.get("FAKE_SLURM_PARTITIONS")
    partition = str(found.get("partition", "batch"))
    if partitions and partition not in partitions.split(","):
        record("sbatch", directives=found, refused="invalid partition")
        return fail("sbatch: error: Batch job submission failed: Invalid partition name "
                    "specified")
    (home() / "jobs").mkdir(parents=True, exist_ok=True)
    with locked():
        counter = home() / "next_id"
        job_id = int(counter.read_text()) if counter.is_file() else 1000
        counter.write_text(str(job_id + len(indices)))
        is_array = "array" in found
        job = {"id": job_id, "name": str(found.get("job-name", script_path.name)),
               "partition": partition, "cwd": os.getcwd(), "submitted": time.time(),
               "time_limit_min": limit, "directives": found, "array": is_array,
               "parallelism": cap or len(indices), "script": str(job_path(str(job_id))
                                                                  .with_suffix(".sh")),
               "tasks": {str(idx): {"raw_id": job_id + n, "state": "PENDING",
                                    "history": ["PENDING"], "runs": 0, "exit_code": None}
                         for n, idx in enumerate(indices)}}
        Path(job["script"]).write_text(text)
        save(job)
    record("sbatch", directives=found, job_id=job_id)
    log = open(home() / f"runner-{job_id}.log", "a")  # noqa: SIM115 (the runner's)
    subprocess.Popen([sys.executable, os.path.abspath(__file__), "_run", str(job_id)],
                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    sys.stdout.write(f"{job_id}\n" if opts.get("parsable") else f"Submitted batch job {job_id}\n")
    return 0


# ------------------------------------------------------------------------------------ runner
def expand(pattern: str, env: dict[str, str]) -> str:
    """Slurm's filename patterns (%A %a %j %J %t %N %n %s %u %x %%), with zero padding."""
    values = {"A": env.get("SLURM_ARRAY_JOB_ID", env["SLURM_JOB_ID"]),
              "a": env.get("SLURM_ARRAY_TASK_ID", "4294967294"), "j": env["SLURM_JOB_ID"],
              "J": env["SLURM_JOB_ID"], "t": env.get("SLURM_PROCID", "0"), "N": NODE,
              "n": env.get("SLURM_NODEID", "0"), "s": env.get("SLURM_STEP_ID", "batch"),
              "u": os.environ.get("USER", "root"), "x": env.get("SLURM_JOB_NAME", ""),
              "%": "%"}

    def one(m: re.Match[str]) -> str:
        value = values[m.group(2)]
        return value.zfill(int(m.group(1))) if m.group(1) and value.isdigit() else value

    return re.sub(r"%(\d*)([AajJtNnsux%])", one, pattern)


class Running:
    """A task's batch shell while it runs (its own process group)."""

    def __init__(self, pid: int, started: float) -> None:
        self.pid = pid
        self.started = started
        self.exit_code: int | None = None
        self.stopping = False  # SIGTERM sent (cancel, requeue or time limit)
        self.kill_at: float | None = None  # then SIGKILL
        self.signalled = False  # the --signal signal sent (the time limit nears)
        self.limit_at: float | None = None  # the time limit itself

    def alive(self) -> bool:
        """Whether any process of the task's group is left (the batch shell or its step)."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)


def task_env(job: dict[str, Any], index: str, task: dict[str, Any]) -> dict[str, str]:
    d = job["directives"]
    nodes = int(d.get("nodes", 1))
    ntasks = nodes * int(d.get("ntasks-per-node", 1))
    env = {**os.environ,
           "SLURM_JOB_ID": str(task["raw_id"]), "SLURM_JOBID": str(task["raw_id"]),
           "SLURM_JOB_NAME": job["name"], "SLURM_JOB_PARTITION": job["partition"],
           "SLURM_SUBMIT_DIR": job["cwd"], "SLURM_SUBMIT_HOST": socket.gethostname(),
           "SLURM_CLUSTER_NAME": "fake", "SLURM_JOB_NUM_NODES": str(nodes),
           "SLURM_NNODES": str(nodes), "SLURM_JOB_NODELIST": NODE, "SLURM_NODELIST": NODE,
           "SLURMD_NODENAME": NODE, "SLURM_NTASKS": str(ntasks), "SLURM_NPROCS": str(ntasks),
           "SLURM_NTASKS_PER_NODE": str(d.get("ntasks-per-node", 1)), "SLURM_NODEID": "0",
           "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
           "SLURM_RESTART_COUNT": str(task["runs"] - 1), "SLURM_JOB_CPUS_PER_NODE": str(
               int(d.get("cpus-per-task", 1)) * int(d.get("ntasks-per-node", 1)))}
    if "cpus-per-task" in d:
        env["SLURM_CPUS_PER_TASK"] = str(d["cpus-per-task"])
    if "gpus-per-node" in d:
        env["SLURM_GPUS_PER_NODE"] = str(d["gpus-per-node"])
    if "open-mode" in d:
        env["SLURM_OPEN_MODE"] = "a" if d["open-mode"] == "append" else "t"
    if job["array"]:
        indices = [int(i) for i in job["tasks"]]
        env.update(SLURM_ARRAY_JOB_ID=str(job["id"]), SLURM_ARRAY_TASK_ID=index,
                   SLURM_ARRAY_TASK_COUNT=str(len(indices)),
                   SLURM_ARRAY_TASK_MIN=str(min(indices)),
                   SLURM_ARRAY_TASK_MAX=str(max(indices)))
    for var in ("SUBMITIT_EXECUTOR", "SUBMITIT_FOLDER"):  # not the submitter's own job's
        env.pop(var, None)
    return env


def start(job: dict[str, Any], index: str, task: dict[str, Any], say: Any) -> Running | None:
    """Start one task's batch script (None when its output folder does not exist yet: Slurm
    could not open its output there)."""
    d = job["directives"]
    probe = task_env(job, index, {**task, "runs": task["runs"] + 1})
    out = expand(str(d.get("output", "slurm-%j.out" if not job["array"] else
                           "slurm-%A_%a.out")), probe)
    err = expand(str(d.get("error", d.get("output", out))), probe)
    out_path, err_path = (Path(job["cwd"], p) for p in (out, err))
    if not (out_path.parent.is_dir() and err_path.parent.is_dir()):
        return None
    task["runs"] += 1
    set_state(task, "RUNNING")
    mode = "a" if d.get("open-mode") == "append" else "w"
    with open(out_path, mode) as fo, open(err_path, mode) as fe:
        proc = subprocess.Popen(["/bin/bash", job["script"]], cwd=job["cwd"], env=probe,
                                stdin=subprocess.DEVNULL, stdout=fo,
                                stderr=fe if err_path != out_path else subprocess.STDOUT,
                                start_new_session=True)
    say(f"started {task_name(job, index)} (run {task['runs']}, pid {proc.pid})")
    proc.returncode = 0  # reaped by the runner's own waitpid loop, never by Popen
    return Running(proc.pid, time.time())


def step_pid(job: dict[str, Any], index: str) -> int | None:
    path = home() / "steps" / f"{task_name(job, index)}.pid"
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def signal_number(spec: str) -> int:
    """``USR2@90`` / ``B:USR2@90`` / ``SIGUSR2`` -> the signal's number."""
    name = spec.rpartition(":")[2].partition("@")[0].upper()
    return int(getattr(signal, name if name.startswith("SIG") else "SIG" + name))


def time_limit_reached(job: dict[str, Any], task: dict[str, Any], run: Running) -> bool:
    """The simulated clock (``FAKE_SLURM_TIME_LIMIT_ON``): a matching file written since the
    task's run started, on one of its first ``FAKE_SLURM_TIME_LIMIT_RUNS`` runs."""
    pattern = os.environ.get("FAKE_SLURM_TIME_LIMIT_ON")
    if not pattern or task["runs"] > int(os.environ.get("FAKE_SLURM_TIME_LIMIT_RUNS", "1")):
        return False
    for path in glob.glob(pattern):
        with contextlib.suppress(OSError):
            if os.stat(path).st_mtime > run.started:
                return True
    return False


def run_job(job_id: str) -> int:
    """The cluster for one job: start its tasks (at most ``%N`` at once), watch them, stop the
    cancelled and requeued ones, requeue and time out as asked, until every task is final."""
    with contextlib.suppress(OSError, AttributeError):  # orphaned steps are reaped here
        ctypes.CDLL(None, use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER

    def say(message: str) -> None:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        sys.stdout.flush()

    hold = os.environ.get("FAKE_SLURM_HOLD") == "1"
    kill_wait = float(os.environ.get("FAKE_SLURM_KILL_WAIT", "2"))
    running: dict[str, Running] = {}
    waiting_since = time.time()
    while True:
        while True:  # reap: batch shells (their exit codes) and orphaned steps
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            for run in running.values():
                if run.pid == pid:
                    run.exit_code = os.waitstatus_to_exitcode(status)
        now = time.time()
        with locked():
            job = load(job_id)
            assert job is not None
            for index, task in job["tasks"].items():
                run = running.get(index)
                if run is None:
                    busy = len(running) >= job["parallelism"]
                    if (task["state"] == "PENDING" and not hold and not busy
                            and now - job["submitted"] >= 0.5):
                        started = start(job, index, task, say)
                        if started is not None:
                            running[index] = started
                        elif now - waiting_since > 60:
                            set_state(task, "FAILED")
                            say(f"{task_name(job, index)}: its output folder does not exist")
                    continue
                if (task["state"] in ("CANCELLED", "REQUEUED", "TIMEOUT") and not run.stopping
                        and now >= task.get("stop_after", 0)):
                    say(f"stopping {task_name(job, index)} ({task['state']})")
                    run.signal(signal.SIGCONT)
                    run.signal(signal.SIGTERM)
                    run.stopping, run.kill_at = True, now + kill_wait
                if (task["state"] == "RUNNING" and not run.signalled
                        and time_limit_reached(job, task, run)):
                    pid = step_pid(job, index)
                    if pid is not None:
                        sig = signal_number(str(job["directives"].get("signal", "TERM")))
                        say(f"{task_name(job, index)} nears its time limit: "
                            f"{signal.Signals(sig).name} to its step {pid}")
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, sig)
                        run.signalled, run.limit_at = True, now + kill_wait
                if (task["state"] == "RUNNING" and run.limit_at is not None
                        and now > run.limit_at):
                    say(f"{task_name(job, index)} reached its time limit")
                    set_state(task, "TIMEOUT")
                if run.kill_at is not None and now > run.kill_at and run.alive():
                    run.signal(signal.SIGKILL)
                if run.exit_code is None or run.alive():
                    continue
                del running[index]
                task["exit_code"] = run.exit_code
                say(f"{task_name(job, index)} ended (exit {run.exit_code}, {task['state']})")
                if task["state"] == "REQUEUED":
                    set_state(task, "PENDING")
                elif task["state"] == "RUNNING":
                    set_state(task, "COMPLETED" if run.exit_code == 0 else "FAILED")
            save(job)
            if not running and all(t["state"] in FINAL for t in job["tasks"].values()):
                say("every task is final")
                return 0
        time.sleep(0.05)


# ------------------------------------------------------------------------------------ srun
def srun(args: list[str]) -> int:
    """A job step inside a batch job: one task, which this process becomes (exec)."""
    record("srun", job=os.environ.get("SLURM_JOB_ID"),
           array=[os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")],
           restart=os.environ.get("SLURM_RESTART_COUNT"))
    if "SLURM_JOB_ID" not in os.environ:
        return fail("srun: error: this fake runs job steps inside a batch job only")
    opts: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, eq, value = args[i].partition("=")
        if name in SRUN_FLAGS:
            i += 1
        elif name in SRUN_VALUE:
            if not eq:
                value, i = args[i + 1], i + 1
            opts[SRUN_VALUE[name]] = value
            i += 1
        else:
            return fail(f"srun: unrecognized option '{args[i]}'")
    command = args[i:]
    if not command:
        return fail("srun: fatal: No command given to execute.")
    if int(opts.get("ntasks", os.environ.get("SLURM_NTASKS", "1"))) != 1:
        return fail("srun: error: this fake runs one task per step")
    env = {**os.environ, "SLURM_STEP_ID": "0", "SLURM_STEPID": "0", "SLURM_PROCID": "0",
           "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_STEP_NUM_TASKS": "1",
           "SLURM_STEP_NODELIST": NODE}
    mode = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if env.get("SLURM_OPEN_MODE") == "a"
                                       else os.O_TRUNC)
    for key, fd in (("output", 1), ("error", 2)):
        if key in opts:
            target = os.open(expand(opts[key], env), mode, 0o644)
            os.dup2(target, fd)
            os.close(target)
    if "output" in opts and "error" not in opts:
        os.dup2(1, 2)
    steps = home() / "steps"
    steps.mkdir(parents=True, exist_ok=True)
    key = (f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
           if "SLURM_ARRAY_JOB_ID" in env else env["SLURM_JOB_ID"])
    (steps / f"{key}.pid").write_text(str(os.getpid()))
    os.execvpe(command[0], command, env)
    return 1  # not reached


# ------------------------------------------------------------------------------------ sacct
SACCT_FIELDS = ("JobID", "JobIDRaw", "JobName", "Partition", "State", "NodeList", "ExitCode")


def sacct_rows(job: dict[str, Any]) -> list[dict[str, str]]:
    """sacct's rows for one job: a row per started task and its steps (batch, extern, 0), and
    the tasks never started folded as ``<id>_[2-5%2]``, as Slurm shows them."""
    rows: list[dict[str, str]] = []
    common = {"JobName": job["name"], "Partition": job["partition"]}
    waiting = [int(i) for i, t in job["tasks"].items() if t["state"] == "PENDING" and
               t["runs"] == 0 and job["array"]]
    if waiting:
        cap = f"%{job['parallelism']}" if job["parallelism"] < len(job["tasks"]) else ""
        spans, lo = [], waiting[0]
        for a, b in zip(waiting, [*waiting[1:], None], strict=True):
            if b != a + 1:
                spans.append(f"{lo}-{a}" if a > lo else f"{lo}")
                lo = b if b is not None else lo
        rows.append({**common, "JobID": f"{job['id']}_[{','.join(spans)}{cap}]",
                     "JobIDRaw": str(job["id"]), "State": "PENDING",
                     "NodeList": "None assigned", "ExitCode": "0:0"})
    for index, task in job["tasks"].items():
        if job["array"] and task["state"] == "PENDING" and task["runs"] == 0:
            continue
        name = task_name(job, index)
        state = task["state"]
        shown = f"CANCELLED by {os.getuid()}" if state == "CANCELLED" else state
        started = state not in ("PENDING", "REQUEUED") and task["runs"] > 0
        exit_code = f"{task['exit_code'] or 0}:0"
        rows.append({**common, "JobID": name, "JobIDRaw": str(task["raw_id"]), "State": shown,
                     "NodeList": NODE if started else "None assigned", "ExitCode": exit_code})
        if started:
            for step in ("batch", "extern", "0"):
                rows.append({"JobID": f"{name}.{step}", "JobIDRaw": f"{task['raw_id']}.{step}",
                             "JobName": step, "Partition": "", "NodeList": NODE,
                             "State": "CANCELLED" if state == "CANCELLED" else state,
                             "ExitCode": exit_code})
    return rows


def options(args: list[str], valued: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    """(name, value, as written) of each option of ``args``; an option of ``valued`` takes its
    value as ``--opt=VALUE`` or as the next argument, as Slurm's commands do."""
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        raw = args[i]
        if name in valued and not eq:
            value, i = args[i + 1], i + 1
        yield name, value, raw
        i += 1


def sacct(args: list[str]) -> int:
    record("sacct")
    fields = ["JobID", "JobName", "Partition", "State", "ExitCode"]
    ids: list[str] = []
    parsable = header = True
    trailing = False
    for name, value, raw in options(args, ("-o", "--format", "-j", "--jobs")):
        if name in ("-o", "--format"):
            fields = value.split(",")
        elif name in ("-j", "--jobs"):
            ids += value.split(",")
        elif name in ("-P", "--parsable2"):
            parsable = True
        elif name in ("-p", "--parsable"):
            parsable = trailing = True
        elif name in ("-n", "--noheader"):
            header = False
        elif name not in ("-X", "--allocations", "-a", "--allusers"):
            return fail(f"sacct: unrecognized option '{raw}'")
    wrong = [f for f in fields if f not in SACCT_FIELDS]
    if wrong:
        return fail(f"sacct: error: Invalid field requested: \"{wrong[0]}\"")
    lines = ["|".join(fields)] if header else []
    with locked():
        jobs = [load(j.partition("_")[0]) for j in ids]
    for ref, job in zip(ids, jobs, strict=True):
        if job is None:
            continue
        for row in sacct_rows(job):
            if "_" in ref and not row["JobID"].startswith(ref):
                continue
            lines.append("|".join(row[f] for f in fields) + ("|" if trailing else ""))
    if not parsable:
        lines = [" ".join(f"{c:<20}" for c in ln.split("|")) for ln in lines]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# ------------------------------------------------------------------------------------ squeue
def squeue(args: list[str]) -> int:
    """The jobs not finished: ``-j IDS``, ``-h``, ``-o FORMAT`` (%i %T %t %P %j %N)."""
    record("squeue")
    fmt, header, ids = "%.18i %.9P %.8j %.2t %.6D %R", True, None
    for name, value, raw in options(args, ("-o", "--format", "-j", "--jobs")):
        if name in ("-o", "--format"):
            fmt = value
        elif name in ("-j", "--jobs"):
            ids = set(value.split(","))
        elif name in ("-h", "--noheader"):
            header = False
        else:
            return fail(f"squeue: unrecognized option '{raw}'")
    short = {"PENDING": "PD", "RUNNING": "R", "REQUEUED": "RQ", "COMPLETED": "CD",
             "CANCELLED": "CA", "FAILED": "F", "TIMEOUT": "TO"}
    lines = []
    with locked():
        jobs = sorted((home() / "jobs").glob("*.json"))
        loaded = [json.loads(p.read_text()) for p in jobs]
    for job in loaded:
        if ids is not None and str(job["id"]) not in ids:
            continue
        for index, task in job["tasks"].items():
            if task["state"] in FINAL:
                continue
            values = {"i": task_name(job, index), "T": task["state"],
                      "t": short[task["state"]], "P": job["partition"], "j": job["name"],
                      "N": NODE if task["state"] == "RUNNING" else "", "D": "1",
                      "R": NODE if task["state"] == "RUNNING" else "(Priority)"}
            lines.append(re.sub(r"%\.?(\d*)([a-zA-Z])",
                                lambda m, v=values: v.get(m.group(2), ""), fmt))
    if header:
        lines.insert(0, re.sub(r"%\.?\d*([a-zA-Z])", lambda m: {
            "i": "JOBID", "T": "STATE", "t": "ST", "P": "PARTITION", "j": "NAME",
            "N": "NODELIST", "D": "NODES", "R": "NODELIST(REASON)"}.get(m.group(1), ""), fmt))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# ------------------------------------------------------------------------------------ scancel
def scancel(args: list[str]) -> int:
    """Cancel tasks (``123`` = every task of job 123, ``123_4`` = one), or with ``--signal``
    only signal their running steps."""
    record("scancel")
    sig: int | None = None
    refs: list[str] = []
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if name in ("-s", "--signal"):
            if not eq:
                value, i = args[i + 1], i + 1
            sig = signal_number(value)
        elif name.startswith("-"):
            if name not in ("-Q", "--quiet", "-f", "--full", "-b", "--batch"):
                return fail(f"scancel: unrecognized option '{args[i]}'")
        else:
            refs.append(args[i])
        i += 1
    if not refs:
        return fail("scancel: error: No job identification provided")
    errors: list[int] = []
    with locked():
        for job, index, task in tasks_of(refs, "scancel: error: Invalid job id {ref}", errors):
            if sig is not None:
                pid = step_pid(job, index) if task["state"] == "RUNNING" else None
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            elif task["state"] in FINAL:
                errors.append(fail(f"scancel: error: Kill job error on job id "
                                   f"{task_name(job, index)}: Job/step already completing or "
                                   "completed"))
            else:
                set_state(task, "CANCELLED")
    return max(errors, default=0)


def tasks_of(refs: list[str], invalid: str, errors: list[int]
             ) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """Each (job, index, task) the job references ``refs`` name (``123``, ``123_4``); a job's
    state is saved once its tasks are done with. An unknown reference prints ``invalid`` (with
    ``{ref}``) and its exit status goes to ``errors``, as Slurm goes on to the next one."""
    for ref in refs:
        found = find(ref)
        if found is None:
            errors.append(fail(invalid.format(ref=ref)))
            continue
        job, indices = found
        for index in indices:
            yield job, index, job["tasks"][index]
        save(job)


# ------------------------------------------------------------------------------------ scontrol
def scontrol(args: list[str]) -> int:
    """``scontrol requeue IDS``: a running task is stopped and queued again."""
    record("scontrol")
    if not args or args[0] != "requeue" or len(args) < 2:
        return fail(f"scontrol: this fake knows 'requeue JOBID' only, not {args}")
    errors: list[int] = []
    with locked():
        for job, index, task in tasks_of(",".join(args[1:]).split(","),
                                         "Requeue of job {ref} failed: Invalid job id specified",
                                         errors):
            if task["state"] != "RUNNING":
                errors.append(fail(
                    f"Requeue of job {task_name(job, index)} failed: Job is pending execution"
                    if task["state"] == "PENDING" else f"Requeue of job "
                    f"{task_name(job, index)} failed: Job is no longer pending execution"))
                continue
            set_state(task, "REQUEUED")
            # the node stops the job a moment later, as Slurm's controller tells it after
            # answering: a requeue from inside the job (submitit's) returns before its
            # processes, this scontrol's included, get SIGTERM
            task["stop_after"] = time.time() + REQUEUE_LATENCY
    return max(errors, default=0)


COMMANDS = {"sbatch": sbatch, "srun": srun, "sacct": sacct, "squeue": squeue,
            "scancel": scancel, "scontrol": scontrol}


def main() -> int:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "_run":
        return run_job(args[0])
    return COMMANDS[command](args)


if __name__ == "__main__":
    sys.exit(main())
