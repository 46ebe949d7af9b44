"""``ubench sweep`` (a plan of runs on a local pool, Ray or Slurm) and ``ubench tune`` (the fair
protocol's equal-budget tuning)."""

from __future__ import annotations

import json
import os
from enum import Enum
from typing import Annotated, Any

import typer

from ubench.cli.app import app, err
from ubench.core.config import MAX_THREADS
from ubench.core.errors import ConfigError, UbenchError


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
        min=1, max=MAX_THREADS, help="Runs at once (default: the CPU count for local and a "
                    "local Ray cluster; all for an existing Ray cluster; no cap on Slurm).")
                                 ] = None,
    store: Annotated[str | None, typer.Option(
        help="Results folder (default $UBENCH_STORE or ./results).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the runs and what is already done; run nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs and outcomes as JSON "
                                          "on stdout.")] = False,
    threads: Annotated[int, typer.Option(
        min=1, max=MAX_THREADS, help="torch threads per run (recorded).")] = 1,
    device: Annotated[str | None, typer.Option(
        help="cpu, cuda, ... (default: cuda with --gpus, else cpu).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        min=0, help="Checkpoint every N steps (0: never).")] = 50,
    retries: Annotated[int, typer.Option(
        min=0, max=100,
        help="New starts of a run whose worker died (killed, lost node, pre-empted).")
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
        min=1, max=525_600, help="--on slurm: minutes per job (default 240; a job that "
                    "reaches it is requeued and resumes).")] = None,
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
    if address and not dry_run:
        from ubench.sweep.executors import check_ray_address

        check_ray_address(address)  # in seconds, before the plan's runs are resolved
    loaded = load_plan(plan, suite)  # a bad plan fails here, before torch is imported
    items = loaded.specs()
    from rich.console import Console

    from ubench.core.paths import store_root
    from ubench.store.runs import usable_store
    from ubench.sweep.view import SweepView, plan_table, summary

    console = Console(stderr=True, soft_wrap=True)
    if not console.is_terminal:  # a log file: whole lines, tables never folded
        console = Console(stderr=True, soft_wrap=True, width=10_000)
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
        err(f"{loaded.source}{chosen}: {len(items)} runs{dup}: {counts['todo']} to run, "
             f"{counts['partial']} to resume{attacked}, {counts['done']} finished, "
             f"{counts['failed']} "
             f"failed before" + (f", {counts['corrupt']} with a corrupt record"
                                 if counts["corrupt"] else "") + f" (store {root})")
        return
    usable_store(root)
    n_workers = workers or (os.cpu_count() or 1)
    err(f"sweep {loaded.source}{chosen}: {len(items)} runs{dup} on {on.value}, store {root}")
    with SweepView(len(items), n_workers, console) as view:
        result = run_items(items, executor=on.value, workers=workers, store=root,
                           threads=threads, device=device, checkpoint_every=checkpoint_every,
                           retries=retries, retry_failed=retry_failed, on_event=view.event,
                           **options)
    summary(result, console)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    if not result.ok:
        raise UbenchError(f"{len(result.failures)} of {len(result.items)} runs failed (table "
                          "above); the other records are kept: fix the cause and rerun the "
                          "same command")


@app.command()
def tune(
    method: Annotated[str, typer.Option(
        help="Method id, several joined by commas, or 'all' for every method with a tuning "
             "space that fits the task.")],
    task: Annotated[str, typer.Option(help="Task id (one with tuning cells and a rule).")],
    workers: Annotated[int | None, typer.Option(
        min=1, max=MAX_THREADS,
        help="Runs at once on this machine (default: the CPU count).")] = None,
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
      ubench tune --method boostalign,graddiff --task t2i-style --workers 2
    """
    from rich.console import Console

    from ubench.catalog.registry import METHODS
    from ubench.core.paths import store_root
    from ubench.run.identity import methods_for
    from ubench.sweep import item_state, run_items
    from ubench.sweep.tune import tune as run_tune
    from ubench.sweep.tune import tuning_items
    from ubench.sweep.view import SweepView, plan_table, summary

    methods = ([m for m in methods_for(task) if METHODS.get(m).search_space]
               if method == "all" else [m.strip() for m in method.split(",") if m.strip()])
    for m in methods:
        METHODS.get(m)  # an unknown id: one line naming the nearest ones
    root = store_root(store)
    console = Console(stderr=True, soft_wrap=True)
    if dry_run:
        items = tuning_items(methods, task)
        states = [item_state(i, root) for i in items]
        table = Console(soft_wrap=True)
        if not table.is_terminal:  # a file or a pipe: whole lines, never folded
            table = Console(soft_wrap=True, width=10_000)
        table.print(plan_table(items, states))
        done = sum(s.kind == "done" for s in states)
        err(f"tune {task}: {len(items)} tuning runs of {len(methods)} methods, {done} "
             f"finished (store {root})")
        return
    failed: list[Any] = []

    def sweep_items(items: list[Any]) -> None:
        n = workers or (os.cpu_count() or 1)
        err(f"tune {task}: {len(items)} tuning runs of {len(methods)} methods, store {root}")
        with SweepView(len(items), n, console) as view:
            result = run_items(items, executor="local", workers=workers, store=root,
                               on_event=view.event)
        summary(result, console)
        failed.extend(result.failures)

    section = run_tune(methods, task, store=root, out=out, run=sweep_items)
    rule = section["rule_text"]
    err(f"rule: {rule}" + ("" if section["target_all_families"] else
                            " (no target of the ladder is reached by every family)"))
    for m, entry in section["methods"].items():
        values = ", ".join(f"{k}={v}" for k, v in entry["values"].items())
        chosen = next(p for p in entry["points"] if p["values"] == entry["values"])
        shown = ", ".join(f"{k} {chosen['metrics'][k]:.3f}"
                          for k in (section["rule"]["forget"], section["rule"]["keep"])
                          if k in chosen["metrics"])
        flag = "" if entry["reached"] else "  (no point reached the target)"
        err(f"  {m:<12} {values}  ->  {shown}{flag}")
    if failed:
        raise UbenchError(f"{len(failed)} tuning runs failed (table above); the preset was "
                          "written from the others — fix the cause and rerun to complete it")
