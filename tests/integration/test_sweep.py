"""`ubench sweep` end to end: every executor makes the records sequential runs make; sweeps are
idempotent, resume after a killed worker, share a store without doing a run twice, and report
failures in a table with exit 1.

The Ray and submitit tests need the extras (``pip install 'ubench[ray,slurm]'``; ``.ci/run``
installs them) and are skipped with that reason without them; they and the process-fault tests
are ``slow`` (``.ci/run`` runs ``-m "slow and faults"`` and ``-m "slow and engines"``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from ubench.core.env import fixed_threads
from ubench.core.locks import hold
from ubench.report.build import build_report
from ubench.sweep import load_plan, run_items, run_one
from ubench.sweep.worker import log_path

TINY_PLAN = ROOT / "plans" / "tiny.toml"
RAY_MISSING = "the ray extra is not installed: pip install 'ubench[ray]'"
SUBMITIT_MISSING = "the slurm extra is not installed: pip install 'ubench[slurm]'"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ubench.cli.main", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def comparable(store: Path) -> dict[str, Any]:
    """run id -> record without what differs between two makings of one run (timings, creation
    time, whether it resumed from a checkpoint, and the checkout's git state, which a commit made
    while the tests run changes), plus its per-sample judgements."""
    out = {}
    for path in sorted(store.glob("**/record.json")):
        rec = json.loads(path.read_text())
        rec.pop("created_at")
        rec.pop("cost")
        rec["env"].pop("git")
        for key in ("resumed_from", "seconds_before_resume"):
            rec["train_log"].pop(key, None)
        rec["samples.jsonl"] = (path.parent / "samples.jsonl").read_text()
        out[rec["run_id"]] = rec
    return out


@pytest.fixture(scope="module")
def sequential(ubench_home: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, dict[str, Any]]:
    """The tiny plan's runs made one after another in this process, on one thread."""
    store = tmp_path_factory.mktemp("sequential")
    with fixed_threads(1):
        for item in load_plan(TINY_PLAN).specs():
            out = run_one(item.method, item.task, item.seed, item.overrides, str(store), 1,
                          run_id=item.run_id)
            assert out.status == "ran", out
    return store, comparable(store)


def test_a_local_sweep_makes_the_sequential_records_and_a_second_does_nothing(
        sequential: tuple[Path, dict[str, Any]], store: Path, tmp_path: Path) -> None:
    proc = cli("sweep", str(TINY_PLAN), "--workers", "2", "--store", str(store), "--json")
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)["runs"]
    assert [r["status"] for r in runs] == ["ran"] * 4
    assert comparable(store) == sequential[1]
    for rec in comparable(store).values():
        assert rec["env"]["torch_threads"] == 1
    assert "ok    ga digits-class-tiny seed 0 method.steps=4 method.batch_size=16  ua " \
        in proc.stderr
    assert "4 runs on local: 4 ran, 0 made by another sweep, 0 finished already, 0 failed" \
        in proc.stderr
    again = run_items(load_plan(TINY_PLAN).specs(), store=store, workers=2)
    assert again.counts()["done"] == 4 and again.ok
    dry = cli("sweep", str(TINY_PLAN), "--dry-run", "--json", "--store", str(store))
    assert [r["state"] for r in json.loads(dry.stdout)] == ["done"] * 4
    assert "4 runs: 0 to run, 0 to resume, 4 finished" in dry.stderr
    build_report(store, tmp_path / "leaderboard")  # the sweep's store is an ordinary store
    assert "ga" in (tmp_path / "leaderboard" / "leaderboard.csv").read_text()


