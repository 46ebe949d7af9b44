"""Type-check ``ubench``, ``methods``, ``tasks`` and ``attacks`` as the one installed package.

``methods/`` and ``tasks/`` are installed as ``ubench.methods`` and ``ubench.tasks``
(``[tool.setuptools.package-dir]``), a mapping mypy cannot express: checked in place, every
``from ubench.methods...`` import would be unresolved and silently ``Any``. This script lays the
three folders out as the installed package in a temporary folder of symlinks, runs mypy on it
(``-p ubench``, configured by ``pyproject.toml``) and prints its report with the paths of the
repository. Exit status: mypy's.

    python scripts/typecheck.py
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"methods": "methods", "tasks": "tasks", "attacks": "attacks"}


def main() -> int:
    from mypy import api

    with tempfile.TemporaryDirectory(prefix="ubench-mypy-") as tmp:
        pkg = Path(tmp) / "ubench"
        pkg.mkdir()
        for entry in (ROOT / "ubench").iterdir():
            if entry.name != "__pycache__":
                (pkg / entry.name).symlink_to(entry)
        for name, folder in MAPPED.items():
            (pkg / name).symlink_to(ROOT / folder, target_is_directory=True)
        os.environ["MYPYPATH"] = tmp
        out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                    "-p", "ubench"])
        prefix = re.escape(str(pkg) + os.sep)
        out = re.sub(prefix + r"(methods|tasks|attacks)" + re.escape(os.sep), r"\1/", out)
        out = re.sub(prefix, "ubench/", out)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main())
