"""``ubench tune``: the fair protocol's tuning — the same budget for every method, spent on the
tuning split only, one declared rule per task, the choice written to a versioned preset file.

For a task and its methods: every point of each method's declared space (``search_space``, the
task's model family; exactly ``TUNING_BUDGET`` points) on every tuning cell of the task
(``Task.tuning_cells``, run seed ``Task.tuning_seed``) is one run, run through ``ubench sweep``
(resumable; finished runs are skipped) and tagged in its record as a tuning run with its point,
space, budget and rule. Each point's metrics are averaged over the cells; the task's rule
(:class:`~ubench.report.protocol.TuningRule`) picks one point per method. A ladder target is chosen
from *every* method's tuning runs of the task in the store, so the task's whole section of the
preset file is recomputed each time. The evaluation runs then use ``--preset tuned``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ubench.api import TUNING_BUDGET, TuningRule
from ubench.core.errors import ConfigError, UbenchError
from ubench.report.protocol import Point, choose_target, is_tuning, select
from ubench.store.io import write_text_atomic


def model_family(task_cls: Any) -> str:
    """The key of a method's ``search_space`` that applies to ``task_cls``."""
    caps = set(task_cls.model_capabilities)
    return "text-conditional" if "text-conditional" in caps else "class-conditional"


def space_points(method_cls: Any, task_cls: Any
                 ) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    """(the space, its points) of a method on a task; ConfigError when it has none or its size
    is not the budget."""
    family = model_family(task_cls)
    space = {k: list(v) for k, v in method_cls.search_space.get(family, {}).items()}
    if not space:
        raise ConfigError(f"method {method_cls.name!r} declares no tuning space for "
                          f"{family} tasks (its search_space); it cannot be tuned on "
                          f"{task_cls.name!r}")
    points = [dict(zip(space, combo, strict=True))
              for combo in itertools.product(*space.values())]
    if len(points) != TUNING_BUDGET:
        raise ConfigError(f"method {method_cls.name!r}'s tuning space on {family} tasks has "
                          f"{len(points)} points; the protocol gives every method "
                          f"{TUNING_BUDGET} (fix its search_space)")
    return space, points


def tuning_items(methods: Sequence[str], task: str) -> list[Any]:
    """Every tuning run of ``methods`` on ``task`` as sweep items (resolved, with identities)."""
    from ubench.catalog.registry import METHODS, TASKS
    from ubench.sweep.plan import make_item

    task_cls = TASKS.get(task)
    rule = task_cls.tuning_rule
    if task_cls.tuning_task:
        raise ConfigError(f"task {task!r} uses the values tuned on {task_cls.tuning_task!r} "
                          f"(its --preset tuned); run `ubench tune --task "
                          f"{task_cls.tuning_task}` instead")
    if rule is None or not task_cls.tuning_cells:
        raise ConfigError(f"task {task!r} has no tuning protocol (no tuning cells or rule)")
    items = []
    for m in methods:
        method_cls = METHODS.get(m)
        space, points = space_points(method_cls, task_cls)
        for values in points:
            for cell in task_cls.tuning_cells:
                overrides = [f"method.{k}={_literal(v)}" for k, v in values.items()]
                overrides += [f"task.{k}={_literal(v)}" for k, v in cell.items()]
                protocol = {"role": "tuning", "point": values, "space": space,
                            "budget": TUNING_BUDGET, "rule": rule.to_dict(),
                            "family": method_cls.family or m, "cell": dict(cell),
                            "seed": task_cls.tuning_seed}
                items.append(make_item(m, task, task_cls.tuning_seed, overrides,
                                       block=f"tune-{m}", protocol=protocol))
    return items


