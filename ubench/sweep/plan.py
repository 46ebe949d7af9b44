"""Sweep plans: a small TOML file that expands to a list of runs.

A plan names methods, tasks and seeds, and optional config values (``method.KEY`` / ``task.KEY``).
A value given as a list is a *grid axis*: the plan runs every combination (a product). A plan is
either one block of such keys at the top level, or several named blocks (``[blocks.NAME]``) that
each expand to their own product, with keys every block inherits in ``[defaults]``. Named
*suites* (``[suites]``) select part of a plan: a list of blocks, or a table with ``blocks`` and
values to keep (``seeds = [0]``, ``task.forget_class = [0]``). See ``docs/scale-out.md``::

    description = "Two methods on the tiny task"

    [defaults]
    tasks = ["digits-class-tiny"]
    seeds = [0, 1]
    method.steps = 4

    [blocks.main]
    methods = ["ga", "graddiff"]
    method.lr = [1e-4, 3e-4]          # a grid: both values, for every method that has lr

    [suites]
    first = ["main"]

``attacks = ["relearn", "invert"]`` (in a block or ``[defaults]``) attacks every run of the block
once it is finished (``ubench run --attacks``), with ``attack.KEY = value`` settings applied to
the attacks that have KEY (one value each, never a grid: ``attack.budgets = [0, 50]`` is one
tuple); a run counts as done only when its attacks are, so rerunning the plan attacks runs made
earlier without running them again.

A ``method.KEY`` applies to every method of its block whose config has KEY (as ``ubench run
--method all`` does; ``base`` has no ``lr``) and ``task.KEY`` to every task that has it; a key none
of them has is an error. Runs that two blocks both produce (same identity) are listed once.

:func:`load_plan` checks the whole file before anything heavy is imported: malformed TOML, an
unknown id or key, a value of the wrong type or out of bounds, an empty plan are one
:class:`~ubench.core.errors.PlanError` that starts with ``PLAN:LINE:`` and says the fix.
:meth:`Plan.specs` then resolves every run (torch is imported) and computes its identity with
:func:`ubench.run.identity.resolve` — the same identity ``ubench run`` gives it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ubench.core.config import MAX_SEED, Bound, coerce_spec
from ubench.core.errors import PlanError, UbenchError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: keys of a block (and of ``[defaults]``)
#: the method id of a given model's row (``ubench eval``): not a method a plan can run
EXTERNAL = "external"
BLOCK_KEYS = ("methods", "tasks", "seeds", "method", "task", "preset", "attacks", "attack")
#: keys of the top level of a plan besides a top-level block
TOP_KEYS = ("description", "defaults", "blocks", "suites")
#: keys of a suite given as a table
SUITE_KEYS = ("blocks", "methods", "tasks", "seeds", "method", "task")
#: the block name of a plan that keeps its keys at the top level
MAIN = "main"
DOCS = "see docs/scale-out.md for the plan format"


# ------------------------------------------------------------------------------------ items
@dataclasses.dataclass(frozen=True)
class RunItem:
    """One run of a sweep: what to run, its identity, and where it came from.

    ``overrides`` are ``--set`` items (``"task.forget_class=2"``) exactly as ``ubench run`` takes
    them; ``task_config`` / ``method_config`` are the resolved configs (defaults, the task's
    recipe for the method, and the overrides), for tables and filters.
    """

    method: str
    task: str
    seed: int
    overrides: tuple[str, ...]
    run_id: str
    block: str = ""
    task_config: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    method_config: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    #: a preset of method values applied before the overrides (``ubench run --preset``)
    preset: str | None = None
    #: the fair protocol's tag recorded with the run (``ubench tune``'s tuning runs)
    protocol: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False)
    #: attacks run on the finished run (``ubench run --attacks``) and their ``attack.KEY=VALUE``
    #: settings (each applies to the attacks that have KEY)
    attacks: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    attack_sets: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    def command(self, *, threads: int = 1, store: str | None = None) -> str:
        """The ``ubench run`` command that makes (or finds) this run's record on its own."""
        args = ["ubench", "run", "--method", self.method, "--task", self.task,
                "--seed", str(self.seed)]
        if self.preset:
            args += ["--preset", self.preset]
        for o in self.overrides:
            args += ["--set", o]
        if self.attacks:
            args += ["--attacks", ",".join(self.attacks)]
            for o in self.attack_sets:
                args += ["--set", o]
        args += ["--threads", str(threads)]
        if store is not None:
            args += ["--store", str(store)]
        return shlex.join(args)

    def label(self) -> str:
        """``method task seed N overrides`` on one line, for tables and progress."""
        extra = " ".join(self.overrides)
        return f"{self.method} {self.task} seed {self.seed}" + (f" {extra}" if extra else "")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "task": self.task, "seed": self.seed,
                "overrides": list(self.overrides), "run_id": self.run_id, "block": self.block,
                "preset": self.preset, "attacks": list(self.attacks),
                "attack_sets": list(self.attack_sets),
                "command": self.command()}


