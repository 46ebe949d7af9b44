"""`ubench sweep --on slurm` through submitit's real Slurm branch, against a fake Slurm.

The fake (tests/stubs/slurm/fake_slurm.py) answers ``sbatch``, ``srun``, ``sacct``, ``squeue``,
``scancel`` and ``scontrol`` as Slurm does; a wrapper per command is put on ``PATH`` and nothing
of ubench or submitit is replaced, so these tests take the code path a real cluster takes
(``cluster=None``: submitit's ``SlurmExecutor``, its batch script, its requeue on ``--signal``).
The fake records every call, which the tests read back.

The default run checks, in-process and in seconds, what the sweep asks Slurm for (and that
submitit's real ``SlurmExecutor`` accepts it: ``max_num_timeout`` is an argument of the executor,
not a job parameter), Ctrl-C's ``scancel``, and the one-line errors. The ``slow`` ones drive the
real CLI, ``python -m ubench.cli.main sweep --on slurm``, on tiny runs: records made once,
``sacct`` polling, a job requeued at its time limit that resumes, one out of requeues, Ctrl-C,
an unknown partition.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from ubench.core.errors import ConfigError, MissingExtraError
from ubench.sweep.executors import SlurmExecutor, make_executor
from ubench.sweep.worker import Job, Outcome, log_path

submitit = pytest.importorskip("submitit", reason="the slurm extra is not installed: pip "
                               "install 'ubench[slurm]'")

FAKE = ROOT / "tests" / "stubs" / "slurm" / "fake_slurm.py"
COMMANDS = ("sbatch", "srun", "sacct", "squeue", "scancel", "scontrol")
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


class FakeSlurm:
    """The fake cluster of one test: its state folder, and what it recorded."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def calls(self, command: str) -> list[dict[str, Any]]:
        """Every call of ``command`` so far (argv, and what the fake noted)."""
        path = self.home / "calls" / f"{command}.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def jobs(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.home / "jobs").glob("*.json"))]

    def states(self) -> dict[str, str]:
        """Task (``1000_0``, or ``1000`` for a job that is no array) -> its state."""
        return {(f"{j['id']}_{i}" if j["array"] else str(j["id"])): t["state"]
                for j in self.jobs() for i, t in j["tasks"].items()}

    def settled(self, timeout: float = 30) -> None:
        """Wait until the runner of every job is done (every task final, its processes
        gone)."""
        deadline = time.monotonic() + timeout
        for job in self.jobs():
            log = self.home / f"runner-{job['id']}.log"
            while "every task is final" not in (log.read_text() if log.is_file() else ""):
                assert time.monotonic() < deadline, f"job {job['id']} never settled: " + (
                    log.read_text() if log.is_file() else "no runner log")
                time.sleep(0.1)

    def cancel_all(self) -> None:
        """Cancel what a failed test left queued or running (so no runner outlives it)."""
        for job in self.jobs():
            if any(t["state"] not in FINAL for t in job["tasks"].values()):
                subprocess.run([str(self.home.parent / "bin" / "scancel"), str(job["id"])],
                               capture_output=True, check=False)


@pytest.fixture()
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlurm]:
    """A fake Slurm on PATH (this process's and the sweeps' it starts), with a fresh state
    folder and a fresh submitit job watcher (its cache is per process: job ids start at 1000
    again in every test)."""
    from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

    bin_dir = tmp_path / "slurm" / "bin"
    bin_dir.mkdir(parents=True)
    for command in COMMANDS:
        wrapper = bin_dir / command
        wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} "
                           f"{shlex.quote(str(FAKE))} {command} \"$@\"\n")
        wrapper.chmod(0o755)
    fake = FakeSlurm(tmp_path / "slurm" / "cluster")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(fake.home))
    for knob in ("FAKE_SLURM_PARTITIONS", "FAKE_SLURM_HOLD", "FAKE_SLURM_TIME_LIMIT_ON",
                 "FAKE_SLURM_TIME_LIMIT_RUNS", "FAKE_SLURM_KILL_WAIT"):
        monkeypatch.delenv(knob, raising=False)
    monkeypatch.setattr(SlurmJob, "watcher", SlurmInfoWatcher(delay_s=600))
    try:
        yield fake
    finally:
        fake.cancel_all()
        with contextlib.suppress(AssertionError):
            fake.settled()


