"""One run = resolve -> check compatibility -> prepare -> unlearn -> evaluate -> record.

The run's identity is a hash of (task id, version, resolved config, the digests of user-supplied
files and of the assets the run uses — pinned base model, judge, data, the oracle for runs that
use it; method id, version, resolved config; seed). Two records with one run id were therefore
measured with the same models and judges. A finished run is found by that hash and skipped
(``force`` redoes it); an interrupted run resumes from its last checkpoint; a diverged run writes
a ``failed`` record. The *config id* is the same hash without the asset digests: ``ubench
compare`` pairs runs by it and then checks that their assets agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import resource
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ubench.api import Method, RunContext, Task
from ubench.catalog.registry import METHODS, TASKS
from ubench.core.config import build_config, parse_overrides
from ubench.core.digest import stable_hash
from ubench.core.errors import (
    ConfigError,
    DivergedError,
    IncompatibleError,
    InterruptedRun,
    StoreError,
    Terminated,
    did_you_mean,
)
from ubench.core.faults import failpoint
from ubench.core.locks import hold
from ubench.store.records import (
    IDENTITY_VERSION,
    SCHEMA_VERSION,
    model_missing,
    read_record,
    remove_stale_temporaries,
    run_dir,
    store_root,
    write_json_atomic,
    write_text_atomic,
)


@dataclasses.dataclass
class RunSpec:
    """A resolved run: classes, configs and identity, before anything is loaded."""

    method_cls: type[Method[Any]]
    task_cls: type[Task[Any]]
    method_config: Any
    task_config: Any
    seed: int
    #: content digests of the user-supplied files the task config names (``Config.inputs``)
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    #: digests of the assets the run uses (``Task.assets``): pinned models, judge, data
    assets: dict[str, str] = dataclasses.field(default_factory=dict)
    #: how the fair protocol made this run (recorded, not part of the identity: the values it
    #: chose are in the method config): ``{"role": "tuning", ...}`` for a tuning run, the
    #: preset's provenance for a run made with ``--preset``
    protocol: dict[str, Any] | None = None

    def _identity(self, with_assets: bool) -> dict[str, Any]:
        task: dict[str, Any] = {"id": self.task_cls.name, "version": self.task_cls.version,
                                "config": self.task_config.to_dict()}
        if self.inputs:
            task["inputs"] = dict(self.inputs)
        if with_assets:
            task["assets"] = dict(self.assets)
        return {
            "task": task,
            "method": {"id": self.method_cls.name, "version": self.method_cls.version,
                       "config": self.method_config.to_dict()},
            "seed": self.seed,
        }

    @property
    def identity(self) -> dict[str, Any]:
        """Everything that determines the run's numbers (hashed into :attr:`run_id`)."""
        return self._identity(with_assets=True)

    @property
    def run_id(self) -> str:
        return stable_hash(self.identity, 16)

    @property
    def config_id(self) -> str:
        """The identity's hash without the asset digests: what ``ubench compare`` pairs runs by
        (for records made before assets entered the identity it equals their run id)."""
        return stable_hash(self._identity(with_assets=False), 16)


def resolve(method: str, task: str, seed: int = 0, overrides: Iterable[str] = (),
            preset: str | None = None) -> RunSpec:
    """Look up method and task, apply the task's recipe, the preset (``--preset``) and the
    ``--set`` overrides (in that order), check they fit together."""
    method_cls = METHODS.get(method)
    task_cls = TASKS.get(task)
    ov = parse_overrides(overrides)
    prescribed = prescribed_defaults(task_cls, method_cls)
    provenance = None
    if preset:
        from ubench.catalog.presets import preset_values

        chosen, provenance = preset_values(preset, task_cls.tuning_task or task, method,
                                           tunable=bool(method_cls.search_space))
        prescribed = {**prescribed, **chosen}
    mcfg = build_config(method_cls.Config, {**prescribed, **ov["method"]}, f"method {method}")
    tcfg = build_config(task_cls.Config, ov["task"], f"task {task}")
    spec = RunSpec(method_cls, task_cls, mcfg, tcfg, seed, input_digests(tcfg))
    check_compatible(spec)
    spec.assets = task_cls(tcfg).assets(uses_oracle="oracle" in method_cls.requires)
    spec.protocol = provenance
    return spec


def input_digests(config: Any) -> dict[str, str]:
    """``{field: content digest}`` of the user-supplied files and folders a config names."""
    from ubench.core.digest import path_digest

    return {name: path_digest(getattr(config, name)) for name in type(config).inputs
            if getattr(config, name)}


def prescribed_defaults(task_cls: type[Task[Any]], method_cls: type[Method[Any]]
                        ) -> dict[str, Any]:
    """The hyper-parameters ``task_cls`` prescribes for ``method_cls`` (its recipe).

    A key the method's config lacks is a :class:`ConfigError`: a renamed field must not drop
    the paper's recipe without a word.
    """
    values = dict(task_cls.method_defaults.get(method_cls.name, {}))
    fields = method_cls.Config.field_names()
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"task {task_cls.name!r} prescribes method.{key} for method "
                f"{method_cls.name!r}, which has no such field: "
                + did_you_mean(key, fields, "key") + " Fix the task's method_defaults.")
    return values