def make_item(method: str, task: str, seed: int = 0, overrides: Iterable[str] = (),
              block: str = "", preset: str | None = None,
              protocol: Mapping[str, Any] | None = None,
              attacks: Sequence[str] = (), attack_sets: Sequence[str] = ()) -> RunItem:
    """Resolve one run (as ``ubench run`` would) and return it as a :class:`RunItem`.

    For code that builds its own grids (``ubench tune``, which tags its runs with
    ``protocol``); raises the resolve's own :class:`~ubench.core.errors.UbenchError` for a bad id,
    override, preset or pair, or an attack that does not fit the task.
    """
    from ubench.run import identity

    items = tuple(overrides)
    spec = identity.resolve(method, task, seed, items, preset)
    if attacks:
        from ubench.catalog.registry import ATTACKS
        from ubench.core.config import parse_overrides
        from ubench.run.attack import attack_config, check_attack_fits

        ov = parse_overrides(attack_sets, scopes=("attack",))["attack"]
        for name in attacks:
            cls = ATTACKS.get(name)
            check_attack_fits(cls, spec.task_cls)
            attack_config(cls, spec.task_cls, {k: v for k, v in ov.items()
                                               if k in cls.Config.field_names()})
    return RunItem(method, task, seed, items, spec.run_id, block,
                   spec.task_config.to_dict(), spec.method_config.to_dict(), preset,
                   dict(protocol) if protocol else None, tuple(attacks), tuple(attack_sets))


