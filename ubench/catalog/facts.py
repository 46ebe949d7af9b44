"""What ``ubench report`` needs to know about methods, tasks and metrics, without torch.

Building a leaderboard from records needs a few facts about the components that made them: a
method's config defaults (a row's label shows only the values that differ), a task's current
``version`` (older records leave the tables), its config defaults and its ``method_defaults``
(the recipe a task prescribes), its ``tuning_rule`` (the fronts and the ranking), an attack's
config defaults and a task's ``attack_defaults`` (the robustness tables' labels), and each
metric's bounds, split and direction. Importing a method, a task or an attack class imports
torch and diffusers (seconds and ~1 GB), which a report of JSON records has no use for. So:

* built-in methods, tasks and attacks are read from ``ubench/catalog/config_schema.json``,
  generated from the classes themselves (``python scripts/check_schema.py --write``; CI fails
  while it is stale);
* plugins (entry points) are not in that file: their classes are imported, as before;
* a component that is no longer installed gives ``None`` (the report then shows every value);
* metric classes are imported: their modules are torch-free by design (torch only under
  ``TYPE_CHECKING`` or inside functions); a test keeps the report path torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ubench.catalog.fastcheck import schema

#: pinned judges that measured the headline metrics of earlier records and have been replaced,
#: with their successor: the report keeps such records in tables of their own (docs/judges.md)
SUPERSEDED_JUDGES: dict[str, str] = {"digits/judge": "digits/judge-robust"}


@dataclass(frozen=True)
class TaskFacts:
    """A task's current version, its config defaults, its instance keys and its per-method
    recipe."""

    version: str
    defaults: dict[str, Any]
    method_defaults: dict[str, dict[str, Any]]
    instance_keys: tuple[str, ...] = ()
    #: attack id -> the attack config values the task prescribes
    attack_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)


def _defaults(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: f["default"] for k, f in entry["fields"].items()}


def _jsonable(value: Any) -> Any:
    """Config values as a record holds them (tuples are JSON lists there)."""
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@cache
def method_defaults(method_id: str) -> dict[str, Any] | None:
    """The method's own config defaults; ``None`` for a method that is not installed."""
    known = schema()["methods"]
    if method_id in known:
        return _defaults(known[method_id])
    from ubench.catalog.registry import METHODS

    try:  # a plugin: import its class
        return _jsonable(METHODS.get(method_id).Config().to_dict())  # type: ignore[no-any-return]
    except Exception:  # no longer installed, or broken: the report shows every value
        return None


@cache
def task_facts(task_id: str) -> TaskFacts | None:
    """The task's version and defaults; ``None`` for a task that is not installed."""
    known = schema()["tasks"]
    if task_id in known:
        e = known[task_id]
        return TaskFacts(str(e["version"]), _defaults(e), e["method_defaults"],
                         tuple(e.get("instance_keys", ())), e.get("attack_defaults", {}))
    from ubench.catalog.registry import TASKS

    if task_id not in TASKS:
        return None
    try:  # a plugin: import its class
        cls = TASKS.get(task_id)
        return TaskFacts(str(cls.version), _jsonable(cls.Config().to_dict()),
                         {m: _jsonable(dict(d)) for m, d in cls.method_defaults.items()},
                         tuple(cls.instance_keys),
                         {a: _jsonable(dict(d)) for a, d in cls.attack_defaults.items()})
    except Exception:  # broken plugin: treat as not installed
        return None


def _task_entry(task_id: str, key: str, from_class: Callable[[Any], Any]) -> Any:
    """``key`` of the task's config-schema entry, or for a plugin ``from_class(its class)``
    (the class is imported); ``None`` for a task that is not installed."""
    known = schema()["tasks"]
    if task_id in known:
        return known[task_id].get(key)
    from ubench.catalog.registry import TASKS

    if task_id not in TASKS:
        return None
    return from_class(TASKS.get(task_id))


@cache
def tuning_rule_spec(task_id: str) -> dict[str, Any] | None:
    """The task's tuning rule as declared now, as the dict ``TuningRule.from_dict`` takes (what
    the config schema holds); ``None`` for a task without one or not installed. A plugin's
    class is imported (and an error importing it raised)."""
    from ubench.catalog.fastcheck import rule_spec

    entry = _task_entry(task_id, "tuning_rule", lambda cls: rule_spec(cls.tuning_rule))
    return dict(entry) if entry is not None else None


def garbage_limit(task_id: str) -> float | None:
    """The task's garbage policy (:attr:`ubench.api.Task.garbage_limit`): the mean garbage rate
    above which a ranked row does not reach the forgetting target; ``None`` when garbage is only
    reported (or the task is not installed)."""
    value = _task_entry(task_id, "garbage_limit", lambda cls: getattr(cls, "garbage_limit", None))
    return float(value) if value is not None else None


@cache
def _attack_own_defaults(attack_id: str) -> dict[str, Any] | None:
    known = schema().get("attacks", {})
    if attack_id in known:
        return _defaults(known[attack_id])
    from ubench.catalog.registry import ATTACKS

    try:  # a plugin: import its class
        return ATTACKS.get(attack_id).Config().to_dict()  # type: ignore[no-any-return]
    except Exception:  # no longer installed, or broken
        return None


def attack_defaults(attack_id: str, task_id: str) -> dict[str, Any]:
    """The attack's config defaults on this task: its own, then what the task prescribes
    (``attack_defaults``); empty for an attack that is no longer installed (every value is
    then shown). Values as the classes hold them (tuples stay tuples for a plugin)."""
    own = _attack_own_defaults(attack_id)
    if own is None:
        return {}
    out = dict(own)
    known = schema()["tasks"]
    if task_id in known:
        out.update(known[task_id].get("attack_defaults", {}).get(attack_id, {}))
        return out
    from ubench.catalog.registry import TASKS

    if task_id in TASKS:
        try:  # a plugin task: import its class
            out.update(TASKS.get(task_id).attack_defaults.get(attack_id, {}))
        except Exception:  # broken: the report shows every value
            return {}
    return out


@cache
def metric_class(name: str) -> Any | None:
    """The registered :class:`~ubench.api.Metric` class, or ``None`` if not installed."""
    from ubench.catalog.registry import METRICS

    try:
        return METRICS.get(name)
    except Exception:  # a metric no longer registered
        return None


def instance_keys(task_id: str) -> tuple[str, ...]:
    """The task-config keys that name which instance of the task's concept is forgotten
    (:attr:`ubench.api.Task.instance_keys`); none for a task that is not installed."""
    task = task_facts(task_id)
    return task.instance_keys if task is not None else ()


def instance_of(task_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """The instance part of a run's task config (``{"forget_class": 3}``)."""
    keys = instance_keys(task_id)
    return {k: v for k, v in config.items() if k in keys}


def setting_of(task_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """A run's task config without its instance keys: the setting its row aggregates over."""
    keys = instance_keys(task_id)
    return {k: v for k, v in config.items() if k not in keys}


def default_config(method_id: str, task_id: str) -> dict[str, Any]:
    """The method's defaults on this task: its own, then what the task prescribes
    (empty for a method that is no longer installed: every value is then shown)."""
    own = method_defaults(method_id)
    if own is None:
        return {}
    out = dict(own)
    task = task_facts(task_id)
    if task is not None:
        out.update(task.method_defaults.get(method_id, {}))
    return out
