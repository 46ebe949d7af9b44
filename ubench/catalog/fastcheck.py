"""Check a command line's ids and ``--set`` overrides before anything heavy is imported.

Importing a method or a task imports torch and diffusers (seconds); a typo in ``--set`` should
not cost that. ``ubench/catalog/config_schema.json`` describes every built-in config — each field's
type
(:func:`ubench.core.config.type_spec`), its default and its declared bounds — and is generated from
the
classes themselves (``python scripts/check_schema.py --write``; a test fails when it is stale).
:func:`check_run` reads it, so an unknown id, an unknown key, an unparsable value or a value out
of bounds is refused in well under two seconds. What only a config's ``validate()`` can say
(cross-field rules) is still checked by the full resolve, before any model is loaded. Plugins
are not in the file: their overrides are checked by the full resolve only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ubench.core.config import Bound, coerce_spec, parse_overrides, type_spec
from ubench.core.errors import ConfigError, did_you_mean

SCHEMA_FILE = Path(__file__).with_name("config_schema.json")


def config_spec(cls: Any) -> dict[str, Any]:
    """The schema entry of one config class: fields (type, default) and bounds."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    fields = {f.name: {"spec": type_spec(hints[f.name]), "default": _jsonable(f.default)}
              for f in dataclasses.fields(cls)}
    return {"fields": fields, "bounds": {k: b.to_json() for k, b in cls.bounds.items()}}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def generate_schema() -> dict[str, Any]:
    """The schema of every built-in method and task config (imports them all: developers only)."""
    from ubench.catalog.builtins import BUILTIN_ATTACKS, BUILTIN_METHODS, BUILTIN_TASKS
    from ubench.catalog.registry import ATTACKS, METHODS, TASKS

    return {"methods": {m: config_spec(METHODS.get(m).Config) for m in BUILTIN_METHODS},
            "tasks": {t: task_spec(TASKS.get(t)) for t in BUILTIN_TASKS},
            "attacks": {a: config_spec(ATTACKS.get(a).Config) for a in BUILTIN_ATTACKS}}


def task_spec(cls: Any) -> dict[str, Any]:
    """A task's schema entry: its config's, plus what ``ubench report`` needs without torch
    (the task's ``version``, its ``instance_keys``, its ``method_defaults``, its
    ``attack_defaults``, its ``tuning_rule`` and its ``garbage_limit``; see
    :mod:`ubench.catalog.facts`)."""
    return {**config_spec(cls.Config), "version": cls.version,
            "instance_keys": list(cls.instance_keys),
            "method_defaults": {m: {k: _jsonable(v) for k, v in d.items()}
                                for m, d in cls.method_defaults.items()},
            "attack_defaults": {a: {k: _jsonable(v) for k, v in d.items()}
                                for a, d in cls.attack_defaults.items()},
            "tuning_rule": rule_spec(cls.tuning_rule),
            "garbage_limit": getattr(cls, "garbage_limit", None),
            "limit_fields": dict(getattr(cls, "limit_fields", {}))}


def rule_spec(rule: Any) -> dict[str, Any] | None:
    """A task's :class:`~ubench.api.TuningRule` as its schema entry holds it (``None`` for a task
    without one); :meth:`TuningRule.from_dict` of it gives the same rule back (checked here)."""
    if rule is None or not (hasattr(rule, "to_dict") and hasattr(rule, "from_dict")):
        return None  # (the class is not imported here: the catalog sits below ubench.api)
    out = {k: v for k, v in rule.to_dict().items() if k != "text"}
    if type(rule).from_dict(out) != rule:
        raise ValueError(f"the tuning rule {rule!r} does not survive its schema entry {out!r}")
    return out


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


def _check(scope: str, component: str, entry: Mapping[str, Any], key: str, raw: str) -> None:
    where = f"{scope} {component}"
    fields = entry["fields"]
    if key not in fields:
        raise ConfigError(f"{where}: " + did_you_mean(key, fields, "key"))
    value = coerce_spec(raw, fields[key]["spec"], f"{where}.{key}")
    bound = entry["bounds"].get(key)
    if bound:
        problem = Bound(**bound).problem(key, value)
        if problem:
            raise ConfigError(f"{where}: {problem}")