# ------------------------------------------------------------------------------------ blocks
@dataclasses.dataclass(frozen=True)
class Block:
    """One named product of a plan. ``methods`` is None for ``"all"`` (every method that fits
    each task); ``method`` / ``task`` map each key to its values (one value: fixed)."""

    name: str
    methods: tuple[str, ...] | None
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    method: Mapping[str, tuple[Any, ...]]
    task: Mapping[str, tuple[Any, ...]]
    #: a preset of method values (``preset = "tuned"``) every run of the block applies
    preset: str | None = None
    #: attacks every finished run of the block gets (``attacks = ["relearn"]``), and their
    #: ``attack.KEY=VALUE`` settings
    attacks: tuple[str, ...] = ()
    attack_sets: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named part of a plan: blocks (all when None) and values to keep (None: any)."""

    name: str
    blocks: tuple[str, ...] | None
    methods: tuple[str, ...] | None = None
    tasks: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    method: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    task: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)

    def keeps(self, item: RunItem) -> bool:
        """Whether ``item`` is in this suite (its resolved config values, not its overrides)."""
        if self.blocks is not None and item.block not in self.blocks:
            return False
        if self.methods is not None and item.method not in self.methods:
            return False
        if self.tasks is not None and item.task not in self.tasks:
            return False
        if self.seeds is not None and item.seed not in self.seeds:
            return False
        for values, config in ((self.method, item.method_config),
                               (self.task, item.task_config)):
            for key, wanted in values.items():
                if key in config and not any(_same(config[key], w) for w in wanted):
                    return False
        return True


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return len(value) == len(wanted) and all(map(_same, value, wanted))
    if isinstance(value, bool) or isinstance(wanted, bool):
        return value is wanted
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)):
        return math.isclose(value, wanted, rel_tol=1e-12, abs_tol=0.0)
    return bool(value == wanted)


# ------------------------------------------------------------------------------------ plans
@dataclasses.dataclass
class Plan:
    """A parsed, checked plan (optionally narrowed to one suite)."""

    source: str
    description: str
    blocks: list[Block]
    suites: dict[str, Suite]
    suite: str | None = None
    #: runs two blocks both produced, listed once (known after :meth:`specs`)
    duplicates: int = 0
    _lines: _Lines | None = dataclasses.field(default=None, repr=False)
    _items: list[RunItem] | None = dataclasses.field(default=None, repr=False)

    def specs(self) -> list[RunItem]:
        """Every run of the plan (of its suite), resolved, in plan order, each once.

        Imports the methods and tasks (torch). A run that cannot be resolved (a cross-field
        rule of a config, a method that does not fit a task) is a :class:`PlanError` naming its
        block's line.
        """
        if self._items is not None:
            return list(self._items)
        seen: set[str] = set()
        out: list[RunItem] = []
        dup = 0
        chosen = self.suites[self.suite] if self.suite else None
        for block in self.blocks:
            if chosen is not None and chosen.blocks is not None and block.name not in chosen.blocks:
                continue
            for method, task, seed, overrides in _expand(block):
                try:
                    item = make_item(method, task, seed, overrides, block.name, block.preset,
                                     attacks=block.attacks, attack_sets=block.attack_sets)
                except UbenchError as e:
                    run = RunItem(method, task, seed, overrides, "", block.name).label()
                    raise self._error(_block_path(block.name), f"block {block.name!r}, run "
                                      f"{run}: {e}") from None
                if chosen is not None and not chosen.keeps(item):
                    continue
                if item.run_id in seen:
                    dup += 1
                    continue
                seen.add(item.run_id)
                out.append(item)
        if not out:
            what = f"suite {self.suite!r}" if self.suite else "the plan"
            path = ("suites", self.suite) if self.suite else ()
            raise self._error(path, f"{what} selects no runs; widen its values ({DOCS})")
        self.duplicates = dup
        self._items = out
        return list(out)

    def _error(self, path: tuple[str, ...], message: str) -> PlanError:
        line = self._lines.find(path) if self._lines else None
        return PlanError(_where(self.source, line) + message)


def load_plan(path: str | Path, suite: str | None = None) -> Plan:
    """Read and check the TOML plan at ``path`` (narrowed to ``suite`` when given).

    Raises :class:`PlanError` (``PLAN:LINE: what is wrong; the fix``) for a missing or malformed
    file and for anything in it that could not run; imports no torch.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"plan file {p} not found; the shipped plans are in the repository's "
                        "plans/ folder (e.g. plans/digits.toml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"cannot read the plan file {p} ({e}); give a UTF-8 TOML file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else getattr(e, "lineno", None)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg) if m else msg
        raise PlanError(_where(str(p), line) + f"not valid TOML: {msg}; fix the syntax "
                        f"({DOCS})") from None
    return parse_plan(data, source=str(p), text=text, suite=suite)


def parse_plan(data: Mapping[str, Any], *, source: str = "<plan>", text: str | None = None,
               suite: str | None = None) -> Plan:
    """Check a plan given as a mapping (what TOML parses to); ``text`` (the file) lets errors
    name their line. See :func:`load_plan`."""
    return _Parser(data, source, _Lines(text) if text is not None else None).plan(suite)


def _where(source: str, line: int | None) -> str:
    return f"{source}:{line}: " if line else f"{source}: "


def _block_path(name: str) -> tuple[str, ...]:
    return () if name == MAIN else ("blocks", name)


# ------------------------------------------------------------------------------------ expansion
#: the most runs a plan may expand to: a grid of a million runs is a typo, not a plan (months of
#: compute), and expanding it would take minutes and gigabytes before anything ran
MAX_PLAN_RUNS = 10_000


