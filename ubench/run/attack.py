"""One attack = find the run -> rebuild its spec -> load its model -> attack -> record.

An attack belongs to a finished run: ``ubench attack RUN --attack NAME`` (RUN is a run id or a
run folder) or ``ubench run ... --attacks a,b``. Its identity is a hash of the run's id, the attack
(id, version, resolved config) and the attack's seed (the run's seed unless given); its record,
``attack.json``, lives next to the run's record in ``<run folder>/attacks/<attack>/<attack_id>/``
with its checkpoints, artifacts and sample grid. A finished attack is skipped (``force`` redoes
it); an interrupted one resumes from its checkpoint; a diverged one writes a ``failed`` record.

The attacked model is the one the run saved (``model/``, ``Task.save_model``); reference rows
(``base``, ``retrain``) save none and are rebuilt by running the reference method again, which
reloads the cached asset whose digest the run's record holds. The run's spec is rebuilt from its
record (:func:`ubench.run.identity.rebuild_run_spec`) and must give the recorded run id: a run
made by a different ubench (other defaults, other assets) is refused rather than attacked under a
wrong model. The attacked run may be in its folder or packed (its folder then keeps only its
``model/``); the attack's record is written into the run's folder either way.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ubench.api import (
    Attack,
    AttackContext,
    AttackOutput,
    RunContext,
    Task,
    supports_attacks,
)
from ubench.catalog.registry import ATTACKS, TASKS
from ubench.core.config import build_config, parse_overrides
from ubench.core.digest import stable_hash
from ubench.core.env import environment, peak_memory
from ubench.core.errors import (
    AttackTargetError,
    ConfigError,
    DivergedError,
    IncompatibleError,
    InterruptedRun,
    Terminated,
    did_you_mean,
)
from ubench.core.locks import hold
from ubench.run.identity import RunSpec, rebuild_run_spec
from ubench.store.cache import load_cached
from ubench.store.checkpoint import Checkpoint
from ubench.store.io import (
    disk_full_as_one_line,
    remove_empty,
    remove_stale_temporaries,
    replacing,
    write_json_atomic,
)
from ubench.store.layout import (
    ATTACK_FILE,
    GRID_FILE,
    REBUILD_DIR,
    attack_dir,
    attack_lock,
)
from ubench.store.reader import finished_attack
from ubench.store.record import SCHEMA_VERSION
from ubench.store.runs import locate, model_folder


# ---------------------------------------------------------------------- the spec
@dataclass
class AttackSpec:
    """A resolved attack: its class and config, the attacked run and the run's rebuilt spec."""

    attack_cls: type[Attack[Any]]
    config: Any
    seed: int
    run_folder: Path
    run_record: dict[str, Any]
    run_spec: RunSpec
    #: the store the run lives in
    store: Path

    @property
    def identity(self) -> dict[str, Any]:
        return {"run": self.run_record["run_id"],
                "attack": {"id": self.attack_cls.name, "version": self.attack_cls.version,
                           "config": self.config.to_dict()},
                "seed": self.seed}

    @property
    def attack_id(self) -> str:
        return stable_hash(self.identity, 16)

    @property
    def folder(self) -> Path:
        return attack_dir(self.run_folder, self.attack_cls.name, self.attack_id)


def check_attack_fits(attack_cls: type[Attack[Any]], task_cls: type[Task[Any]]) -> None:
    """Refuse an attack that cannot run on a task, before anything is loaded."""
    why = []
    if not supports_attacks(task_cls):
        why.append(f"task {task_cls.name!r} defines no forget probe and concept detector")
    missing = set(attack_cls.requires) - set(task_cls.provides)
    if missing:
        why.append(f"it needs {', '.join(sorted(missing))}, which task {task_cls.name!r} does "
                   "not provide")
    missing_model = set(attack_cls.requires_model) - set(task_cls.model_capabilities)
    if missing_model:
        why.append(f"it needs a {', '.join(sorted(missing_model))} model, and task "
                   f"{task_cls.name!r} has a {', '.join(sorted(task_cls.model_capabilities))} "
                   "one")
    if why:
        fits = [n for n in TASKS.names() if _fits(attack_cls, TASKS.get(n))]
        raise IncompatibleError(f"attack {attack_cls.name!r} cannot run on task "
                                f"{task_cls.name!r}: {'; '.join(why)}. Tasks it fits: "
                                f"{', '.join(fits) or 'none'}.")


