"""The README's commands are the ones CI and users run; the docs point only at real files inside
the repository; docs/results.md quotes only numbers the generated leaderboard holds; the worked
example of docs/adding-a-method.md runs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST, ROOT, TINY

DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md",
        *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "tasks").glob("*.md"))]

#: the generated files docs/results.md may quote (written by `ubench report` and
#: `scripts/sensitivity.py`; never edited by hand)
GENERATED = [ROOT / "leaderboard" / name for name in (
    "README.md", "robustness.md", "sensitivity.md", "ranking.csv", "fronts.csv", "leaderboard.csv")]

#: a quoted number with its interval, as the generated Markdown prints it: `0.997 [0.996, 0.999]`,
#: `-5.2 [-7.1, -3.2]`, `+0.004 [+0.001, +0.008]` (a Unicode minus is matched too, so that a
#: quote typed with one is reported rather than skipped)
INTERVAL = re.compile(r"[-+−]?\d+\.\d+ \[[-+−]?\d+\.\d+, [-+−]?\d+\.\d+\]")


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
    assert any("ubench compare tests/baseline/quick" in c for c in after), \
        ".ci/run must gate on the committed quick-suite baseline (tests/baseline/quick)"


def test_readme_has_the_main_command() -> None:
    cmds = readme_commands()
    assert any(c.endswith("ubench run --method boostalign --task digits-class") and "pip install"
               in c for c in cmds)


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT.resolve())


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_point_only_at_files_inside_the_repository(doc: Path) -> None:
    name = str(doc.relative_to(ROOT))
    text = doc.read_text()
    assert "shared/" not in text, f"{name} points outside the repository (shared/)"
    # any relative path that climbs (`../x`, in a link or in prose) must stay inside the repository
    for up in re.findall(r"(?:\.\./)+[^\s)\]`'\"<>,;]*", text):
        assert _inside(doc.parent / up), f"{name} points outside the repository: {up}"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        assert _inside(doc.parent / target), f"{name} links outside the repository: {target}"
        assert (doc.parent / target).exists(), f"{name} links to a missing {target}"


def test_results_quote_the_generated_leaderboard() -> None:
    """Every `X [L, H]` in docs/results.md is copied from a generated file, so the analysis cannot
    drift from the numbers: regenerating the leaderboard either keeps a quote or fails here."""
    text = (ROOT / "docs" / "results.md").read_text()
    quotes = INTERVAL.findall(text)
    assert quotes, "docs/results.md quotes no interval: has the pattern or the page changed?"
    # the ranking's Markdown escapes some brackets (`\[`); read them as printed
    generated = "\n".join(p.read_text() for p in GENERATED).replace("\\[", "[").replace("\\]", "]")
    missing = sorted({q for q in quotes
                      if not re.search(r"(?<![\d.])" + re.escape(q), generated)})
    assert not missing, (
        "docs/results.md quotes a number the generated leaderboard does not hold: regenerate the "
        "leaderboard or fix the quote: " + "; ".join(missing))


def test_the_adding_a_method_example_runs(store: Path, tmp_path: Path) -> None:
    """The complete method of docs/adding-a-method.md, registered and run through the runner."""
    from ubench.catalog.registry import METHODS
    from ubench.run import identity, runner

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
            res = runner.run(identity.resolve("nullpull", task, 0, FAST), store=store)
            assert res.record["status"] == "ok" and res.record["train_log"]["steps"] == 4
    finally:
        METHODS.remove("nullpull")
        sys.modules.pop("nullpull_example", None)


def _main_rankings() -> dict[str, tuple[int, int]]:
    """{task: (tiers, ranked rows)} of each task's main ranking in leaderboard/ranking.csv: its
    first table that is neither set apart (superseded judge, legacy assets) nor an ablation
    (the two-class remain set)."""
    import csv

    out: dict[str, tuple[int, int]] = {}
    with (ROOT / "leaderboard" / "ranking.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for table in dict.fromkeys(r["table"] for r in rows):
        task = table.split(" — ")[0]
        if task in out or "(" in table.split(" — ", 1)[-1] or "two-class" in table:
            continue
        ranked = [r for r in rows if r["table"] == table and r["reference"] == "False"]
        out[task] = (max(int(float(r["tier"])) for r in ranked), len(ranked))
    return out


def test_the_readme_says_how_many_tiers_each_ranking_has() -> None:
    """The README's tier counts are the committed leaderboard's (a claim is a test)."""
    text = " ".join((ROOT / "README.md").read_text().split())
    said = {m[0]: (int(m[1]), int(m[2])) for m in
            re.findall(r"(digits-class|t2i-[a-z]+) (\d+) tiers? over (\d+)", text)}
    assert said == _main_rankings(), "update the README's tier counts from ranking.csv"