def block_size(block: Block) -> int:
    """How many runs a block expands to at most (``methods = "all"`` counted as every method;
    a grid key counted for every component, though only those that have it multiply)."""
    from ubench.catalog.registry import METHODS

    methods = len(block.methods) if block.methods is not None else len(METHODS.names())
    return (len(block.tasks) * math.prod(len(v) for v in block.task.values()) * len(block.seeds)
            * methods * math.prod(len(v) for v in block.method.values()))


def _expand(block: Block) -> Iterator[tuple[str, str, int, tuple[str, ...]]]:
    """(method, task, seed, overrides) of a block: tasks, task grid, seeds, methods, method grid;
    a key only where the component has it."""
    from ubench.run import identity

    for task in block.tasks:
        tfields = component_fields("task", task)[0]
        tkeys = [k for k in block.task if k in tfields]
        for tvals in itertools.product(*(block.task[k] for k in tkeys)):
            task_sets = [f"task.{k}={_literal(v)}" for k, v in zip(tkeys, tvals, strict=True)]
            for seed in block.seeds:
                methods = block.methods if block.methods is not None else identity.methods_for(task)
                for method in methods:
                    mfields = component_fields("method", method)[0]
                    mkeys = [k for k in block.method if k in mfields]
                    for mvals in itertools.product(*(block.method[k] for k in mkeys)):
                        sets = [f"method.{k}={_literal(v)}"
                                for k, v in zip(mkeys, mvals, strict=True)]
                        yield method, task, seed, (*task_sets, *sets)