def _fits(attack_cls: type[Attack[Any]], task_cls: type[Task[Any]]) -> bool:
    return (supports_attacks(task_cls) and set(attack_cls.requires) <= set(task_cls.provides)
            and set(attack_cls.requires_model) <= set(task_cls.model_capabilities))


def attack_config(attack_cls: type[Attack[Any]], task_cls: type[Task[Any]],
                  overrides: dict[str, Any]) -> Any:
    """The attack's config: its defaults, what the task prescribes, then the user's values."""
    prescribed = dict(task_cls.attack_defaults.get(attack_cls.name, {}))
    fields = attack_cls.Config.field_names()
    for key in prescribed:
        if key not in fields:
            raise ConfigError(f"task {task_cls.name!r} prescribes attack.{key} for attack "
                              f"{attack_cls.name!r}, which has no such field: "
                              + did_you_mean(key, fields, "key")
                              + " Fix the task's attack_defaults.")
    return build_config(attack_cls.Config, {**prescribed, **overrides},
                        f"attack {attack_cls.name}")


def resolve_attack(attack: str, run: str | Path, *, seed: int | None = None,
                   overrides: Iterable[str] = (), store: str | Path | None = None,
                   shared: bool = False) -> AttackSpec:
    """Look up the attack and the run, apply ``attack.KEY=VALUE`` overrides, check they fit.

    With ``shared`` (``ubench run --attacks a,b``) an override applies to the attacks whose
    config has the key; the caller checks that some attack has it.
    """
    attack_cls = ATTACKS.get(attack)
    found = locate(run, store)
    record = found.record
    if record["status"] != "ok":
        why = f" ({record.get('error')})" if record.get("error") else ""
        raise AttackTargetError(f"run {record['run_id']} did not finish (status "
                                f"{record['status']}{why}); only finished runs can be attacked: "
                                "rerun it first")
    task_id = record["task"]["id"]
    if task_id not in TASKS:
        raise AttackTargetError(f"run {record['run_id']} is of task {task_id!r}, which this "
                                "ubench does not have; install the plugin that provides it")
    task_cls = TASKS.get(task_id)
    check_attack_fits(attack_cls, task_cls)
    ov = parse_overrides(overrides, scopes=("attack",))["attack"]
    if shared:
        ov = {k: v for k, v in ov.items() if k in attack_cls.Config.field_names()}
    config = attack_config(attack_cls, task_cls, ov)
    run_spec = rebuild_run_spec(record)
    return AttackSpec(attack_cls, config, record["seed"] if seed is None else seed,
                      found.folder, record, run_spec, found.store)


# ---------------------------------------------------------------------- running
@dataclass
class AttackResult:
    record: dict[str, Any]
    path: Path
    skipped: bool


def run_attack(spec: AttackSpec, *, force: bool = False, device: str = "cpu",
               checkpoint_every: int = 50,
               on_step: Callable[[int, int, dict[str, float]], None] | None = None,
               say: Callable[[str], None] | None = None,
               progress: Callable[[str, int, int, dict[str, float]], None] | None = None
               ) -> AttackResult:
    """Run one attack (or return its finished record) and write ``attack.json``."""
    say = say or (lambda _m: None)
    with hold(attack_lock(spec.store, spec.attack_id), f"attack {spec.attack_id}", say), \
            disk_full_as_one_line(spec.folder, f"writing attack {spec.attack_id}"):
        return _run_locked(spec, force, device, checkpoint_every, on_step, say, progress)


