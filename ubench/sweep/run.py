"""Run a list of :class:`~ubench.sweep.plan.RunItem` on an executor: skip what is finished, hand
the rest out, gather one :class:`~ubench.sweep.worker.Outcome` per run.

A sweep is resumable and idempotent: a run whose record is finished is not run again (a second
sweep of the same plan does nothing), a run with a checkpoint resumes from it, and a run whose
record says it failed (a diverged loss) is reported again rather than rerun, unless
``retry_failed``. An item with ``attacks`` is finished when its run and each attack's record are:
a finished run whose attacks are missing (state ``attacks``) is handed out again, and its worker
finds the run done and runs only the attacks. Two sweeps sharing a store never run one
identity twice: each run holds its lock
(``<store>/.locks/<run id>.lock``) while it runs, and a worker reaching a run another holds
*waits* for it, then finds the record and reports the run ``skipped`` (the local executor first
picks runs no one holds, so two sweeps of one plan mostly share the work instead of waiting).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ubench.core.errors import ConfigError, CorruptRecordError, InterruptedRun, Terminated
from ubench.sweep.executors import Executor, make_executor
from ubench.sweep.plan import RunItem
from ubench.sweep.worker import Job, Outcome, metric_values, pending_attacks

#: ``on_event(kind, item, outcome)``: kind "start" (outcome None) or "finish"
EventHook = Callable[[str, RunItem, "Outcome | None"], None]


@dataclasses.dataclass(frozen=True)
class ItemState:
    """Where a run stands in a store before a sweep: ``todo``, ``partial`` (a checkpoint at
    ``step``), ``attacks`` (the run is finished, the attacks in ``pending`` are not), ``done``,
    ``failed`` (a failed record; ``error`` says why) or ``corrupt``."""

    kind: str
    #: where its record is (its folder's record.json; the same path for a packed run)
    record: str | None = None
    error: str | None = None
    step: int = 0
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    pending: tuple[str, ...] = ()
    #: ``attacks`` on a run without its saved model (made before runs saved their weights, or
    #: its ``model/`` folder is gone): its worker remakes it first
    remake: bool = False


def item_state(item: RunItem, store: Path) -> ItemState:
    """The state of ``item``'s run in the store ``store`` (in its folder or packed)."""
    from ubench.store.checkpoint import Checkpoint
    from ubench.store.layout import run_dir
    from ubench.store.reader import finished_run
    from ubench.store.runs import model_missing

    folder = run_dir(store, item.task, item.method, item.run_id)
    try:
        rec = finished_run(store, item.task, item.method, item.run_id)
    except CorruptRecordError as e:
        return ItemState("corrupt", None, str(e))
    if rec is not None:
        where = rec["_path"]
        if rec["status"] == "ok":
            metrics = metric_values(dict(rec))
            pending = pending_attacks(item.attacks, item.attack_sets, store, item.run_id)
            if pending:
                return ItemState("attacks", where, metrics=metrics, pending=pending,
                                 remake=model_missing(rec, folder))
            return ItemState("done", where, metrics=metrics)
        if rec["status"] == "failed":
            return ItemState("failed", where, rec.get("error") or "failed")
    step = Checkpoint(folder).step()
    return ItemState("partial", step=step) if step else ItemState("todo")


@dataclasses.dataclass
class SweepResult:
    """The items of a sweep (each once, in plan order) and their outcomes, aligned."""

    items: list[RunItem]
    outcomes: list[Outcome]
    wall_seconds: float
    executor: str
    store: str

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("ran", "skipped", "done", "failed", "interrupted")}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out

    @property
    def failures(self) -> list[tuple[RunItem, Outcome]]:
        return [(i, o) for i, o in zip(self.items, self.outcomes, strict=True) if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "store": self.store,
                "wall_seconds": self.wall_seconds, "counts": self.counts(),
                "runs": [{**i.to_dict(), **o.to_dict()}
                         for i, o in zip(self.items, self.outcomes, strict=True)]}


def unique(items: Iterable[RunItem]) -> list[RunItem]:
    """``items`` without repeated identities (the first one kept)."""
    seen: dict[str, RunItem] = {}
    for item in items:
        seen.setdefault(item.run_id, item)
    return list(seen.values())


