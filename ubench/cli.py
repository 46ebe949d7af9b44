"""The ``ubench`` command line: a thin layer over :mod:`ubench.runner` and :mod:`ubench.report`.

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
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.exceptions import TyperException

from ubench.errors import InterruptedRun, StoreError, Terminated, UbenchError

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
    from ubench.registry import ATTACKS, METHODS, METRICS, TASKS

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
      ubench run --method ga --task digits-class --attacks relearn,invert
    """
    from ubench import fastcheck

    sets, attack_sets = _split_attack_sets(list(set_ or []))
    outputs: list[dict[str, Any]] = []
    failed: list[str] = []
    try:
        chain = _attack_names(attacks)
        if attack_sets and not chain:
            from ubench.errors import ConfigError

            raise ConfigError("--set attack.KEY=VALUE needs --attacks NAME[,NAME] (or use "
                              "`ubench attack RUN --attack NAME`)")
        if limit is not None:
            sets.append(fastcheck.limit_override(task, limit))
        fastcheck.check_run(method, task, sets)  # bad ids and overrides: refused before torch
        if chain:
            fastcheck.check_attacks(chain, attack_sets)
        from ubench import runner

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        methods = runner.methods_for(task) if method == "all" else [method]
        specs = runner.resolve_many(methods, task, seed, sets)
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
                        progress=bar.update)
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
    from ubench import fastcheck

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
        from ubench.errors import ConfigError

        raise ConfigError(f"--attacks names an attack twice: {text}")
    return names


def _check_chain(names: list[str], task_cls: Any, sets: list[str]) -> None:
    """Refuse attacks that do not fit the task, and bad attack overrides, before any run."""
    from ubench.attack_runner import attack_config, check_attack_fits
    from ubench.config import parse_overrides
    from ubench.registry import ATTACKS

    ov = parse_overrides(sets, scopes=("attack",))["attack"]
    for name in names:
        cls = ATTACKS.get(name)
        check_attack_fits(cls, task_cls)
        attack_config(cls, task_cls, {k: v for k, v in ov.items()
                                      if k in cls.Config.field_names()})


def _attack_one(name: str, run_ref: Any, seed: int | None, sets: list[str], store: str | None,
                force: bool, device: str, checkpoint_every: int, shared: bool = False) -> Any:
    """Resolve and run one attack, with a progress bar and a summary on stderr."""
    from ubench.attack_runner import resolve_attack, run_attack

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
) -> None:
    """Build the leaderboard (Markdown + CSV) from every record in the store.

    Example: ubench report --store results --out leaderboard
    """
    from ubench.report import build_report
    from ubench.store import store_root

    written = build_report(store_root(store), out, say=_err)
    for p in written:
        _err(f"wrote {p}")


def _summary(rec: dict) -> str:
    from ubench.catalog import BUILTIN_METRICS

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
