"""The README's commands are the ones CI and users run; the docs point only at real files; the
worked example of docs/adding-a-method.md runs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST, ROOT, TINY

DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md",
        *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def ci_commands() -> list[str]:
    return [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
            and not ln.startswith(("set ", "cd "))]


def test_ci_runs_lint_types_then_the_readme_test_command() -> None:
    ci = ci_commands()
    tests = [i for i, c in enumerate(ci) if c in readme_commands() and "pytest" in c]
    assert tests, "the README must show .ci/run's test command verbatim"
    before = ci[:tests[0]]
    assert any("ruff check" in c for c in before), ".ci/run must run ruff before the tests"
    assert any("scripts/typecheck.py" in c for c in before), ".ci/run must run mypy"
    after = ci[tests[0]:]
    assert any(re.search(r'-m "slow and \(faults or engines or heavy or gate\)"', c)
               for c in after), \
        ".ci/run must run the process-level and heavy suites (faults, engines, heavy, the gate)"
    assert any("ubench compare leaderboard/baseline/quick" in c for c in after), \
        ".ci/run must gate on the committed quick-suite baseline"


def test_readme_has_the_main_command() -> None:
    cmds = readme_commands()
    assert any(c.endswith("ubench run --method boostalign --task digits-class") and "pip install"
               in c for c in cmds)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_point_only_at_files_inside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert "shared/" not in text and "../" not in text, f"{doc.name} points outside the repo"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to a missing {target}"


def test_the_adding_a_method_example_runs(store: Path, tmp_path: Path) -> None:
    """The complete method of docs/adding-a-method.md, registered and run through the runner."""
    from ubench.catalog.registry import METHODS
    from ubench.run import runner

    text = (ROOT / "docs" / "adding-a-method.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    path = tmp_path / "nullpull_example.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("nullpull_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nullpull_example"] = module
    spec.loader.exec_module(module)
    METHODS.register("nullpull")(module.NullPull)
    try:
        for task in (TINY, "t2i-attribute-tiny"):
            res = runner.run(runner.resolve("nullpull", task, 0, FAST), store=store)
            assert res.record["status"] == "ok" and res.record["train_log"]["steps"] == 4
    finally:
        METHODS.remove("nullpull")
        sys.modules.pop("nullpull_example", None)
