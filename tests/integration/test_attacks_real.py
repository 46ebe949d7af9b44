"""The attacks' sanity checks on real digits-class runs (marked ``slow``: minutes of CPU, not in
the default run). They can fail, and say so: an inversion that cannot find the forget class in
the *base* model measures nothing, and relearning should be no faster on the oracle (which never
saw the class) than on a model that gradient ascent only pushed away from it.

Measured when written (forget class 0, seed 0, one thread): ``invert_rate`` on the base model
0.084 / 0.832 / 1.000 at 0 / 50 / 200 steps; steps to relearn (concept rate >= 0.5): oracle 50,
``ga`` 10, ``boostalign`` 200.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ubench.run import attack as attack_runner
from ubench.run import identity, runner


def _run(method: str, store: Path) -> Path:
    return runner.run(identity.resolve(method, "digits-class", 0, []), store=store).path.parent


def _attack(name: str, run: Path) -> dict:
    return attack_runner.run_attack(attack_runner.resolve_attack(name, run)).record


@pytest.mark.slow
def test_invert_finds_the_class_in_the_base_model(store: Path) -> None:
    rec = _attack("invert", _run("base", store))
    rates = {k: v["value"] for k, v in rec["metrics"].items()}
    assert rates["invert_rate@0"] < 0.3  # the null class: about one digit in ten
    assert rates["invert_rate@200"] >= 0.8, rates


@pytest.mark.slow
def test_relearning_is_no_faster_on_the_oracle_than_after_gradient_ascent(store: Path) -> None:
    oracle = _attack("relearn", _run("retrain", store))["details"]["steps_to_relearn"]
    ga = _attack("relearn", _run("ga", store))["details"]["steps_to_relearn"]
    assert ga is not None, "gradient ascent's model did not relearn the class within 200 steps"
    assert oracle is None or ga <= oracle, (ga, oracle)
