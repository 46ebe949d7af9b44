"""The command-line frame of the analysis scripts in ``scripts/`` that read a store and print a
Markdown report: one ``--store`` option, the report on stdout, a user's error as one line on
stderr with exit status 2 (docs/usage.md: exit statuses)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ubench.core.errors import UbenchError


def store_report(doc: str, build: Callable[[Path], list[str]], default_store: Path,
                 argv: Sequence[str] | None = None) -> int:
    """Parse ``--store`` (``doc``'s first line is the help), print ``build(store)``'s lines;
    a :class:`UbenchError` or ``ValueError`` (missing runs, a plan that does not resolve) is
    ``error: ...`` on stderr and exit status 2."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--store", default=str(default_store))
    args = ap.parse_args(argv)
    try:
        lines = build(Path(args.store))
    except (UbenchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
