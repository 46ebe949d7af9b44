"""The ``ubench`` command line: a thin layer over :mod:`ubench.run.runner` and
:mod:`ubench.report.build`.

Everything meant for people (progress, notes, errors) goes to stderr; with ``--json`` stdout holds
only the record(s). A user-caused error prints one ``error: ...`` line with the fix and exits
non-zero (2 for usage errors, 1 otherwise), without a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.exceptions import TyperException

from ubench.core.errors import ConfigError, InterruptedRun, StoreError, Terminated, UbenchError

if TYPE_CHECKING:
    from rich.progress import TaskID

# Never wait on a model hub: ubench only reads local files (see README "Offline").
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Benchmark machine unlearning in diffusion models.")


def _err(msg: str) -> None:
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


@app.command()
def run(
    method: Annotated[str, typer.Option(help="Method id, or 'all' for every method that fits.")],
    task: Annotated[str, typer.Option(help="Task id; see `ubench list tasks`.")],
    seed: Annotated[int, typer.Option(help="Run seed: data subsets, noise, batches.")] = 0,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override, e.g. method.remain_weight=5 or task.forget_class=3.")] = None,
    force: Annotated[bool, typer.Option(help="Redo a finished run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record JSON on stdout.")
                       ] = False,
    store: Annotated[str | None, typer.Option(
        help="Results folder (default $UBENCH_STORE or ./results).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    checkpoint_every: Annotated[int, typer.Option(
        min=0, help="Checkpoint every N steps (0: never).")] = 50,
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads for torch (default: torch's choice). Recorded; results can "
                    "differ in the last bits between thread counts. Two 1-thread runs side by "
                    "side beat one 2-thread run on small models.")] = None,
    limit: Annotated[int | None, typer.Option(
        help="Quick run: cap every prompt set at N prompts (sd-* tasks; same as --set "
             "task.limit=N, part of the run's identity).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="Apply a preset of method values before --set: 'tuned' (chosen by `ubench tune` "
             "under the fair protocol) or a preset file.")] = None,
    attacks: Annotated[str | None, typer.Option(
        help="Attack each finished run with these attacks, comma-separated (see `ubench list "
             "attacks`); --set attack.KEY=VALUE applies to those that have KEY.")] = None,
) -> None:
    """Unlearn with METHOD on TASK, evaluate, and write one record per run.

    Examples:
      ubench run --method boostalign --task digits-class --seed 0
      ubench run --method graddiff --task digits-class --set method.remain_weight=5
      ubench run --method all --task digits-class --json
      ubench run --method boostalign --task sd-nudity --set task.model=/path/to/sd --limit 4
      ubench run --method all --task digits-class --preset tuned
      ubench run --method ga --task digits-class --attacks relearn,invert
    """
    from ubench.catalog import fastcheck

    sets, attack_sets = _split_attack_sets(list(set_ or []))
    outputs: list[dict[str, Any]] = []
    failed: list[str] = []
    try:
        chain = _attack_names(attacks)
        if attack_sets and not chain:
            from ubench.core.errors import ConfigError

            raise ConfigError("--set attack.KEY=VALUE needs --attacks NAME[,NAME] (or use "
                              "`ubench attack RUN --attack NAME`)")
        if limit is not None:
            sets.append(fastcheck.limit_override(task, limit))
        fastcheck.check_run(method, task, sets)  # bad ids and overrides: refused before torch
        if chain:
            fastcheck.check_attacks(chain, attack_sets)
        from ubench.run import runner

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        methods = runner.methods_for(task) if method == "all" else [method]
        specs = runner.resolve_many(methods, task, seed, sets, preset)
        if chain:
            _check_chain(chain, specs[0].task_cls, attack_sets)
        for spec in specs:
            _err(f"== {spec.method_cls.name} on {spec.task_cls.name} (seed {spec.seed}, "
                 f"run {spec.run_id})")
            try:
                with _Progress() as bar:
                    res = runner.run(
                        spec, store=store, force=force, device=device,
                        checkpoint_every=checkpoint_every,
                        on_step=bar.for_label(spec.method_cls.name), say=_err,
                        progress=bar.update, need_model=bool(chain))
            except (InterruptedRun, StoreError):  # stop everything: the next run would too
                raise
            except UbenchError as e:
                if len(specs) == 1:
                    raise
                _err(f"error: {spec.method_cls.name}: {e}")  # --method all carries on
                failed.append(spec.method_cls.name)
                outputs.append({"status": "error", "method": spec.method_cls.name,
                                "run_id": spec.run_id, "error": str(e)})
                continue
            outputs.append(res.record)
            _err(_summary(res.record) + f"\n   record: {res.path}")
            for name in chain:
                try:
                    att = _attack_one(name, res.path.parent, None, attack_sets, store, force,
                                      device, checkpoint_every, shared=True)
                except (InterruptedRun, StoreError):
                    raise
                except UbenchError as e:
                    if len(specs) == 1 and len(chain) == 1:
                        raise
                    _err(f"error: {name} on {spec.method_cls.name}: {e}")
                    failed.append(f"{name} on {spec.method_cls.name}")
                    continue
                res.record.setdefault("attacks", {})[name] = att.record
    except UbenchError as e:
        if as_json:
            error = {"status": "error", "error": str(e)}
            print(json.dumps([*outputs, error] if outputs else error, indent=2, sort_keys=True))
        raise
    if as_json:
        print(json.dumps(outputs[0] if len(outputs) == 1 else outputs, indent=2,
                         sort_keys=True))
    if failed:
        raise UbenchError(f"{len(failed)} of {len(outputs)} methods or attacks failed "
                          f"({', '.join(failed)}); their errors are above, the other records "
                          "were written")


@app.command()
def attack(
    run_ref: Annotated[str, typer.Argument(
        metavar="RUN", help="A run id (or a unique prefix) in the store, or a run folder.")],
    attack_name: Annotated[str, typer.Option(
        "--attack", help="Attack id; see `ubench list attacks`.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override, e.g. attack.lr=1e-3 or attack.budgets=0,50,500.")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Attack seed (default: the run's seed).")] = None,
    force: Annotated[bool, typer.Option(help="Redo a finished attack.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the attack record on stdout.")
                       ] = False,
    store: Annotated[str | None, typer.Option(
        help="Results folder holding the run (default $UBENCH_STORE or ./results).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    checkpoint_every: Annotated[int, typer.Option(
        min=0, help="Checkpoint every N steps (0: only at budgets).")] = 50,
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads for torch (default: torch's choice).")] = None,
) -> None:
    """Attack a finished run's model and record the attack next to the run's record.

    Examples:
      ubench attack 3f2a9c1d --attack relearn
      ubench attack results/digits-class/ga/3f2a9c1d4e5b6a7f --attack invert --set attack.lr=3e-2
      ubench attack 3f2a9c1d --attack softprompt --device cuda
    """
    from ubench.catalog import fastcheck

    sets = list(set_ or [])
    try:
        fastcheck.check_attacks([attack_name], sets)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        res = _attack_one(attack_name, run_ref, seed, sets, store, force, device,
                          checkpoint_every)
    except UbenchError as e:
        if as_json:
            print(json.dumps({"status": "error", "error": str(e)}, indent=2, sort_keys=True))
        raise
    if as_json:
        print(json.dumps(res.record, indent=2, sort_keys=True))


def _split_attack_sets(items: list[str]) -> tuple[list[str], list[str]]:
    """``--set`` items of ``ubench run``: (method/task ones, attack ones)."""
    attack_items = [i for i in items if i.strip().startswith("attack.")]
    return [i for i in items if i not in attack_items], attack_items


def _attack_names(text: str | None) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if len(set(names)) != len(names):
        from ubench.core.errors import ConfigError

        raise ConfigError(f"--attacks names an attack twice: {text}")
    return names


def _check_chain(names: list[str], task_cls: Any, sets: list[str]) -> None:
    """Refuse attacks that do not fit the task, and bad attack overrides, before any run."""
    from ubench.catalog.registry import ATTACKS
    from ubench.core.config import parse_overrides
    from ubench.run.attack import attack_config, check_attack_fits

    ov = parse_overrides(sets, scopes=("attack",))["attack"]
    for name in names:
        cls = ATTACKS.get(name)
        check_attack_fits(cls, task_cls)
        attack_config(cls, task_cls, {k: v for k, v in ov.items()
                                      if k in cls.Config.field_names()})


def _attack_one(name: str, run_ref: Any, seed: int | None, sets: list[str], store: str | None,
                force: bool, device: str, checkpoint_every: int, shared: bool = False) -> Any:
    """Resolve and run one attack, with a progress bar and a summary on stderr."""
    from ubench.run.attack import resolve_attack, run_attack

    spec = resolve_attack(name, run_ref, seed=seed, overrides=sets, store=store, shared=shared)
    _err(f"== attack {name} on run {spec.run_record['run_id']} "
         f"({spec.run_record['method']['id']} on {spec.run_record['task']['id']}, "
         f"attack {spec.attack_id})")
    with _Progress() as bar:
        res = run_attack(spec, force=force, device=device, checkpoint_every=checkpoint_every,
                         on_step=bar.for_label(name), say=_err, progress=bar.update)
    _err(_attack_summary(res.record) + f"\n   record: {res.path}")
    return res


def _attack_summary(rec: dict[str, Any]) -> str:
    from ubench.api import parse_attack_metric_id

    names = sorted(rec["metrics"], key=lambda k: (parse_attack_metric_id(k) or (k, 0))[::-1])
    parts = [f"{k}={rec['metrics'][k]['value']:.4f} [{rec['metrics'][k]['ci_low']:.4f}, "
             f"{rec['metrics'][k]['ci_high']:.4f}]" for k in names]
    return f"   {' '.join(parts)}  attack {rec['cost'].get('attack_seconds', 0):.1f}s"


@app.command()
def report(
    store: Annotated[str | None, typer.Option(help="Results folder to read.")] = None,
    out: Annotated[str, typer.Option(help="Folder to write the leaderboard into.")
                   ] = "leaderboard",
    format_: Annotated[str, typer.Option(
        "--format", help="Outputs, comma-separated: md (README.md + grids), csv "
                         "(leaderboard.csv, runs.csv), html (index.html + thumbs/ + runs/).")
                       ] = "md,csv,html",
    open_: Annotated[bool, typer.Option(
        "--open", help="Print the file:// URL of index.html on stdout (to open it).")] = False,
) -> None:
    """Build the leaderboard (Markdown, CSV and a static web page) from every record in the
    store.

    Examples:
      ubench report --store results --out leaderboard
      ubench report --format html --open
    """
    from ubench.core.errors import ConfigError
    from ubench.report.build import build_report, parse_formats
    from ubench.store.records import store_root

    formats = parse_formats(format_)
    if open_ and "html" not in formats:
        raise ConfigError("--open needs the html format: add html to --format")
    written = build_report(store_root(store), out, say=_err, formats=formats)
    for p in written:
        if p.parent.name not in ("runs", "thumbs"):  # hundreds of run pages: counted below
            _err(f"wrote {p}")
    pages = sum(p.parent.name == "runs" for p in written)
    thumbs = sum(p.parent.name == "thumbs" for p in written)
    if pages or thumbs:
        _err(f"wrote {pages} run pages and {thumbs} thumbnails under {out}")
    if open_:
        from pathlib import Path

        print((Path(out) / "index.html").resolve().as_uri())


@app.command()
def compare(
    baseline: Annotated[str, typer.Argument(help="Baseline store or folder of records.")],
    current: Annotated[str, typer.Argument(help="Current store or folder of records.")],
    tolerance: Annotated[list[str] | None, typer.Option(
        help="Per-metric tolerance: METRIC=VALUE (absolute) or METRIC=PERCENT% (relative to "
             "the baseline), e.g. --tolerance ra=0.01 --tolerance fd=5%.")] = None,
    allow_asset_change: Annotated[bool, typer.Option(
        help="Compare runs measured with different assets (judge, base model, data).")
                                  ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of Markdown.")
                       ] = False,
    out: Annotated[str | None, typer.Option(
        help="Also write the Markdown report to this file (e.g. for a pull-request comment).")
                   ] = None,
) -> None:
    """Pair the runs of two result sets and flag significant regressions (paired bootstrap).

    Exit status: 0 no regression, 1 a regression, 2 unusable input.

    Example: ubench compare leaderboard/baseline/quick results/quick --tolerance ra=0.01
    """
    from ubench.report.compare import compare as run_compare
    from ubench.report.compare import parse_tolerances, to_markdown

    result = run_compare(baseline, current, tolerances=parse_tolerances(list(tolerance or [])),
                         allow_asset_change=allow_asset_change)
    text = to_markdown(result)
    if out:
        Path(out).write_text(text)
    print(json.dumps(result.to_json(), indent=2, sort_keys=True) if as_json else text)
    if result.regressions:
        _err(f"{len(result.regressions)} regression(s); see the table above")
        raise typer.Exit(1)


assets_app = typer.Typer(no_args_is_help=True, help="The pinned reference assets (judges, base "
                         "models, oracles) that records are measured with.")
app.add_typer(assets_app, name="assets")


@assets_app.command("build")
def assets_build(
    task: Annotated[str, typer.Argument(help="digits-class (judge, base, ten oracles) or a t2i "
                                             "task (the world's base model and the task's "
                                             "retrain oracle).")],
    out: Annotated[str | None, typer.Option(
        help="Pinned folder to write (default: $UBENCH_ASSETS or the package's pinned/).")
                   ] = None,
) -> None:
    """Train a task's reference assets with ubench's own code (deterministic given their seeds;
    finished ones are cached) and write them as pinned files with their manifest entries.

    Example: ubench assets build digits-class
    """
    from ubench.catalog.registry import TASKS
    from ubench.store.pinned import pinned_root

    task_cls = TASKS.get(task)
    if not getattr(task_cls, "pinned", False) or not hasattr(task_cls, "build_pinned"):
        pinnable = [n for n in TASKS.names() if getattr(TASKS.get(n), "pinned", False)]
        raise UbenchError(f"task {task!r} has no pinned assets; tasks with pinned assets: "
                          f"{', '.join(pinnable)}")
    root = Path(out).expanduser() if out else pinned_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create {root} ({e.strerror}); pass --out <writable folder> and "
                         "point UBENCH_ASSETS at it") from None
    with _Progress() as bar:
        names = task_cls(task_cls.Config()).build_pinned(root, _err, bar.update)
    _err(f"wrote {len(names)} pinned assets into {root} (manifest: {root / 'manifest.json'})")


#: the quality figures ``ubench assets verify`` shows, when an asset has them
HEADLINE_QUALITY = ("heldout_accuracy", "garbage_reject_rate", "judged_accuracy",
                    "forget_class_rate", "exact_alignment")


@assets_app.command("verify")
def assets_verify(
    folder: Annotated[str | None, typer.Option(
        "--dir", help="Pinned folder to check (default: $UBENCH_ASSETS or the package's).")
                      ] = None,
) -> None:
    """Re-hash every pinned file against the manifest; exit 1 if any is missing or differs.

    Example: ubench assets verify
    """
    from ubench.store.pinned import pinned_root, read_manifest, verify

    root = Path(folder).expanduser() if folder else pinned_root()
    results = verify(root)
    if not results:
        raise StoreError(f"no pinned assets in {root} (no manifest.json entries); build them "
                         "with `ubench assets build digits-class`")
    bad = [r for r in results if r[2] != "ok"]
    manifest = read_manifest(root)["assets"]
    for name in sorted({r[0] for r in results}):
        files = [r for r in results if r[0] == name]
        state = "ok" if all(r[2] == "ok" for r in files) else "BAD"
        quality = manifest[name].get("quality", {})
        headline = ", ".join(f"{k} {quality[k]:.4f}" for k in HEADLINE_QUALITY
                             if isinstance(quality.get(k), (int, float)))
        print(f"{state:<3}  {name:<18} {manifest[name]['digest']}  {len(files)} files  "
              f"{headline}")
    for name, rel, problem in bad:
        _err(f"error: {root / name / rel}: {problem}")
    if bad:
        raise UbenchError(f"{len(bad)} pinned files are missing or differ; rebuild them with "
                          "`ubench assets build TASK` or restore them with `git checkout -- "
                          "ubench/pinned`")


@app.command()
def pretrain(
    task: Annotated[str, typer.Option(help="Task id: cifar10-class (or cifar10-class-tiny).")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Task override, e.g. task.data=/data/cifar-10-batches-bin.")] = None,
    steps: Annotated[int | None, typer.Option(
        min=1, help="Optimisation steps (default: the task's recipe; 200,000 on cifar10-class).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(
        min=1, help="Images per step (default: the task's recipe; 128 on cifar10-class).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ... (bf16 autocast on CUDA).")
                      ] = "cpu",
    exclude_class: Annotated[int | None, typer.Option(
        help="Train the retrain oracle: the same recipe without this class.")] = None,
    out: Annotated[str | None, typer.Option(
        help="Folder for the model (default: the cache, where `ubench run` finds a "
             "default-recipe model).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        min=0, help="Checkpoint every N steps (0: never); rerun the command to resume.")] = 2000,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")] = None,
) -> None:
    """Train a task's class-conditional base model from scratch (or its retrain oracle).

    Resumable: after an interruption (Ctrl-C, kill -9, a lost node) rerun the same command and it
    continues from its last checkpoint. The model is written in diffusers layout; a
    default-recipe model goes to the cache, where `ubench run --task cifar10-class` finds it.

    Examples:
      ubench pretrain --task cifar10-class --device cuda
      ubench pretrain --task cifar10-class --device cuda --exclude-class 3
      ubench pretrain --task cifar10-class --device cuda --steps 800000 --out models/ddpm-full
    """
    from ubench.catalog import fastcheck
    from ubench.core.config import parse_overrides

    sets = list(set_ or [])
    parse_overrides(sets, scopes=("task",))  # method.* means nothing here: refused at once
    fastcheck.check_run("base", task, sets)
    import torch

    from ubench.catalog.registry import TASKS
    from ubench.core.config import build_config
    from ubench.core.errors import ConfigError
    from ubench.training.pretrain import pretrain as run_pretrain

    if threads is not None:
        torch.set_num_threads(threads)
    task_cls = TASKS.get(task)
    if not hasattr(task_cls, "pretrain_job"):
        able = [n for n in TASKS.names() if hasattr(TASKS.get(n), "pretrain_job")]
        raise ConfigError(f"task {task!r} has no `ubench pretrain` (its base model comes with "
                          f"the task); it applies to: {', '.join(able)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UbenchError(f"--device {device}: no CUDA device is available here; use --device "
                          "cpu or run on a GPU machine")
    cfg = build_config(task_cls.Config, parse_overrides(sets, scopes=("task",))["task"],
                       f"task {task}")
    job = task_cls(cfg).pretrain_job(exclude_class, steps, batch_size, out)  # type: ignore[attr-defined]
    if not device.startswith("cuda") and not task.endswith("-tiny"):
        _err("note: training on the CPU takes days at this size; pass --device cuda")
    _err(f"== pretraining {job.what}: {job.spec.steps} steps x {job.spec.batch_size} images on "
         f"{len(job.labels)} training images, {device} -> {job.out}")
    try:
        with _PretrainBar() as bar:
            res = run_pretrain(job, device=device, checkpoint_every=checkpoint_every,
                               progress=bar.update, say=_err)
    except KeyboardInterrupt as e:
        step = _pretrain_checkpoint_step(job.out)
        raise InterruptedRun("interrupted; rerun the same command to resume from step "
                             f"{step}" + (" (its last checkpoint)" if step else ""),
                             143 if isinstance(e, Terminated) else 130) from None
    default = task_cls(cfg).default_model_dir(exclude_class)  # type: ignore[attr-defined]
    if res.out != default:
        field = "task.model" if exclude_class is None else "task.oracle"
        _err(f"   use it with: ubench run --task {task} --set {field}={res.out} ...")
    else:
        _err(f"   `ubench run --task {task}` finds it ({res.out})")


def _pretrain_checkpoint_step(out: Any) -> int:
    from pathlib import Path

    try:
        state = Path(f"{out}.partial") / "checkpoint" / "state.json"
        return int(json.loads(state.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class _PretrainBar:
    """A rich progress bar for pretraining (throughput, elapsed, ETA); on a non-terminal stderr
    (a batch job's log) one plain line per percent instead."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._console = Console(stderr=True)
        self._p = Progress("[bold]pretrain", BarColumn(), MofNCompleteColumn(),
                           "{task.fields[rate]}", TimeElapsedColumn(), "ETA",
                           TimeRemainingColumn(), "{task.fields[info]}",
                           console=self._console)
        self._task: TaskID | None = None
        self._last_line = -1

    def __enter__(self) -> _PretrainBar:
        self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.__exit__(None, None, None)

    def update(self, step: int, total: int, loss: float, rate: float) -> None:
        info = f"loss {loss:.4f}" if loss == loss else ""
        shown = (f"{rate:,.0f} img/s" if rate >= 10 else f"{rate:.2f} img/s") if rate else ""
        if self._task is None:
            self._task = self._p.add_task("pretrain", total=total, completed=step - 1,
                                          rate=shown, info=info)
        self._p.update(self._task, completed=step, rate=shown, info=info)
        if not self._console.is_terminal:
            pct = step * 100 // total
            if pct != self._last_line:
                self._last_line = pct
                task = self._p.tasks[0]
                eta = f", ETA {task.time_remaining:.0f} s" if task.time_remaining else ""
                _err(f"pretrain step {step}/{total} ({pct}%) {info} {shown}{eta}".rstrip())


class On(str, Enum):
    local = "local"
    ray = "ray"
    slurm = "slurm"


@app.command()
def sweep(
    plan: Annotated[str, typer.Argument(help="A TOML plan, e.g. plans/digits.toml.")],
    suite: Annotated[str | None, typer.Option(help="Run only this suite of the plan.")] = None,
    on: Annotated[On, typer.Option(help="Where runs execute: a local pool, Ray or Slurm.")
                  ] = On.local,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Runs at once (default: the CPU count for local and a local Ray cluster; "
                    "all for an existing Ray cluster; no cap on Slurm).")] = None,
    store: Annotated[str | None, typer.Option(
        help="Results folder (default $UBENCH_STORE or ./results).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the runs and what is already done; run nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs and outcomes as JSON "
                                          "on stdout.")] = False,
    threads: Annotated[int, typer.Option(
        min=1, help="torch threads per run (recorded).")] = 1,
    device: Annotated[str | None, typer.Option(
        help="cpu, cuda, ... (default: cuda with --gpus, else cpu).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        min=0, help="Checkpoint every N steps (0: never).")] = 50,
    retries: Annotated[int, typer.Option(
        min=0, help="New starts of a run whose worker died (killed, lost node, pre-empted).")
                       ] = 1,
    retry_failed: Annotated[bool, typer.Option(
        help="Run again the runs whose record says they failed (default: report them).")
                            ] = False,
    address: Annotated[str | None, typer.Option(
        help="--on ray: an existing cluster (auto, ray://HOST:10001); default: a local one.")
                       ] = None,
    gpus: Annotated[float, typer.Option(min=0, help="--on ray / slurm: GPUs per run.")] = 0,
    partition: Annotated[str | None, typer.Option(help="--on slurm: the partition.")] = None,
    timeout: Annotated[int | None, typer.Option(
        min=1, help="--on slurm: minutes per job (default 240; a job that reaches it is "
                    "requeued and resumes).")] = None,
) -> None:
    """Run every run of a plan that is not finished yet, on a local pool, Ray or Slurm.

    Finished runs are skipped and interrupted ones resume, so a sweep can be rerun at will; exit
    1 when a run failed (the others' records are kept). See docs/scale-out.md.

    Examples:
      ubench sweep plans/digits.toml --dry-run
      ubench sweep plans/digits.toml --workers 2 --store leaderboard/records
      ubench sweep plans/digits.toml --on ray --address auto
      ubench sweep plans/sd.toml --on slurm --partition gpu --gpus 1 --timeout 600
    """
    from ubench.sweep import item_state, load_plan, run_items
    from ubench.sweep.executors import has_extra, require_extra

    options: dict[str, Any] = {"address": address, "partition": partition,
                               "timeout_min": timeout, "gpus": gpus or None}
    applies = {"address": ("--address", "ray"), "partition": ("--partition", "slurm"),
               "timeout_min": ("--timeout", "slurm"), "gpus": ("--gpus", "ray slurm")}
    for key, value in options.items():
        flag, ons = applies[key]
        if value is not None and on.value not in ons.split():
            raise ConfigError(f"{flag} applies to --on {' or --on '.join(ons.split())}, not "
                              f"--on {on.value}")
    options = {k: v for k, v in options.items() if v is not None}
    if device is None:
        device = "cuda" if gpus else "cpu"
    elif gpus and not device.startswith("cuda"):
        raise ConfigError(f"--gpus {gpus:g} with --device {device}: the runs would not use the "
                          "GPUs they reserve; pass --device cuda (or drop --gpus)")
    if not dry_run and not has_extra(on.value):
        require_extra(on.value)  # one line naming the install command
    loaded = load_plan(plan, suite)  # a bad plan fails here, before torch is imported
    items = loaded.specs()
    from rich.console import Console

    from ubench.run.runner import usable_store
    from ubench.store.records import store_root
    from ubench.sweep.view import SweepView, plan_table, summary

    err = Console(stderr=True, soft_wrap=True)
    if not err.is_terminal:  # a log file: whole lines, tables never folded
        err = Console(stderr=True, soft_wrap=True, width=10_000)
    root = store_root(store)
    dup = f" ({loaded.duplicates} repeated runs listed once)" if loaded.duplicates else ""
    chosen = f", suite {suite}" if suite else ""
    if dry_run:
        states = [item_state(i, root) for i in items]
        if as_json:
            print(json.dumps([{**i.to_dict(), "state": s.kind, "step": s.step}
                              for i, s in zip(items, states, strict=True)], indent=2))
        else:
            out = Console(soft_wrap=True)
            if not out.is_terminal:  # a file or a pipe: whole lines, never folded
                out = Console(soft_wrap=True, width=10_000)
            out.print(plan_table(items, states))
        counts = {k: sum(s.kind == k for s in states)
                  for k in ("todo", "partial", "attacks", "done", "failed", "corrupt")}
        attacked = (f", {counts['attacks']} finished with attacks to run"
                    if counts["attacks"] else "")
        _err(f"{loaded.source}{chosen}: {len(items)} runs{dup}: {counts['todo']} to run, "
             f"{counts['partial']} to resume{attacked}, {counts['done']} finished, "
             f"{counts['failed']} "
             f"failed before" + (f", {counts['corrupt']} with a corrupt record"
                                 if counts["corrupt"] else "") + f" (store {root})")
        return
    usable_store(root)
    n_workers = workers or (os.cpu_count() or 1)
    _err(f"sweep {loaded.source}{chosen}: {len(items)} runs{dup} on {on.value}, store {root}")
    with SweepView(len(items), n_workers, err) as view:
        result = run_items(items, executor=on.value, workers=workers, store=root,
                           threads=threads, device=device, checkpoint_every=checkpoint_every,
                           retries=retries, retry_failed=retry_failed, on_event=view.event,
                           **options)
    summary(result, err)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    if not result.ok:
        raise UbenchError(f"{len(result.failures)} of {len(result.items)} runs failed (table "
                          "above); the other records are kept: fix the cause and rerun the "
                          "same command")


@app.command()
def tune(
    method: Annotated[str, typer.Option(
        help="Method id, or 'all' for every method with a tuning space that fits the task.")],
    task: Annotated[str, typer.Option(help="Task id (one with tuning cells and a rule).")],
    workers: Annotated[int | None, typer.Option(
        min=1, help="Runs at once on this machine (default: the CPU count).")] = None,
    store: Annotated[str | None, typer.Option(
        help="Results folder (default $UBENCH_STORE or ./results).")] = None,
    out: Annotated[str | None, typer.Option(
        help="Preset file to write (default: the package's preset_files/tuned.json).")
                   ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the tuning runs and what is already done; run nothing.")
                       ] = False,
) -> None:
    """The fair protocol: run each method's declared tuning space (the same budget for every
    method) on the task's tuning cells, pick one point per method by the task's rule, and write
    the choice to the preset that `ubench run --preset tuned` applies. See docs/protocol.md.

    Examples:
      ubench tune --method boostalign --task digits-class --workers 2
      ubench tune --method all --task t2i-attribute --store leaderboard/records --workers 2
    """
    from rich.console import Console

    from ubench.catalog.registry import METHODS
    from ubench.run import runner
    from ubench.store.records import store_root
    from ubench.sweep import item_state, run_items
    from ubench.sweep.tune import tune as run_tune
    from ubench.sweep.tune import tuning_items
    from ubench.sweep.view import SweepView, plan_table, summary

    methods = ([m for m in runner.methods_for(task) if METHODS.get(m).search_space]
               if method == "all" else [method])
    root = store_root(store)
    err = Console(stderr=True, soft_wrap=True)
    if dry_run:
        items = tuning_items(methods, task)
        states = [item_state(i, root) for i in items]
        Console(soft_wrap=True).print(plan_table(items, states))
        done = sum(s.kind == "done" for s in states)
        _err(f"tune {task}: {len(items)} tuning runs of {len(methods)} methods, {done} "
             f"finished (store {root})")
        return
    failed: list[Any] = []

    def sweep_items(items: list[Any]) -> None:
        n = workers or (os.cpu_count() or 1)
        _err(f"tune {task}: {len(items)} tuning runs of {len(methods)} methods, store {root}")
        with SweepView(len(items), n, err) as view:
            result = run_items(items, executor="local", workers=workers, store=root,
                               on_event=view.event)
        summary(result, err)
        failed.extend(result.failures)

    section = run_tune(methods, task, store=root, out=out, run=sweep_items)
    rule = section["rule_text"]
    _err(f"rule: {rule}" + ("" if section["target_all_families"] else
                            " (no target of the ladder is reached by every family)"))
    for m, entry in section["methods"].items():
        values = ", ".join(f"{k}={v}" for k, v in entry["values"].items())
        chosen = next(p for p in entry["points"] if p["values"] == entry["values"])
        shown = ", ".join(f"{k} {chosen['metrics'][k]:.3f}"
                          for k in (section["rule"]["forget"], section["rule"]["keep"])
                          if k in chosen["metrics"])
        flag = "" if entry["reached"] else "  (no point reached the target)"
        _err(f"  {m:<12} {values}  ->  {shown}{flag}")
    if failed:
        raise UbenchError(f"{len(failed)} tuning runs failed (table above); the preset was "
                          "written from the others — fix the cause and rerun to complete it")


def _summary(rec: dict) -> str:
    from ubench.catalog.builtins import BUILTIN_METRICS

    order = list(BUILTIN_METRICS)
    names = sorted(rec["metrics"], key=lambda k: (order.index(k) if k in order else 99, k))
    parts = [f"{k}={rec['metrics'][k]['value']:.4f} [{rec['metrics'][k]['ci_low']:.4f}, "
             f"{rec['metrics'][k]['ci_high']:.4f}]" for k in names]
    cost = rec["cost"]
    return (f"   {' '.join(parts)}  unlearn {cost.get('unlearn_seconds', 0):.1f}s "
            f"eval {cost.get('eval_seconds', 0):.1f}s")


class _Progress:
    """Rich progress bars on stderr, one per label (silent when stderr is not a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._p = Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), "{task.fields[info]}",
                           console=Console(stderr=True), transient=True)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Progress:
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
        self._p.update(self._tasks[label], completed=step, info=info)


def _on_sigterm(signum: int, frame: object) -> None:
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
        _err(str(e))
        sys.exit(e.exit_code)
    except UbenchError as e:
        _err(f"error: {e}")
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors of typer's own click (bad option, no command)
        sys.exit(_usage_error(e))
    except KeyboardInterrupt as e:  # outside a run (report, list): nothing to resume
        _err("interrupted")
        sys.exit(143 if isinstance(e, Terminated) else 130)
    except (typer.Exit, typer.Abort) as e:
        sys.exit(getattr(e, "exit_code", 1))
    except OSError as e:  # the environment: a full disk, a folder without permission
        where = f" ({e.filename})" if e.filename else ""
        _err(f"error: {e.strerror or e}{where}; free space or fix the folder's permissions "
             "and rerun (finished runs are kept)")
        sys.exit(1)
    if isinstance(rc, int) and rc:  # typer turns Ctrl-C outside a run into 130
        if rc == 130:
            _err("interrupted")
        sys.exit(rc)


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
    _err(f"error: {message}{hint}")
    return int(getattr(e, "exit_code", 2)) or 2


if __name__ == "__main__":
    main()
