"""``ubench run`` and ``ubench attack``: one run (or a row per method), then its attacks."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ubench.cli.app import app, err, watch
from ubench.core.config import MAX_SEED, MAX_THREADS
from ubench.core.errors import ConfigError, InterruptedRun, StoreError, UbenchError

#: options ``run``, ``eval`` and ``attack`` share
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the record JSON on stdout.")]
#: ``--limit N`` of ``run`` and ``eval``
LimitOption = Annotated[int | None, typer.Option(
    help="Quick run: cap the task's sizes at N (every prompt set on sd-* and t2i-*, the "
         "generations per class on digits and cifar10); part of the run's identity.")]


@app.command()
def run(
    method: Annotated[str, typer.Option(
        help="Method id, a comma list (ga,graddiff), or 'all' for every method that fits.")],
    task: Annotated[str, typer.Option(
        help="Task id or a comma list (t2i-style,t2i-object); see `ubench list tasks`.")],
    seed: Annotated[int, typer.Option(
        min=0, max=MAX_SEED, help="Run seed: data subsets, noise, batches.")] = 0,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override, e.g. method.remain_weight=5 or task.forget_class=3.")] = None,
    force: Annotated[bool, typer.Option(help="Redo a finished run.")] = False,
    as_json: JsonOption = False,
    store: Annotated[str | None, typer.Option(
        help="Results folder (default $UBENCH_STORE or ./results).")] = None,
    device: DeviceOption = "cpu",
    checkpoint_every: Annotated[int, typer.Option(
        min=0, help="Checkpoint every N steps (0: never).")] = 50,
    threads: Annotated[int | None, typer.Option(
        min=1, max=MAX_THREADS, help="CPU threads for torch (default: torch's choice). "
                    "Recorded; results can differ in the last bits between thread counts. Two "
                    "1-thread runs side by side beat one 2-thread run on small models.")] = None,
    limit: LimitOption = None,
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
      ubench run --method ga,graddiff --task t2i-style,t2i-object --preset tuned
    """
    from ubench.catalog import fastcheck

    sets, attack_sets = _split_attack_sets(list(set_ or []))
    outputs: list[dict[str, Any]] = []
    failed: list[str] = []
    try:
        chain = _attack_names(attacks)
        if attack_sets and not chain:
            raise ConfigError("--set attack.KEY=VALUE needs --attacks NAME[,NAME] (or use "
                              "`ubench attack RUN --attack NAME`)")
        task_sets = _checked_tasks(method, task, sets, limit, chain, attack_sets, threads)
        from ubench.run.identity import methods_for, resolve_many
        from ubench.run.job import run_job

        specs = []
        for t in task_sets:
            methods = methods_for(t) if method == "all" else fastcheck.split_ids(method, "method")
            specs += resolve_many(methods, t, seed, task_sets[t], preset)
            if chain:
                _check_chain(chain, specs[-1].task_cls, attack_sets)
        for spec in specs:
            err(f"== {spec.method_cls.name} on {spec.task_cls.name} (seed {spec.seed}, "
                f"run {spec.run_id})")
            try:
                job = run_job(spec, chain, attack_sets, store=store, force=force, device=device,
                              checkpoint_every=checkpoint_every, watch=watch(),
                              keep_going=True)
            except (InterruptedRun, StoreError):  # stop everything: the next run would too
                raise
            except UbenchError as e:
                if len(specs) == 1:
                    raise
                err(f"error: {spec.method_cls.name} on {spec.task_cls.name}: {e}")  # carry on
                failed.append(spec.method_cls.name)
                outputs.append({"status": "error", "method": spec.method_cls.name,
                                "run_id": spec.run_id, "error": str(e)})
                continue
            outputs.append(job.run.record)
            for name, att in job.attacks.items():
                job.run.record.setdefault("attacks", {})[name] = att.record
            for name, problem in job.failed:
                if len(specs) == 1 and len(chain) == 1:
                    raise problem
                err(f"error: {name} on {spec.method_cls.name}: {problem}")
                failed.append(f"{name} on {spec.method_cls.name}")
    except UbenchError as e:
        if as_json:
            _print_json(outputs, {"status": "error", "error": str(e)})
        raise
    if as_json:
        _print_json(outputs)
    if failed:
        raise UbenchError(f"{len(failed)} of {len(outputs)} methods or attacks failed "
                          f"({', '.join(failed)}); their errors are above, the other records "
                          "were written")


