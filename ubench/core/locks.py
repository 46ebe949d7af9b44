"""Inter-process locks for runs and cached assets.

A lock is an advisory ``flock`` on a small file. The kernel releases it when the holding process
exits, however it exits (kill -9 included), so a lock is never stale: a waiting process simply
gets it next. Lock files are never deleted (deleting one while another process waits on it would
let a third take a fresh file and run alongside). Works on local disks and on NFS v4; on Windows
(no ``fcntl``) locking is skipped.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ubench.core.errors import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: one thread-level lock per lock file, so threads of one process exclude each other as well
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


@contextlib.contextmanager
def hold(path: Path, what: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock ``path`` for the duration of the block, waiting for it when another process
    (or thread) holds it; ``say`` hears once that this process waits, naming ``what``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        from ubench.core.errors import disk_full, is_disk_full

        if is_disk_full(e):
            raise disk_full(path.parent, f"creating the lock file {path.name}") from None
        raise StoreError(f"cannot create the lock file {path} ({e.strerror}); make "
                         f"{path.parent} writable or choose another folder") from None
    with _GUARD:
        tlock = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
    try:
        if not tlock.acquire(blocking=False):
            if say:
                say(f"waiting for another thread working on {what}")
            tlock.acquire()
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if say:
                        say(f"waiting for another process working on {what} ({path})")
                    fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            tlock.release()
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def busy(path: Path) -> bool:
    """Whether another process holds the lock ``path`` right now (a hint for schedulers: the
    answer can change at once; correctness comes from :func:`hold`). False without ``fcntl``."""
    if fcntl is None or not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)  # write access: NFS emulates flock with fcntl locks
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the probe's own lock, if it got it
    return False
