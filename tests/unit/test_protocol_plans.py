"""The fair protocol's guarantees, checked on the code and on the committed records: every method
has the same tuning budget, and tuning never touches what the leaderboard evaluates."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from tests.conftest import ROOT
from ubench.api import TUNING_BUDGET
from ubench.catalog.registry import METHODS, TASKS
from ubench.core.config import build_config
from ubench.sweep.plan import load_plan

PROTOCOL_PLANS = ("protocol-digits", "protocol-t2i", "robustness-digits", "robustness-t2i")
INSTANCE = ("forget_class", "forget_digit", "forget_style", "eval_split", "eval_seed")


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_has_the_same_budget(name: str) -> None:
    cls = METHODS.get(name)
    if cls.reference or cls.external:  # reference rows and given models are not tuned
        assert not cls.search_space
        return
    assert cls.search_space, f"{name} declares no tuning space"
    assert cls.family, f"{name} declares no family"
    for family, space in cls.search_space.items():
        assert family in ("class-conditional", "text-conditional")
        assert math.prod(len(v) for v in space.values()) == TUNING_BUDGET
        for combo in itertools.product(*space.values()):  # every point is a valid config
            build_config(cls.Config, dict(zip(space, combo, strict=True)), name)


def _evaluated_cells() -> set[tuple[str, tuple[tuple[str, object], ...], int]]:
    """(task, instance values, seed) of every run the protocol plans evaluate."""
    cells = set()
    for plan in PROTOCOL_PLANS:
        for block in load_plan(ROOT / "plans" / f"{plan}.toml").blocks:
            for task in block.tasks:
                defaults = TASKS.get(task).Config().to_dict()
                keys = [k for k in INSTANCE if k in defaults]
                grids = [block.task.get(k, (defaults[k],)) for k in keys]
                for values in itertools.product(*grids):
                    for seed in block.seeds:
                        cells.add((task, tuple(zip(keys, values, strict=True)), seed))
    return cells


def _tuning_cells() -> set[tuple[str, tuple[tuple[str, object], ...], int]]:
    cells = set()
    for task in {c[0] for c in _evaluated_cells()}:
        cls = TASKS.get(task)
        assert not cls.tuning_task, f"{task} must be tuned on cells of its own (protocol v2)"
        defaults = cls.Config().to_dict()
        keys = [k for k in INSTANCE if k in defaults]
        for cell in cls.tuning_cells:
            merged = {**defaults, **cell}
            cells.add((task, tuple((k, merged[k]) for k in keys), cls.tuning_seed))
    return cells


def test_tuning_cells_are_disjoint_from_the_evaluated_cells() -> None:
    evaluated, tuning = _evaluated_cells(), _tuning_cells()
    assert tuning and evaluated
    assert not tuning & evaluated
    # stronger: no tuning cell shares its forget instance *and* prompt split and evaluation
    # noise with an evaluated one (the seed alone would make them differ), and no tuning seed
    # is an evaluated seed
    assert not {(t, i) for t, i, _ in tuning} & {(t, i) for t, i, _ in evaluated}
    assert not {s for *_, s in tuning} & {s for *_, s in evaluated}
    # every task tunes on its own cells: t2i on held-out prompts of the train colours, which no
    # evaluated cell uses; digits, which evaluates all ten classes (so its tuning class is also
    # evaluated), on another run seed *and* other evaluation noise (eval_seed)
    for task, inst, _ in tuning:
        values = dict(inst)
        if "eval_split" in values:
            assert values["eval_split"] == "tune"
            assert all(dict(i).get("eval_split") == "test" for t, i, _ in evaluated if t == task)
        else:
            assert values["eval_seed"] not in {dict(i)["eval_seed"] for t, i, _ in evaluated
                                               if t == task}
    assert {t for t, _, _ in tuning} == {t for t, _, _ in evaluated}


def test_committed_tuning_runs_never_ran_an_evaluated_cell() -> None:
    """Every committed tuning record ran a tuning cell, and none shares its identity or its
    (task, instance, seed) with a committed evaluation record."""
    from ubench.store.reader import load_records

    tuning, evaluation = {}, {}
    for rec in load_records(ROOT / "leaderboard" / "records"):
        path = rec["_path"]
        if rec.get("identity_version", 1) < 2:
            continue
        cfg = rec["task"]["config"]
        key = (rec["task"]["id"], tuple((k, cfg[k]) for k in INSTANCE if k in cfg), rec["seed"])
        role = (rec.get("protocol") or {}).get("role")
        (tuning if role == "tuning" else evaluation)[rec["run_id"]] = key
        if role == "tuning":  # it ran the cell it records (the cells of its protocol version)
            cell = rec["protocol"]["cell"]
            assert all(cfg.get(k) == v for k, v in cell.items()), path
            assert rec["seed"] == TASKS.get(rec["task"]["id"]).tuning_seed, path
            assert rec["protocol"]["budget"] == TUNING_BUDGET
    assert len(tuning) > 100 and len(evaluation) > 100  # (the committed protocol's records)
    assert not set(tuning) & set(evaluation)
    assert not set(tuning.values()) & set(evaluation.values())


def test_the_committed_preset_was_chosen_by_the_declared_rule() -> None:
    """Recomputing each task's choice from the committed tuning records gives the committed
    preset (the preset is derived data, never typed by hand)."""
    from ubench.catalog.presets import PRESET_DIR
    from ubench.sweep.tune import task_section, tuning_points

    path = PRESET_DIR / "tuned.json"
    if not path.is_file():
        pytest.skip("no tuned preset committed yet")
    committed = json.loads(path.read_text())["tasks"]
    for task, section in committed.items():
        points = tuning_points(ROOT / "leaderboard" / "records", task)
        families = {m: METHODS.get(m).family or m for m in points}
        again = task_section(TASKS.get(task), points, families)
        assert again["target"] == section["target"], task
        for m, entry in section["methods"].items():
            assert again["methods"][m]["values"] == entry["values"], (task, m)


@pytest.mark.parametrize("task", [t for t in TASKS.names()
                                  if TASKS.get(t).tuning_rule and TASKS.get(t).tuning_cells
                                  and not TASKS.get(t).tuning_task])
def test_every_tuning_run_resolves_to_its_point(task: str) -> None:
    """`ubench tune --method all` builds every point as `--set` overrides; each must parse back
    to the point's own values (a string choice once arrived quoted and was refused)."""
    from ubench.core.errors import MissingAssetError
    from ubench.run.identity import methods_for
    from ubench.sweep.tune import tuning_items

    methods = [m for m in methods_for(task) if METHODS.get(m).search_space]
    try:
        items = tuning_items(methods, task)
    except MissingAssetError as e:  # cifar10-class resolves its dataset's digest
        pytest.skip(str(e))
    assert len(items) == len(methods) * TUNING_BUDGET * len(TASKS.get(task).tuning_cells)
    for item in items:
        for key, value in item.protocol["point"].items():
            got = item.method_config[key]
            assert (list(got) if isinstance(got, tuple) else got) == \
                (list(value) if isinstance(value, tuple) else value), (item.method, key)


@pytest.mark.parametrize("name", ["digits", "t2i"])
def test_the_robustness_plans_attack_the_protocols_runs(name: str) -> None:
    """Every run a robustness plan attacks is a run of the protocol plan of its tasks (same
    method, task, instance grid, seeds and preset), so the robustness table describes the
    leaderboard's own models."""
    def runs(plan: str) -> set[tuple[object, ...]]:
        out = set()
        for block in load_plan(ROOT / "plans" / f"{plan}.toml").blocks:
            keys = sorted(block.task)
            for method, task, seed, values in itertools.product(
                    block.methods or (), block.tasks, block.seeds,
                    itertools.product(*(block.task[k] for k in keys))):
                out.add((method, task, seed, tuple(zip(keys, values, strict=True)),
                         tuple(sorted(block.method.items())), block.preset))
        return out

    attacked = runs(f"robustness-{name}")
    assert attacked and attacked <= runs(f"protocol-{name}")
    for block in load_plan(ROOT / "plans" / f"robustness-{name}.toml").blocks:
        assert {"relearn", "invert"} <= set(block.attacks)