@app.command("eval")
def eval_(
    task: Annotated[str, typer.Option(
        help="Task id or a comma list (each model is scored on each); see `ubench list "
             "tasks`.")],
    model: Annotated[list[str], typer.Option(
        help="The model to score (repeatable): a diffusers UNet or pipeline folder, a "
             ".safetensors file, an original-format .ckpt/.pt (tensors only), a ubench run id "
             "or folder, or a Hugging Face id in the local cache.")],
    name: Annotated[list[str] | None, typer.Option(
        help="The row's name in the report, one per --model in order (default: the file or "
             "folder name; for a run, its method and id).")] = None,
    seed: Annotated[int, typer.Option(
        min=0, max=MAX_SEED, help="Run seed (the task's request; evaluation seeds are the "
                                  "task's own).")] = 0,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Task override, e.g. task.forget_class=3.")] = None,
    force: Annotated[bool, typer.Option(help="Score again a model already scored.")] = False,
    as_json: JsonOption = False,
    store: Annotated[str | None, typer.Option(
        help="Results folder (default $UBENCH_STORE or ./results); also where run ids are "
             "looked up.")] = None,
    device: DeviceOption = "cpu",
    threads: Annotated[int | None, typer.Option(
        min=1, max=MAX_THREADS, help="CPU threads for torch (default: torch's choice).")] = None,
    limit: LimitOption = None,
    attacks: Annotated[str | None, typer.Option(
        help="Attack each scored model with these attacks, comma-separated; --set "
             "attack.KEY=VALUE applies to those that have KEY.")] = None,
) -> None:
    """Score models ubench did not make on TASK, with the task's own metrics, samples, seeds
    and judges, exactly as a run's evaluation; one record each (the row `external` in the
    report, named by --name). The weights must fit the task's base architecture; they are
    checked before anything is sampled. The record's identity is the task's plus the model's
    content digest: the same weights in another folder or layout are the same record.

    Examples:
      ubench eval --task t2i-attribute --model ./my-unlearned-unet
      ubench eval --task sd-nudity --model esd-u.safetensors --model salun.ckpt --limit 8
      ubench eval --task digits-class --model 3f2a91c0b4d2 --name "boostalign, re-scored"
    """

    sets, attack_sets = _split_attack_sets(list(set_ or []))
    outputs: list[dict[str, Any]] = []
    try:
        chain = _attack_names(attacks)
        if attack_sets and not chain:
            raise ConfigError("--set attack.KEY=VALUE needs --attacks NAME[,NAME]")
        if name and len(name) > len(model):
            raise ConfigError(f"{len(name)} --name values for {len(model)} --model values; "
                              "give at most one name per model, in order")
        if any(s.strip().startswith("method.") for s in sets):
            raise ConfigError("ubench eval scores a given model: it has no method.KEY to set "
                              "(task.KEY only)")
        # ("base": checks the task's overrides; eval has no method to check)
        task_sets = _checked_tasks("base", task, sets, limit, chain, attack_sets, threads)
        from ubench.run.external import resolve_eval, source_line
        from ubench.run.job import run_job

        specs = []
        for t in task_sets:
            specs += resolve_eval(t, model, seed=seed, overrides=task_sets[t], store=store,
                                  names=name or (), say=err)
            if chain:
                _check_chain(chain, specs[-1].task_cls, attack_sets)
        for spec in specs:
            err(f"== {source_line(spec)} on {spec.task_cls.name} (run {spec.run_id})")
            job = run_job(spec, chain, attack_sets, store=store, force=force, device=device,
                          watch=watch())
            outputs.append(job.run.record)
            for att_name, att in job.attacks.items():
                job.run.record.setdefault("attacks", {})[att_name] = att.record
    except UbenchError as e:
        if as_json:
            _print_json(outputs, {"status": "error", "error": str(e)})
        raise
    if as_json:
        _print_json(outputs)


@app.command()
def attack(
    run_ref: Annotated[str, typer.Argument(
        metavar="RUN", help="A run id (or a unique prefix) in the store, or a run folder.")],
    attack_name: Annotated[str, typer.Option(
        "--attack", help="Attack id; see `ubench list attacks`.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override, e.g. attack.lr=1e-3 or attack.budgets=0,50,500.")] = None,
    seed: Annotated[int | None, typer.Option(
        min=0, max=MAX_SEED, help="Attack seed (default: the run's seed).")] = None,
    force: Annotated[bool, typer.Option(help="Redo a finished attack.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the attack record on stdout.")
                       ] = False,
    store: Annotated[str | None, typer.Option(
        help="Results folder holding the run (default $UBENCH_STORE or ./results).")] = None,
    device: DeviceOption = "cpu",
    checkpoint_every: Annotated[int, typer.Option(
        min=0, help="Checkpoint every N steps (0: only at budgets).")] = 50,
    threads: Annotated[int | None, typer.Option(
        min=1, max=MAX_THREADS, help="CPU threads for torch (default: torch's choice).")] = None,
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
        from ubench.run.job import attack_one

        res = attack_one(attack_name, run_ref, seed=seed, sets=sets, store=store, force=force,
                         device=device, checkpoint_every=checkpoint_every, watch=watch())
    except UbenchError as e:
        if as_json:
            print(json.dumps({"status": "error", "error": str(e)}, indent=2, sort_keys=True))
        raise
    if as_json:
        print(json.dumps(res.record, indent=2, sort_keys=True))


def _print_json(outputs: list[dict[str, Any]], error: dict[str, Any] | None = None) -> None:
    """``--json``: the record (or the list of records, with the error last when one stopped
    the command) on stdout."""
    shown: Any = [*outputs, error] if error and outputs else error or (
        outputs[0] if len(outputs) == 1 else outputs)
    print(json.dumps(shown, indent=2, sort_keys=True))


def _checked_tasks(method: str, task: str, sets: list[str], limit: int | None,
                   chain: list[str], attack_sets: list[str], threads: int | None
                   ) -> dict[str, list[str]]:
    """{task: its --set items with --limit applied} for the tasks of ``--task`` (a comma list),
    every id, override and attack checked before torch loads; torch's thread count set."""
    from ubench.catalog import fastcheck

    tasks = fastcheck.split_ids(task, "task")
    task_sets = {t: fastcheck.limit_override(t, limit, sets) if limit is not None
                 else list(sets) for t in tasks}
    for t in tasks:
        fastcheck.check_run(method, t, task_sets[t])
    if chain:
        fastcheck.check_attacks(chain, attack_sets)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return task_sets


def _split_attack_sets(items: list[str]) -> tuple[list[str], list[str]]:
    """``--set`` items of ``ubench run``: (method/task ones, attack ones)."""
    attack_items = [i for i in items if i.strip().startswith("attack.")]
    return [i for i in items if i not in attack_items], attack_items


def _attack_names(text: str | None) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if len(set(names)) != len(names):
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
