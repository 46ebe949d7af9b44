"""``ubench assets`` (the pinned reference models and judges) and ``ubench pretrain``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ubench.cli.app import Progress, app, err
from ubench.core.config import MAX_THREADS
from ubench.core.errors import InterruptedRun, StoreError, Terminated, UbenchError

if TYPE_CHECKING:
    from rich.progress import TaskID


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
    only: Annotated[str | None, typer.Option(
        help="Comma-separated asset names to build alone, e.g. "
             "digits/judge-robust,digits/judge-partner (digits-class only).")] = None,
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
    task_obj = task_cls(task_cls.Config())
    if only is not None and not hasattr(task_obj, "pinned_names"):
        raise UbenchError(f"--only is for digits-class; {task!r} builds all its assets at once")
    wanted = None if only is None else [n.strip() for n in only.split(",") if n.strip()]
    with Progress() as bar:
        names = (task_obj.build_pinned(root, err, bar.update) if wanted is None
                 else task_obj.build_pinned(root, err, bar.update, only=wanted))
    err(f"wrote {len(names)} pinned assets into {root} (manifest: {root / 'manifest.json'})")


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
        err(f"error: {root / name / rel}: {problem}")
    if bad:
        raise UbenchError(f"{len(bad)} pinned files are missing or differ; rebuild them with "
                          "`ubench assets build TASK` or restore them with `git checkout -- "
                          "ubench/pinned`")


@assets_app.command("judges")
def assets_judges(
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Also write the whole table as JSON to this file.")] = None,
    threads: Annotated[int, typer.Option(min=1, max=MAX_THREADS,
                                         help="CPU threads for torch.")] = 1,
) -> None:
    """Validate the digits judges: accuracy on real held-out digits and on the stress set
    (squeezed, stretched, thinned, thickened, shifted, rotated, partly erased), read directly
    and through a t2i scene, overall and on zeros; how often each pair agrees; how much of each
    kind of garbage each rejects (speckles included, which none trains on); and how each reads
    narrow filled zeros.
    docs/judges.md explains the table.

    Example: ubench assets judges --json judges.json
    """
    import json

    import torch

    from ubench.tasks.digits.judge import VALIDATED_JUDGES
    from ubench.tasks.digits.task import DigitsClass, DigitsConfig
    from ubench.tasks.t2i.stress import judge_table

    torch.set_num_threads(threads)
    task = DigitsClass(DigitsConfig())
    judges = {"judge": task.original_judge,
              **{r: task.validated_judge(r) for r in VALIDATED_JUDGES}}
    table = judge_table(judges)
    accuracy = table["accuracy"]
    assert isinstance(accuracy, dict)
    for reading in ("digits", "t2i"):
        print(f"accuracy, read as {reading} (all classes / zeros):")
        transforms = list(next(iter(accuracy.values()))[reading])
        print("  " + f"{'judge':<14}" + "".join(f"{t:>12}" for t in transforms))
        for name, by_reading in accuracy.items():
            cells = "".join(f"{c['all']:>6.3f}/{c['class_0']:<5.3f}"
                            for c in by_reading[reading].values())
            print(f"  {name:<14}{cells}")
    agreement = table["agreement"]
    garbage = table["garbage"]
    narrow = table["narrow_filled"]
    assert isinstance(agreement, dict) and isinstance(garbage, dict) and isinstance(narrow, dict)
    for title, rows in (
            ("agreement (same label), read as digits / t2i:", agreement),
            ("garbage judged not a digit, read as digits / t2i (speckles: a kind no judge "
             "trains on):", garbage),
            (f"narrow filled zeros ({narrow['n']}), share read as each label, digits / t2i:",
             narrow["shares"])):
        print(title)
        for name, by_reading in rows.items():
            cells = ", ".join(f"{k} {by_reading['digits'][k]:.3f}/{by_reading['t2i'][k]:.3f}"
                              for k in by_reading["digits"])
            print(f"  {name}: {cells}")
    if json_out:
        from ubench.store.io import write_text_atomic

        write_text_atomic(Path(json_out), json.dumps(table, indent=1, sort_keys=True) + "\n")


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
    threads: Annotated[int | None, typer.Option(
        min=1, max=MAX_THREADS, help="CPU threads for torch.")] = None,
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
        err("note: training on the CPU takes days at this size; pass --device cuda")
    err(f"== pretraining {job.what}: {job.spec.steps} steps x {job.spec.batch_size} images on "
         f"{len(job.labels)} training images, {device} -> {job.out}")
    try:
        with _PretrainBar() as bar:
            res = run_pretrain(job, device=device, checkpoint_every=checkpoint_every,
                               progress=bar.update, say=err)
    except KeyboardInterrupt as e:
        step = _pretrain_checkpoint_step(job.out)
        raise InterruptedRun("interrupted; rerun the same command to resume from step "
                             f"{step}" + (" (its last checkpoint)" if step else ""),
                             143 if isinstance(e, Terminated) else 130) from None
    default = task_cls(cfg).default_model_dir(exclude_class)  # type: ignore[attr-defined]
    if res.out != default:
        field = "task.model" if exclude_class is None else "task.oracle"
        err(f"   use it with: ubench run --task {task} --set {field}={res.out} ...")
    else:
        err(f"   `ubench run --task {task}` finds it ({res.out})")


def _pretrain_checkpoint_step(out: Any) -> int:
    from ubench.store.checkpoint import Checkpoint
    from ubench.training.pretrain import work_folder

    return Checkpoint(work_folder(Path(out))).step()


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
                err(f"pretrain step {step}/{total} ({pct}%) {info} {shown}{eta}".rstrip())
