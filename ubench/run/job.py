"""A job: one run, then each of its attacks — the one path ``ubench run --attacks`` and a sweep's
worker both take, so that a record is the same whoever made it.

:func:`run_job` runs (or finds finished) the run, then resolves and runs (or finds finished)
each attack on it; :func:`attack_one` is one attack on a finished run (``ubench attack``). What
the caller hears goes through a :class:`Watch`: notes, a progress context per stage (the CLI's
bars; nothing in a worker) and a hook when a run or an attack is done (the CLI's summary line, a
worker's log line).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ubench.core.errors import InterruptedRun, StoreError, UbenchError
from ubench.run.attack import AttackResult, resolve_attack, run_attack
from ubench.run.identity import RunSpec
from ubench.run.runner import RunResult, run

OnStep = Callable[[int, int, dict[str, float]], None]
Progress = Callable[[str, int, int, dict[str, float]], None]


@dataclasses.dataclass
class Hooks:
    """A stage's progress hooks: per optimisation step, and per preparation step."""

    on_step: OnStep | None = None
    progress: Progress | None = None


@contextlib.contextmanager
def _no_progress(_label: str) -> Iterator[Hooks]:
    yield Hooks()


def _quiet(_message: str) -> None:
    pass


def _nothing(_kind: str, _record: dict[str, Any], _path: Path, _skipped: bool) -> None:
    pass


@dataclasses.dataclass
class Watch:
    """What the caller of a job hears."""

    #: one-line notes (headers, "finished already", "resuming ...")
    say: Callable[[str], None] = _quiet
    #: a context per stage (``label``: the method or the attack id) yielding its progress hooks
    stage: Callable[[str], contextlib.AbstractContextManager[Hooks]] = _no_progress
    #: called when a run (``"run"``) or an attack (``"attack"``) is done: record, path, skipped
    done: Callable[[str, dict[str, Any], Path, bool], None] = _nothing


@dataclasses.dataclass
class JobResult:
    run: RunResult
    #: attack id -> its result, for the attacks that ran or were found finished
    attacks: dict[str, AttackResult] = dataclasses.field(default_factory=dict)
    #: (attack id, its error) of the attacks that failed (``keep_going`` only)
    failed: list[tuple[str, UbenchError]] = dataclasses.field(default_factory=list)


def attack_one(name: str, ref: Any, *, seed: int | None = None, sets: Sequence[str] = (),
               store: str | Path | None = None, shared: bool = False, force: bool = False,
               device: str = "cpu", checkpoint_every: int = 50,
               watch: Watch | None = None) -> AttackResult:
    """Resolve and run (or find finished) attack ``name`` on the finished run ``ref`` (a run id,
    a prefix of one, or a run folder); ``shared``: ``sets`` apply to the attacks that have the
    key (``ubench run --attacks a,b``)."""
    watch = watch or Watch()
    spec = resolve_attack(name, ref, seed=seed, overrides=sets, store=store, shared=shared)
    rec = spec.run_record
    watch.say(f"== attack {name} on run {rec['run_id']} ({rec['method']['id']} on "
              f"{rec['task']['id']}, attack {spec.attack_id})")
    with watch.stage(name) as hooks:
        res = run_attack(spec, force=force, device=device, checkpoint_every=checkpoint_every,
                         on_step=hooks.on_step, say=watch.say, progress=hooks.progress)
    watch.done("attack", res.record, res.path, res.skipped)
    return res


def run_job(spec: RunSpec, attacks: Sequence[str] = (), attack_sets: Sequence[str] = (), *,
            store: str | Path | None = None, force: bool = False, device: str = "cpu",
            checkpoint_every: int = 50, watch: Watch | None = None,
            keep_going: bool = False) -> JobResult:
    """Run ``spec`` (or find it finished), then each of ``attacks`` on it.

    With attacks, a finished run without its saved model is made again first (the runner's
    ``need_model``). An attack's :class:`~ubench.core.errors.UbenchError` stops the job, or, with
    ``keep_going``, is kept in :attr:`JobResult.failed` while the other attacks run; an
    interruption or an unusable store always stops it.
    """
    watch = watch or Watch()
    with watch.stage(spec.method_cls.name) as hooks:
        res = run(spec, store=store, force=force, device=device,
                  checkpoint_every=checkpoint_every, on_step=hooks.on_step, say=watch.say,
                  progress=hooks.progress, need_model=bool(attacks))
    watch.done("run", res.record, res.path, res.skipped)
    result = JobResult(res)
    for name in attacks:
        try:
            result.attacks[name] = attack_one(
                name, res.record["run_id"], sets=attack_sets, store=store, shared=True, force=force,
                device=device, checkpoint_every=checkpoint_every, watch=watch)
        except (InterruptedRun, StoreError):
            raise
        except UbenchError as e:
            if not keep_going:
                raise
            result.failed.append((name, e))
    return result
