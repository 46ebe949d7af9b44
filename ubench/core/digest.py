"""Content digests: of JSON-able objects (identities, cache keys) and of files (weights, data).

One hasher for the whole project, so that a digest recorded by one part (a run's assets) can be
compared with one computed by another (a cache key, a metric definition).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any


def stable_hash(obj: Any, length: int = 12) -> str:
    """sha256 (hex, first ``length`` characters) of the canonical JSON of ``obj`` (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def bytes_sha256(parts: Iterable[bytes], length: int = 64) -> str:
    """sha256 (hex, first ``length`` characters) of the concatenation of ``parts`` (e.g. the
    bytes of the tensors of a data set)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:length]


def file_sha256(path: str | Path, length: int = 64) -> str:
    """sha256 (hex, first ``length`` characters) of a file's bytes.

    Cached per (resolved path, size, modification time): in memory, and for files of 16 MiB and
    more also on disk (``$UBENCH_HOME/digests.json``), so a 3.4 GB UNet is hashed once per
    machine, not once per run; an edited file (new size or time) is hashed again.
    """
    p = Path(path).resolve()
    st = p.stat()
    if st.st_size < _PERSISTENT_MIN:
        return _sha256(str(p), st.st_size, st.st_mtime_ns)[:length]
    known = _persistent().get(str(p))
    if known and known[0] == st.st_size and known[1] == st.st_mtime_ns:
        return str(known[2])[:length]
    sha = _sha256(str(p), st.st_size, st.st_mtime_ns)
    _remember(str(p), [st.st_size, st.st_mtime_ns, sha])
    return sha[:length]


def path_digest(path: str | Path) -> str:
    """Digest of a user-supplied file or folder (every file under it: relative path, size and
    content), for run identities; ``"missing"`` when it does not exist."""
    p = Path(path).expanduser()
    if p.is_file():
        return file_sha256(p, 16)
    if p.is_dir():
        entries = [(str(f.relative_to(p)), f.stat().st_size, file_sha256(f, 16))
                   for f in sorted(p.rglob("*")) if f.is_file()]
        return stable_hash(entries, 16)
    return "missing"


_PERSISTENT_MIN = 16 << 20
_CACHE: dict[str, list[Any]] | None = None


def _cache_file() -> Path:
    from ubench.core.paths import ubench_home

    return ubench_home() / "digests.json"


def _persistent() -> dict[str, list[Any]]:
    global _CACHE
    if _CACHE is None:
        try:
            loaded = json.loads(_cache_file().read_text())
            _CACHE = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _CACHE = {}
    return _CACHE


def _remember(key: str, value: list[Any]) -> None:
    import os

    cache = _persistent()
    cache[key] = value
    target = _cache_file()
    try:  # best effort: a cache that cannot be written only costs time
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".digests.json.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, target)
    except OSError:
        pass


def fresh_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes read now, past every cache (``ubench assets verify``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """The short (16 hex characters) file digest that records carry for weights and judges."""
    return file_sha256(path, 16)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return fresh_sha256(path)
