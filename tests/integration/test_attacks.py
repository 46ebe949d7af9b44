"""Attacks end to end on the tiny tasks: every attack where it fits, records, identity, skip,
resume, determinism, reference rows, bad inputs (one line, exit 2), the robustness report."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST, TINY
from ubench.core.errors import AttackTargetError, IncompatibleError, InterruptedRun
from ubench.run import attack as attack_runner
from ubench.run import identity, runner
from ubench.store.reader import load_attack_records
from ubench.store.records import read_attack_record

T2I = "t2i-attribute-tiny"
#: tiny budgets: every attack's loop and measurements run, in seconds
SMALL = {
    "relearn": ["attack.budgets=0,2,4", "attack.samples=8", "attack.batch_size=4"],
    "resurgence": ["attack.budgets=0,3", "attack.samples=8", "attack.batch_size=4"],
    "invert": ["attack.budgets=0,3", "attack.samples=4", "attack.batch_size=4"],
    "softprompt": ["attack.timesteps=2", "attack.iterations=2", "attack.probe_limit=2",
                   "attack.filter_targets=false"],
}


def _run_sets(method: str, task: str = TINY, extra: list[str] | None = None) -> list[str]:
    """The ``--set`` items of the module's fast runs."""
    from ubench.catalog.registry import METHODS

    fields = METHODS.get(method).Config.field_names()
    sets = [f for f in FAST if f.split("=")[0][7:] in fields] + (extra or [])
    if task == T2I and "batch_size" in fields:
        sets = [s for s in sets if not s.startswith("method.batch_size")] + \
            ["method.batch_size=8"]
    return sets


def _run(method: str, task: str, store: Path, extra: list[str] | None = None) -> Path:
    res = runner.run(identity.resolve(method, task, 0, _run_sets(method, task, extra)),
                     store=store)
    assert res.record["status"] == "ok"
    return res.path.parent


def _attack(name: str, run: Path | str, extra: list[str] | None = None, **kw: Any):
    sets = {s.split("=")[0]: s for s in [*SMALL[name], *(extra or [])]}  # extra wins
    spec = attack_runner.resolve_attack(name, run, overrides=list(sets.values()),
                                        store=kw.pop("store", None), seed=kw.pop("seed", None))
    return attack_runner.run_attack(spec, **kw)


def _values(rec: dict) -> dict[str, float]:
    return {k: v["value"] for k, v in rec["metrics"].items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, ubench_home: Path) -> dict[str, Path]:
    """Tiny digits runs (ga, and the two reference rows) and a tiny t2i run, made once."""
    store = tmp_path_factory.mktemp("attacks") / "store"
    return {"ga": _run("ga", TINY, store), "base": _run("base", TINY, store),
            "retrain": _run("retrain", TINY, store), "t2i": _run("graddiff", T2I, store),
            "store": store}


# ---------------------------------------------------------------------- every attack
@pytest.mark.parametrize("name", ["relearn", "resurgence", "invert"])
def test_class_conditional_attacks(name: str, runs: dict[str, Path]) -> None:
    res = _attack(name, runs["ga"])
    rec = res.record
    assert rec["status"] == "ok" and rec["kind"] == "attack"
    assert res.path == runs["ga"] / "attacks" / name / rec["attack_id"] / "attack.json"
    family = {"relearn": "relearn_ua", "resurgence": "resurgence_ua",
              "invert": "invert_rate"}[name]
    budgets = next(b.split("=")[1] for b in SMALL[name] if b.startswith("attack.budgets"))
    assert sorted(rec["metrics"]) == sorted(f"{family}@{b}" for b in budgets.split(","))
    for m in rec["metrics"].values():
        assert 0 <= m["value"] <= 1 and m["n"] == 16 and m["definition"]["judge_sha"]
    assert rec["details"]["forget_metric"] == "ua"
    assert (res.path.parent / "samples.png").is_file()
    read_attack_record(res.path)
    if name != "invert":  # budget 0 is the unlearned model itself: the run's own UA
        run = json.loads((runs["ga"] / "record.json").read_text())
        assert rec["metrics"][f"{family}@0"]["value"] == run["metrics"]["ua"]["value"]
        assert "steps_to_" + name in rec["details"]
    else:
        assert (res.path.parent / "embedding.safetensors").is_file()
    again = _attack(name, runs["ga"])
    assert again.skipped and again.record["attack_id"] == rec["attack_id"]