def _run_locked(spec: AttackSpec, force: bool, device: str, checkpoint_every: int,
                on_step: Callable[[int, int, dict[str, float]], None] | None,
                say: Callable[[str], None],
                progress: Callable[[str, int, int, dict[str, float]], None] | None
                ) -> AttackResult:
    folder = spec.folder
    path = folder / ATTACK_FILE
    if force and folder.exists():
        shutil.rmtree(folder)
    rec = None if force else finished_attack(spec.store, spec.run_folder,
                                             spec.run_spec.task_cls.name, spec.attack_cls.name,
                                             spec.attack_id)
    if rec is not None and rec["status"] == "ok":
        say(f"finished already: {path}" + (" (packed)" if rec.get("_packed") else "")
            + " (use --force to redo)")
        return AttackResult({k: v for k, v in rec.items() if not k.startswith("_")}, path, True)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    t_start = time.perf_counter()
    run_spec = spec.run_spec
    task = run_spec.task_cls(run_spec.task_config)
    stage = "preparing the task"
    record = _skeleton(spec, device)
    try:
        task.prepare(say, progress)
        request = task.request(spec.run_record["seed"])
        stage = "loading the attacked model"
        model, source = _attacked_model(spec, task, request, device, say)
        probe = task.forget_probe().first(int(getattr(spec.config, "probe_limit", 0)))
        ctx = AttackContext(task=task, request=request, probe=probe, seed=spec.seed,
                            device=device, folder=folder,
                            base_model=lambda: task.base_model(device),
                            checkpoint_every=checkpoint_every, on_step=on_step, say=say)
        stage = "the attack"
        t0 = time.perf_counter()
        try:
            out: AttackOutput = spec.attack_cls().attack(model, spec.config, ctx)
        except DivergedError as e:
            record.update(status="failed", error=str(e))
            record["cost"] = {"attack_seconds": time.perf_counter() - t0}
            write_json_atomic(path, record)
            raise
        t1 = time.perf_counter()
    except KeyboardInterrupt as e:
        remove_empty(folder, spec.store)
        code = 143 if isinstance(e, Terminated) else 130
        raise InterruptedRun(f"interrupted during {stage}; rerun the same command to resume the "
                             "attack from its last checkpoint", code) from None
    except BaseException:
        remove_empty(folder, spec.store)
        raise
    record["metrics"] = {k: v.to_dict() for k, v in out.metrics.items()}
    record["details"] = {**out.details, "attacked_model": source,
                         "probe": probe.description, "probe_size": len(probe)}
    record["artifacts"] = dict(out.artifacts)
    if out.grid is not None:
        with replacing(folder / GRID_FILE) as tmp:
            out.grid.save(tmp, format="PNG")
        record["artifacts"]["grid"] = GRID_FILE
    record["cost"] = {"prepare_seconds": t0 - t_start, "attack_seconds": t1 - t0,
                      "total_seconds": t1 - t_start, **peak_memory(device)}
    record["status"] = "ok"
    write_json_atomic(path, record, failpoint_name="attack-record")
    Checkpoint(folder).remove()
    return AttackResult(record, path, False)


def _attacked_model(spec: AttackSpec, task: Task[Any], request: Any, device: str,
                    say: Callable[[str], None]) -> tuple[Any, str]:
    """The run's model: loaded from its folder, or rebuilt for a reference row."""
    rec = spec.run_record
    saved = rec.get("artifacts", {}).get("model")
    method_cls = spec.run_spec.method_cls
    if saved:
        folder = model_folder(spec.run_folder)
        if not folder.is_dir():
            raise AttackTargetError(f"run {rec['run_id']} names its saved model {folder}, which "
                                    "is missing; make it again with `ubench run ... --attacks "
                                    f"{spec.attack_cls.name}` (or its sweep plan), which remakes "
                                    "it")
        return load_cached(folder, "unlearned model", lambda: task.load_model(folder, device)), \
            f"saved model ({saved}/)"
    if method_cls.reference or method_cls.training_free:
        ctx = RunContext(seed=rec["seed"], device=device, run_dir=spec.folder / REBUILD_DIR,
                         checkpoint_every=0, say=say)
        out = method_cls().unlearn(task.base_model(device), request, spec.run_spec.method_config,
                                   ctx)
        shutil.rmtree(spec.folder / REBUILD_DIR, ignore_errors=True)
        what = "training-free method" if method_cls.training_free else "reference row"
        return out.model, f"{what} rebuilt by {method_cls.name!r} from its config"
    raise AttackTargetError(f"run {rec['run_id']} saved no model (it was made before runs saved "
                            "their weights); make it again with `ubench run ... --attacks "
                            f"{spec.attack_cls.name}` (or its sweep plan), which remakes it")


def _skeleton(spec: AttackSpec, device: str) -> dict[str, Any]:
    rec = spec.run_record
    ident = spec.identity
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "attack",
        "attack_id": spec.attack_id,
        "status": "running",
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run": {"run_id": rec["run_id"], "task": json.loads(json.dumps(rec["task"])),
                "method": json.loads(json.dumps(rec["method"])), "seed": rec["seed"]},
        "attack": ident["attack"],
        "seed": spec.seed,
        "metrics": {},
        "cost": {},
        "env": environment(device),
        "artifacts": {},
        "error": None,
    }
