"""scripts/protocol_cost.py: the wall time of runs two workers made side by side counts once,
and the hours between sittings do not count."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_script


def _script() -> ModuleType:
    return load_script("protocol_cost")


def _rec(run_id: str, start: str, seconds: float) -> dict[str, Any]:
    return {"run_id": run_id, "status": "ok", "created_at": start,
            "cost": {"total_seconds": seconds},
            "env": {"cpu": "Test CPU", "machine": "x86_64", "torch_threads": 1}}


def test_union_and_sittings() -> None:
    cost = _script()
    # two workers side by side (0-100, 50-150), then a run after a two-hour break
    spans = [(0.0, 100.0), (50.0, 150.0), (7350.0, 7400.0)]
    assert cost.union_seconds(spans) == pytest.approx(200.0)
    assert cost.sittings(spans) == 2
    assert cost.union_seconds([(0.0, 10.0), (2.0, 5.0)]) == pytest.approx(10.0)
    assert cost.union_seconds([]) == 0 and cost.sittings([]) == 0


def test_summary_counts_shared_runs_once_in_the_total() -> None:
    cost = _script()
    records = [_rec("a", "2026-12-02T10:00:00+00:00", 600),
               _rec("b", "2026-12-02T10:05:00+00:00", 600),
               _rec("c", "2026-12-03T10:00:00+00:00", 1200)]
    lines = cost.summarise({"tuning": {"a", "b", "missing"}, "evaluation": {"b", "c"}}, records)
    tuning, evaluation, total = lines[2], lines[3], lines[4]
    assert "| 2 of 3 | 20 min | 15 min | 1 |" in tuning  # 10:00-10:15, one sitting
    assert "| 2 of 2 | 30 min | 30 min | 2 |" in evaluation
    assert "| 3 | 40 min | 35 min | 2 | 2026-12-02 … 2026-12-03 | 1 |" in total
    assert "Test CPU (x86_64)" in lines[-1]


def test_attacks_are_costed_once_each_the_latest_finished_one() -> None:
    cost = _script()
    runs = [_rec("a", "2026-12-02T10:00:00+00:00", 600)]
    def attack(attack_id: str, start: str, seconds: float, status: str = "ok") -> dict[str, Any]:
        return {"run": {"run_id": "a"}, "attack": {"id": attack_id}, "status": status,
                "created_at": start, "cost": {"total_seconds": seconds},
                "env": {"cpu": "Test CPU", "machine": "x86_64", "torch_threads": 1}}
    records = cost.costed(runs, [attack("relearn", "2026-12-02T10:10:00+00:00", 60),
                                 attack("relearn", "2026-12-02T10:20:00+00:00", 120),
                                 attack("invert", "2026-12-02T10:30:00+00:00", 99, "failed")])
    assert {r["run_id"] for r in records} == {"a", "a/relearn"}
    lines = cost.summarise({"robustness": {"a", "a/relearn", "a/invert"}}, records)
    assert "| 2 of 3 | 12 min |" in lines[2]  # the run (10 min) and the latest relearn (2 min)


def test_the_v2_phases_tune_what_the_plans_evaluate() -> None:
    cost = _script()
    phases = cost._phases(["heldout-digits", "robustness-digits"], ["digits-class"])
    tuning = next(v for k, v in phases.items() if k.startswith("tuning"))
    assert "(11 methods)" in next(k for k in phases if k.startswith("tuning"))
    assert len(tuning) == 88
    robust = next(v for k, v in phases.items() if "robustness" in k)
    runs = {i for i in robust if "/" not in i}
    assert {i.split("/")[1] for i in robust - runs} == {"relearn", "invert"}
    assert len(robust - runs) == 2 * len(runs)
