"""Where ubench keeps what it builds: trained base models, oracles, judges.

``UBENCH_HOME`` overrides the default ``~/.cache/ubench``. Each asset lives in a folder named by a
hash of everything that determines it (training config, data hash, code version), so changing any
of those builds a new asset instead of silently reusing a stale one. Assets are written to a
temporary folder and renamed into place, so an interrupted build never leaves a half asset behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ubench.core.digest import stable_hash
from ubench.core.errors import CorruptAssetError, MissingAssetError, StoreError, UbenchError
from ubench.core.paths import ubench_home
from ubench.store.io import disk_full_as_one_line, new_folder

T = TypeVar("T")


def asset_dir(kind: str, key: dict[str, Any]) -> Path:
    """The folder an asset of ``kind`` identified by ``key`` lives (or will live) in."""
    return ubench_home() / kind / stable_hash(key)


def cached(kind: str, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Return the asset folder, building it with ``build(tmp_dir)`` first if it is missing.

    One process (or thread) builds; the others wait on the asset's lock and then find it built.
    The build goes into a temporary folder named after the process and is renamed into place,
    so an interrupted build never leaves a half asset behind.
    """
    from ubench.core.locks import hold

    final = asset_dir(kind, key)
    if (final / "key.json").is_file():
        return final
    _writable_home()
    with hold(final.parent / f".{final.name}.lock", f"the cached {kind} asset"):
        return _build(final, key, build)


def _writable_home() -> None:
    """Raise StoreError (one line, with the fix) when the asset cache cannot be written."""
    home = ubench_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the asset cache {home} ({e.strerror}); set "
                         "UBENCH_HOME to a writable folder") from None
    if not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
        why = "it is not a folder" if not home.is_dir() else "it is not writable"
        raise StoreError(f"cannot use the asset cache {home}: {why}; set UBENCH_HOME to a "
                         "writable folder")


def _build(final: Path, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
    if (final / "key.json").is_file():
        return final
    with disk_full_as_one_line(final.parent, f"building the cached asset {final.name}"), \
            new_folder(final) as tmp:  # (replacing a stale partial folder without key.json)
        build(tmp)
        (tmp / "key.json").write_text(json.dumps(key, indent=2, sort_keys=True, default=str))
    return final


def load_cached(folder: Path, what: str, load: Callable[[], T]) -> T:
    """``load()`` a cached asset; any failure (a truncated file, a bad value) becomes one
    :class:`CorruptAssetError` line that names the folder to delete."""
    try:
        return load()
    except MissingAssetError as e:  # a file of the asset is gone
        reason = str(e)
    except UbenchError:
        raise
    except Exception as e:  # safetensors, diffusers, json, float(): whatever the file broke
        reason = f"{type(e).__name__}: {e}"
    reason = " ".join(reason.split())[:200]
    raise CorruptAssetError(f"the cached {what} in {folder} is unreadable ({reason}); delete "
                            f"{folder} and rerun to rebuild it") from None


def is_cached(kind: str, key: dict[str, Any]) -> bool:
    return (asset_dir(kind, key) / "key.json").is_file()


def write_tensors(path: Path, tensors: dict[str, Any]) -> None:
    """Store named tensors of a cached asset (safetensors: no pickle, loadable anywhere)."""
    from safetensors.torch import save_file

    save_file({n: t.detach().cpu().contiguous() for n, t in tensors.items()}, str(path))


def read_tensors(path: Path) -> dict[str, Any]:
    """The named tensors :func:`write_tensors` stored (on the CPU)."""
    from safetensors.torch import load_file

    return load_file(str(path))
