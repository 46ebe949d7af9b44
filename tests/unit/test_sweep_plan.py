"""Sweep plans: expansion, identities, suites, the shipped plans, and bad plans refused with their
line and the fix before anything runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY
from ubench.core.errors import ConfigError, MissingExtraError, PlanError
from ubench.run import identity
from ubench.sweep import load_plan, make_item, parse_plan
from ubench.sweep.executors import make_executor, require_extra


def write(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_the_tiny_plan_expands_to_its_runs_with_the_runners_identities() -> None:
    items = load_plan(ROOT / "plans" / "tiny.toml").specs()
    assert [(i.method, i.seed) for i in items] == [("ga", 0), ("graddiff", 0), ("ga", 1),
                                                   ("graddiff", 1)]
    for item in items:
        assert item.task == TINY and item.block == "main"
        assert item.overrides == ("method.steps=4", "method.batch_size=16")
        spec = identity.resolve(item.method, item.task, item.seed, list(item.overrides))
        assert item.run_id == spec.run_id
        assert item.method_config == spec.method_config.to_dict()
        assert item.command() == (f"ubench run --method {item.method} --task {TINY} --seed "
                                  f"{item.seed} --set method.steps=4 --set method.batch_size=16 "
                                  "--threads 1")


def test_grids_blocks_defaults_keys_only_where_they_exist_and_duplicates(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """
        [defaults]
        tasks = ["digits-class-tiny"]
        seeds = [0, 1]
        task.forget_class = [0, 3]

        [blocks.grid]
        methods = ["base", "ga"]
        method.lr = [1e-4, 3e-4]      # base has no lr: one base row per class and seed
        method.steps = 4

        [blocks.again]                # every run of it is already in "grid"
        methods = ["ga"]
        seeds = [1]
        method.lr = 3e-4
        method.steps = 4
    """))
    items = plan.specs()
    assert len(items) == 2 * 2 * (1 + 2)  # classes x seeds x (base + ga x lr)
    assert plan.duplicates == 2  # "again" at classes 0 and 3
    ga = [i for i in items if i.method == "ga"]
    assert {i.overrides for i in ga} == {
        (f"task.forget_class={c}", f"method.lr={lr}", "method.steps=4")
        for c in (0, 3) for lr in ("0.0001", "0.0003")}
    base = [i for i in items if i.method == "base"]
    assert all(not any(o.startswith("method.") for o in i.overrides) for i in base)
    assert items[0].task_config["forget_class"] == 0 and items[-1].task_config["forget_class"] == 3


def test_suites_select_blocks_and_values(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [defaults]
        tasks = "digits-class-tiny"
        seeds = [0, 1, 2]

        [blocks.a]
        methods = ["ga", "graddiff"]

        [blocks.b]
        methods = "base"

        [suites]
        just-b = ["b"]

        [suites.first-ga]
        blocks = ["a"]
        methods = ["ga"]
        seeds = [0, 1]
        task.forget_class = [0]     # the default: kept
    """)
    assert len(load_plan(path).specs()) == 9
    assert {i.method for i in load_plan(path, suite="just-b").specs()} == {"base"}
    first = load_plan(path, suite="first-ga").specs()
    assert [(i.method, i.seed) for i in first] == [("ga", 0), ("ga", 1)]
    with pytest.raises(PlanError, match=r"unknown suite 'frist-ga'.*Did you mean 'first-ga'"):
        load_plan(path, suite="frist-ga")


def test_methods_all_means_every_method_that_fits_each_task(tmp_path: Path) -> None:
    items = load_plan(write(tmp_path, """
        methods = "all"
        tasks = ["digits-class-tiny"]
        method.steps = 2
    """)).specs()
    assert [i.method for i in items] == identity.methods_for(TINY)


def test_make_item_is_the_resolve_of_one_run() -> None:
    item = make_item("ga", TINY, 3, ["method.steps=2"], block="tune")
    assert item.run_id == identity.resolve("ga", TINY, 3, ["method.steps=2"]).run_id
    assert item.to_dict()["command"].startswith("ubench run --method ga")