def _literal(value: Any) -> str:
    """A search-space value as the text of a ``--set`` override (what the command line parses:
    a bare word for a string or choice, comma-separated items for a tuple)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def tuning_points(store: Path, task: str) -> dict[str, list[Point]]:
    """Every method's tuning points of ``task`` in ``store``, averaged over their cells."""
    from ubench.store.reader import load_records

    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rec in load_records(store):
        if rec["status"] != "ok" or not is_tuning(rec) or rec["task"]["id"] != task:
            continue
        key = json.dumps(rec["protocol"]["point"], sort_keys=True)
        grouped.setdefault(rec["method"]["id"], {}).setdefault(key, []).append(rec)
    out: dict[str, list[Point]] = {}
    for m, pts in sorted(grouped.items()):
        for recs in pts.values():
            names = set.intersection(*[set(r["metrics"]) for r in recs])
            metrics = {k: sum(r["metrics"][k]["value"] for r in recs) / len(recs)
                       for k in sorted(names)}
            out.setdefault(m, []).append(Point(m, dict(recs[0]["protocol"]["point"]), metrics,
                                               [r["run_id"] for r in recs]))
    return out


def task_section(task_cls: Any, points: Mapping[str, list[Point]],
                 families: Mapping[str, str]) -> dict[str, Any]:
    """The preset file's section of one task: rule, target, budget, and per method its
    space, points and choice."""
    from ubench.catalog.registry import METHODS

    rule: TuningRule = task_cls.tuning_rule
    limit = task_cls.garbage_limit
    target, all_families = choose_target(rule, points, families, limit)
    methods: dict[str, Any] = {}
    for m, pts in sorted(points.items()):
        complete = len(pts) == TUNING_BUDGET
        usable = [p for p in pts if rule.forget in p.metrics and rule.keep in p.metrics]
        if not usable:
            continue
        chosen, reached = select(rule, usable, target, limit)
        space, _ = space_points(METHODS.get(m), task_cls)
        methods[m] = {"values": chosen.values, "reached": reached, "space": space,
                      "complete": complete,
                      "points": [{"values": p.values, "runs": p.runs,
                                  "metrics": {k: round(v, 6) for k, v in p.metrics.items()
                                              if math.isfinite(v)}} for p in pts]}
    text = rule.describe(target) + (
        f"; a point whose garbage rate exceeds {limit:g} forgets by destroying the prompt and "
        "reaches no target" if limit is not None else "")
    return {"rule": rule.to_dict(), "rule_text": text, "target": target,
            "garbage_limit": limit,
            "target_all_families": all_families, "budget": TUNING_BUDGET,
            "cells": [dict(c) for c in task_cls.tuning_cells], "seed": task_cls.tuning_seed,
            "tuned_at": dt.date.today().isoformat(), "methods": methods}


def write_preset(path: Path, task: str, section: Mapping[str, Any]) -> None:
    """Replace ``task``'s section of the preset file at ``path`` (atomically)."""
    from ubench.catalog.presets import PRESET_VERSION

    data: dict[str, Any] = {"version": PRESET_VERSION, "tasks": {}}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            raise UbenchError(f"the preset file {path} is unreadable; restore it with git or "
                              "delete it to start over") from None
    data.setdefault("tasks", {})[task] = dict(section)
    data["tasks"] = dict(sorted(data["tasks"].items()))
    data["description"] = ("Hyper-parameters chosen by `ubench tune` under the fair protocol "
                           "(docs/protocol.md); apply with `ubench run --preset tuned`.")
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def tune(methods: Sequence[str], task: str, *, store: str | Path | None = None,
         out: str | Path | None = None, run: Callable[[list[Any]], Any] | None = None
         ) -> dict[str, Any]:
    """Run the tuning runs of ``methods`` on ``task`` (``run(items)``: a sweep), then write the
    task's preset section from every tuning run of the task in ``store``. Returns it."""
    from ubench.catalog.presets import PRESET_DIR
    from ubench.catalog.registry import METHODS, TASKS
    from ubench.core.paths import store_root

    task_cls = TASKS.get(task)
    items = tuning_items(methods, task)
    if run is not None:
        run(items)
    root = store_root(store)
    points = tuning_points(root, task)
    if not points:
        raise UbenchError(f"no finished tuning runs of {task!r} in {root}; see the sweep's "
                          "failures above")
    families = {m: (METHODS.get(m).family or m) for m in points}
    section = task_section(task_cls, points, families)
    write_preset(Path(out) if out else PRESET_DIR / "tuned.json", task, section)
    return section
