"""The ``ubench`` command line's entry point: every command registered, errors as one line.

The commands live in :mod:`ubench.cli.run` (run, attack), :mod:`ubench.cli.report` (report,
compare), :mod:`ubench.cli.assets` (assets, pretrain), :mod:`ubench.cli.sweep` (sweep, tune) and
:mod:`ubench.cli.store` (pack); :mod:`ubench.cli.app` holds the app and ``list``.
"""

from __future__ import annotations

import importlib
import signal
import sys

import typer
from typer.exceptions import TyperException

from ubench.cli.app import app, err
from ubench.core.errors import InterruptedRun, Terminated, UbenchError

#: the command modules, in the order ``ubench --help`` lists their commands (each registers its
#: commands on :data:`ubench.cli.app.app` when imported)
COMMANDS = ("run", "report", "sweep", "store", "assets")
for _module in COMMANDS:
    importlib.import_module(f"ubench.cli.{_module}")


#: whether this process got SIGTERM (typer reports any interruption outside a run as 130)
_TERMINATED: list[int] = []


def _on_sigterm(signum: int, frame: object) -> None:
    _TERMINATED.append(signum)
    raise Terminated()


def main() -> None:
    """Console-script entry point: run the app, turning user errors into one line.

    Exit status: 0 success, 1 an error the user can fix, 2 a usage error (bad option, id,
    override or input file), 130 / 143 interrupted by Ctrl-C / SIGTERM (rerun to resume).
    """
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rc = app(standalone_mode=False)
    except InterruptedRun as e:
        err(str(e))
        sys.exit(e.exit_code)
    except UbenchError as e:
        err(f"error: {e}")
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors of typer's own click (bad option, no command)
        sys.exit(_usage_error(e))
    except KeyboardInterrupt as e:  # outside a run (report, list): nothing to resume
        err("interrupted")
        sys.exit(143 if isinstance(e, Terminated) or _TERMINATED else 130)
    except typer.Abort:  # click's word for Ctrl-C / SIGTERM outside a run
        err("interrupted")
        sys.exit(143 if _TERMINATED else 130)
    except typer.Exit as e:
        sys.exit(getattr(e, "exit_code", 1))
    except Exception as e:
        sys.exit(_environment_error(e))
    if isinstance(rc, int) and rc:  # typer turns Ctrl-C outside a run into 130
        if rc == 130:
            err("interrupted")
            rc = 143 if _TERMINATED else rc
        sys.exit(rc)


def _environment_error(e: Exception) -> int:
    """One line for what the machine refused (a full disk, a folder without permission); any
    other exception is a bug and keeps its traceback."""
    import errno

    from ubench.core.errors import is_disk_full

    where = getattr(e, "filename", None)
    if is_disk_full(e):
        err(f"error: no space left on the disk{f' holding {where}' if where else ''}; free space "
            "(or choose another folder) and rerun: what was finished is kept")
        return 1
    if isinstance(e, PermissionError) or (isinstance(e, OSError)
                                          and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)):
        err(f"error: {e.strerror or e}{f' ({where})' if where else ''}; fix the folder's "
            "permissions (or choose another folder) and rerun: what was finished is kept")
        return 1
    raise e


def _usage_error(e: TyperException) -> int:
    """Print a usage error as one line (help for a bare ``ubench``); return its exit status."""
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    if isinstance(e, NoArgsIsHelpError):
        e.show()
        return 2
    message = " ".join(e.format_message().split())
    hint = ""
    if isinstance(e, UsageError) and e.ctx is not None:
        hint = f" (see `{e.ctx.command_path} --help`)"
    err(f"error: {message}{hint}")
    return int(getattr(e, "exit_code", 2)) or 2


if __name__ == "__main__":
    main()
