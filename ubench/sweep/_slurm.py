"""The Slurm job of a sweep (imported only with ``--on slurm``: it needs submitit).

:class:`SlurmRun` is a :class:`submitit.helpers.Checkpointable`: when the job's time limit
nears (Slurm sends ``--signal``, USR2) or the job is pre-empted, submitit's handler requeues the
same call (``scontrol requeue``) and the requeued job resumes the run from its last checkpoint.
When the time limit has been reached more often than ``--retries`` allows, submitit raises in the
middle of the run; :class:`SlurmRun` turns that into a stop like Ctrl-C (the checkpoint kept)
and a failed outcome saying so in one line, instead of a "bug" with a traceback.

Also the one-line messages of :class:`~ubench.sweep.executors.SlurmExecutor` for a refused
submission and a job that ended without a result.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import FrameType
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError, UncompletedJobError


class TimeLimitReached(KeyboardInterrupt):
    """Raised in the run when its job reached its time limit with no requeue left: the run stops
    as on Ctrl-C (its checkpoint kept, for the next sweep to resume)."""


def _note(log: Path, message: str) -> None:
    """Append ``message`` to the run's log (nothing if it cannot be written)."""
    try:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(message + "\n")
    except OSError:
        pass


class SlurmRun(submitit.helpers.Checkpointable):
    """Calls the single-run function on one job (given as a dict) and returns its outcome.

    ``timeout_min`` and ``retries`` are the sweep's (for the message of a run out of requeues).
    Inside a submitit job, the preemption signal's handler is wrapped: a requeue is noted in
    the run's log, and submitit's "timed-out too many times" stops the run cleanly.
    """

    def __init__(self, timeout_min: int = 240, retries: int = 1) -> None:
        self.timeout_min = timeout_min
        self.retries = retries

    def __call__(self, job: dict[str, Any]) -> dict[str, Any]:
        from ubench.sweep.worker import Job, Outcome

        run = Job.from_dict(job)
        usr = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)
        submitits = signal.getsignal(usr)
        ran_out: list[str] = []
        where = f"Slurm job {os.environ.get('SLURM_JOB_ID', '?')}"

        def on_signal(signum: int, frame: FrameType | None) -> None:
            assert callable(submitits)
            try:
                submitits(signum, frame)  # checkpoint, then requeue and exit
            except UncompletedJobError as e:  # no requeue left
                ran_out.append(str(e))
                _note(run.log, f"slurm: {where} not requeued ({e}): stopping the run")
                raise TimeLimitReached(str(e)) from None
            except SystemExit:
                _note(run.log, f"slurm: {where} requeued (its time limit nears, or it was "
                      "pre-empted): the run resumes from its last checkpoint")
                raise
            except subprocess.CalledProcessError as e:
                if e.returncode >= 0:  # scontrol refused: the run cannot go on after the limit
                    ran_out.append(f"scontrol requeue failed with status {e.returncode}")
                    _note(run.log, f"slurm: {where} could not be requeued ({e}): stopping the run")
                    raise TimeLimitReached(str(e)) from None
                # killed: the job is being stopped (requeued or cancelled) under scontrol's feet
                _note(run.log, f"slurm: {where} is being stopped ({e}): the run resumes from "
                      "its last checkpoint when its job runs again or the sweep is rerun")
                raise SystemExit(-1) from None

        if callable(submitits):  # inside a submitit job (not when called directly)
            signal.signal(usr, on_signal)
        try:
            out = run.run()
        except TimeLimitReached:  # stopped before or after the run's own handling
            out = Outcome(run.run_id, "interrupted", "stopped", 0.0, None, str(run.log))
        finally:
            if callable(submitits):
                signal.signal(usr, submitits)
        if ran_out:
            out.status = "failed"
            why = (ran_out[0] if ran_out[0].startswith("scontrol") else
                   f"{self.retries + 1} times, with no requeue left (--retries {self.retries})")
            out.error = (f"its Slurm job reached its time limit (--timeout {self.timeout_min}) "
                         f"{why}; raise --timeout or --retries, or rerun to go on: "
                         f"{out.error}")
        return out.to_dict()


def _lines(text: str) -> list[str]:
    return [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]


def submission_refused(error: BaseException, said: str) -> str | None:
    """The line sbatch refused a submission with (``said``: what submitit printed meanwhile),
    or None when ``error`` is not a refused submission."""
    if not isinstance(error, (FailedJobError, FailedSubmissionError)):
        return None
    lines = _lines(str(error)) or _lines(said)
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [type(error).__name__])[-1][:300]


def job_failure(error: BaseException) -> str:
    """One line for a job that ended without a result (its log's last error line) or failed
    outside the run (the last line of the traceback submitit kept)."""
    text = str(error)
    if isinstance(error, FailedJobError) and text.count("-" * 22) >= 2:
        text = text.split("-" * 22)[1]  # the traceback, without submitit's advice around it
    elif "-" * 40 in text:  # no result: what the job's log says after submitit's header
        text = text.split("-" * 40, 1)[1]
    lines = _lines(text)
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [type(error).__name__])[-1][:200]
