"""What ``ubench sweep`` shows: the dry-run table, the live progress, the summary and the table of
failures (rich, on stderr; user strings are shown as text, never as markup)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Task as RichTask

    from ubench.sweep.plan import RunItem
    from ubench.sweep.run import ItemState, SweepResult
    from ubench.sweep.worker import Outcome

_STYLE = {"ran": "green", "skipped": "cyan", "done": "dim", "failed": "bold red",
          "interrupted": "yellow", "todo": "", "partial": "yellow", "attacks": "yellow",
          "corrupt": "bold red"}


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _metrics(values: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.3f}" if abs(v) < 100 else f"{k} {v:.1f}"
                    for k, v in values.items())


def plan_table(items: list[RunItem], states: list[ItemState]) -> Table:
    """The ``--dry-run`` table: each run, what the sweep would do with it, its identity."""
    what = {"todo": "run", "partial": "resume", "attacks": "attack", "done": "done",
            "failed": "failed", "corrupt": "corrupt"}
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("state", "block", "method", "task", "seed", "overrides", "run id"):
        table.add_column(col, overflow="fold")
    for item, st in zip(items, states, strict=True):
        label = what[st.kind] + (f" (step {st.step})" if st.kind == "partial" else "") + (
            f" ({', '.join(st.pending)})" if st.kind == "attacks" else "") + (
            " after remaking the run (its model is missing)" if st.remake else "")
        table.add_row(Text(label, style=_STYLE[st.kind]), Text(item.block), Text(item.method),
                      Text(item.task), str(item.seed), Text(" ".join(item.overrides)),
                      item.run_id)
    return table


class _Status(ProgressColumn):
    """running / failed counts and the ETA, recomputed at every refresh."""

    def __init__(self, view: SweepView) -> None:
        super().__init__()
        self.view = view

    def render(self, task: RichTask) -> Text:
        return Text(self.view.status_line())


class SweepView:
    """Live progress of a sweep on stderr: a bar (runs finished of all), the runs running and
    failed, an ETA from the finished runs' times, and one line per finished run (plain lines
    only when stderr is not a terminal)."""

    def __init__(self, total: int, workers: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.total = total
        self.workers = max(1, workers)
        self.finished = 0
        self.failed = 0
        self._running: dict[str, float] = {}  # run id -> when it started
        self.times: list[float] = []
        self._started = time.perf_counter()
        self._lock = threading.Lock()
        self._progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                                  _Status(self), console=self.console, transient=True)
        self._task = self._progress.add_task("sweep", total=total)

    def __enter__(self) -> SweepView:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def status_line(self) -> str:
        left = self.total - self.finished
        eta = "?"
        if self.times and left:
            per = sum(self.times) / len(self.times)
            eta = _duration(per * left / min(self.workers, left))
        elif not left:
            eta = "0s"
        return (f"running {len(self._running)}  failed {self.failed}  ETA {eta}  "
                f"elapsed {_duration(time.perf_counter() - self._started)}")

    def event(self, kind: str, item: RunItem, outcome: Outcome | None) -> None:
        with self._lock:
            if kind == "start":
                self._running[item.run_id] = time.perf_counter()
            else:
                assert outcome is not None
                started = self._running.pop(item.run_id, None)
                # the wall time of the whole attempt (process start and imports included)
                wall = time.perf_counter() - started if started is not None else outcome.seconds
                self.finished += 1
                if not outcome.ok:
                    self.failed += 1
                if outcome.status == "ran":
                    self.times.append(wall)
                if outcome.status != "done":
                    self.console.print(self.line(item, outcome, wall))
            self._progress.update(self._task, completed=self.finished)

    @staticmethod
    def line(item: RunItem, outcome: Outcome, wall: float | None = None) -> Text:
        tag = {"ran": "ok", "skipped": "skip", "done": "done", "failed": "FAIL",
               "interrupted": "stop"}.get(outcome.status, outcome.status)
        text = Text(f"{tag:<5}", style=_STYLE.get(outcome.status, ""))
        text.append(f" {item.label()}  ")
        if outcome.ok:
            text.append(_metrics(outcome.metrics))
            if outcome.status == "ran":
                text.append(f"  ({_duration(outcome.seconds if wall is None else wall)})",
                            style="dim")
            elif outcome.status == "skipped":
                text.append("  (made by another worker or sweep)", style="dim")
        else:
            text.append(outcome.error or "", style="red")
        return text


def summary(result: SweepResult, console: Console) -> None:
    """The closing lines: counts, wall time, and a table of the failures with their errors."""
    c = result.counts()
    parts = [f"{c['ran']} ran", f"{c['skipped']} made by another sweep",
             f"{c['done']} finished already", f"{c['failed']} failed"]
    if c["interrupted"]:
        parts.append(f"{c['interrupted']} interrupted")
    console.print(Text(f"{len(result.items)} runs on {result.executor}: " + ", ".join(parts)
                       + f" in {_duration(result.wall_seconds)}; store {result.store}"))
    failures = result.failures
    if not failures:
        return
    table = Table(title="failed runs", box=None, pad_edge=False, header_style="bold",
                  title_style="bold red", title_justify="left")
    for col in ("method", "task", "seed", "overrides", "run id", "error"):
        table.add_column(col, overflow="fold")
    for item, outcome in failures:
        table.add_row(Text(item.method), Text(item.task), str(item.seed),
                      Text(" ".join(item.overrides)), item.run_id,
                      Text(outcome.error or outcome.status, style="red"))
    console.print(table)