def check_method_defaults(task_cls: type[Task[Any]]) -> None:
    """Check every recipe of a task against the method registry (tests run it on every task)."""
    for method_id in task_cls.method_defaults:
        if method_id not in METHODS:
            raise ConfigError(f"task {task_cls.name!r} prescribes defaults for "
                              + did_you_mean(method_id, METHODS.names(), "method"))
        prescribed_defaults(task_cls, METHODS.get(method_id))


def resolve_many(methods: list[str], task: str, seed: int = 0, overrides: Iterable[str] = (),
                 preset: str | None = None) -> list[RunSpec]:
    """Resolve several methods with shared overrides (``--method all``).

    A ``method.KEY`` override applies to every method whose config has KEY (``method.steps`` does
    not concern the ``base`` row); a key that none of them has is still an error.
    """
    items = list(overrides)
    if len(methods) == 1:
        return [resolve(methods[0], task, seed, items, preset)]
    method_items = [o for o in items if o.strip().startswith("method.")]
    other = [o for o in items if o not in method_items]
    fields = {m: set(METHODS.get(m).Config.field_names()) for m in methods}
    specs = []
    for m in methods:
        mine = [o for o in method_items if o.split("=", 1)[0].strip()[7:] in fields[m]]
        specs.append(resolve(m, task, seed, [*other, *mine], preset))
    known = set().union(*fields.values())
    for o in method_items:
        key = o.split("=", 1)[0].strip()[7:]
        if key not in known:
            raise ConfigError(f"no selected method has this key: {did_you_mean(key, known, 'key')}")
    return specs


def model_needs(method_cls: type[Method[Any]], config: Any) -> set[str]:
    """Model capabilities a method needs under ``config`` (training ``xattn`` needs it to exist;
    ``noxattn`` is meaningful on any UNet: all but time embedding and output layer)."""
    needs = set(method_cls.requires_model)
    if getattr(config, "scope", "full") == "xattn":
        needs.add("xattn")
    return needs


def check_compatible(spec: RunSpec) -> None:
    """Refuse a method/task pair before any weight is loaded, saying why and what fits."""
    m, t = spec.method_cls, spec.task_cls
    missing = set(m.requires) - set(t.provides)
    missing_model = model_needs(m, spec.method_config) - set(t.model_capabilities)
    if not (missing or missing_model):
        return
    fits = [n for n in TASKS.names() if _fits(m, spec.method_config, TASKS.get(n))]
    why = []
    if missing:
        why.append(f"it needs {', '.join(sorted(missing))}, which task {t.name!r} does not provide")
    if missing_model:
        why.append(f"it trains cross-attention layers ({', '.join(sorted(missing_model))}), and "
                   f"the model of task {t.name!r} has none")
    raise IncompatibleError(
        f"method {m.name!r} cannot run on task {t.name!r}: {'; '.join(why)}. "
        f"Tasks it fits: {', '.join(fits) or 'none registered yet'}.")


def _fits(method_cls: type[Method[Any]], config: Any, task_cls: type[Task[Any]]) -> bool:
    return set(method_cls.requires) <= set(task_cls.provides) and model_needs(
        method_cls, config) <= set(task_cls.model_capabilities)


