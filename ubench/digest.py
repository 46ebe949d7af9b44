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

    Cached per (resolved path, size, modification time), so a run hashes a 3.4 GB UNet once
    however many records and definitions name it.
    """
    p = Path(path).resolve()
    st = p.stat()
    return _sha256(str(p), st.st_size, st.st_mtime_ns)[:length]


def file_digest(path: str | Path) -> str:
    """The short (16 hex characters) file digest that records carry for weights and judges."""
    return file_sha256(path, 16)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