def _literal(value: Any) -> str:
    """A TOML value as the text of a ``--set`` item."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_literal(v) for v in value)
    return str(value)


def component_fields(kind: str, name: str) -> tuple[dict[str, Any], dict[str, Bound]]:
    """``({field: type spec}, {field: Bound})`` of a method's or task's config: from the
    generated schema for built-ins (no torch), from the class for plugins."""
    from ubench.catalog import fastcheck

    known = fastcheck.schema()[f"{kind}s"]
    if name in known:
        entry = known[name]
        return ({k: f["spec"] for k, f in entry["fields"].items()},
                {k: Bound(**b) for k, b in entry["bounds"].items()})
    from ubench.catalog.registry import METHODS, TASKS

    cls = (METHODS if kind == "method" else TASKS).get(name)
    spec = fastcheck.config_spec(cls.Config)
    return ({k: f["spec"] for k, f in spec["fields"].items()},
            {k: Bound(**b) for k, b in spec["bounds"].items()})


# ------------------------------------------------------------------------------------ checking
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def type_problem(value: Any, spec: Mapping[str, Any]) -> str | None:
    """What a TOML value of a config field should be, or None when it fits the field's type
    (strict: a string is not a number, a float is not an integer)."""
    kind = spec["type"]
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "choice":
        if any(type(value) is type(c) and value == c for c in spec["choices"]):
            return None
        return "one of " + ", ".join(repr(c) for c in spec["choices"])
    elif kind == "union":
        if spec["nullable"] and isinstance(value, str) and value.lower() in ("none", "null"):
            return None
        problems = [type_problem(value, option) for option in spec["of"]]
        if any(p is None for p in problems):
            return None
        return " or ".join(p for p in problems if p) + (' or "none"' if spec["nullable"] else "")
    elif kind == "tuple":
        if isinstance(value, str):
            return None  # "a,b,c", as on the command line
        inner = [type_problem(v, spec["of"]) for v in value] if isinstance(value, list) else ["x"]
        if all(p is None for p in inner):
            return None
        return f"a list of {type_problem(object(), spec['of'])} (inside the grid's list)"
    else:
        return "settable only in Python (its type is not a TOML value)"
    return None if ok else _KINDS[kind]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


class _Parser:
    """Checks a plan mapping part by part, raising PlanError with the line of the culprit."""

    def __init__(self, data: Mapping[str, Any], source: str, lines: _Lines | None) -> None:
        self.data = data
        self.source = source
        self.lines = lines

    def fail(self, path: Sequence[str], message: str, value: Any = None) -> PlanError:
        line = self.lines.find(tuple(path), value) if self.lines else None
        return PlanError(_where(self.source, line) + message)

    # ------------------------------------------------------------------ top level
    def plan(self, suite: str | None) -> Plan:
        data = self.data
        has_blocks = "blocks" in data
        allowed = TOP_KEYS if has_blocks else (*TOP_KEYS, *BLOCK_KEYS)
        for key in data:
            if key in allowed:
                continue
            if key in BLOCK_KEYS:
                raise self.fail((key,), f"{key!r} at the top level of a plan with [blocks.*] "
                                "tables: move it into [defaults] (every block) or into a block")
            raise self.fail((key,), did_you_mean(key, {*allowed, *BLOCK_KEYS}, "plan key")
                            + f" ({DOCS})")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail(("description",), "description must be a string")
        defaults = data.get("defaults", {})
        if not isinstance(defaults, dict):
            raise self.fail(("defaults",), "defaults must be a table: [defaults]")
        self.keys_of(defaults, ("defaults",), BLOCK_KEYS, "[defaults]")
        if has_blocks:
            blocks_data = data["blocks"]
            if not isinstance(blocks_data, dict) or not all(
                    isinstance(b, dict) for b in blocks_data.values()):
                raise self.fail(("blocks",), "blocks must be tables: [blocks.NAME] with "
                                "methods, tasks, seeds, method.KEY, task.KEY")
            named: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
                (name, ("blocks", name), b) for name, b in blocks_data.items()]
        else:
            top = {k: v for k, v in data.items() if k in BLOCK_KEYS}
            named = [(MAIN, (), top)] if top else []
        if not named:
            raise self.fail((), "the plan defines no runs: give methods and tasks (and seeds) "
                            "at the top level, or [blocks.NAME] tables with them "
                            f"({DOCS})")
        blocks = [self.block(name, path, b, defaults) for name, path, b in named]
        sizes = [block_size(block) for block in blocks]
        for block, size, (_, path, _) in zip(blocks, sizes, named, strict=True):
            if size > MAX_PLAN_RUNS:
                raise self.fail(path or ("seeds",),
                                f"{'the plan' if block.name == MAIN else f'block {block.name!r}'}"
                                f" expands to {size:,} runs, more than the {MAX_PLAN_RUNS:,} a "
                                "plan may hold; narrow its grid (fewer seeds or values) or split "
                                f"it into plans ({DOCS})")
        if sum(sizes) > MAX_PLAN_RUNS:
            raise self.fail((), f"its {len(blocks)} blocks expand to {sum(sizes):,} runs, more "
                            f"than the {MAX_PLAN_RUNS:,} a plan may hold; split it into plans "
                            f"({DOCS})")
        suites = self.suites(data.get("suites", {}), blocks)
        if suite is not None and suite not in suites:
            if not suites:
                raise PlanError(f"{self.source} defines no suites (a [suites] table); drop "
                                "--suite to run the whole plan")
            raise PlanError(f"{self.source}: " + did_you_mean(suite, suites, "suite")
                            + " Without --suite the whole plan runs.")
        return Plan(self.source, description, blocks, suites, suite, 0, self.lines)

    def keys_of(self, table: Mapping[str, Any], path: tuple[str, ...], allowed: Sequence[str],
                what: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail((*path, key), f"{what}: " + did_you_mean(key, allowed, "key")
                                + f" ({DOCS})")

    # ------------------------------------------------------------------ blocks
    def block(self, name: str, path: tuple[str, ...], table: Mapping[str, Any],
              defaults: Mapping[str, Any]) -> Block:
        where = f"block {name!r}" if path else "the plan"
        self.keys_of(table, path, BLOCK_KEYS, where)

        def origin(key: str) -> tuple[tuple[str, ...], Any]:
            if key in table:
                return path, table[key]
            return ("defaults",), defaults.get(key)

        methods_path, methods_raw = origin("methods")
        tasks_path, tasks_raw = origin("tasks")
        if methods_raw is None:
            raise self.fail(path, f"{where} has no methods: add methods = [\"...\"] to it or to "
                            "[defaults] (\"all\": every method that fits the task)")
        if tasks_raw is None:
            raise self.fail(path, f"{where} has no tasks: add tasks = [\"...\"] to it or to "
                            "[defaults]")
        methods = self.ids(methods_raw, (*methods_path, "methods"), "method", allow_all=True)
        tasks = self.ids(tasks_raw, (*tasks_path, "tasks"), "task", allow_all=False)
        assert tasks is not None
        seeds_path, seeds_raw = origin("seeds")
        seeds = self.seeds(0 if seeds_raw is None else seeds_raw, (*seeds_path, "seeds"))
        grids: dict[str, dict[str, tuple[Any, ...]]] = {}
        for scope in ("task", "method"):
            merged: dict[str, tuple[tuple[str, ...], Any]] = {}
            for src_path, src in ((("defaults",), defaults), (path, table)):
                sub = src.get(scope, {})
                if not isinstance(sub, dict):
                    raise self.fail((*src_path, scope), f"{scope} must hold keys: write "
                                    f"{scope}.KEY = value or {scope}.KEY = [v1, v2]")
                for key, value in sub.items():
                    merged[key] = ((*src_path, scope, key), value)
            grids[scope] = {key: self.values(scope, key, kpath, raw, methods, tasks, where)
                            for key, (kpath, raw) in merged.items()}
        preset_path, preset_raw = origin("preset")
        if preset_raw is not None and (not isinstance(preset_raw, str) or not preset_raw):
            raise self.fail((*preset_path, "preset"), "preset must be a preset's name, e.g. "
                            "preset = \"tuned\" (the values `ubench tune` chose)")
        attacks_path, attacks_raw = origin("attacks")
        attacks = self.attacks(attacks_raw, (*attacks_path, "attacks"))
        sets = self.attack_sets(defaults, path, table, attacks, where)
        return Block(name, methods, tasks, seeds, grids["method"], grids["task"], preset_raw,
                     attacks, sets)

    def attack_sets(self, defaults: Mapping[str, Any], path: tuple[str, ...],
                    table: Mapping[str, Any], attacks: tuple[str, ...], where: str
                    ) -> tuple[str, ...]:
        """``attack.KEY = value`` of ``[defaults]`` and the block, as ``--set`` items, checked
        (without torch) as ``ubench run --attacks`` checks them."""
        from ubench.catalog import fastcheck

        merged: dict[str, tuple[tuple[str, ...], Any]] = {}
        for src_path, src in ((("defaults",), defaults), (path, table)):
            sub = src.get("attack", {})
            if not isinstance(sub, dict):
                raise self.fail((*src_path, "attack"), "attack must hold keys: write "
                                "attack.KEY = value")
            for key, value in sub.items():
                merged[key] = ((*src_path, "attack", key), value)
        out = []
        for key, (kpath, raw) in merged.items():
            if not attacks:
                raise self.fail(kpath, f"{where}: attack.{key} without attacks: add attacks = "
                                "[\"...\"] (see `ubench list attacks`)")
            if isinstance(raw, dict):
                raise self.fail(kpath, f"attack.{key} must be a value, not a table")
            item = f"attack.{key}={_literal(raw)}"
            try:
                fastcheck.check_attacks(attacks, [item])
            except UbenchError as e:
                raise self.fail(kpath, f"{where}: {e}", raw) from None
            out.append(item)
        return tuple(out)

    def attacks(self, raw: Any, path: tuple[str, ...]) -> tuple[str, ...]:
        """Attack ids (``attacks = ["relearn", "invert"]``), checked against the registry."""
        from ubench.catalog.registry import ATTACKS

        if raw is None:
            return ()
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise self.fail(path, "attacks must be a list of attack ids, e.g. attacks = "
                            "[\"relearn\", \"invert\"] (see `ubench list attacks`)")
        for i in items:
            if i not in ATTACKS:
                raise self.fail(path, did_you_mean(i, ATTACKS.names(), "attack")
                                + " See `ubench list attacks`.", i)
        return tuple(dict.fromkeys(items))

    def ids(self, raw: Any, path: tuple[str, ...], kind: str, *, allow_all: bool
            ) -> tuple[str, ...] | None:
        from ubench.catalog.registry import METHODS, TASKS

        if allow_all and raw == "all":
            return None
        items = [raw] if isinstance(raw, str) else raw
        hint = ' or "all"' if allow_all else ""
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise self.fail(path, f"{path[-1]} must be a list of {kind} ids, e.g. "
                            f"{path[-1]} = [\"...\"]{hint}")
        if not items:
            raise self.fail(path, f"{path[-1]} is empty: list at least one {kind} id")
        registry = METHODS if kind == "method" else TASKS
        for i in items:
            if i == "all" and allow_all:
                raise self.fail(path, "\"all\" stands alone: methods = \"all\"", i)
            if i not in registry:
                raise self.fail(path, did_you_mean(i, registry.names(), kind)
                                + f" See `ubench list {kind}s`.", i)
            if kind == "method" and i == EXTERNAL:
                raise self.fail(path, f"{EXTERNAL!r} rows score given models; a plan runs "
                                "methods (score a model with `ubench eval --task T --model "
                                "SRC`)", i)
        return tuple(dict.fromkeys(items))

    def seeds(self, raw: Any, path: tuple[str, ...]) -> tuple[int, ...]:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise self.fail(path, "seeds is empty: list at least one seed, e.g. seeds = [0]")
        for s in items:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED:
                raise self.fail(path, f"seeds must be integers in 0..{MAX_SEED} (seeds = [0, 1, "
                                f"2]); got {_toml(s)}", s)
        return tuple(dict.fromkeys(items))

    def values(self, scope: str, key: str, path: tuple[str, ...], raw: Any,
               methods: tuple[str, ...] | None, tasks: tuple[str, ...], where: str
               ) -> tuple[Any, ...]:
        """The values of ``scope.key`` (a list is a grid axis), checked against every component
        of the block that has the key."""
        if isinstance(raw, dict):
            raise self.fail(path, f"{scope}.{key} must be a value or a list of values, not a "
                            "table")
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            raise self.fail(path, f"{scope}.{key} is an empty grid: give at least one value")
        if scope == "task":
            components = list(tasks)
        else:
            from ubench.catalog.registry import METHODS

            components = list(methods) if methods is not None else METHODS.names()
        having = []
        every: set[str] = set()
        for comp in components:
            fields, bounds = component_fields(scope, comp)
            every |= set(fields)
            if key in fields:
                having.append((comp, fields[key], bounds.get(key)))
        if not having:
            shown = ", ".join(components) if len(components) <= 4 else f"{len(components)} {scope}s"
            lead = "" if where == "the plan" else f"{where}, "
            raise self.fail(path, f"{lead}{scope}.{key}: " + did_you_mean(key, every, "key")
                            + f" (the keys of {shown})")
        for comp, spec, bound in having:
            for v in values:
                name = f"{scope} {comp}.{key}"
                problem = type_problem(v, spec)
                if problem is not None:
                    raise self.fail(path, f"{name} must be {problem}; got {_toml(v)}", v)
                try:
                    coerced = coerce_spec(_literal(v), spec, name)
                except UbenchError as e:
                    raise self.fail(path, str(e), v) from None
                bad = bound.problem(key, coerced) if bound else None
                if bad:
                    raise self.fail(path, f"{scope} {comp}: {bad}", v)
        return tuple(values)

    # ------------------------------------------------------------------ suites
    def suites(self, raw: Any, blocks: list[Block]) -> dict[str, Suite]:
        if not isinstance(raw, dict):
            raise self.fail(("suites",), "suites must be a table: [suites] NAME = [\"block\", "
                            "...] or [suites.NAME] with blocks and values to keep")
        names = [b.name for b in blocks]
        out = {}
        for name, spec in raw.items():
            path = ("suites", name)
            table = {"blocks": spec} if isinstance(spec, (list, str)) else spec
            if not isinstance(table, dict):
                raise self.fail(path, f"suite {name!r} must list blocks or be a table")
            self.keys_of(table, path, SUITE_KEYS, f"suite {name!r}")
            chosen = None
            if "blocks" in table:
                listed = [table["blocks"]] if isinstance(table["blocks"], str) else table["blocks"]
                if not isinstance(listed, list) or not listed:
                    raise self.fail(path, f"suite {name!r}: blocks must be a non-empty list of "
                                    "block names")
                for b in listed:
                    if b not in names:
                        raise self.fail(path, f"suite {name!r}: " + did_you_mean(
                            str(b), names, "block"), b)
                chosen = tuple(listed)
            methods = tasks = None
            seeds = None
            if "methods" in table:
                methods = self.ids(table["methods"], (*path, "methods"), "method",
                                   allow_all=False)
            if "tasks" in table:
                tasks = self.ids(table["tasks"], (*path, "tasks"), "task", allow_all=False)
            if "seeds" in table:
                seeds = self.seeds(table["seeds"], (*path, "seeds"))
            keep: dict[str, dict[str, tuple[Any, ...]]] = {"method": {}, "task": {}}
            for scope in ("method", "task"):
                sub = table.get(scope, {})
                if not isinstance(sub, dict):
                    raise self.fail((*path, scope), f"{scope} must hold keys: {scope}.KEY = "
                                    "[values to keep]")
                for key, value in sub.items():
                    vals = value if isinstance(value, list) else [value]
                    if not vals:
                        raise self.fail((*path, scope, key), f"suite {name!r}: {scope}.{key} "
                                        "keeps nothing: give at least one value")
                    keep[scope][key] = tuple(vals)
            out[name] = Suite(name, chosen, methods, tasks, seeds, keep["method"], keep["task"])
        return out


# ------------------------------------------------------------------------------------ lines
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEYPART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY = re.compile(rf"^\s*({_KEYPART}(?:\s*\.\s*{_KEYPART})*)\s*=")
_NUMBER = re.compile(r"[-+]?(?:inf|nan|[0-9][0-9_]*(?:\.[0-9_]+)?(?:[eE][-+]?[0-9_]+)?)")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(_KEYPART, text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


class _Lines:
    """Where each key of a TOML text is (1-based line spans), for error messages.

    A small scanner, not a parser (the file already parsed): it knows table headers, keys
    (dotted or not) and the lines a multi-line value runs over.
    """

    def __init__(self, text: str) -> None:
        self.text = text.splitlines()
        self.spans: dict[tuple[str, ...], list[int]] = {}
        table: tuple[str, ...] = ()
        current: tuple[str, ...] | None = None
        for i, line in enumerate(self.text, 1):
            m = _HEADER.match(line)
            if m:
                table = _split_key(m.group(1))
                self.spans.setdefault(table, [i, i])
                current = None
                continue
            m = _KEY.match(line)
            if m:
                current = (*table, *_split_key(m.group(1)))
                for n in range(1, len(current) + 1):
                    self.spans.setdefault(current[:n], [i, i])
                self.spans[current][1] = i
                continue
            if current is not None and line.strip() and not line.lstrip().startswith("#"):
                self.spans[current][1] = i

    def find(self, path: tuple[str, ...], value: Any = None) -> int | None:
        """The line of ``path`` (or of its longest known prefix); with ``value``, the line in
        that key's span where the value is written."""
        for n in range(len(path), -1, -1):
            span = self.spans.get(path[:n])
            if span is not None:
                break
        else:
            return None
        if value is not None:
            for i in range(span[0], span[1] + 1):
                if _mentions(self.text[i - 1], value):
                    return i
        return span[0]


def _code(line: str) -> str:
    """``line`` without its comment (a ``#`` outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _mentions(line: str, value: Any) -> bool:
    code = _code(line)
    if isinstance(value, str):
        return f'"{value}"' in code or f"'{value}'" in code
    if isinstance(value, bool):
        return re.search(rf"\b{'true' if value else 'false'}\b", code) is not None
    if isinstance(value, (int, float)):
        for tok in _NUMBER.findall(code.split("=", 1)[-1] if "=" in code else code):
            try:
                if float(tok.replace("_", "")) == value:
                    return True
            except ValueError:
                continue
    return False
