"""Typed registries for methods, tasks, metrics and attacks.

Built-in components are listed in :mod:`ubench.catalog.builtins` as lazy ``"module:attr"`` entries
with a
one-line summary, so ``ubench list`` never imports torch. The class is imported on first lookup and
checked against the entry (its ``name`` attribute, its base class). Third-party packages add
components through the entry-point groups ``ubench.methods`` / ``ubench.tasks`` /
``ubench.metrics`` / ``ubench.attacks`` or with :meth:`Registry.register` as a decorator.
Registering a name twice is an error: a silently shadowed method would change leaderboard
numbers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from ubench.catalog.builtins import register_builtins
from ubench.core.errors import UnknownComponentError, did_you_mean

T = TypeVar("T")


@dataclass
class Entry:
    """One registered component: where it lives and what it does in one line."""

    name: str
    target: str | Any  # "package.module:Attr" until loaded, then the object itself
    summary: str

    @property
    def loaded(self) -> bool:
        return not isinstance(self.target, str)


class Registry(Generic[T]):
    """A name -> component map with lazy entries, duplicate detection and helpful lookups."""

    def __init__(self, kind: str, base: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._base = base  # "module:Class" of the base class, resolved lazily (avoids torch)
        self._group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False

    # ----------------------------------------------------------------- registration
    def add(self, name: str, target: str | Any, summary: str) -> None:
        """Register ``target`` (an object or a lazy ``"module:attr"`` string) under ``name``."""
        if name in self._entries:
            raise ValueError(
                f"{self.kind} {name!r} is already registered "
                f"(by {self._entries[name].target!r}); pick another name"
            )
        self._entries[name] = Entry(name, target, summary)

    def register(self, name: str, summary: str | None = None) -> Callable[[T], T]:
        """Class decorator registering an eagerly imported component (for plugins and tests)."""

        def deco(obj: T) -> T:
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self.add(name, obj, summary or (doc[0] if doc else ""))
            return obj

        return deco

    def remove(self, name: str) -> None:
        """Drop an entry (tests register throwaway components and clean up after themselves)."""
        self._entries.pop(name, None)

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self._group is None:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self._group):
            self.add(ep.name, ep.value, f"(plugin {ep.value})")

    # ----------------------------------------------------------------- lookup
    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def entries(self) -> Iterator[Entry]:
        for n in self.names():
            yield self._entries[n]

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def entry(self, name: str) -> Entry:
        self._load_plugins()
        if name not in self._entries:
            raise UnknownComponentError(
                did_you_mean(name, self._entries, self.kind)
                + f" See `ubench list {self.kind}s`."
            )
        return self._entries[name]

    def get(self, name: str) -> T:
        """Return the component registered as ``name``, importing it on first use."""
        entry = self.entry(name)
        if not entry.loaded:
            entry.target = _import(entry.target)
            base = _import(self._base)
            if not (isinstance(entry.target, type) and issubclass(entry.target, base)):
                raise TypeError(f"{self.kind} {name!r} ({entry.target!r}) is not a {base.__name__}")
            declared = getattr(entry.target, "name", name)
            if declared != name:
                raise TypeError(f"{self.kind} {name!r} points at a class named {declared!r}")
        return entry.target  # type: ignore[return-value]


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


METHODS: Registry[Any] = Registry("method", "ubench.api:Method", "ubench.methods")
TASKS: Registry[Any] = Registry("task", "ubench.api:Task", "ubench.tasks")
METRICS: Registry[Any] = Registry("metric", "ubench.api:Metric", "ubench.metrics")
ATTACKS: Registry[Any] = Registry("attack", "ubench.api:Attack", "ubench.attacks")

# The built-in catalogue fills the registries when this module is imported.
register_builtins(METHODS, TASKS, METRICS, ATTACKS)
