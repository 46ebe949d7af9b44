"""Typed configs with defaults in code, and ``--set scope.key=value`` overrides.

Every method and task declares a ``Config`` dataclass whose defaults are the paper's values (with a
comment giving the source). Simple ranges are declared once, as data (``bounds``: field ->
:class:`Bound`), so the command line can check them before importing torch
(``ubench/catalog/config_schema.json``, see :mod:`ubench.catalog.fastcheck`); ``validate()`` holds
what data
cannot say. Overrides are parsed against the field's declared type; unknown keys, unparsable
values and values out of bounds or failing ``validate()`` are :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from ubench.core.errors import ConfigError, did_you_mean

C = TypeVar("C", bound="BaseConfig")

#: upper bounds on sizes (a typo such as steps=1e9 or batch_size=100000 is refused at once)
MAX_STEPS = 100_000
MAX_BATCH = 4096
MAX_SAMPLES = 100_000
#: the largest seed: every random generator takes it (torch's and numpy's seeds are 64-bit, and
#: seeds are combined with stream numbers), and a typo of twenty digits is refused at once
MAX_SEED = 2**31 - 1
#: the most CPU threads (``--threads``) and runs at once (``--workers``) ubench accepts: more
#: than any machine has; torch fails with a SystemError traceback on a million threads
MAX_THREADS = 1024


@dataclasses.dataclass(frozen=True)
class Bound:
    """The range a numeric field may take: ``ge`` / ``gt`` below, ``le`` above (None: open)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` is out of range (None when it is in range)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        below = (self.ge is not None and value < self.ge) or \
            (self.gt is not None and value <= self.gt)
        above = self.le is not None and value > self.le
        if not (below or above):
            return None
        if self.le is not None and self.ge is not None:
            rule = f"in {self.ge}..{self.le}"
        elif self.le is not None and self.gt is not None:
            rule = f"in ({self.gt}, {self.le}]"
        elif self.le is not None:
            rule = f"<= {self.le}"
        else:
            rule = f">= {self.ge}" if self.ge is not None else f"> {self.gt}"
        return f"{name} must be {rule}; got {value}"

    def to_json(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


#: the bound of every seed a config holds (``eval_seed``, ``prompt_seed``, ...)
SEED_BOUND = Bound(ge=0, le=MAX_SEED)

#: bounds of the fields every trained method has
OPTIMISATION_BOUNDS: dict[str, Bound] = {
    "steps": Bound(ge=1, le=MAX_STEPS), "lr": Bound(gt=0), "batch_size": Bound(ge=1, le=MAX_BATCH)}


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Base of every method/task config: frozen, JSON-serialisable, self-validating."""

    #: simple per-field ranges, checked on construction and, from the generated schema, by the
    #: command line before any heavy import; subclasses extend the parent's mapping
    bounds: ClassVar[Mapping[str, Bound]] = {}
    #: fields naming user-supplied files or folders: their *content* digests enter the run
    #: identity, so editing such a file in place never reuses a stale result
    inputs: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name, bound in self.bounds.items():
            problem = bound.problem(name, getattr(self, name))
            if problem:
                raise ConfigError(problem)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for what ``bounds`` cannot say (subclasses extend this)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def with_defaults(cls: type[C], name: str, **defaults: Any) -> type[C]:
    """A subclass of the config ``cls`` whose listed fields default to other values.

    How a task's *preset* (a tiny variant for tests, a quick variant) changes sizes without a
    class of its own to keep in step: the fields, types and validation stay those of ``cls``.
    """
    hints = typing.get_type_hints(cls)
    names = set(cls.field_names())
    unknown = sorted(set(defaults) - names)
    if unknown:
        raise ConfigError(f"preset {name}: {cls.__name__} has no field(s) {', '.join(unknown)}")
    fields = [(k, hints[k], dataclasses.field(default=v)) for k, v in defaults.items()]
    doc = (f"{cls.__name__} with other defaults: "
           + ", ".join(f"{k}={v!r}" for k, v in defaults.items()))
    out = dataclasses.make_dataclass(name, fields, bases=(cls,), frozen=True,
                                     namespace={"__doc__": doc})
    out.__module__ = cls.__module__
    return out


def require(cond: bool, message: str) -> None:
    """Raise ConfigError(message) unless cond holds; for ``validate()`` bodies."""
    if not cond:
        raise ConfigError(message)


def parse_overrides(items: Iterable[str], scopes: Iterable[str] = ("method", "task")) -> dict[
    str, dict[str, str]
]:
    """Split ``["method.lr=1e-4", "task.forget_class=3"]`` into ``{scope: {key: raw}}``."""
    allowed = list(scopes)
    out: dict[str, dict[str, str]] = {s: {} for s in allowed}
    for item in items:
        key, eq, raw = item.partition("=")
        scope, dot, name = key.strip().partition(".")
        if not eq or not dot or not name:
            raise ConfigError(
                f"bad override {item!r}: expected SCOPE.KEY=VALUE, e.g. method.lr=1e-4 "
                f"(scopes: {', '.join(allowed)})"
            )
        if scope not in out:
            raise ConfigError(f"bad override {item!r}: scope must be one of {', '.join(allowed)}")
        if name in out[scope]:
            raise ConfigError(f"override {scope}.{name} given twice")
        out[scope][name] = raw.strip()
    return out


def build_config(cls: type[C], overrides: Mapping[str, Any], where: str) -> C:
    """Return ``cls`` with ``overrides`` (raw strings or typed values) applied and validated."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise ConfigError(
                f"{where}: " + did_you_mean(key, fields, "key")
            )
        values[key] = coerce(raw, hints[key], f"{where}.{key}")
    try:
        return cls(**values)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(raw: Any, tp: Any, name: str) -> Any:
    """Convert ``raw`` (usually a string from the command line) to type ``tp`` or fail clearly."""
    return coerce_spec(raw, type_spec(tp), name)


def type_spec(tp: Any) -> dict[str, Any]:
    """A JSON description of a field type that :func:`coerce_spec` can parse against (so the
    command line can check overrides from ``config_schema.json`` without importing the class)."""
    origin = get_origin(tp)
    if origin is Literal:
        return {"type": "choice", "choices": list(get_args(tp))}
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        return {"type": "union", "of": [type_spec(a) for a in args if a is not type(None)],
                "nullable": type(None) in args}
    if origin is tuple:
        (inner, *_rest) = get_args(tp) or (str,)
        return {"type": "tuple", "of": type_spec(inner)}
    for t, label in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if tp is t:
            return {"type": label}
    return {"type": "unsupported", "repr": repr(tp)}


def coerce_spec(raw: Any, spec: Mapping[str, Any], name: str) -> Any:
    """Convert ``raw`` to the type a :func:`type_spec` describes, or raise ConfigError."""
    kind = spec["type"]
    if kind == "choice":
        for c in spec["choices"]:
            if str(c) == str(raw):
                return c
        raise ConfigError(f"{name} must be one of {', '.join(map(str, spec['choices']))}; "
                          f"got {raw!r}")
    if kind == "union":
        if spec["nullable"] and str(raw).lower() in ("none", "null"):
            return None
        errors = []
        for option in spec["of"]:
            try:
                return coerce_spec(raw, option, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if kind == "tuple":
        parts = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).split(",") if p]
        return tuple(coerce_spec(p, spec["of"], name) for p in parts)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name} must be true or false; got {raw!r}")
    if kind == "int":
        return _to_int(raw, name)
    if kind == "float":
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number; got {raw!r}") from None
        if not math.isfinite(v):
            raise ConfigError(f"{name} must be finite; got {raw!r}")
        return v
    if kind == "str":
        return str(raw)
    raise ConfigError(f"{name}: cannot set a field of type {spec.get('repr')} from the command "
                      "line")


def _to_int(raw: Any, name: str) -> int:
    """An integer, exactly: ``"12"``, ``"-3"``, or a float literal with an integral value that a
    float represents exactly (``"1e3"``); never a silently rounded one."""
    if isinstance(raw, bool):
        raise ConfigError(f"{name} must be an integer; got {raw!r}")
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer; got {raw!r}") from None
    if not (math.isfinite(f) and f.is_integer()):
        raise ConfigError(f"{name} must be an integer; got {raw!r}")
    if abs(f) > 2**53:
        raise ConfigError(f"{name} = {raw!r} is too large to read exactly; write it as digits")
    return int(f)
