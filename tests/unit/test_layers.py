"""The layers hold: no import circle, no private name across modules, no import of a layer above,
no test fixture in production code, each task's instance keys declared by the task and read
from it, run-folder file names spelled only by the store. Each rule is also shown to catch a
deliberate violation, so a check that silently passes everything fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.layers import (
    LAYERS,
    circles,
    edges,
    fixture_imports,
    layer_of,
    modules,
    private_imports,
    upward_imports,
    violations,
)

MODULES = modules(ROOT)
EDGES = edges(MODULES)


def test_the_package_keeps_its_layers() -> None:
    found = violations(EDGES)
    assert not found, "the layers are broken (docs/architecture.md):\n" + "\n".join(found)


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 100
    assert [m for m in MODULES if layer_of(m) < 0] == []
    names = [n for n, _ in LAYERS]
    assert names.index("store") < names.index("components") < names.index("report")


def test_the_graph_sees_every_kind_of_import() -> None:
    """Function-local imports count (the report imports facts lazily in places)."""
    pairs = {(e.importer, e.imported) for e in EDGES}
    assert ("ubench.cli.main", "ubench.cli.app") in pairs
    assert ("ubench.methods.boostalign", "ubench.methods._gradient") in pairs
    assert ("ubench.run.runner", "ubench.store.reader") in pairs


# ----------------------------------------------------------------------------- the rules bite
def _tree(tmp_path: Path, files: dict[str, str]) -> list:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {Path(rel).parts[0] for rel in files}:
        for d in [tmp_path / folder, *(tmp_path / folder).rglob("*")]:
            if d.is_dir() and not (d / "__init__.py").exists():
                (d / "__init__.py").write_text("")
    return edges(modules(tmp_path, {"ubench": "ubench", "methods": "ubench.methods",
                                    "tests": "tests"}))


def test_a_circle_is_caught(tmp_path: Path) -> None:
    es = _tree(tmp_path, {"ubench/core/a.py": "from ubench.core import b\n",
                          "ubench/core/b.py": "def f():\n    from ubench.core.a import x\n"})
    assert circles(es) == ["import circle: ubench.core.a <-> ubench.core.b"]
    assert violations(es) == circles(es)


CASES = {
    "private": (private_imports, {
        "ubench/report/a.py": "_fmt = str\n",
        "ubench/report/b.py": "from ubench.report.a import _fmt\n",
        "ubench/report/c.py": "from ubench.methods._loop import Loop\n",
        "methods/_loop.py": "Loop = 1\n",
        # a private module imported inside its own package is its package's business
        "methods/ga.py": "from ubench.methods._loop import Loop\n"},
        ["ubench.report.b imports the private name ubench.report.a._fmt",
         "ubench.report.c imports the private module ubench.methods._loop"],
        "ubench.methods.ga "),
    "upward": (upward_imports, {
        "ubench/core/a.py": "from ubench.report import b\n",
        "ubench/report/b.py": "from ubench.core import a as _a\n",
        "ubench/run/c.py": "import ubench.report.b\n"},
        ["ubench.core.a (core) imports ubench.report.b (report), a layer above",
         "ubench.run.c (run) imports ubench.report.b (report), a layer beside"],
        "ubench.report.b "),
    "fixtures": (fixture_imports, {
        "ubench/testing.py": "x = 1\n",
        "ubench/tasks2.py": "def f():\n    from ubench.testing import x\n",
        "ubench/report/d.py": "from tests.conftest import ROOT\n",
        "tests/conftest.py": "ROOT = 1\n"},
        ["ubench.tasks2 imports the test fixtures ubench.testing",
         "ubench.report.d imports the test fixtures tests.conftest"],
        "ubench.testing "),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_catches_a_deliberate_violation(rule: str, tmp_path: Path) -> None:
    check, files, caught, spared = CASES[rule]
    found = check(_tree(tmp_path, files))
    for message in caught:
        assert any(message in f for f in found), (message, found)
    assert not any(f.startswith(spared) for f in found), found
    assert found and all(f in violations(_tree(tmp_path / "again", files)) for f in found)


# ----------------------------------------------------------------------------- facts, not imports
def _constants(path: Path) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_instance_keys_are_declared_by_each_task_and_read_from_it() -> None:
    from ubench.catalog import facts
    from ubench.catalog.registry import TASKS

    declared: set[str] = set()
    for name in TASKS.names():
        cls = TASKS.get(name)
        fields = set(cls.Config.field_names())
        assert set(cls.instance_keys) <= fields, name
        assert facts.instance_keys(name) == tuple(cls.instance_keys), name
        declared |= set(cls.instance_keys)
    assert {"forget_class", "forget_digit", "forget_style"} <= declared
    spelled = [m for m, p in MODULES.items() if not m.startswith("ubench.tasks")
               and _constants(p) & declared]
    assert spelled == [], f"{spelled} spell a task's instance key instead of asking the task"


def test_only_the_store_spells_run_folder_file_names() -> None:
    from ubench.store import layout

    names = {v for k, v in vars(layout).items() if k.endswith(("_FILE", "_DIR"))
             and isinstance(v, str)} - {"data", "model", "checkpoint", "attacks", "rebuild"}
    assert {"record.json", "samples.jsonl", "scores.safetensors", "attack.json",
            ".locks"} <= names
    spelled = [m for m, p in MODULES.items() if not m.startswith("ubench.store")
               and _constants(p) & names]
    assert spelled == [], f"{spelled} spell a run folder's file names: ask ubench.store.layout"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("ubench.report")))
def test_the_report_never_imports_a_run_or_a_sweep(module: str) -> None:
    bad = [e.imported for e in EDGES if e.importer == module
           and e.imported.startswith(("ubench.run", "ubench.sweep", "ubench.training"))]
    assert bad == []