class _Events:
    def started(self, job: Job) -> None:
        pass

    def finished(self, job: Job, outcome: Outcome) -> None:
        pass


def _jobs(store: Path, n: int) -> list[Job]:
    return [Job("ga", "digits-class-tiny", seed, (), f"run{seed}", str(store))
            for seed in range(n)]


@contextlib.contextmanager
def _ctrl_c_when(ready: Callable[[], bool], timeout: float = 60) -> Iterator[None]:
    """Press Ctrl-C (KeyboardInterrupt in the main thread) once ``ready()``, or after
    ``timeout`` seconds whatever ``ready()`` says (the test then fails on its checks instead of
    waiting forever on held jobs); never after the block ended.

    SIGINT is given Python's own handler for the block: a process started in the background by
    a non-interactive shell (``.ci/run &``, nohup) inherits SIGINT ignored, and
    ``interrupt_main`` then does nothing."""
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            if ready() or time.monotonic() >= deadline:
                _thread.interrupt_main()
                return
            time.sleep(0.05)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------- default (seconds)
def test_sbatch_gets_what_the_sweep_asks_and_ctrl_c_scancels_the_jobs(
        slurm: FakeSlurm, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Slurm branch up to the queue: submitit's SlurmExecutor accepts the sweep's
    parameters (before the fix, ``slurm_max_num_timeout`` given as a parameter raised
    NameError here), sbatch gets partition, GPUs, time, CPUs, array parallelism and the
    extra parameters, ``--retries`` becomes submitit's requeue budget; the state is polled
    through sacct; Ctrl-C cancels every job with one scancel."""
    monkeypatch.setenv("FAKE_SLURM_HOLD", "1")  # a busy cluster: the jobs stay pending
    ex = make_executor("slurm", workers=2, threads=2, retries=3, partition="gpu", gpus=1.0,
                       timeout_min=5, poll_s=0.05,
                       extra={"slurm_qos": "high", "mem_gb": 4})
    with _ctrl_c_when(lambda: bool(slurm.calls("sacct"))), pytest.raises(KeyboardInterrupt):
        ex.run(_jobs(store, 3), _Events())

    (sbatch,) = slurm.calls("sbatch")
    d = sbatch["directives"]
    assert (d["partition"], d["gpus-per-node"], d["time"], d["cpus-per-task"], d["array"]) == \
        ("gpu", "1", "5", "2", "0-2%2")
    assert (d["qos"], d["mem"], d["nodes"], d["ntasks-per-node"]) == ("high", "4GB", "1", "1")
    assert d["signal"] == "USR2@75"  # a quarter of the 5 minutes (submitit's 90 s otherwise)
    assert "error" in d  # stderr in its own file (the log a failed job's message names)
    pickled = store / ".sweep" / "slurm" / "1000_0" / "1000_0_submitted.pkl"
    assert submitit.core.utils.DelayedSubmission.load(pickled)._timeout_countdown == 3
    assert slurm.calls("sacct")[0]["argv"] == ["-o", "JobID,State,NodeList", "--parsable2",
                                               "-j", "1000"]
    assert [c["argv"] for c in slurm.calls("scancel")] == [["1000_0", "1000_1", "1000_2"]]
    assert set(slurm.states().values()) == {"CANCELLED"}
    assert not slurm.calls("srun")
    slurm.settled()


def test_the_executor_is_submitits_slurm_executor_with_its_requeue_budget(
        slurm: FakeSlurm, tmp_path: Path) -> None:
    """What the sweep submits with: submitit's SlurmExecutor itself (not its local one), with
    ``max_num_timeout`` = ``--retries`` and no array cap beyond ``--workers``."""
    ex = SlurmExecutor(retries=2, timeout_min=60).submitit_executor(tmp_path / "f", 7)
    inner = ex._executor
    assert isinstance(inner, submitit.SlurmExecutor)
    assert inner.max_num_timeout == 2
    assert inner.parameters["array_parallelism"] == 7  # all at once without --workers
    assert inner.parameters["time"] == 60 and inner.parameters["signal_delay_s"] == 90
    assert "partition" not in inner.parameters  # the cluster's default partition


@pytest.mark.parametrize(("extra", "says"), [
    ({"slurm_partitionn": "gpu"}, "extra submitit parameter 'slurm_partitionn' is unknown"),
    ({"memory": "4G"}, "extra submitit parameter 'memory' is unknown"),
    ({"mem_gb": "lots"}, "extra submitit parameter 'mem_gb'='lots': submitit refuses it"),
    ({"slurm_max_num_timeout": 5}, "'slurm_max_num_timeout': set by the sweep (--retries"),
])
def test_a_bad_extra_parameter_is_one_line_naming_it(slurm: FakeSlurm, store: Path,
                                                     extra: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SlurmExecutor(extra=extra).run(_jobs(store, 1), _Events())
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not slurm.calls("sbatch")


def test_an_unknown_partition_is_one_line_and_nothing_is_queued(
        slurm: FakeSlurm, store: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_SLURM_PARTITIONS", "batch,gpu")
    with pytest.raises(ConfigError) as caught:
        SlurmExecutor(partition="nosuch").run(_jobs(store, 2), _Events())
    assert str(caught.value) == ("sbatch refused the sweep's 2 jobs: sbatch: error: Batch job "
                                 "submission failed: Invalid partition name specified "
                                 "(--partition nosuch)")
    assert capfd.readouterr().err == ""  # submitit's echo of sbatch's stderr is in the error
    assert [c["refused"] for c in slurm.calls("sbatch")] == ["invalid partition"]
    assert not slurm.jobs()


def test_no_slurm_on_path_is_one_line(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingExtraError, match=r"--on slurm needs Slurm's sbatch and srun on "
                       r"PATH: run the sweep on the cluster's login node"):
        SlurmExecutor().run(_jobs(store, 1), _Events())


# ------------------------------------------------------------------------- the CLI (slow)
def _plan(tmp_path: Path, seeds: list[int], steps: int) -> Path:
    plan = tmp_path / "plan.toml"
    plan.write_text(textwrap.dedent(f"""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        seeds = {seeds}
        method.steps = {steps}
        method.batch_size = 16
    """))
    return plan


def _sweep(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ubench.cli.main", "sweep", *args,
                           "--on", "slurm"], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def _records(store: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(store.glob("*/*/*/record.json"))]


@pytest.mark.slow
@pytest.mark.engines
def test_a_sweep_on_slurm_makes_each_record_once_polling_through_sacct(
        slurm: FakeSlurm, store: Path, tmp_path: Path) -> None:
    plan = _plan(tmp_path, [0, 1], 4)
    proc = _sweep(str(plan), "--store", str(store), "--partition", "gpu", "--timeout", "30",
                  "--workers", "2", "--json", env={"FAKE_SLURM_PARTITIONS": "batch,gpu"})
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in json.loads(proc.stdout)["runs"]] == ["ran", "ran"]
    (sbatch,) = slurm.calls("sbatch")
    d = sbatch["directives"]
    assert (d["partition"], d["time"], d["cpus-per-task"], d["array"]) == \
        ("gpu", "30", "1", "0-1%2")
    assert "gpus-per-node" not in d
    records = _records(store)
    assert [r["status"] for r in records] == ["ok", "ok"]
    for rec in records:  # each run made once, by one job step
        assert log_path(store, rec["run_id"]).read_text().count("\nran: ") == 1
    assert sorted(c["array"][1] for c in slurm.calls("srun")) == ["0", "1"]
    sacct = slurm.calls("sacct")
    assert sacct and all(c["argv"][-2:] == ["-j", "1000"] for c in sacct)
    assert not slurm.calls("scancel") and not slurm.calls("scontrol")
    slurm.settled()
    assert set(slurm.states().values()) == {"COMPLETED"}


@pytest.mark.slow
@pytest.mark.engines
def test_a_job_at_its_time_limit_is_requeued_and_the_run_resumes(
        slurm: FakeSlurm, store: Path, tmp_path: Path) -> None:
    """The simulated clock: the run's first checkpoint (step 2) is its job's time limit; Slurm
    sends USR2, submitit requeues the job (``scontrol requeue``), it runs again and resumes
    from step 2; the record is written once."""
    plan = _plan(tmp_path, [5], 12)
    proc = _sweep(str(plan), "--store", str(store), "--timeout", "5", "--checkpoint-every",
                  "2", "--retries", "1",
                  env={"FAKE_SLURM_TIME_LIMIT_ON": f"{store}/*/*/*/checkpoint/*"})
    assert proc.returncode == 0, proc.stderr
    assert [c["argv"] for c in slurm.calls("scontrol")] == [["requeue", "1000"]]
    assert [c["restart"] for c in slurm.calls("srun")] == ["0", "1"]  # two starts of job 1000
    (rec,) = _records(store)
    assert rec["status"] == "ok" and rec["train_log"]["resumed_from"] == 2
    log = log_path(store, rec["run_id"]).read_text()
    assert log.count("slurm: Slurm job 1000 requeued") == 1
    assert log.count("resuming from the checkpoint at step 2") == 1
    assert log.count("\nran: ") == 1
    slurm.settled()
    (job,) = slurm.jobs()
    assert job["tasks"]["0"]["history"] == ["PENDING", "RUNNING", "REQUEUED", "PENDING",
                                            "RUNNING", "COMPLETED"]


@pytest.mark.slow
@pytest.mark.engines
def test_a_job_out_of_requeues_fails_in_one_line_and_keeps_its_checkpoint(
        slurm: FakeSlurm, store: Path, tmp_path: Path) -> None:
    plan = _plan(tmp_path, [5], 12)
    proc = _sweep(str(plan), "--store", str(store), "--timeout", "5", "--checkpoint-every",
                  "2", "--retries", "1",
                  env={"FAKE_SLURM_TIME_LIMIT_ON": f"{store}/*/*/*/checkpoint/*",
                       "FAKE_SLURM_TIME_LIMIT_RUNS": "2"})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (fail,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("FAIL")]
    assert ("its Slurm job reached its time limit (--timeout 5) 2 times, with no requeue left "
            "(--retries 1)") in fail
    assert "rerun the same command to resume from step 4 (its last checkpoint)" in fail
    assert proc.stderr.splitlines()[-1].startswith("error: 1 of 1 runs failed")
    assert [c["argv"] for c in slurm.calls("scontrol")] == [["requeue", "1000"]]
    assert not _records(store)
    assert list(store.glob("*/*/*/checkpoint"))  # the next sweep resumes from it
    slurm.settled()


@pytest.mark.slow
@pytest.mark.engines
def test_ctrl_c_scancels_the_jobs_and_exits_130(slurm: FakeSlurm, store: Path,
                                               tmp_path: Path) -> None:
    """SIGINT to the sweep while one job runs and one waits (``--workers 1``)."""
    plan = _plan(tmp_path, [7, 8], 1000)
    proc = subprocess.Popen([sys.executable, "-m", "ubench.cli.main", "sweep", str(plan),
                             "--on", "slurm", "--store", str(store), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not slurm.calls("srun"):  # the first job's step has started
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "sweep interrupted: 0 of 2 runs finished" in err and "Traceback" not in err
    assert [c["argv"] for c in slurm.calls("scancel")] == [["1000_0", "1000_1"]]
    slurm.settled()
    assert set(slurm.states().values()) == {"CANCELLED"}
    pid = int((slurm.home / "steps" / "1000_0.pid").read_text())
    with pytest.raises(ProcessLookupError):  # the job's step is gone
        os.kill(pid, 0)


@pytest.mark.slow
@pytest.mark.engines
def test_an_unknown_partition_is_one_line_and_exit_2(slurm: FakeSlurm, store: Path,
                                                     tmp_path: Path) -> None:
    proc = _sweep(str(_plan(tmp_path, [0], 4)), "--store", str(store), "--partition", "nosuch",
                  env={"FAKE_SLURM_PARTITIONS": "batch,gpu"})
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1] == ("error: sbatch refused the sweep's 1 job: sbatch: error: Batch job "
                         "submission failed: Invalid partition name specified (--partition "
                         "nosuch)")
    assert "Traceback" not in proc.stderr and "sbatch: error" not in "".join(lines[:-1])
    assert not slurm.jobs()