def test_failed_runs_are_a_table_and_exit_1_and_the_others_are_kept(store: Path,
                                                                     tmp_path: Path) -> None:
    plan = tmp_path / "diverge.toml"
    plan.write_text(textwrap.dedent("""
        methods = ["ga", "esd-u"]
        tasks = ["digits-class-tiny"]
        method.steps = 4
        method.batch_size = 16
        method.negative_guidance = 1e30   # esd-u only (ga has no such key): its loss diverges
    """))
    proc = cli("sweep", str(plan), "--workers", "2", "--store", str(store))
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: 1 of 2 runs failed (table above); the other records "
                                "are kept")
    assert "failed runs" in proc.stderr and "esd-u" in proc.stderr
    assert "Traceback" not in proc.stderr
    records = {p.parent.parent.name: json.loads(p.read_text())["status"]
               for p in store.glob("**/record.json")}
    assert records == {"ga": "ok", "esd-u": "failed"}
    # the failed record is reported again, not rerun (deterministic divergence), until asked
    items = load_plan(plan).specs()
    again = run_items(items, store=store)
    assert [o.status for o in again.outcomes] == ["done", "failed"]
    assert "--retry-failed" in (again.outcomes[1].error or "")
    assert again.outcomes[1].attempts == 0


def test_a_plan_with_attacks_attacks_each_run_once_and_attacks_earlier_runs(
        store: Path, tmp_path: Path) -> None:
    """`attacks` in a plan: the run and its attack records; a second sweep does nothing; an
    attack record removed later is the only thing the next sweep makes again."""
    plan = tmp_path / "attacked.toml"
    plan.write_text(textwrap.dedent("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        method.steps = 4
        method.batch_size = 16
        attacks = ["relearn"]
        attack.budgets = [0, 2]
        attack.samples = 4
        attack.batch_size = 4
    """))
    proc = cli("sweep", str(plan), "--workers", "1", "--store", str(store), "--json")
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads(proc.stdout)["runs"]
    assert run["status"] == "ran" and "relearn_ua@2" in run["metrics"]
    (attack,) = store.glob("**/attacks/relearn/*/attack.json")
    rec = json.loads(attack.read_text())
    assert rec["status"] == "ok" and rec["attack"]["config"]["budgets"] == [0, 2]
    record = Path(run["record"])
    made = record.stat().st_mtime_ns
    dry = cli("sweep", str(plan), "--dry-run", "--json", "--store", str(store))
    assert [r["state"] for r in json.loads(dry.stdout)] == ["done"]
    shutil.rmtree(attack.parent)
    dry = cli("sweep", str(plan), "--dry-run", "--store", str(store))
    assert "1 finished with attacks to run" in dry.stderr and "attack (relearn)" in dry.stdout
    again = run_items(load_plan(plan).specs(), store=store, workers=1)
    assert [o.status for o in again.outcomes] == ["ran"]
    assert json.loads(attack.read_text())["metrics"] == rec["metrics"]  # deterministic
    assert record.stat().st_mtime_ns == made  # the run itself was not made again


def test_a_run_held_by_another_process_is_waited_for_then_skipped(
        sequential: tuple[Path, dict[str, Any]], store: Path) -> None:
    """The behaviour two sweeps get on one identity: the second *waits* on the run's lock and,
    finding the record made, reports the run ``skipped`` without running it."""
    item = load_plan(TINY_PLAN).specs()[0]
    results: list[Any] = []
    lock = store / ".locks" / f"{item.run_id}.lock"
    with hold(lock, "the test"):
        worker = threading.Thread(target=lambda: results.append(
            run_items([item], store=store, workers=1)))
        worker.start()
        log = log_path(store, item.run_id)
        t0 = time.time()
        while "waiting for another process" not in (log.read_text() if log.exists() else ""):
            assert worker.is_alive() and time.time() - t0 < 300, "the worker did not wait"
            time.sleep(0.1)
        src = next(sequential[0].glob(f"**/{item.run_id}"))
        shutil.copytree(src, store / src.relative_to(sequential[0]))
    worker.join(timeout=300)
    (outcome,) = results[0].outcomes
    assert outcome.status == "skipped" and outcome.ok
    assert comparable(store)[item.run_id] == sequential[1][item.run_id]


@pytest.mark.slow
@pytest.mark.faults
def test_a_killed_worker_resumes_on_the_next_sweep_to_the_uninterrupted_record(
        store: Path, tmp_path: Path) -> None:
    plan = tmp_path / "one.toml"
    plan.write_text(textwrap.dedent("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        seeds = [5]
        method.steps = 4
        method.batch_size = 16
    """))
    (item,) = load_plan(plan).specs()
    straight = tmp_path / "straight"
    with fixed_threads(1):
        assert run_one(item.method, item.task, item.seed, item.overrides, str(straight),
                       checkpoint_every=2).status == "ran"
    args = ("sweep", str(plan), "--store", str(store), "--checkpoint-every", "2")
    killed = cli(*args, "--retries", "1", env={"UBENCH_FAILPOINT": "step:3"})
    assert killed.returncode == 1, killed.stderr
    assert "the worker process was killed by SIGKILL (2 attempts); rerun the sweep to resume " \
        "the run from its last checkpoint" in " ".join(killed.stderr.split())
    log = log_path(store, item.run_id)
    assert log.read_text().count("resuming from the checkpoint at step 2") == 1  # the retry
    assert not list(store.glob("**/record.json"))
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert log.read_text().count("resuming from the checkpoint at step 2") == 2
    assert comparable(store) == comparable(straight)


