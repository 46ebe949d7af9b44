"""Where ubench keeps what it builds: trained base models, oracles, judges.

``UBENCH_HOME`` overrides the default ``~/.cache/ubench``. Each asset lives in a folder named by a
hash of everything that determines it (training config, data hash, code version), so changing any
of those builds a new asset instead of silently reusing a stale one. Assets are written to a
temporary folder and renamed into place, so an interrupted build never leaves a half asset behind.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ubench.digest import stable_hash


def ubench_home() -> Path:
    """The cache root (``$UBENCH_HOME`` or ``~/.cache/ubench``)."""
    env = os.environ.get("UBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ubench"


def asset_dir(kind: str, key: dict[str, Any]) -> Path:
    """The folder an asset of ``kind`` identified by ``key`` lives (or will live) in."""
    return ubench_home() / kind / stable_hash(key)


#: one lock per asset folder, so threads of one process never build the same asset twice
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def cached(kind: str, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Return the asset folder, building it with ``build(tmp_dir)`` first if it is missing.

    Threads of one process asking for the same asset wait for the first build; separate
    processes build into their own temporary folders and the first rename wins.
    """
    final = asset_dir(kind, key)
    if (final / "key.json").is_file():
        return final
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(final, threading.Lock())
    with lock:
        return _build(final, key, build)


def _build(final: Path, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
    if (final / "key.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        (tmp / "key.json").write_text(json.dumps(key, indent=2, sort_keys=True, default=str))
        if final.exists():  # a stale partial folder without key.json, or a concurrent build
            if (final / "key.json").is_file():
                shutil.rmtree(tmp)
                return final
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_cached(kind: str, key: dict[str, Any]) -> bool:
    return (asset_dir(kind, key) / "key.json").is_file()
