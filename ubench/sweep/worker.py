"""The single-run function every executor calls, and the worker process around it.

:func:`run_one` takes only picklable values (ids, seed, ``--set`` items, the store's path), so a
local process, a Ray task and a Slurm job all call it the same way; it re-resolves the run in
the worker, checks that the identity is the one the sweep planned, sets the torch thread count
(recorded in the record's ``env.torch_threads``) and hands the run to :func:`ubench.run.runner.run`,
exactly as ``ubench run`` does. Whatever happens, it returns an :class:`Outcome` rather than
raising: one failed run never stops a sweep. Its progress notes go to the run's log,
``<store>/.sweep/logs/<run id>.log``.

``python -m ubench.sweep JOB_JSON`` runs one job in a fresh process (the local executor) and
prints its outcome on the last line of stdout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ubench.store.layout import sweep_log

#: the prefix of the outcome line a worker process prints
OUTCOME_MARK = "UBENCH-SWEEP-OUTCOME "


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything a worker needs for one run (all plain values: picklable, JSON-able)."""

    method: str
    task: str
    seed: int
    overrides: tuple[str, ...]
    run_id: str
    store: str
    threads: int = 1
    device: str = "cpu"
    checkpoint_every: int = 50
    preset: str | None = None
    #: the fair protocol's tag recorded with the run (JSON-able)
    protocol: dict[str, Any] | None = None
    #: attacks to run on the finished run (``ubench run --attacks``) and their settings
    attacks: tuple[str, ...] = ()
    attack_sets: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "overrides": list(self.overrides),
                "attacks": list(self.attacks), "attack_sets": list(self.attack_sets)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(**{**d, "overrides": tuple(d["overrides"]),
                      "attacks": tuple(d.get("attacks", ())),
                      "attack_sets": tuple(d.get("attack_sets", ()))})

    @property
    def log(self) -> Path:
        return log_path(Path(self.store), self.run_id)

    def run(self) -> Outcome:
        """:func:`run_one` on this job."""
        return run_one(self.method, self.task, self.seed, self.overrides, self.store,
                       self.threads, run_id=self.run_id, device=self.device,
                       checkpoint_every=self.checkpoint_every, preset=self.preset,
                       protocol=self.protocol, attacks=self.attacks,
                       attack_sets=self.attack_sets)


@dataclasses.dataclass
class Outcome:
    """What became of one run of a sweep.

    ``status``: ``ran`` (made its record now), ``skipped`` (another worker or sweep made it
    meanwhile: found after waiting on the run's lock), ``done`` (finished before the sweep
    started), ``failed`` (``error`` says why; a failed record, when there is one, is kept) or
    ``interrupted`` (stopped by Ctrl-C / SIGTERM; it resumes from its checkpoint when rerun).
    """

    run_id: str
    status: str
    error: str | None = None
    seconds: float = 0.0
    record: str | None = None
    log: str | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.status in ("ran", "skipped", "done")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Outcome:
        return cls(**d)


def log_path(store: Path, run_id: str) -> Path:
    """The log of a run's attempts in a sweep (appended to by every attempt)."""
    return sweep_log(store, run_id)


def metric_values(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v["value"]) for k, v in record.get("metrics", {}).items()}