@pytest.mark.parametrize("name", ["relearn", "invert", "softprompt", "resurgence"])
def test_text_conditioned_attacks(name: str, runs: dict[str, Path]) -> None:
    rec = _attack(name, runs["t2i"]).record
    assert rec["status"] == "ok" and rec["details"]["forget_metric"] == "concept_rate"
    assert all(0 <= m["value"] <= 1 for m in rec["metrics"].values())
    if name == "softprompt":
        assert sorted(rec["metrics"]) == ["softprompt_asr@0", "softprompt_asr@4"]
        assert rec["metrics"]["softprompt_asr@4"]["n"] == 2
        lines = (runs["t2i"] / "attacks" / name / rec["attack_id"] / "prompts.jsonl").read_text()
        found = [json.loads(x) for x in lines.splitlines()]
        assert len(found) == 2 and all(len(f["prefix_ids"] or [0] * 5) == 5 for f in found)
    if name == "relearn":
        run = json.loads((runs["t2i"] / "record.json").read_text())
        assert rec["metrics"]["relearn_concept_rate@0"]["value"] == \
            run["metrics"]["concept_rate"]["value"]


@pytest.mark.parametrize("row", ["base", "retrain"])
def test_reference_rows_are_rebuilt_and_attacked(row: str, runs: dict[str, Path]) -> None:
    run = json.loads((runs[row] / "record.json").read_text())
    assert "model" not in run["artifacts"]  # reference rows save no weights ...
    rec = _attack("relearn", runs[row]).record  # ... they are rebuilt from the cached asset
    assert rec["details"]["attacked_model"].startswith("reference row rebuilt")
    assert rec["metrics"]["relearn_ua@0"]["value"] == run["metrics"]["ua"]["value"]


# ---------------------------------------------------------------------- identity and state
def test_identity_is_run_attack_config_and_seed(runs: dict[str, Path]) -> None:
    def aid(extra: list[str], seed: int | None = None) -> str:
        sets = {s.split("=")[0]: s for s in [*SMALL["relearn"], *extra]}
        return attack_runner.resolve_attack("relearn", runs["ga"], seed=seed,
                                            overrides=list(sets.values())).attack_id

    a = aid([])
    assert aid([]) == a and aid(["attack.lr=1e-4"]) == a
    assert len({a, aid(["attack.lr=1e-3"]), aid([], seed=1)}) == 3
    other = attack_runner.resolve_attack("relearn", runs["retrain"],
                                         overrides=SMALL["relearn"]).attack_id
    assert other != a
    # the run can be named by its folder, its id or a unique prefix of it
    run_id = runs["ga"].name
    for ref in (run_id, run_id[:8]):
        spec = attack_runner.resolve_attack("relearn", ref, overrides=SMALL["relearn"],
                                            store=runs["store"])
        assert spec.run_folder == runs["ga"]


def test_attacks_are_deterministic_given_their_seed(runs: dict[str, Path], tmp_path: Path
                                                    ) -> None:
    copy = tmp_path / "copy" / runs["ga"].relative_to(runs["store"])
    shutil.copytree(runs["ga"], copy, ignore=shutil.ignore_patterns("attacks"))
    first = _attack("invert", runs["ga"]).record
    second = _attack("invert", copy).record
    assert first["attack_id"] == second["attack_id"] and _values(first) == _values(second)
    emb = [(r / "attacks" / "invert" / first["attack_id"] / "embedding.safetensors").read_bytes()
           for r in (runs["ga"], copy)]
    assert emb[0] == emb[1]


