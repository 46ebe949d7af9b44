"""Typed configs with defaults in code, and ``--set scope.key=value`` overrides.

Every method and task declares a ``Config`` dataclass whose defaults are the paper's values (with a
comment giving the source). Overrides are parsed against the field's declared type; unknown keys,
unparsable values and values that fail the config's own ``validate()`` are :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from ubench.errors import ConfigError, did_you_mean

C = TypeVar("C", bound="BaseConfig")


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Base of every method/task config: frozen, JSON-serialisable, self-validating."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values out of range (subclasses extend this)."""

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


def validate_optimisation(cfg: Any) -> None:
    """Checks shared by every trained method's config (``steps``, ``lr``, ``batch_size``)."""
    require(cfg.steps >= 1, f"steps must be >= 1; got {cfg.steps}")
    require(cfg.lr > 0, f"lr must be > 0; got {cfg.lr}")
    require(cfg.batch_size >= 1, f"batch_size must be >= 1; got {cfg.batch_size}")


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
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        for c in choices:
            if str(c) == str(raw):
                return c
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {raw!r}")
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if str(raw).lower() in ("none", "null") and len(args) < len(get_args(tp)):
            return None
        errors = []
        for a in args:
            try:
                return coerce(raw, a, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if origin is tuple:
        (inner, *_rest) = get_args(tp) or (str,)
        parts = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).split(",") if p]
        return tuple(coerce(p, inner, name) for p in parts)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        s = str(raw).lower()
        if s in _TRUE | _FALSE:
            return s in _TRUE
        raise ConfigError(f"{name} must be true or false; got {raw!r}")
    if tp is int:
        if isinstance(raw, bool):
            raise ConfigError(f"{name} must be an integer; got {raw!r}")
        try:
            f = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer; got {raw!r}") from None
        if not f.is_integer():
            raise ConfigError(f"{name} must be an integer; got {raw!r}")
        return int(f)
    if tp is float:
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number; got {raw!r}") from None
        if not math.isfinite(v):
            raise ConfigError(f"{name} must be finite; got {raw!r}")
        return v
    if tp is str:
        return str(raw)
    raise ConfigError(f"{name}: cannot set a field of type {tp!r} from the command line")