@pytest.mark.slow
@pytest.mark.faults
def test_two_sweeps_of_one_plan_at_once_do_every_run_once(
        sequential: tuple[Path, dict[str, Any]], store: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "ubench.cli.main", "sweep", str(TINY_PLAN),
                               "--workers", "2", "--store", str(store), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    statuses: dict[str, list[str]] = {}
    for out, _ in outs:
        for run in json.loads(out)["runs"]:
            statuses.setdefault(run["run_id"], []).append(run["status"])
    assert len(statuses) == 4
    for run_id, seen in statuses.items():  # made by one sweep, found by the other
        assert len(seen) == 2 and seen.count("ran") == 1, (run_id, seen)
        assert set(seen) - {"ran"} <= {"skipped", "done"}, (run_id, seen)
    assert comparable(store) == sequential[1]  # every record once, none lost


@pytest.mark.slow
@pytest.mark.engines
def test_a_ray_sweep_on_a_local_two_cpu_cluster_makes_the_same_records(
        sequential: tuple[Path, dict[str, Any]], store: Path) -> None:
    ray = pytest.importorskip("ray", reason=RAY_MISSING)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 * 2**20,
             runtime_env={"env_vars": {"UBENCH_HOME": os.environ["UBENCH_HOME"]}})
    try:
        assert ray.cluster_resources()["CPU"] == 2
        result = run_items(load_plan(TINY_PLAN).specs(), executor="ray", workers=2,
                           store=store)
    finally:
        ray.shutdown()
    assert not ray.is_initialized()
    assert [o.status for o in result.outcomes] == ["ran"] * 4, result.failures
    assert comparable(store) == sequential[1]


@pytest.mark.slow
@pytest.mark.engines
def test_a_slurm_sweep_through_submitits_local_executor_makes_the_same_records(
        sequential: tuple[Path, dict[str, Any]], store: Path) -> None:
    pytest.importorskip("submitit", reason=SUBMITIT_MISSING)
    result = run_items(load_plan(TINY_PLAN).specs(), executor="slurm", store=store,
                       cluster="local", timeout_min=30, poll_s=0.5)
    assert [o.status for o in result.outcomes] == ["ran"] * 4, result.failures
    assert comparable(store) == sequential[1]
    assert list((store / ".sweep" / "slurm").glob("*/*_result.pkl"))  # submitit's own jobs


@pytest.mark.slow
@pytest.mark.engines
def test_the_engines_benchmark_script_runs_on_the_tiny_plan(ubench_home: Path,
                                                            tmp_path: Path) -> None:
    """bench/sweep_engines.py end to end on the tiny plan (not timed: it only has to work)."""
    pytest.importorskip("ray", reason=RAY_MISSING)
    proc = subprocess.run([sys.executable, "bench/sweep_engines.py", "--plan",
                           "plans/tiny.toml", "--work", str(tmp_path / "work")], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "4 runs of plans/tiny.toml" in out
    rows = {ln[:28].strip(): ln[28:].split() for ln in out.splitlines()}
    for label in ("one after another", "local, --workers 2", "ray, 2 CPUs"):
        wall, ratio = rows[label][:2]
        assert float(wall) > 0 and ratio.endswith("x") and float(ratio[:-1]) > 0, out
    assert "records identical across the three: yes (4 runs)" in out