def test_interrupted_attack_resumes_bit_for_bit(runs: dict[str, Path], tmp_path: Path) -> None:
    extra = ["attack.budgets=0,3,6"]

    def stop_at_5(step: int, total: int, scalars: dict[str, float]) -> None:
        if step == 5:
            raise KeyboardInterrupt

    copy = tmp_path / "a" / runs["ga"].relative_to(runs["store"])
    shutil.copytree(runs["ga"], copy, ignore=shutil.ignore_patterns("attacks"))
    with pytest.raises(InterruptedRun, match="resume the attack"):
        _attack("relearn", copy, extra, checkpoint_every=2, on_step=stop_at_5)
    assert json.loads(next(copy.glob("attacks/**/checkpoint/state.json")).read_text()
                      )["step"] == 4
    notes: list[str] = []
    resumed = _attack("relearn", copy, extra, checkpoint_every=2, say=notes.append).record
    assert resumed["details"]["train_log"]["resumed_from"] == 4
    assert any("resuming the attack from its checkpoint at step 4" in n for n in notes)
    assert not list(copy.glob("attacks/**/checkpoint"))
    straight = _attack("relearn", runs["ga"], extra, checkpoint_every=0).record
    assert _values(resumed) == _values(straight)


def test_interrupted_softprompt_resumes(runs: dict[str, Path], tmp_path: Path) -> None:
    extra = ["attack.timesteps=3"]

    def stop(step: int, total: int, scalars: dict[str, float]) -> None:
        if step == 3:  # inside the second timestep
            raise KeyboardInterrupt

    copy = tmp_path / "b" / runs["t2i"].relative_to(runs["store"])
    shutil.copytree(runs["t2i"], copy, ignore=shutil.ignore_patterns("attacks"))
    with pytest.raises(InterruptedRun):
        _attack("softprompt", copy, extra, on_step=stop)
    resumed = _attack("softprompt", copy, extra).record
    straight = _attack("softprompt", runs["t2i"], extra).record
    assert _values(resumed) == _values(straight)
    assert resumed["details"]["per_timestep"] == straight["details"]["per_timestep"]