def run_items(items: Iterable[RunItem], *, executor: str | Executor = "local",
              workers: int | None = None, store: str | Path | None = None, threads: int = 1,
              device: str = "cpu", checkpoint_every: int = 50, retries: int = 1,
              retry_failed: bool = False, on_event: EventHook | None = None,
              **options: Any) -> SweepResult:
    """Run every item not finished yet on ``executor`` (``"local"``, ``"ray"``, ``"slurm"`` or
    an :class:`~ubench.sweep.executors.Executor`) and return the outcome of each.

    ``workers``: runs at once; ``threads``: torch threads per run (1: runs side by side beat
    threads on small models; it is recorded); ``retries``: new starts of a run whose worker
    died; ``options``: the executor's (see :func:`~ubench.sweep.executors.make_executor`).
    A failed run does not stop the others; Ctrl-C / SIGTERM stops the workers and raises
    :class:`~ubench.core.errors.InterruptedRun` (rerun to resume).
    """
    from ubench.core.paths import store_root
    from ubench.store.runs import usable_store

    if threads < 1:
        raise ConfigError(f"threads must be >= 1; got {threads}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1; got {workers}")
    ex = executor if not isinstance(executor, str) else make_executor(
        executor, workers=workers, threads=threads, retries=retries, **options)
    root = usable_store(store_root(store)).resolve()
    todo = unique(items)
    by_id = {i.run_id: i for i in todo}
    outcomes: dict[str, Outcome] = {}
    lock = threading.Lock()

    hook_failed: list[BaseException] = []

    def emit(kind: str, item: RunItem, outcome: Outcome | None) -> None:
        """Tell ``on_event``; a hook that raises (a progress display's bug) is dropped with one
        warning, and the runs go on: it used to kill the executor's worker threads, and every
        run of the sweep then failed as "the executor returned no result"."""
        if on_event is None or hook_failed:
            return
        with lock:
            try:
                on_event(kind, item, outcome)
            except Exception as exc:  # whatever a hook raises, the runs go on
                hook_failed.append(exc)
                warnings.warn(f"the sweep's event hook failed ({type(exc).__name__}: {exc}); "
                              "the runs go on without it", RuntimeWarning, stacklevel=2)

    jobs = []
    for item in todo:
        state = item_state(item, root)
        if state.kind == "done":
            outcomes[item.run_id] = Outcome(item.run_id, "done", record=str(state.record),
                                            metrics=state.metrics, attempts=0)
        elif state.kind == "failed" and not retry_failed:
            outcomes[item.run_id] = Outcome(
                item.run_id, "failed", f"{state.error} (a failed record from an earlier sweep, "
                f"kept: {state.record}; rerun with --retry-failed to run it again)",
                record=str(state.record), attempts=0)
        else:
            jobs.append(Job(item.method, item.task, item.seed, item.overrides, item.run_id,
                            str(root), threads, device, checkpoint_every, item.preset,
                            dict(item.protocol) if item.protocol else None, item.attacks,
                            item.attack_sets))
            continue
        emit("finish", item, outcomes[item.run_id])

    class _Events:
        def started(self, job: Job) -> None:
            emit("start", by_id[job.run_id], None)

        def finished(self, job: Job, outcome: Outcome) -> None:
            outcomes[job.run_id] = outcome
            emit("finish", by_id[job.run_id], outcome)

    t0 = time.perf_counter()
    try:
        ex.run(jobs, _Events())
    except KeyboardInterrupt as e:
        done = sum(1 for o in outcomes.values() if o.ok)
        raise InterruptedRun(
            f"sweep interrupted: {done} of {len(todo)} runs finished; rerun the same command to "
            "go on (stopped runs resume from their checkpoints)",
            143 if isinstance(e, Terminated) else 130) from None
    wall = time.perf_counter() - t0
    for item in todo:  # an executor that lost a job says nothing: never report it as done
        outcomes.setdefault(item.run_id, Outcome(item.run_id, "failed",
                                                 "the executor returned no result for this run"))
    return SweepResult(todo, [outcomes[i.run_id] for i in todo], wall, ex.name, str(root))
