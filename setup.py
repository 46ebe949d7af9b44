"""Package discovery for setuptools; everything else is in pyproject.toml.

``methods/``, ``tasks/`` and ``attacks/`` stay at the top level of the repository (one file per
method or attack, one folder per task family) and are installed as ``ubench.methods``,
``ubench.tasks`` and ``ubench.attacks`` through
``[tool.setuptools.package-dir]``. setuptools' own ``packages.find`` cannot rename what it finds,
so the package list is found here: every folder with an ``__init__.py`` under the roots.
A new task folder is packaged without editing any list.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"ubench": "ubench", "ubench.methods": "methods", "ubench.tasks": "tasks",
         "ubench.attacks": "attacks"}


def packages() -> list[str]:
    here = Path(__file__).parent
    found = []
    for name, folder in ROOTS.items():
        base = here / folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base).parts
            if "__pycache__" not in rel:
                found.append(".".join((name, *rel)))
    return found


setup(packages=packages())