# ---------------------------------------------------------------------- bad inputs
def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the ubench CLI in this process; (exit status, stderr)."""
    from ubench.cli import main as cli_module

    old_argv, old_term = sys.argv, signal.getsignal(signal.SIGTERM)
    sys.argv = ["ubench", *args]
    try:
        cli_module.main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = old_argv
        signal.signal(signal.SIGTERM, old_term)
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err and lines and lines[-1].startswith("error: "), err
    return lines[-1]


def test_bad_inputs_are_one_line_exit_2(runs: dict[str, Path], capsys, tmp_path: Path) -> None:
    store = str(runs["store"])
    cases = [
        (["attack", "0123456789abcdef", "--attack", "relearn", "--store", store], "no run"),
        (["attack", str(tmp_path), "--attack", "relearn"], "not a run folder"),
        (["attack", str(runs["ga"]), "--attack", "softprompt"], "text-conditional"),
        (["attack", str(runs["ga"]), "--attack", "relearn", "--set", "attack.stepz=3"],
         "unknown key 'stepz'"),
        (["attack", str(runs["ga"]), "--attack", "relarn"], "Did you mean 'relearn'"),
        (["run", "--method", "ga", "--task", TINY, "--attacks", "softprompt", "--store",
          str(tmp_path / "s")], "softprompt"),
        (["run", "--method", "ga", "--task", TINY, "--set", "attack.lr=1", "--store",
          str(tmp_path / "s")], "needs --attacks"),
    ]
    for args, needle in cases:
        code, err = cli(capsys, *args)
        assert code == 2, (args, err)
        assert needle in one_line(err), (args, err)
    assert not (tmp_path / "s").exists()  # refused before any run started


def test_failed_run_and_run_without_weights_are_refused(runs: dict[str, Path], tmp_path: Path,
                                                        capsys) -> None:
    failed = tmp_path / "s" / runs["ga"].relative_to(runs["store"])
    shutil.copytree(runs["ga"], failed, ignore=shutil.ignore_patterns("attacks"))
    rec = json.loads((failed / "record.json").read_text())
    (failed / "record.json").write_text(json.dumps({**rec, "status": "failed",
                                                    "error": "loss became nan"}))
    code, err = cli(capsys, "attack", str(failed), "--attack", "relearn")
    assert code == 2 and "did not finish (status failed (loss became nan))" in one_line(err)
    (failed / "record.json").write_text(json.dumps({**rec, "artifacts": {}}))
    with pytest.raises(AttackTargetError, match="saved no model"):
        _attack("relearn", failed)
    rec["method"]["config"]["lr"] = 0.5  # a record this ubench would give another id
    (failed / "record.json").write_text(json.dumps(rec))
    with pytest.raises(AttackTargetError, match="another version of ubench"):
        _attack("relearn", failed)


def test_a_run_made_before_runs_saved_weights_is_remade_for_an_attack(
        runs: dict[str, Path], tmp_path: Path) -> None:
    """`ubench run --attacks` and sweeps with attacks remake such a run in place (same identity,
    same metrics on CPU) instead of failing; without attacks it is left alone."""
    old = tmp_path / "s" / runs["ga"].relative_to(runs["store"])
    shutil.copytree(runs["ga"], old, ignore=shutil.ignore_patterns("attacks", "model"))
    rec = json.loads((old / "record.json").read_text())
    del rec["artifacts"]["model"]
    (old / "record.json").write_text(json.dumps(rec))
    spec = identity.resolve("ga", TINY, 0, _run_sets("ga"))
    assert spec.run_id == rec["run_id"]
    from ubench.sweep.plan import make_item
    from ubench.sweep.run import item_state

    item = make_item("ga", TINY, 0, _run_sets("ga"), attacks=["relearn"])
    state = item_state(item, tmp_path / "s")  # what `ubench sweep --dry-run` shows
    assert (state.kind, state.pending, state.remake) == ("attacks", ("relearn",), True)
    assert runner.run(spec, store=tmp_path / "s").skipped  # nothing asks for the model
    res = runner.run(spec, store=tmp_path / "s", need_model=True)
    assert not res.skipped and res.path == old / "record.json"
    assert res.record["remade"] == {"reason": "no saved model", "metrics_changed": []}
    assert _values(res.record) == _values(rec)
    assert (old / res.record["artifacts"]["model"]).is_dir()
    assert runner.run(spec, store=tmp_path / "s", need_model=True).skipped  # done once
    shutil.rmtree(old / "model")  # a clone of a store committed without the weights
    assert item_state(item, tmp_path / "s").remake
    assert runner.run(spec, store=tmp_path / "s", need_model=True).record["remade"] == \
        {"reason": "no saved model", "metrics_changed": []}
    assert _attack("relearn", old).record["status"] == "ok"


def test_attack_that_does_not_fit_is_refused_before_loading() -> None:
    from ubench.catalog.registry import ATTACKS, TASKS
    from ubench.run.attack import check_attack_fits

    with pytest.raises(IncompatibleError, match=r"Tasks it fits: .*t2i-attribute"):
        check_attack_fits(ATTACKS.get("softprompt"), TASKS.get(TINY))


# ---------------------------------------------------------------------- chain and report
def test_run_chains_attacks_and_report_shows_robustness(tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    sets = [a for s in [*FAST, "attack.budgets=0,2", "attack.samples=4"] for a in ("--set", s)]
    code, err = cli(capsys, "run", "--method", "ga", "--task", TINY, "--store", str(store),
                    "--attacks", "relearn,invert", *sets)
    assert code == 0, err
    assert "relearn_ua@2=" in err and "invert_rate@2=" in err
    code, err = cli(capsys, "run", "--method", "base", "--task", TINY, "--store", str(store),
                    "--attacks", "relearn", *sets[-4:])
    assert code == 0, err
    attacks = load_attack_records(store)
    assert sorted(a["attack"]["id"] for a in attacks) == ["invert", "relearn", "relearn"]
    out = tmp_path / "board"
    code, err = cli(capsys, "report", "--store", str(store), "--out", str(out))
    assert code == 0, err
    text = (out / "robustness.md").read_text()
    assert "relearn\\_ua@2" in text and "ua (plain)" in text and "base *(ref)*" in text
    assert "steps to relearn" in text and "invert\\_rate@0" in text
    assert "robustness.md" in (out / "README.md").read_text()
    csv = (out / "robustness.csv").read_text()
    assert "relearn_ua@2" in csv and "invert_rate@2" in csv
