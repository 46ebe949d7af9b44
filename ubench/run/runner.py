"""One run = prepare the task -> unlearn -> evaluate -> record (its identity: :mod:`.identity`).

A finished run is found by its identity, in its folder or packed, and skipped (``force`` redoes
it); an interrupted run resumes from its last checkpoint; a diverged run writes a ``failed``
record. The run folder and every file in it belong to :mod:`ubench.store`; the runner only says
what to write, and writes the record last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ubench.api import RunContext, Task
from ubench.core.env import environment, peak_memory, reset_cuda_peak
from ubench.core.errors import DivergedError, InterruptedRun, Terminated
from ubench.core.faults import failpoint
from ubench.core.locks import hold
from ubench.core.paths import store_root
from ubench.run.identity import RunSpec
from ubench.store.checkpoint import Checkpoint
from ubench.store.io import (
    disk_full_as_one_line,
    new_folder,
    remove_empty,
    remove_stale_temporaries,
    replacing,
    write_json_atomic,
    write_text_atomic,
)
from ubench.store.layout import GRID_FILE, MODEL_DIR, RECORD_FILE, SAMPLES_FILE, run_dir, run_lock
from ubench.store.reader import finished_run
from ubench.store.record import IDENTITY_VERSION, SCHEMA_VERSION
from ubench.store.runs import model_missing, usable_store, write_metric_samples


@dataclasses.dataclass
class RunResult:
    record: dict[str, Any]
    path: Path
    skipped: bool


def run(spec: RunSpec, *, store: str | Path | None = None, force: bool = False,
        device: str = "cpu", checkpoint_every: int = 50,
        on_step: Callable[[int, int, dict[str, float]], None] | None = None,
        say: Callable[[str], None] | None = None,
        progress: Callable[[str, int, int, dict[str, float]], None] | None = None,
        need_model: bool = False) -> RunResult:
    """Execute one run (or return the finished record) and write its record.

    The run holds its lock (``<store>/.locks/<run id>.lock``) from start to end: an identical run
    started meanwhile waits, then finds the record and skips. Ctrl-C or SIGTERM becomes
    :class:`InterruptedRun` (exit 130 / 143) saying from which step a rerun resumes.

    ``need_model`` (the caller will attack the run): a finished run without its saved model
    (:func:`~ubench.store.runs.model_missing`) is made again in place. A run is determined
    by its identity on CPU, so the new record should repeat the old metrics; any that differ are
    said. The old record stays until the new one replaces it, so an interrupted or failed remake
    loses nothing.
    """
    say = say or (lambda _m: None)
    root = usable_store(store_root(store))
    folder = run_dir(root, spec.task_cls.name, spec.method_cls.name, spec.run_id)
    with hold(run_lock(root, spec.run_id), f"run {spec.run_id}", say), \
            disk_full_as_one_line(folder, f"writing run {spec.run_id}"):
        return _run_locked(spec, root, force, device, checkpoint_every, on_step, say, progress,
                           need_model)


def _run_locked(spec: RunSpec, root: Path, force: bool, device: str, checkpoint_every: int,
                on_step: Callable[[int, int, dict[str, float]], None] | None,
                say: Callable[[str], None],
                progress: Callable[[str, int, int, dict[str, float]], None] | None,
                need_model: bool = False) -> RunResult:
    folder = run_dir(root, spec.task_cls.name, spec.method_cls.name, spec.run_id)
    record_path = folder / RECORD_FILE
    if force and folder.exists():
        shutil.rmtree(folder)
    old_metrics: dict[str, Any] | None = None
    # its folder's record, else a packed one (raises CorruptRecordError with the fix)
    rec = None if force else finished_run(root, spec.task_cls.name, spec.method_cls.name,
                                          spec.run_id)
    if rec is not None and rec["status"] == "ok":
        shown = f"{record_path}" + (" (packed)" if rec.get("_packed") else "")
        if not (need_model and spec.task_cls.save_model and model_missing(rec, folder)):
            say(f"finished already: {shown} (use --force to redo)")
            return RunResult({k: v for k, v in rec.items() if not k.startswith("_")},
                             record_path, True)
        say(f"remaking {shown}: an attack needs its model, which it has not (made before runs "
            "saved their weights, or its model/ folder is gone); the old record stays until "
            "the new one replaces it")
        old_metrics = dict(rec.get("metrics", {}))
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)

    t_start = time.perf_counter()
    task = spec.task_cls(spec.task_config)
    stage = "preparing the task's assets (finished ones are kept)"
    try:
        task.prepare(say, progress)
        model = task.base_model(device)
        request = task.request(spec.seed)
        ctx = RunContext(seed=spec.seed, device=device, run_dir=folder,
                         checkpoint_every=checkpoint_every, on_step=on_step, say=say)
        record = _skeleton(spec, task, request, device)
        reset_cuda_peak(device)
        stage = "unlearning"
        t0 = time.perf_counter()
        try:
            out = spec.method_cls().unlearn(model, request, spec.method_config, ctx)
        except DivergedError as e:
            record.update(status="failed", error=str(e))
            record["cost"]["unlearn_seconds"] = time.perf_counter() - t0
            write_json_atomic(record_path, record)
            raise
        t1 = time.perf_counter()
        stage = "evaluation"
        # saved before evaluation, so that a failed evaluation keeps the unlearned model
        if task.save_model and not (spec.method_cls.reference
                                    or spec.method_cls.training_free):
            with new_folder(folder / MODEL_DIR) as tmp:  # never a half-written model/
                out.model.save(tmp)
            record["artifacts"]["model"] = MODEL_DIR
            # the weights' content digest: `ubench compare --pair-by model` pairs a run with
            # the same weights scored by `ubench eval`
            from ubench.models.weights import unet_digest

            record["model_digest"] = unet_digest(out.model.unet.state_dict())
        failpoint("evaluate")
        if progress is not None:  # a bar per generation set the evaluation samples
            out.model.on_sample_step = _sampling_progress(progress)
        evaluation = task.evaluate(out.model, device)
        out.model.on_sample_step = None
        t2 = time.perf_counter()
    except KeyboardInterrupt as e:
        remove_empty(folder, root)
        code = 143 if isinstance(e, Terminated) else 130
        step = Checkpoint(folder).step()
        where = f"during {stage}"
        raise InterruptedRun(f"interrupted {where}; rerun the same command to resume from "
                             f"step {step}" + (" (its last checkpoint)" if step else ""),
                             code) from None
    except BaseException:
        remove_empty(folder, root)  # a run that never started leaves no empty folder behind
        raise

    record["metrics"] = {k: v.to_dict() for k, v in evaluation.metrics.items()}
    record["details"] = {**evaluation.details, "n_samples": len(evaluation.samples)}
    record["train_log"] = out.train_log
    record["changed_parameters"] = len(out.changed_parameters)
    before = float(out.train_log.get("seconds_before_resume", 0.0))
    record["cost"] = {"prepare_seconds": t0 - t_start, "unlearn_seconds": t1 - t0 + before,
                      "eval_seconds": t2 - t1, "total_seconds": t2 - t_start + before,
                      **peak_memory(device)}
    if evaluation.grid is not None:
        with replacing(folder / GRID_FILE) as tmp:
            evaluation.grid.save(tmp, format="PNG")
        record["artifacts"]["grid"] = GRID_FILE
    if evaluation.samples:
        write_text_atomic(folder / SAMPLES_FILE,
                          "".join(json.dumps(s) + "\n" for s in evaluation.samples))
        record["artifacts"]["samples"] = SAMPLES_FILE
    record["artifacts"].update(write_metric_samples(folder, evaluation.metrics))
    record["status"] = "ok"
    if old_metrics is not None:
        changed = sorted(k for k, v in record["metrics"].items()
                         if k in old_metrics and old_metrics[k].get("value") != v.get("value"))
        record["remade"] = {"reason": "no saved model", "metrics_changed": changed}
        say("remade: every metric as before" if not changed else
            "remade: these metrics differ from the old record (the code changed since it was "
            "made): " + ", ".join(f"{k} {old_metrics[k].get('value')} -> "
                                  f"{record['metrics'][k].get('value')}" for k in changed))
    write_json_atomic(record_path, record, failpoint_name="record")
    Checkpoint(folder).remove()
    return RunResult(record, record_path, False)


def _sampling_progress(progress: Callable[[str, int, int, dict[str, float]], None]
                       ) -> Callable[[int, int], None]:
    """The evaluation's progress: one bar per call of the model's sampler (a generation set)."""
    count = [0]

    def step(done: int, total: int) -> None:
        if done == 1:
            count[0] += 1
        progress(f"evaluating: generation set {count[0]}", done, total, {})
    return step


def _skeleton(spec: RunSpec, task: Task[Any], request: Any, device: str) -> dict[str, Any]:
    ident = spec.identity
    ident["method"]["reference"] = spec.method_cls.reference
    if spec.method_cls.training_free:  # (a mark, like reference: not part of the identity)
        ident["method"]["training_free"] = True
    return {
        "schema_version": SCHEMA_VERSION,
        "identity_version": IDENTITY_VERSION,
        "run_id": spec.run_id,
        "config_id": spec.config_id,
        "status": "running",
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **ident,
        "request": {
            "forget": request.forget.description if request.forget is not None else None,
            "remain": request.remain.description if request.remain is not None else None,
        },
        **({"protocol": spec.protocol} if spec.protocol else {}),
        **({"source": spec.source} if spec.source else {}),
        "metrics": {},
        "cost": {},
        "env": environment(device),
        "artifacts": {},
        "error": None,
    }