def methods_for(task: str) -> list[str]:
    """Every registered method that fits ``task`` with its default config."""
    task_cls = TASKS.get(task)
    out = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        if _fits(cls, cls.Config(), task_cls):
            out.append(name)
    return out


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
    (:func:`~ubench.store.records.model_missing`) is made again in place. A run is determined
    by its identity on CPU, so the new record should repeat the old metrics; any that differ are
    said. The old record stays until the new one replaces it, so an interrupted or failed remake
    loses nothing.
    """
    say = say or (lambda _m: None)
    root = usable_store(store_root(store))
    with hold(root / ".locks" / f"{spec.run_id}.lock", f"run {spec.run_id}", say):
        return _run_locked(spec, root, force, device, checkpoint_every, on_step, say, progress,
                           need_model)


def usable_store(root: Path) -> Path:
    """``root``, created if needed; StoreError (one line, with the fix) when it cannot hold runs."""
    if root.exists() and not root.is_dir():
        raise StoreError(f"the results store {root} is a file; pass --store <folder> or set "
                         "UBENCH_STORE to a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the results store {root} ({e.strerror}); pass --store "
                         "<writable folder>") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise StoreError(f"the results store {root} is not writable; pass --store <writable "
                         "folder>")
    return root


def _run_locked(spec: RunSpec, root: Path, force: bool, device: str, checkpoint_every: int,
                on_step: Callable[[int, int, dict[str, float]], None] | None,
                say: Callable[[str], None],
                progress: Callable[[str, int, int, dict[str, float]], None] | None,
                need_model: bool = False) -> RunResult:
    folder = run_dir(root, spec.task_cls.name, spec.method_cls.name, spec.run_id)
    record_path = folder / "record.json"
    if force and folder.exists():
        shutil.rmtree(folder)
    old_metrics: dict[str, Any] | None = None
    if record_path.exists():
        rec = read_record(record_path)  # raises CorruptRecordError with the fix
        if rec["status"] == "ok":
            if not (need_model and spec.task_cls.save_model and model_missing(rec, folder)):
                say(f"finished already: {record_path} (use --force to redo)")
                return RunResult(dict(rec), record_path, True)
            say(f"remaking {record_path}: an attack needs its model, which it has not (made "
                "before runs saved their weights, or its model/ folder is gone); the old "
                "record stays until the new one replaces it")
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
        _reset_cuda_peak(device)
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
        if task.save_model and not spec.method_cls.reference:
            out.model.save(folder / "model")
            record["artifacts"]["model"] = "model"
        failpoint("evaluate")
        evaluation = task.evaluate(out.model, device)
        t2 = time.perf_counter()
    except KeyboardInterrupt as e:
        _remove_empty(folder, root)
        code = 143 if isinstance(e, Terminated) else 130
        step = _checkpoint_step(folder)
        where = f"during {stage}"
        raise InterruptedRun(f"interrupted {where}; rerun the same command to resume from "
                             f"step {step}" + (" (its last checkpoint)" if step else ""),
                             code) from None
    except BaseException:
        _remove_empty(folder, root)  # a run that never started leaves no empty folder behind
        raise

    record["metrics"] = {k: v.to_dict() for k, v in evaluation.metrics.items()}
    record["details"] = {**evaluation.details, "n_samples": len(evaluation.samples)}
    record["train_log"] = out.train_log
    record["changed_parameters"] = len(out.changed_parameters)
    before = float(out.train_log.get("seconds_before_resume", 0.0))
    record["cost"] = {"prepare_seconds": t0 - t_start, "unlearn_seconds": t1 - t0 + before,
                      "eval_seconds": t2 - t1, "total_seconds": t2 - t_start + before,
                      **_peak_memory(device)}
    if evaluation.grid is not None:
        evaluation.grid.save(folder / "samples.png")
        record["artifacts"]["grid"] = "samples.png"
    if evaluation.samples:
        write_text_atomic(folder / "samples.jsonl",
                          "".join(json.dumps(s) + "\n" for s in evaluation.samples))
        record["artifacts"]["samples"] = "samples.jsonl"
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
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)
    return RunResult(record, record_path, False)


def _checkpoint_step(folder: Path) -> int:
    """The step of the run's last checkpoint (0 when it has none)."""
    try:
        return int(json.loads((folder / "checkpoint" / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _remove_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to ``root`` while they are empty."""
    here = folder
    while here != root and root in here.parents:
        try:
            here.rmdir()
        except OSError:  # not empty (or already gone)
            if here.exists():
                return
        here = here.parent


def _skeleton(spec: RunSpec, task: Task[Any], request: Any, device: str) -> dict[str, Any]:
    from ubench.core.env import environment

    ident = spec.identity
    ident["method"]["reference"] = spec.method_cls.reference
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
        "metrics": {},
        "cost": {},
        "env": environment(device),
        "artifacts": {},
        "error": None,
    }


#: per-sample files of a run (``ubench compare``): scores of mean metrics (small), and the
#: generated features of Fréchet metrics (larger; kept out of the committed leaderboard)
SCORES_FILE = "scores.safetensors"
FEATURES_FILE = "features.safetensors"


def write_metric_samples(folder: Path, metrics: dict[str, Any]) -> dict[str, str]:
    """Save the metrics' per-sample data (``MetricValue.samples``) next to the record:
    ``scores.safetensors`` (``<metric>``: per-sample scores) and ``features.safetensors``
    (``<metric>.features`` / ``.ref_mean`` / ``.ref_cov``). Returns the artifacts written."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    scores: dict[str, torch.Tensor] = {}
    features: dict[str, torch.Tensor] = {}
    for name, mv in metrics.items():
        for key, arr in (mv.samples or {}).items():
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
            if key == "scores":
                scores[name] = t
            else:  # features in float32 (their FD is recomputed in float64), stats in float64
                features[f"{name}.{key}"] = t.float() if key == "features" else t
    out = {}
    for fname, tensors, art in ((SCORES_FILE, scores, "scores"),
                                (FEATURES_FILE, features, "features")):
        if tensors:
            tmp = folder / f".{fname}.tmp-{os.getpid()}"
            save_file(tensors, str(tmp))
            os.replace(tmp, folder / fname)
            out[art] = fname
    return out


def _reset_cuda_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def _peak_memory(device: str) -> dict[str, float]:
    """Peak resident memory of this process so far (Linux reports KiB; with ``--method all`` it
    is the peak over the runs done so far) and, on GPU, the run's peak allocated memory."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        import torch

        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out
