"""A run's identity: what a run is, before anything is loaded or executed.

:func:`resolve` looks up a method and a task, applies the task's recipe, a preset and the
``--set`` overrides, checks that they fit together and computes the run's identity: a hash of
(task id, version, resolved config, the digests of user-supplied files and of the assets the run
uses — pinned base model, judge, data, the oracle for runs that use it; method id, version,
resolved config; seed). Two records with one run id were therefore measured with the same models
and judges. The *config id* is the same hash without the asset digests: ``ubench compare`` pairs
runs by it and then checks that their assets agree. :func:`rebuild_run_spec` resolves a recorded
run again (to attack it), and refuses one this ubench would give another id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ubench.api import Method, Task
from ubench.catalog.registry import METHODS, TASKS
from ubench.core.config import build_config, parse_overrides
from ubench.core.digest import stable_hash
from ubench.core.errors import (
    AttackTargetError,
    ConfigError,
    IncompatibleError,
    UnknownComponentError,
    did_you_mean,
)


@dataclasses.dataclass
class RunSpec:
    """A resolved run: classes, configs and identity, before anything is loaded."""

    method_cls: type[Method[Any]]
    task_cls: type[Task[Any]]
    method_config: Any
    task_config: Any
    seed: int
    #: content digests of the user-supplied files the task config names (``Config.inputs``)
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    #: digests of the assets the run uses (``Task.assets``): pinned models, judge, data
    assets: dict[str, str] = dataclasses.field(default_factory=dict)
    #: how the fair protocol made this run (recorded, not part of the identity: the values it
    #: chose are in the method config): ``{"role": "tuning", ...}`` for a tuning run, the
    #: preset's provenance for a run made with ``--preset``
    protocol: dict[str, Any] | None = None
    #: what an ``external`` row scores (``ubench eval``: the source's name, kind, layout, what
    #: was given); recorded as ``record["source"]``, not part of the identity (the digest is)
    source: dict[str, Any] | None = None

    def _identity(self, with_assets: bool) -> dict[str, Any]:
        task: dict[str, Any] = {"id": self.task_cls.name, "version": self.task_cls.version,
                                "config": self.task_config.to_dict()}
        if self.inputs:
            task["inputs"] = dict(self.inputs)
        if with_assets:
            task["assets"] = dict(self.assets)
        return {
            "task": task,
            "method": {"id": self.method_cls.name, "version": self.method_cls.version,
                       "config": self.method_config.to_dict()},
            "seed": self.seed,
        }

    @property
    def identity(self) -> dict[str, Any]:
        """Everything that determines the run's numbers (hashed into :attr:`run_id`)."""
        return self._identity(with_assets=True)

    @property
    def run_id(self) -> str:
        return stable_hash(self.identity, 16)

    @property
    def config_id(self) -> str:
        """The identity's hash without the asset digests: what ``ubench compare`` pairs runs by
        (for records made before assets entered the identity it equals their run id)."""
        return stable_hash(self._identity(with_assets=False), 16)


def resolve(method: str, task: str, seed: int = 0, overrides: Iterable[str] = (),
            preset: str | None = None) -> RunSpec:
    """Look up method and task, apply the task's recipe, the preset (``--preset``) and the
    ``--set`` overrides (in that order), check they fit together."""
    method_cls = METHODS.get(method)
    task_cls = TASKS.get(task)
    ov = parse_overrides(overrides)
    prescribed = prescribed_defaults(task_cls, method_cls)
    provenance = None
    if preset:
        from ubench.catalog.presets import preset_values

        chosen, provenance = preset_values(preset, task_cls.tuning_task or task, method,
                                           tunable=bool(method_cls.search_space))
        prescribed = {**prescribed, **chosen}
    mcfg = build_config(method_cls.Config, {**prescribed, **ov["method"]}, f"method {method}")
    tcfg = build_config(task_cls.Config, ov["task"], f"task {task}")
    spec = RunSpec(method_cls, task_cls, mcfg, tcfg, seed, input_digests(tcfg))
    check_compatible(spec)
    spec.assets = task_cls(tcfg).assets(uses_oracle="oracle" in method_cls.requires)
    spec.protocol = provenance
    return spec


def input_digests(config: Any) -> dict[str, str]:
    """``{field: content digest}`` of the user-supplied files and folders a config names."""
    from ubench.core.digest import path_digest

    return {name: path_digest(getattr(config, name)) for name in type(config).inputs
            if getattr(config, name)}


def prescribed_defaults(task_cls: type[Task[Any]], method_cls: type[Method[Any]]
                        ) -> dict[str, Any]:
    """The hyper-parameters ``task_cls`` prescribes for ``method_cls`` (its recipe).

    A key the method's config lacks is a :class:`ConfigError`: a renamed field must not drop
    the paper's recipe without a word.
    """
    values = dict(task_cls.method_defaults.get(method_cls.name, {}))
    fields = method_cls.Config.field_names()
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"task {task_cls.name!r} prescribes method.{key} for method "
                f"{method_cls.name!r}, which has no such field: "
                + did_you_mean(key, fields, "key") + " Fix the task's method_defaults.")
    return values


def check_method_defaults(task_cls: type[Task[Any]]) -> None:
    """Check every recipe of a task against the method registry (tests run it on every task)."""
    for method_id in task_cls.method_defaults:
        if method_id not in METHODS:
            raise ConfigError(f"task {task_cls.name!r} prescribes defaults for "
                              + did_you_mean(method_id, METHODS.names(), "method"))
        prescribed_defaults(task_cls, METHODS.get(method_id))


