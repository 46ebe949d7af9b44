"""The package's layers as data, and the checks that keep them (``tests/unit/test_layers.py``).

The import graph is read from the source (every ``import`` and ``from ... import``, at module
level, inside functions and under ``TYPE_CHECKING`` alike: each is a dependency). A module's
layer is the first entry of :data:`LAYERS` whose prefix names it; layers are listed bottom up,
and a module may import its own layer or a lower one. ``docs/architecture.md`` draws the same
table.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

#: (layer, module prefixes), bottom up
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("ubench.core", "ubench")),
    ("catalog", ("ubench.catalog",)),
    ("store", ("ubench.store",)),
    ("models", ("ubench.models",)),
    ("api", ("ubench.api",)),
    ("metrics", ("ubench.metrics",)),
    ("training", ("ubench.training",)),
    ("components", ("ubench.methods", "ubench.tasks", "ubench.attacks")),
    ("run", ("ubench.run",)),
    ("report", ("ubench.report",)),
    ("sweep", ("ubench.sweep",)),
    ("cli", ("ubench.cli",)),
    ("testing", ("ubench.testing",)),
)
#: layers that stand side by side: neither may import the other (running never reads the
#: report's statistics; the report never runs anything)
SIBLINGS = (("run", "report"),)
#: test fixtures: production code never imports them
FIXTURES = ("ubench.testing", "tests")
#: the source folders and the package each is installed as
ROOTS = {"ubench": "ubench", "methods": "ubench.methods", "tasks": "ubench.tasks",
         "attacks": "ubench.attacks"}


@dataclasses.dataclass(frozen=True)
class Edge:
    """``importer`` imports ``imported`` (a module), taking ``names`` from it."""

    importer: str
    imported: str
    names: tuple[str, ...]
    line: int


def modules(repo: Path, roots: Mapping[str, str] = ROOTS) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file under the source folders."""
    out = {}
    for folder, package in roots.items():
        base = repo / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def edges(mods: Mapping[str, Path]) -> list[Edge]:
    """Every import between the modules of ``mods``."""
    out = []
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _known(alias.name, mods)
                    if target:
                        out.append(Edge(name, target, (), node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(name, is_package, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in mods:  # `from package import module`
                        out.append(Edge(name, sub, (), node.lineno))
                    else:
                        target = _known(base, mods)
                        if target:
                            out.append(Edge(name, target, (alias.name,), node.lineno))
    return out


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join([*package, *([node.module] if node.module else [])])


def _known(name: str, mods: Mapping[str, Path]) -> str | None:
    """``name`` if it is one of ``mods``, or (``import a.b.c``) its longest known prefix."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in mods:
            return candidate
    return None if not name.startswith(FIXTURES) else name


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    return rank


def _package(module: str) -> str:
    return module.rsplit(".", 1)[0]


def private_imports(es: Iterable[Edge]) -> list[str]:
    """A private name taken from another module, or a private module imported from outside its
    own package."""
    out = []
    for e in es:
        if e.imported.startswith(FIXTURES):
            continue
        leaf = e.imported.rsplit(".", 1)[-1]
        if leaf.startswith("_") and leaf != "__init__" and \
                not e.importer.startswith(_package(e.imported) + ".") and \
                _package(e.importer) != _package(e.imported):
            out.append(f"{e.importer} imports the private module {e.imported} (line {e.line})")
        for n in e.names:
            if n.startswith("_") and not n.startswith("__"):
                out.append(f"{e.importer} imports the private name {e.imported}.{n} "
                           f"(line {e.line})")
    return out


def upward_imports(es: Iterable[Edge]) -> list[str]:
    """An import of a higher layer, or between siblings."""
    out = []
    names = [n for n, _ in LAYERS]
    for e in es:
        if e.imported.startswith(FIXTURES):
            continue
        a, b = layer_of(e.importer), layer_of(e.imported)
        if (names[a], names[b]) in SIBLINGS or (names[b], names[a]) in SIBLINGS:
            out.append(f"{e.importer} ({names[a]}) imports {e.imported} ({names[b]}), a layer "
                       f"beside it (line {e.line})")
        elif b > a:
            out.append(f"{e.importer} ({names[a]}) imports {e.imported} ({names[b]}), a layer "
                       f"above it (line {e.line})")
    return out


def fixture_imports(es: Iterable[Edge]) -> list[str]:
    """Production code importing test fixtures."""
    return [f"{e.importer} imports the test fixtures {e.imported} (line {e.line})"
            for e in es if e.imported.startswith(FIXTURES)
            and not e.importer.startswith(FIXTURES)]


def circles(es: Iterable[Edge]) -> list[str]:
    """Every import circle (a strongly connected set of modules), as one line each."""
    graph: dict[str, set[str]] = {}
    for e in es:
        if e.imported != e.importer:
            graph.setdefault(e.importer, set()).add(e.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [f"import circle: {' <-> '.join(c)}" for c in found]


def violations(es: list[Edge]) -> list[str]:
    """Everything the layers forbid, one line each."""
    return [*circles(es), *private_imports(es), *upward_imports(es), *fixture_imports(es)]