def split_ids(text: str, what: str) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]`` (the command line's comma lists; empty items and
    repeats refused in one line)."""
    items = [i.strip() for i in text.split(",")]
    if not text.strip() or any(not i for i in items):
        raise ConfigError(f"--{what} {text!r}: give ids separated by commas, e.g. --{what} a,b")
    if len(set(items)) != len(items):
        raise ConfigError(f"--{what} {text!r} names an id twice")
    return items


def check_run(method: str, task: str, overrides: Iterable[str]) -> None:
    """Raise the error the full resolve would raise for a bad id or override, without torch.

    ``method`` may be ``all`` or a comma list; a ``method.KEY`` override then has to exist in
    at least one of those methods and parse wherever it exists.
    """
    from ubench.catalog.registry import METHODS, TASKS

    items = list(overrides)
    ov = parse_overrides(items)
    names = None if method == "all" else split_ids(method, "method")
    for name in names or []:
        if name == "external":
            raise ConfigError("`external` rows score a given model: `ubench eval --task "
                              f"{task} --model SRC` (a folder, a weights file, a run id)")
        METHODS.entry(name)  # UnknownComponentError with "did you mean"
    TASKS.entry(task)
    known = schema()
    tasks = known["tasks"]
    if task in tasks:
        for key, raw in ov["task"].items():
            _check("task", task, tasks[task], key, raw)
    methods = known["methods"]
    if names is None or len(names) > 1:
        group = {m: e for m, e in methods.items() if names is None or m in names}
        for key, raw in ov["method"].items():
            having = [m for m, e in group.items() if key in e["fields"]]
            if not having:
                every = {k for e in group.values() for k in e["fields"]}
                raise ConfigError(f"no {'method' if names is None else 'selected method'} has "
                                  "this key: " + did_you_mean(key, every, "key"))
            for m in having:
                _check("method", m, group[m], key, raw)
    elif names[0] in methods:
        for key, raw in ov["method"].items():
            _check("method", names[0], methods[names[0]], key, raw)


def limit_override(task: str, limit: int, overrides: Iterable[str] = ()) -> list[str]:
    """``overrides`` with ``--limit N`` applied: each of the task's ``limit_fields`` capped at
    N (from its ``--set`` value if given, else its default; a 0 becomes N; never below the
    field's least value). Refused for a task that declares none."""
    from ubench.catalog.registry import TASKS

    items = list(overrides)
    TASKS.entry(task)
    entry = schema()["tasks"].get(task)
    if entry is None:  # a plugin's task: its schema is not generated; trust its `limit` field
        return [*items, f"task.limit={limit}"]
    fields = entry.get("limit_fields") or {}
    if not fields:
        with_limit = [n for n, e in schema()["tasks"].items() if e.get("limit_fields")]
        raise ConfigError(f"--limit applies to tasks with sizes to cap ({', '.join(with_limit)})"
                          f"; task {task!r} has none: drop --limit")
    if limit < 1:
        raise ConfigError(f"--limit must be >= 1; got {limit}")
    given = parse_overrides(items)["task"]
    out = [i for i in items if i.partition("=")[0].strip().removeprefix("task.") not in fields
           or not i.strip().startswith("task.")]
    for name, least in fields.items():
        raw = given.get(name, entry["fields"][name]["default"])
        try:
            current = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"task {task}.{name} must be an integer; got {raw!r}") from None
        floor = int(least) if current == 0 else min(int(least), current)  # never above it
        value = limit if current == 0 else min(current, limit)
        out.append(f"task.{name}={max(value, floor)}")
    return out


def check_attacks(attacks: Iterable[str], overrides: Iterable[str]) -> None:
    """Raise the error the attack resolve would raise for a bad attack id or ``attack.KEY=VALUE``
    override, without torch. With several attacks (``ubench run --attacks a,b``) a key must
    exist in at least one of them and parse wherever it exists."""
    from ubench.catalog.registry import ATTACKS

    names = list(attacks)
    for name in names:
        ATTACKS.entry(name)  # UnknownComponentError with "did you mean"
    ov = parse_overrides(overrides, scopes=("attack",))["attack"]
    known = schema().get("attacks", {})
    entries = {n: known[n] for n in names if n in known}
    if len(entries) < len(names):  # a plugin: its keys are checked by the full resolve
        return
    for key, raw in ov.items():
        having = [n for n, e in entries.items() if key in e["fields"]]
        if not having:
            every = {k for e in entries.values() for k in e["fields"]}
            raise ConfigError(f"attack {' / '.join(names)}: "
                              + did_you_mean(key, every, "key"))
        for n in having:
            _check("attack", n, entries[n], key, raw)