def resolve_many(methods: list[str], task: str, seed: int = 0, overrides: Iterable[str] = (),
                 preset: str | None = None) -> list[RunSpec]:
    """Resolve several methods with shared overrides (``--method all``).

    A ``method.KEY`` override applies to every method whose config has KEY (``method.steps`` does
    not concern the ``base`` row); a key that none of them has is still an error.
    """
    items = list(overrides)
    if len(methods) == 1:
        return [resolve(methods[0], task, seed, items, preset)]
    method_items = [o for o in items if o.strip().startswith("method.")]
    other = [o for o in items if o not in method_items]
    fields = {m: set(METHODS.get(m).Config.field_names()) for m in methods}
    specs = []
    for m in methods:
        mine = [o for o in method_items if o.split("=", 1)[0].strip()[7:] in fields[m]]
        specs.append(resolve(m, task, seed, [*other, *mine], preset))
    known = set().union(*fields.values())
    for o in method_items:
        key = o.split("=", 1)[0].strip()[7:]
        if key not in known:
            raise ConfigError(f"no selected method has this key: {did_you_mean(key, known, 'key')}")
    return specs


def model_needs(method_cls: type[Method[Any]], config: Any) -> set[str]:
    """Model capabilities a method needs under ``config`` (training ``xattn`` needs it to exist;
    ``noxattn`` is meaningful on any UNet: all but time embedding and output layer)."""
    needs = set(method_cls.requires_model)
    if getattr(config, "scope", "full") == "xattn":
        needs.add("xattn")
    return needs


def data_needs(method_cls: type[Method[Any]], config: Any) -> set[str]:
    """Request fields a method needs under ``config``: its ``requires``, and ``paired_data``
    when it draws forget and remain batches as pairs (``batching=paired``: remain item i is
    the forget item i without the concept, as the boostalign SD code zips its loaders)."""
    needs = set(method_cls.requires)
    if getattr(config, "batching", "independent") == "paired":
        needs.add("paired_data")
    return needs


def check_compatible(spec: RunSpec) -> None:
    """Refuse a method/task pair before any weight is loaded, saying why and what fits."""
    m, t = spec.method_cls, spec.task_cls
    missing = data_needs(m, spec.method_config) - set(t.provides)
    if missing == {"paired_data"}:
        raise IncompatibleError(
            f"method {m.name!r} with method.batching=paired cannot run on task {t.name!r}: its "
            "D_f and D_r are not index-aligned pairs; set method.batching=independent")
    missing_model = model_needs(m, spec.method_config) - set(t.model_capabilities)
    if not (missing or missing_model):
        return
    fits = [n for n in TASKS.names() if _fits(m, spec.method_config, TASKS.get(n))]
    why = []
    if missing:
        why.append(f"it needs {', '.join(sorted(missing))}, which task {t.name!r} does not provide")
    if missing_model:
        why.append(f"it trains cross-attention layers ({', '.join(sorted(missing_model))}), and "
                   f"the model of task {t.name!r} has none")
    raise IncompatibleError(
        f"method {m.name!r} cannot run on task {t.name!r}: {'; '.join(why)}. "
        f"Tasks it fits: {', '.join(fits) or 'none registered yet'}.")


def _fits(method_cls: type[Method[Any]], config: Any, task_cls: type[Task[Any]]) -> bool:
    if method_cls.external:  # a given model's row (ubench eval), not a method to run
        return False
    return data_needs(method_cls, config) <= set(task_cls.provides) and model_needs(
        method_cls, config) <= set(task_cls.model_capabilities)


def methods_for(task: str) -> list[str]:
    """Every registered method that fits ``task`` with its default config (not ``external``:
    its rows are models ``ubench eval`` was given)."""
    task_cls = TASKS.get(task)
    out = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        if _fits(cls, cls.Config(), task_cls):
            out.append(name)
    return out


def rebuild_run_spec(record: Mapping[str, Any]) -> RunSpec:
    """The run's spec, resolved again from its recorded configs by :func:`resolve`; its id must
    be the recorded one (same definitions, same assets): a run made by a different ubench (other
    defaults, other assets) is refused rather than attacked under a wrong model."""
    items = [f"task.{k}={_raw(v)}" for k, v in record["task"]["config"].items()]
    items += [f"method.{k}={_raw(v)}" for k, v in record["method"]["config"].items()]
    try:
        spec = resolve(record["method"]["id"], record["task"]["id"], record["seed"], items)
    except (UnknownComponentError, IncompatibleError) as e:
        raise AttackTargetError(f"run {record['run_id']} cannot be rebuilt by this ubench "
                                f"({e})") from None
    except ValueError as e:  # ConfigError: a field this ubench no longer has
        raise AttackTargetError(f"run {record['run_id']} was made by another version of ubench "
                                f"({e}); rerun it with this one") from None
    if spec.run_id != record["run_id"]:
        raise AttackTargetError(
            f"run {record['run_id']} was made by another version of ubench or with other assets "
            f"(this ubench gives its configuration the id {spec.run_id}); rerun it with this "
            "ubench before attacking it")
    return spec


def _raw(value: Any) -> str:
    """A recorded config value as ``--set`` text that parses back to the same value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_raw(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)