def run_one(method: str, task: str, seed: int, overrides: tuple[str, ...] | list[str],
            store: str, threads: int = 1, *, run_id: str | None = None, device: str = "cpu",
            checkpoint_every: int = 50, preset: str | None = None,
            protocol: dict[str, Any] | None = None,
            attacks: tuple[str, ...] | list[str] = (),
            attack_sets: tuple[str, ...] | list[str] = ()) -> Outcome:
    """Run (or find finished) one run into ``store`` with ``threads`` torch threads, then run
    (or find finished) each of ``attacks`` on it (``attack_sets``: ``attack.KEY=VALUE`` items,
    each applied to the attacks that have KEY).

    ``run_id`` is the identity the sweep planned; a different one here (the code or an input
    file changed since) is a failure rather than a record under an unplanned name. Never raises
    for a run's own failure: a :class:`~ubench.core.errors.UbenchError` becomes a failed outcome
    with
    its one line; any other exception (a bug) too, with its traceback in the run's log.
    """
    import torch

    torch.set_num_threads(threads)
    from ubench.core.errors import InterruptedRun, UbenchError
    from ubench.run.identity import resolve
    from ubench.run.job import Watch, run_job

    root = Path(store)
    planned = run_id or "unplanned"
    log = log_path(root, planned)
    t0 = time.perf_counter()

    def fail(status: str, error: str) -> Outcome:
        return Outcome(planned, status, " ".join(error.split()), time.perf_counter() - t0,
                       None, str(log))

    with _log(log) as say:
        say(f"== {dt.datetime.now().isoformat(timespec='seconds')} {method} on {task} seed "
            f"{seed} {' '.join(overrides)} (host {socket.gethostname()}, pid {os.getpid()}, "
            f"{threads} thread{'s' if threads > 1 else ''})")
        ran: list[bool] = []
        metrics: dict[str, float] = {}

        def done(kind: str, record: dict[str, Any], path: Path, skipped: bool) -> None:
            say(f"{'skipped' if skipped else 'ran'}{'' if kind == 'run' else ' attack'}: {path}")
            ran.append(not skipped)
            metrics.update(metric_values(record))

        try:
            spec = resolve(method, task, seed, list(overrides), preset)
            if protocol:
                spec.protocol = dict(protocol)
            if run_id is not None and spec.run_id != run_id:
                return fail("failed", f"the run's identity is {spec.run_id} here, not the "
                            f"planned {run_id}: the code or an input file changed since the "
                            "sweep was planned; rerun the sweep")
            job = run_job(spec, attacks, attack_sets, store=root, device=device,
                          checkpoint_every=checkpoint_every, watch=Watch(say=say, done=done))
        except InterruptedRun as e:
            say(str(e))
            return fail("interrupted", str(e))
        except UbenchError as e:
            say(f"error: {e}")
            # what failed: the run (nothing done yet), or the attack after those done
            failing = attacks[len(ran) - 1] if 0 < len(ran) <= len(attacks) else None
            return fail("failed", (f"attack {failing}: " if failing else "") + str(e))
        except Exception as e:
            say(traceback.format_exc())
            return fail("failed", f"{type(e).__name__}: {e} (a bug in ubench or a plugin: the "
                        f"traceback is in {log})")
        status = "ran" if any(ran) else "skipped"
        return Outcome(spec.run_id, status, None, time.perf_counter() - t0,
                       str(job.run.path), str(log), metrics)


def pending_attacks(attacks: tuple[str, ...] | list[str], attack_sets: tuple[str, ...] | list[str],
                    store: Path, run_id: str) -> tuple[str, ...]:
    """Those of ``attacks`` (with their ``attack_sets``) that have no finished record on the
    finished run ``run_id`` of ``store``; each resolved as ``ubench run --attacks`` would."""
    if not attacks:
        return ()
    from ubench.core.errors import UbenchError
    from ubench.run.attack import resolve_attack
    from ubench.store.reader import finished_attack

    pending = []
    for name in attacks:
        try:
            spec = resolve_attack(name, run_id, overrides=attack_sets, store=store, shared=True)
            rec = finished_attack(spec.store, spec.run_folder, spec.run_spec.task_cls.name,
                                  name, spec.attack_id)
            done = rec is not None and rec["status"] == "ok"
        except (UbenchError, OSError):  # no record yet, a corrupt one, or not attackable
            done = False
        if not done:
            pending.append(name)
    return tuple(pending)


@contextlib.contextmanager
def _log(path: Path) -> Iterator[Callable[[str], None]]:
    """Append lines to ``path`` (a run's log); the notes are dropped if it cannot be opened."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a", encoding="utf-8")
    except OSError:
        yield lambda _m: None
        return
    with fh:
        def say(message: str) -> None:
            fh.write(message.rstrip("\n") + "\n")
            fh.flush()

        yield say


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send this process SIGTERM when the sweep that started it dies (kill -9
    included), so that no orphan worker keeps running; it then stops like on Ctrl-C."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Worker process entry point: ``python -m ubench.sweep JOB_JSON [PARENT_PID]``."""
    from ubench.core.errors import Terminated

    args = sys.argv[1:] if argv is None else argv
    job = Job.from_dict(json.loads(args[0]))

    def on_sigterm(signum: int, frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    if len(args) > 1:
        _die_with_parent(int(args[1]))
    try:
        outcome = job.run()
    except Terminated:  # stopped while still importing, before the run's own handling began
        outcome = Outcome(job.run_id, "interrupted", "stopped before it started; rerun the same "
                          "command to run it")
    try:
        sys.stdout.write(OUTCOME_MARK + json.dumps(outcome.to_dict()) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the sweep is gone (killed); its next run reads the store
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
