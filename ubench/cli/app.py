"""The ``ubench`` command line's shared parts: the typer app, the one way to print a note or an
error line, progress bars, summary lines, and ``ubench list``.

Everything meant for people (progress, notes, errors) goes to stderr; with ``--json`` stdout holds
only the record(s). A user-caused error prints one ``error: ...`` line with the fix and exits
non-zero (2 for usage errors, 1 otherwise), without a traceback (:mod:`ubench.cli.main`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.progress import TaskID

    from ubench.run.job import Hooks, Watch

# Never wait on a model hub: ubench only reads local files (docs/reproducibility.md).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Benchmark machine unlearning in diffusion models.")


def err(msg: str) -> None:
    """Print a line for people (stderr)."""
    print(msg, file=sys.stderr, flush=True)


class Kind(str, Enum):
    methods = "methods"
    tasks = "tasks"
    metrics = "metrics"
    attacks = "attacks"


@app.command("list")
def list_(kind: Annotated[Kind, typer.Argument(help="What to list.")] = Kind.methods) -> None:
    """List registered methods, tasks, metrics or attacks with one-line descriptions (no torch
    import).

    Example: ubench list tasks
    """
    from ubench.catalog.registry import ATTACKS, METHODS, METRICS, TASKS

    reg = {"methods": METHODS, "tasks": TASKS, "metrics": METRICS,
           "attacks": ATTACKS}[kind.value]
    entries = list(reg.entries())
    width = max(len(e.name) for e in entries)
    for e in entries:
        print(f"{e.name:<{width}}  {e.summary}")


def run_summary(rec: dict[str, Any]) -> str:
    """One line of a finished run's metrics with their intervals, and its cost."""
    from ubench.catalog.builtins import BUILTIN_METRICS

    order = list(BUILTIN_METRICS)
    names = sorted(rec["metrics"], key=lambda k: (order.index(k) if k in order else 99, k))
    parts = [f"{k}={rec['metrics'][k]['value']:.4f} [{rec['metrics'][k]['ci_low']:.4f}, "
             f"{rec['metrics'][k]['ci_high']:.4f}]" for k in names]
    cost = rec["cost"]
    return (f"   {' '.join(parts)}  unlearn {cost.get('unlearn_seconds', 0):.1f}s "
            f"eval {cost.get('eval_seconds', 0):.1f}s")


def attack_summary(rec: dict[str, Any]) -> str:
    """One line of a finished attack's metrics (by budget) and its cost."""
    from ubench.api import parse_attack_metric_id

    names = sorted(rec["metrics"], key=lambda k: (parse_attack_metric_id(k) or (k, 0))[::-1])
    parts = [f"{k}={rec['metrics'][k]['value']:.4f} [{rec['metrics'][k]['ci_low']:.4f}, "
             f"{rec['metrics'][k]['ci_high']:.4f}]" for k in names]
    return f"   {' '.join(parts)}  attack {rec['cost'].get('attack_seconds', 0):.1f}s"


class Progress:
    """Rich progress bars on stderr, one per label (silent when stderr is not a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
        from rich.progress import Progress as Bars

        self._p = Bars("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), "{task.fields[info]}",
                       console=Console(stderr=True), transient=True)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Progress:
        self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.__exit__(None, None, None)

    def for_label(self, label: str) -> Callable[[int, int, dict[str, float]], None]:
        return lambda step, total, scalars: self.update(label, step, total, scalars)

    def update(self, label: str, step: int, total: int, scalars: dict[str, float]) -> None:
        info = " ".join(f"{k}={v:.4f}" for k, v in scalars.items() if v == v)
        if label not in self._tasks:
            self._tasks[label] = self._p.add_task(label, total=total, info=info)
        self._p.update(self._tasks[label], completed=step, total=total, info=info)




def watch() -> Watch:
    """What a job run from the command line shows: notes on stderr, a progress bar per stage,
    and a summary line with the record's path when a run or an attack is done."""
    from ubench.run.job import Hooks, Watch

    @contextlib.contextmanager
    def stage(label: str) -> Iterator[Hooks]:
        with Progress() as bar:
            yield Hooks(bar.for_label(label), bar.update)

    def done(kind: str, record: dict[str, Any], path: Any, skipped: bool) -> None:
        line = run_summary(record) if kind == "run" else attack_summary(record)
        err(f"{line}\n   record: {path}")

    return Watch(say=err, stage=stage, done=done)
