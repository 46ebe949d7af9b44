"""The command line: exit codes, one-line errors, --json purity, --method all, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST, TINY


def ubench(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "ubench.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[-1].startswith("error: "), proc.stderr
    return lines[-1]


def fast_sets() -> list[str]:
    return [a for s in FAST for a in ("--set", s)]


@pytest.mark.parametrize(("args", "needle"), [
    (["--method", "boostalgn", "--task", TINY], "did you mean 'boostalign'"),
    (["--method", "boostalign", "--task", "digits"], "unknown task"),
    (["--method", "boostalign", "--task", TINY, "--set", "method.lr"], "SCOPE.KEY=VALUE"),
    (["--method", "boostalign", "--task", TINY, "--set", "method.lrr=1"], "did you mean 'lr'"),
    (["--method", "boostalign", "--task", TINY, "--set", "task.forget_class=11"], "0..9"),
    (["--method", "boostalign", "--task", TINY, "--set", "method.scope=xattn"], "cross-attention"),
    (["--method", "ga,,graddiff", "--task", TINY], "separated by commas"),
    (["--method", "ga,ga", "--task", TINY], "names an id twice"),
    (["--method", "ga,graddff", "--task", TINY], "did you mean 'graddiff'"),
    (["--method", "ga", "--task", f"{TINY},digits"], "unknown task"),
    (["--method", "external", "--task", TINY], "ubench eval"),
    (["--method", "ga,finetune", "--task", TINY, "--set", "method.ewc_weight=1"],
     "no selected method has this key"),
])
def test_usage_errors_exit_2_with_one_line(args: list[str], needle: str, store: Path) -> None:
    proc = ubench("run", *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in one_error_line(proc).lower() or needle in one_error_line(proc)
    assert proc.stdout == ""


def test_nan_loss_exits_1(store: Path) -> None:
    proc = ubench("run", "--method", "ga", "--task", TINY, *fast_sets(),
                  "--set", "method.lr=1e30", "--set", "method.truncation=none")
    assert proc.returncode == 1
    assert "became nan" in one_error_line(proc).lower() or "became inf" in one_error_line(proc)


def test_json_prints_only_the_record(store: Path) -> None:
    proc = ubench("run", "--method", "finetune", "--task", TINY, *fast_sets(), "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["method"]["id"] == "finetune" and rec["status"] == "ok"
    again = ubench("run", "--method", "finetune", "--task", TINY, *fast_sets(), "--json")
    assert json.loads(again.stdout)["run_id"] == rec["run_id"]
    assert "finished already" in again.stderr


def test_corrupt_record_exit_1_and_report_refuses(store: Path, tmp_path: Path) -> None:
    assert ubench("run", "--method", "ga", "--task", TINY, *fast_sets()).returncode == 0
    assert ubench("run", "--method", "base", "--task", TINY).returncode == 0
    out = tmp_path / "lb"
    assert ubench("report", "--out", str(out)).returncode == 0
    before = (out / "README.md").read_text()
    rec = next(store.glob("**/ga/**/record.json"))
    rec.write_text("[]")
    proc = ubench("run", "--method", "ga", "--task", TINY, *fast_sets())
    assert proc.returncode == 1 and "--force" in one_error_line(proc)
    rep = ubench("report", "--out", str(out))
    assert rep.returncode == 1 and "corrupt record" in one_error_line(rep)
    assert (out / "README.md").read_text() == before  # nothing already computed is lost
    assert len(list(store.glob("**/record.json"))) == 2


@pytest.mark.slow
@pytest.mark.heavy
def test_method_all_runs_every_fitting_method(store: Path, tmp_path: Path) -> None:
    proc = ubench("run", "--method", "all", "--task", TINY, *fast_sets(), "--json")
    assert proc.returncode == 0, proc.stderr
    recs = json.loads(proc.stdout)
    assert {r["method"]["id"] for r in recs} == {"base", "boostalign", "finetune", "ga",
                                                 "graddiff", "retrain", "rl", "salun",
                                                 "esd-u", "esd-full", "ca", "sa", "erasediff"}
    out = tmp_path / "lb"
    rep = ubench("report", "--out", str(out))
    assert rep.returncode == 0, rep.stderr
    md = (out / "README.md").read_text()
    assert md.startswith("<!-- GENERATED")
    assert "retrain *(ref)*" in md and "| boostalign" in md
    csv = (out / "leaderboard.csv").read_text().splitlines()
    assert len(csv) == 1 + 13


def test_list_commands() -> None:
    for kind, names in [("methods", ["boostalign", "graddiff", "ga", "finetune"]),
                        ("tasks", ["digits-class", "digits-class-tiny"]),
                        ("metrics", ["ua", "ra", "fd"])]:
        proc = ubench("list", kind)
        assert proc.returncode == 0
        for n in names:
            assert n in proc.stdout


def test_comma_lists_run_each_method_on_each_task(store: Path) -> None:
    proc = ubench("run", "--method", "ga,graddiff", "--task", f"{TINY},t2i-attribute-tiny",
                  "--set", "method.steps=2", "--set", "method.batch_size=8", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = json.loads(proc.stdout)
    assert sorted((r["method"]["id"], r["task"]["id"]) for r in recs) == [
        ("ga", TINY), ("ga", "t2i-attribute-tiny"), ("graddiff", TINY),
        ("graddiff", "t2i-attribute-tiny")]


def test_limit_caps_a_digits_run(store: Path) -> None:
    proc = ubench("run", "--method", "ga", "--task", TINY, *fast_sets(), "--limit", "3", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads(proc.stdout)["task"]["config"]
    assert config["eval_forget"] == 3 and config["eval_per_class"] <= 10