BAD = {
    "malformed": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"
        seeds = [0]
        """, 3, "not valid TOML"),
    "unknown method": ("""
        tasks = ["digits-class-tiny"]
        methods = ["ga",
                   "boostalgn"]
        """, 3, "unknown method 'boostalgn'. Did you mean 'boostalign'"),
    "unknown method key": ("""
        methods = ["ga", "graddiff"]
        tasks = ["digits-class-tiny"]
        method.lrr = [1e-4]
        """, 3, "unknown key 'lrr'. Did you mean 'lr'?"),
    "unknown task key": ("""
        [defaults]
        tasks = ["digits-class-tiny"]
        [blocks.x]
        methods = ["ga"]
        task.forget_clas = 2
        """, 5, "unknown key 'forget_clas'. Did you mean 'forget_class'"),
    "unknown plan key": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        seed = 0
        """, 3, "unknown plan key 'seed'. Did you mean 'seeds'?"),
    "wrong type in a grid": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        method.lr = [
            1e-4,
            "fast",
        ]
        """, 5, 'method ga.lr must be a number; got "fast"'),
    "float for an integer": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        task.forget_class = [0, 2.5]
        """, 3, "task digits-class-tiny.forget_class must be an integer; got 2.5"),
    "out of bounds": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        task.forget_class = [0, 12]
        """, 3, "forget_class must be in 0..9; got 12"),
    "not a choice": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        task.remain_policy = "three-class"
        """, 3, "must be one of 'balanced', 'two-class'"),
    "empty plan": ("""
        description = "nothing yet"
        """, None, "the plan defines no runs"),
    "empty methods": ("""
        methods = []
        tasks = ["digits-class-tiny"]
        """, 1, "methods is empty"),
    "no tasks": ("""
        [blocks.x]
        methods = ["ga"]
        """, 1, "block 'x' has no tasks: add tasks"),
    "bad seed": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        seeds = [0, -1]
        """, 3, "seeds must be integers in 0..2147483647"),
    "keys beside blocks": ("""
        methods = ["ga"]
        [blocks.x]
        tasks = ["digits-class-tiny"]
        """, 1, "move it into [defaults]"),
    "unknown attack": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        attacks = ["relearn", "relarn"]
        """, 3, "unknown attack 'relarn'. Did you mean 'relearn'"),
    "attack key without attacks": ("""
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        attack.lr = 1e-3
        """, 3, "attack.lr without attacks: add attacks"),
    "unknown attack key": ("""
        [defaults]
        tasks = ["digits-class-tiny"]
        attacks = ["relearn", "invert"]
        [blocks.x]
        methods = ["ga"]
        attack.lrr = 1e-3
        """, 6, "unknown key 'lrr'. Did you mean 'lr'"),
    "suite of an unknown block": ("""
        [defaults]
        tasks = ["digits-class-tiny"]
        [blocks.main-grid]
        methods = ["ga"]
        [suites]
        quick = ["main-gird"]
        """, 6, "unknown block 'main-gird'. Did you mean 'main-grid'?"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_plans_name_their_line_and_the_fix(case: str, tmp_path: Path) -> None:
    text, line, needle = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(PlanError) as err:
        load_plan(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
    assert needle in message, message
    assert "\n" not in message


def test_a_pair_that_cannot_run_names_its_block(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [defaults]
        tasks = ["digits-class-tiny"]

        [blocks.ok]
        methods = ["ga"]

        [blocks.cross-attention]
        methods = ["esd-x"]
    """)
    plan = load_plan(path)  # ids and keys are fine; the pair is checked by the resolve
    with pytest.raises(PlanError, match=rf"^{path}:7: block 'cross-attention', run esd-x "
                       r"digits-class-tiny seed 0: method 'esd-x' cannot run on task"):
        plan.specs()


def test_a_missing_file_and_a_plan_without_text() -> None:
    with pytest.raises(PlanError, match=re.escape(
            "plan file nowhere.toml not found; the shipped plans are in the repository's plans/ "
            "folder")):
        load_plan("nowhere.toml")
    with pytest.raises(PlanError, match=r"^<plan>: unknown method 'nope'"):
        parse_plan({"methods": ["nope"], "tasks": [TINY]})


def test_a_bad_plan_fails_on_the_command_line_before_torch_and_before_the_store(
        tmp_path: Path) -> None:
    path = write(tmp_path, """
        methods = ["ga"]
        tasks = ["digits-class-tiny"]
        method.lr = ["fast"]
    """)
    store = tmp_path / "store"
    code = ("import sys; sys.argv = ['ubench', 'sweep', sys.argv[1], '--store', sys.argv[2]]\n"
            "from ubench.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(store)],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [f'error: {path}:3: method ga.lr must be a number; got "fast"'], lines
    assert not store.exists()


def test_options_of_another_executor_are_usage_errors(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "sweep",
                           str(ROOT / "plans" / "tiny.toml"), "--partition", "gpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("error: --partition applies to --on slurm, "
                                                    "not --on local")
    with pytest.raises(ConfigError, match=r"address do\(es\) not apply to --on local"):
        make_executor("local", address="auto")
    with pytest.raises(ConfigError, match="Slurm gives whole GPUs"):
        make_executor("slurm", gpus=0.5)


@pytest.mark.parametrize(("on", "module", "extra"), [("ray", "ray", "ray"),
                                                     ("slurm", "submitit", "slurm")])
def test_a_missing_extra_is_one_line_with_the_install_command(
        on: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingExtraError) as err:
        require_extra(on)
    assert str(err.value) == (f"--on {on} needs {module}, which is not installed: "
                              f"pip install 'ubench[{extra}]'")


# ------------------------------------------------------------------------ the shipped plans
def _identity(method: str, task_config: dict, method_config: dict, seed: int) -> str:
    return json.dumps([method, task_config, method_config, seed], sort_keys=True)


def _leaderboard(task_prefix: str) -> set[str]:
    """The leaderboard's runs (not the fair protocol's tuning runs), their task and method
    configs completed with today's defaults for keys added since they were made (``eval_split``:
    ``test``; the gradient family's ``batching``: ``independent``, ``threshold_unit``:
    ``absolute``, which is what those runs did)."""
    from ubench.catalog.registry import METHODS, TASKS
    from ubench.store.reader import load_records

    out = set()
    for rec in load_records(ROOT / "leaderboard" / "records"):
        if not rec["task"]["id"].startswith(task_prefix) or \
                (rec.get("protocol") or {}).get("role") == "tuning":
            continue
        defaults = TASKS.get(rec["task"]["id"]).Config().to_dict()
        added = {k: v for k, v in METHODS.get(rec["method"]["id"]).Config().to_dict().items()
                 if k in ("batching", "threshold_unit")}
        out.add(_identity(rec["method"]["id"], {**defaults, **rec["task"]["config"]},
                          {**added, **rec["method"]["config"]}, rec["seed"]))
    return out


@pytest.mark.parametrize(("plan", "runs"), [("digits", 135), ("t2i", 105), ("tune-digits", 28),
                                            ("tune-t2i", 14), ("tiny", 4)])
def test_the_shipped_plans_load(plan: str, runs: int) -> None:
    assert len(load_plan(ROOT / "plans" / f"{plan}.toml").specs()) == runs


def test_a_plan_whose_weights_are_missing_names_the_download() -> None:
    """A run's identity includes the digests of its assets, so a Stable Diffusion plan resolves
    only where the weights are; elsewhere it is one line with the download (from its block)."""
    plan = load_plan(ROOT / "plans" / "sd.toml")  # the file itself is checked without weights
    from ubench.core.hub import cached_snapshot

    if cached_snapshot("CompVis/stable-diffusion-v1-4", ["unet/*"]) is not None:
        pytest.skip("Stable Diffusion is on this machine")
    with pytest.raises(PlanError, match=r"sd\.toml:\d+: block .*hf download CompVis"):
        plan.specs()


def test_the_digits_plan_is_the_committed_digits_leaderboard() -> None:
    """Every run of plans/digits.toml has its record in leaderboard/records (same method, task
    config, method config, seed): the committed plan is the runs that made the leaderboard."""
    items = load_plan(ROOT / "plans" / "digits.toml").specs()
    planned = {_identity(i.method, dict(i.task_config), dict(i.method_config), i.seed)
               for i in items}
    assert planned <= _leaderboard("digits-class")
    engines = load_plan(ROOT / "plans" / "digits.toml", suite="bench-engines").specs()
    assert len(engines) == 8 and {i.seed for i in engines} == {0}


def test_the_t2i_plans_are_the_committed_t2i_leaderboard() -> None:
    """The t2i leaderboard's records are all runs of plans/t2i.toml or of the fair protocol's
    plans/protocol-t2i.toml (whose runs the robustness plan attacks)."""
    from ubench.catalog.presets import PRESET_DIR

    tuned = json.loads((PRESET_DIR / "tuned.json").read_text())["tasks"]
    if not {"t2i-style", "t2i-object"} <= set(tuned):
        pytest.skip("protocol v2 tunes t2i-style and t2i-object on their own cells; their "
                    "presets are not committed yet, so plans/protocol-t2i.toml cannot resolve")
    t2i = {_identity(i.method, dict(i.task_config), dict(i.method_config), i.seed)
           for plan in ("t2i", "protocol-t2i")
           for i in load_plan(ROOT / "plans" / f"{plan}.toml").specs()}
    assert _leaderboard("t2i-") <= t2i


def test_attacks_in_a_plan_ride_with_every_run_of_their_block(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [defaults]
        tasks = ["digits-class-tiny"]
        method.steps = 4

        [blocks.attacked]
        methods = ["ga"]
        attacks = ["relearn", "invert"]
        attack.budgets = [0, 2]
        attack.samples = 4

        [blocks.plain]
        methods = ["graddiff"]
    """)
    attacked, plain = load_plan(path).specs()
    assert attacked.attacks == ("relearn", "invert")
    assert attacked.attack_sets == ("attack.budgets=0,2", "attack.samples=4")
    assert attacked.command().endswith("--attacks relearn,invert --set attack.budgets=0,2 "
                                       "--set attack.samples=4 --threads 1")
    assert plain.attacks == () and "--attacks" not in plain.command()
    # the run's identity does not depend on its attacks
    assert attacked.run_id == identity.resolve("ga", TINY, 0, ["method.steps=4"]).run_id


