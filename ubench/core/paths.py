"""Where ubench reads and writes by default: the results store and the asset cache.

``$UBENCH_STORE`` (else ``./results``) is the store that runs are written to unless ``--store``
says otherwise; ``$UBENCH_HOME`` (else ``~/.cache/ubench``) holds what ubench builds once and
reuses (trained base models, oracles, judges, file digests). Both are only *named* here: the
store layer (:mod:`ubench.store`) owns what is inside them. :func:`confined` is the one check
that a path read from a file (a record, a manifest, a packed dataset) stays inside its folder.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the results store when neither ``--store`` nor ``$UBENCH_STORE`` names one
DEFAULT_STORE = "results"


def store_root(path: str | Path | None = None) -> Path:
    """The store folder: the argument, ``$UBENCH_STORE`` or ``./results``."""
    return Path(path or os.environ.get("UBENCH_STORE") or DEFAULT_STORE)


def ubench_home() -> Path:
    """The cache root (``$UBENCH_HOME`` or ``~/.cache/ubench``)."""
    env = os.environ.get("UBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ubench"


def confined(base: Path, name: str) -> Path | None:
    """``base / name`` when ``name`` is a relative POSIX path that stays inside ``base`` (no
    absolute path, no ``..``, no backslash, no symbolic link out of it); None otherwise.

    Every path read from a file someone else may have written (a record, a report manifest, a
    packed dataset, the pinned-asset manifest) goes through this before anything is read,
    written or deleted."""
    from pathlib import PurePosixPath

    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or ".." in rel.parts or "\\" in name or "\0" in name:
        return None
    path = base.joinpath(*rel.parts)
    root = base.resolve()
    return path if path.resolve().is_relative_to(root) else None
