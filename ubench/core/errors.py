"""One family of errors for everything a user can cause.

Each error carries a message that says what was expected, what was received and how to fix it.
The CLI prints ``error: <message>`` on one line and exits non-zero, without a traceback; library
users catch :class:`UbenchError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UbenchError(Exception):
    """Base class of every error a user can cause (bad input, missing weights, divergence)."""

    #: process exit status the CLI uses for this kind of error
    exit_code: int = 1


class UnknownComponentError(UbenchError, KeyError):
    """An unknown method, task or metric id."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(UbenchError, ValueError):
    """A bad override, an unknown config key or a value out of range."""

    exit_code = 2


class IncompatibleError(UbenchError):
    """A method that cannot run on a task (it needs something the task does not provide)."""

    exit_code = 2


class MissingAssetError(UbenchError):
    """Weights or data that must be on the machine and are not (nothing is downloaded)."""


class DivergedError(UbenchError):
    """The unlearning loss became NaN or infinite."""


class CorruptRecordError(UbenchError):
    """A record file that cannot be read back."""


class CorruptAssetError(UbenchError):
    """A cached asset (model, judge, generated data) that cannot be read back."""


class InputError(UbenchError, ValueError):
    """A user-supplied file that is malformed (a prompt CSV, the I2P file)."""

    exit_code = 2


class StoreError(UbenchError):
    """A results store or asset cache that cannot be used (a file, read-only, missing)."""

    exit_code = 2


class DiskFullError(UbenchError):
    """A write failed because the disk (or the quota) holding a folder is full; the message names
    the folder. Nothing finished is lost: the run resumes from its last checkpoint."""


#: the messages a full disk leaves in errors raised by native code (safetensors' Rust writer:
#: ``IoError(Os { code: 28, kind: StorageFull, ... })``; quotas: code 122)
_FULL = ("No space left on device", "StorageFull", "code: 28", "Disk quota exceeded",
         "code: 122")


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is a write into a full disk or quota."""
    import errno

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(mark in str(e) for mark in _FULL):
            return True
        e = e.__cause__ or e.__context__
    return False


def disk_full(folder: object, what: str) -> DiskFullError:
    """The one line for a full disk under ``folder`` while doing ``what``."""
    return DiskFullError(f"no space left on the disk holding {folder} while {what}; free space "
                         "there (or choose another folder) and rerun: what was finished is "
                         "kept")


class PlanError(ConfigError):
    """A sweep plan that cannot be run: malformed TOML, an unknown id or key, a value of the
    wrong type, a plan that expands to nothing. The message starts with ``PLAN:LINE:``."""


class MissingExtraError(UbenchError):
    """An optional engine (Ray, submitit) that is not installed; the message names the install
    command."""


class AttackTargetError(UbenchError):
    """A run that cannot be attacked: missing, unfinished, failed, without a saved model, or
    made by another version of ubench."""

    exit_code = 2


class InterruptedRun(UbenchError):
    """A run stopped by Ctrl-C (exit 130) or SIGTERM (exit 143); it resumes when rerun."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """Raised by ubench's SIGTERM handler, so that a terminated process unwinds (and restores
    the terminal) exactly as after Ctrl-C."""


def did_you_mean(name: str, choices: Iterable[str], kind: str) -> str:
    """Return "unknown <kind> 'x'; did you mean 'y'? Valid: a, b, c" for an error message."""
    options = sorted(choices)
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(options) or '(none)'}."