def test_an_attack_that_does_not_fit_the_task_names_its_block(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [defaults]
        tasks = ["digits-class-tiny"]

        [blocks.prompts]
        methods = ["ga"]
        attacks = ["softprompt"]
    """)
    with pytest.raises(PlanError, match=rf"^{path}:4: block 'prompts', run ga digits-class-tiny "
                       r"seed 0: .*softprompt"):
        load_plan(path).specs()


def test_a_worker_stopped_while_starting_reports_interrupted_not_failed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM can land while a worker still imports torch (before its run's own handling): the
    sweep must hear "interrupted" (rerun resumes), not "failed" with a traceback."""
    import signal

    from ubench.core.errors import Terminated
    from ubench.sweep import worker

    def stopped(self: worker.Job) -> worker.Outcome:
        raise Terminated()

    monkeypatch.setattr(worker.Job, "run", stopped)
    old = signal.getsignal(signal.SIGTERM)
    job = worker.Job(method="ga", task="digits-class-tiny", seed=0, overrides=(), run_id="abc",
                     store="unused")
    try:
        assert worker.main([json.dumps(job.to_dict())]) == 0
    finally:
        signal.signal(signal.SIGTERM, old)
    line = capsys.readouterr().out.strip()
    outcome = worker.Outcome.from_dict(json.loads(line.removeprefix(worker.OUTCOME_MARK)))
    assert outcome.status == "interrupted" and outcome.run_id == "abc"


def test_a_plan_whose_blocks_together_exceed_the_limit_is_refused(tmp_path: Path) -> None:
    """Two blocks of 6,000 runs each: each under the limit, the plan over it."""
    seeds = list(range(2000))
    block = f'methods = ["ga"]\ntasks = ["digits-class"]\nseeds = {seeds}\nmethod.lr = [1, 2, 3]\n'
    path = write(tmp_path, f"[blocks.a]\n{block}[blocks.b]\n{block}")
    with pytest.raises(PlanError, match="its 2 blocks expand to 12,000 runs, more than the 10,000"):
        load_plan(path)


def test_an_event_hook_that_raises_does_not_stop_the_runs(tmp_path: Path) -> None:
    """A progress hook with the wrong signature killed the executor's worker threads, and every
    run of the sweep then 'failed' with no result: the hook is dropped with a warning instead."""
    from ubench.sweep import run_items
    from ubench.sweep.executors import Outcome

    items = [make_item("ga", TINY, seed, []) for seed in (0, 1)]

    class Stub:
        name = "stub"

        def run(self, jobs: list, events: object) -> list:
            out = []
            for job in jobs:
                events.started(job)  # type: ignore[attr-defined]
                done = Outcome(job.run_id, "ok", seconds=0.0)
                events.finished(job, done)  # type: ignore[attr-defined]
                out.append(done)
            return out

    def bad_hook(event: str) -> None:  # one argument: the hook is called with three
        raise AssertionError("never reached")

    with pytest.warns(RuntimeWarning, match="event hook failed"):
        result = run_items(items, executor=Stub(), store=tmp_path / "s",
                           on_event=bad_hook)  # type: ignore[arg-type]
    assert [o.status for o in result.outcomes] == ["ok", "ok"]
