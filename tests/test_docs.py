"""The README's commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def test_ci_runs_the_readme_test_command() -> None:
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#") and not ln.startswith(("set ", "cd "))]
    assert len(ci) == 1
    assert ci[0] in readme_commands(), "the README must show .ci/run's test command verbatim"


def test_readme_has_the_main_command() -> None:
    cmds = readme_commands()
    assert any(c.endswith("ubench run --method boostalign --task digits-class") and "pip install"
               in c for c in cmds)
