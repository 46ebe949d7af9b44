"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of one.

Everything ubench writes into a store or the asset cache goes through here: a file is written
to a temporary name owned by this process (``.<name>.tmp-<pid>``) and renamed into place; a
folder is built under a temporary name and swapped in. A killed writer leaves only a temporary,
which :func:`remove_stale_temporaries` (or the next swap) deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temporary(path: Path) -> Path:
    """The temporary name this process writes ``path`` under before renaming it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def replacing(path: Path, failpoint_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on a clean exit rename it into
    place (after the failpoint ``failpoint_name``, for the fault tests), else delete it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    try:
        yield tmp
        if failpoint_name:
            from ubench.core.faults import failpoint

            failpoint(failpoint_name)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, failpoint_name: str | None = None) -> None:
    with replacing(path, failpoint_name) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str, failpoint_name: str | None = None) -> None:
    with replacing(path, failpoint_name) as tmp:
        tmp.write_text(text)


def json_text(obj: Any) -> str:
    """The canonical text of a JSON file ubench writes (records, manifests, state)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"


def write_json_atomic(path: Path, obj: Any, failpoint_name: str | None = None) -> None:
    write_text_atomic(path, json_text(obj), failpoint_name)


def move(src: Path, dst: Path) -> None:
    """Rename a finished file into place (atomic within one file system)."""
    os.replace(src, dst)


def swap_folder(new: Path, final: Path) -> None:
    """Put the folder ``new`` in place of ``final`` (which may not exist): the old one is moved
    aside, the new one renamed in, the old one deleted."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)


@contextlib.contextmanager
def new_folder(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder to build ``final``'s new content in; on a clean exit it
    replaces ``final`` (:func:`swap_folder`), otherwise it is deleted: a reader (or a rerun)
    sees the old folder or the whole new one, never a half-written one."""
    tmp = fresh_folder(final)
    try:
        yield tmp
        swap_folder(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def disk_full_as_one_line(folder: Path, what: str) -> Iterator[None]:
    """Turn a write into a full disk (an ``OSError`` ENOSPC, or a native writer's error that
    says so) inside the block into :class:`~ubench.core.errors.DiskFullError`: one line naming
    ``folder`` and the fix, instead of a traceback."""
    from ubench.core.errors import UbenchError, disk_full, is_disk_full

    try:
        yield
    except UbenchError:
        raise
    except Exception as e:
        if is_disk_full(e):
            raise disk_full(folder, what) from None
        raise


def fresh_folder(final: Path) -> Path:
    """An empty temporary folder beside ``final`` to build its new content in."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files and folders a killed writer left in ``folder``."""
    for tmp in [*folder.glob(".*.tmp-*"), *folder.glob(".*.old-*")]:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def remove_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``root`` while they are empty."""
    here = folder
    while here != root and root in here.parents:
        try:
            here.rmdir()
        except OSError:  # not empty (or already gone)
            if here.exists():
                return
        here = here.parent
