"""Presets: named sets of method hyper-parameters per task, chosen by the fair protocol.

``ubench run --preset tuned`` applies, for the run's task and method, the values ``ubench tune``
chose (``ubench/catalog/preset_files/tuned.json``, written by that command and committed), after the
task's own recipe (``Task.method_defaults``) and before ``--set``. The file records for every
task the selection rule, its target, the budget, the tuning cells and, for every method, the
space, every point's averaged metrics and the chosen point; a run made with it carries that
provenance in its record (``protocol``). A preset may also be given as a path to such a file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ubench.core.errors import ConfigError

PRESET_DIR = Path(__file__).with_name("preset_files")
#: layout version of a preset file
PRESET_VERSION = 1


def preset_path(name: str) -> Path:
    """The file of preset ``name`` (a name in ``ubench/catalog/preset_files/`` or a JSON file's
    path)."""
    p = Path(name).expanduser()
    if p.suffix == ".json" or "/" in name:
        return p
    return PRESET_DIR / f"{name}.json"


def load_preset(name: str) -> dict[str, Any]:
    """The preset file's content; one ConfigError line when it is missing or unreadable."""
    path = preset_path(name)
    if not path.is_file():
        known = sorted(f.stem for f in PRESET_DIR.glob("*.json"))
        raise ConfigError(f"no preset {name!r} ({path} does not exist); presets: "
                          f"{', '.join(known) or 'none yet'} — `ubench tune` writes 'tuned'")
    return _load(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: str, _mtime: int) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
            raise ValueError("no 'tasks' table")
    except (OSError, ValueError) as e:
        raise ConfigError(f"the preset file {path} is unreadable ({e}); restore it with git or "
                          "rerun `ubench tune`") from None
    return data


def preset_values(name: str, task: str, method: str, tunable: bool
                  ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(values to apply, provenance for the record) of ``method`` on ``task`` in preset
    ``name``. A method without a tuning space (a reference row) gets nothing; a tunable one
    missing from the preset is a ConfigError naming the command that fills it."""
    data = load_preset(name)
    entry = data["tasks"].get(task, {}).get("methods", {}).get(method)
    if entry is None:
        if not tunable:
            return {}, None
        raise ConfigError(f"preset {name!r} has no values for method {method!r} on task "
                          f"{task!r}; run `ubench tune --method {method} --task {task}` first")
    t = data["tasks"][task]
    provenance = {"preset": name, "file": preset_path(name).name, "tuned_on": task,
                  "rule": t.get("rule"), "target": t.get("target"),
                  "target_reached_by_every_family": t.get("target_all_families"),
                  "budget": t.get("budget"), "tuning_cells": t.get("cells"),
                  "tuning_seed": t.get("seed"), "space": entry.get("space"),
                  "reached": entry.get("reached"), "values": entry["values"],
                  "tuned_at": t.get("tuned_at")}
    return dict(entry["values"]), provenance
