"""cifar10-class end to end on tiny CIFAR-format data written here in both formats: `ubench
pretrain` killed (kill -9) and resumed to bit-identical weights, every reference row and method
family through the CLI with injected tiny CLIP / Inception networks, and the one-line refusals of
bad inputs and of a machine without the data or the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from ubench.store.records import read_record
from ubench.tasks.cifar10 import data as D

TINY_SETS = ["task.remain_per_class=4", "task.eval_forget=8", "task.eval_remain=18",
             "task.sampling_steps=2", "task.batch_size=64"]
#: per method: what keeps its tiny run short (the cifar10-class recipes are real-size)
METHOD_SETS = {"boostalign": ["method.steps=2", "method.batch_size=8"],
               "graddiff": ["method.steps=2", "method.batch_size=8"],
               "salun": ["method.steps=2", "method.batch_size=8"],
               "rl": ["method.steps=2", "method.batch_size=8"],
               "esd-u": ["method.steps=2", "method.batch_size=2", "method.ddim_steps=4"],
               "base": [], "retrain": []}


def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
        ) -> tuple[int, str, str]:
    """Run the ``ubench`` command line in this process: (exit status, stdout, stderr)."""
    from ubench.cli import main as ubench_cli

    monkeypatch.setattr(sys, "argv", ["ubench", *args])
    capsys.readouterr()
    code = 0
    try:
        ubench_cli.main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("error: "), err
    assert sum(ln.startswith("error:") for ln in lines) == 1, err
    return lines[-1]


def sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """300 synthetic 32x32 images as a binary-release folder and as a parquet file."""
    root = tmp_path_factory.mktemp("cifar")
    x, y = D.synthetic(30, seed=0)
    return {"bin": D.write_binary(root / "cifar-10-batches-bin", x, y),
            "parquet": D.write_parquet(root / "train.parquet", x, y), "root": root}


@pytest.fixture(scope="module")
def models(tiny: dict[str, Path], ubench_home: Path) -> dict[str, Path]:
    """A tiny base model and its oracle without class 0, by ``ubench pretrain``'s code, marked
    as test models (injected evaluators)."""
    from ubench.core.env import fixed_threads
    from ubench.tasks.cifar10.task import Cifar10ClassTiny
    from ubench.testing import inject_test_evaluators
    from ubench.training.pretrain import pretrain

    task = Cifar10ClassTiny(Cifar10ClassTiny.Config(data=str(tiny["bin"])))
    out = {}
    with fixed_threads(1):
        for name, exclude in (("model", None), ("oracle", 0)):
            folder = tiny["root"] / name
            pretrain(task.pretrain_job(exclude, steps=6, out=str(folder)))
            inject_test_evaluators(folder)
            out[name] = folder
    return out


def test_pretrain_killed_then_resumed_is_bit_identical(
        tiny: dict[str, Path], ubench_home: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    from ubench.core.env import fixed_threads
    from ubench.tasks.cifar10.task import Cifar10ClassTiny
    from ubench.training.pretrain import pretrain

    killed = tiny["root"] / "killed"
    args = ["pretrain", "--task", "cifar10-class-tiny", "--set", f"task.data={tiny['parquet']}",
            "--steps", "10", "--checkpoint-every", "3", "--out", str(killed)]
    env = {**os.environ, "UBENCH_FAILPOINT": "pretrain-step:7"}
    first = subprocess.run([sys.executable, "-m", "ubench.cli.main", *args, "--threads", "1"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == -9, first.stderr  # SIGKILL after step 7 (checkpoint at 6)
    assert not killed.exists()
    state = json.loads((Path(f"{killed}.partial") / "checkpoint" / "state.json").read_text())
    assert state["step"] == 6
    with fixed_threads(1):  # the same command again, in this process
        code, _, err = cli(capsys, monkeypatch, *args)
    assert code == 0, err
    assert "resuming" in err and "step 6 of 10" in err
    assert not Path(f"{killed}.partial").exists()

    task = Cifar10ClassTiny(Cifar10ClassTiny.Config(data=str(tiny["bin"])))
    straight = tiny["root"] / "straight"
    with fixed_threads(1):
        pretrain(task.pretrain_job(None, steps=10, out=str(straight)), checkpoint_every=0)
    a = load_file(str(killed / "unet" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(straight / "unet" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    info = json.loads((killed / "pretrain.json").read_text())
    assert info["recipe"]["steps"] == 10 and info["key"]["data"] == task.data.digest
    # the model loads as a cifar10-class base model
    loaded = Cifar10ClassTiny(Cifar10ClassTiny.Config(data=str(tiny["bin"]),
                                                      model=str(killed))).base_model("cpu")
    assert loaded.conditioner.null_id == 10


@pytest.mark.parametrize("method", list(METHOD_SETS))
def test_methods_run_through_the_cli(method: str, tiny: dict[str, Path],
                                     models: dict[str, Path], store: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = "parquet" if method in ("graddiff", "rl", "base") else "bin"
    extra = [f"task.oracle={models['oracle']}"] if method == "retrain" else []
    code, out, err = cli(capsys, monkeypatch, "run", "--method", method, "--task",
                         "cifar10-class", *sets([f"task.data={tiny[fmt]}",
                                                 f"task.model={models['model']}", *TINY_SETS,
                                                 *METHOD_SETS[method], *extra]), "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["status"] == "ok" and set(rec["metrics"]) == {"ua", "ra", "garbage_rate", "fid"}
    ua, ra, fid = (rec["metrics"][k] for k in ("ua", "ra", "fid"))
    assert ua["n"] == 8 and ra["n"] == 18 and fid["n"] == 18
    assert 0 <= ua["value"] <= 1 and 0 <= ra["value"] <= 1 and fid["value"] >= 0
    for m in (ua, ra):
        assert m["definition"]["pretrained"] == "injected"
        assert m["definition"]["labels"][-1] == "random noise"
        assert m["definition"]["sampler"].startswith("DDIM") and m["definition"]["steps"] == 2
    assert fid["definition"]["features_sha"] == "injected"
    assert rec["task"]["assets"]["clip"] == "injected"
    assert set(rec["task"]["inputs"]) >= {"data", "model"}
    assert "injected" in err
    assert rec["request"]["remain"]["size"] == 36 and rec["request"]["forget"]["size"] == 30
    if method == "retrain":
        assert "oracle" in rec["task"]["assets"]
    folder = store / "cifar10-class" / method / rec["run_id"]
    assert read_record(folder / "record.json")["run_id"] == rec["run_id"]  # schema-valid
    assert len((folder / "samples.jsonl").read_text().splitlines()) == 26
    assert (folder / "samples.png").is_file()


def test_two_class_policy_and_dpm_solver(tiny: dict[str, Path], models: dict[str, Path],
                                         store: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = cli(capsys, monkeypatch, "run", "--method", "graddiff", "--task",
                         "cifar10-class", *sets([f"task.data={tiny['bin']}",
                                                 f"task.model={models['model']}", *TINY_SETS,
                                                 "task.forget_class=5",
                                                 "task.remain_policy=two-class",
                                                 "task.sampler=dpm-solver", "task.fid=false",
                                                 *METHOD_SETS["graddiff"]]), "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["request"]["remain"]["classes"] == [3, 6]  # the paper's dog -> cat + frog
    assert rec["request"]["remain"]["per_class"] == [18, 18]
    assert set(rec["metrics"]) == {"ua", "ra", "garbage_rate"}
    assert rec["metrics"]["ua"]["definition"]["sampler"].startswith("DPM-Solver++")


def _home_files(home: Path) -> set[str]:
    return {str(p) for p in home.rglob("*")} if home.exists() else set()


@pytest.mark.parametrize("case", ["pickle", "corrupt", "columns", "class10"])
def test_bad_inputs_are_one_line_and_write_nothing(case: str, tiny: dict[str, Path],
                                                   tmp_path: Path, ubench_home: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    data, needle, extra = str(tiny["bin"]), "", []
    if case == "pickle":
        py = tmp_path / "cifar-10-batches-py"
        py.mkdir()
        (py / "data_batch_1").write_bytes(b"\x80\x04pickle")
        data, needle = str(py), "never unpickles"
    elif case == "corrupt":
        broken = D.write_binary(tmp_path / "bin", *D.synthetic(2))
        (broken / "data_batch_2.bin").write_bytes(b"\x00" * 5000)
        data, needle = str(broken), "not a whole number of 3,073-byte records"
    elif case == "columns":
        wrong = tmp_path / "wrong.parquet"
        pd.DataFrame({"pixels": [b""], "y": [1]}).to_parquet(wrong)
        data, needle = str(wrong), "CIFAR-10 parquet needs 'img'"
    else:
        extra, needle = ["task.forget_class=10"], "forget_class must be in 0..9"
    before = _home_files(ubench_home)
    store = tmp_path / "store"
    code, out, err = cli(capsys, monkeypatch, "run", "--method", "boostalign", "--task",
                         "cifar10-class", "--store", str(store),
                         *sets([f"task.data={data}", *extra]))
    assert code == 2, err
    assert needle in error_line(err)
    assert out == ""
    assert not store.exists(), list(store.rglob("*"))  # not even the store or a lock
    assert _home_files(ubench_home) == before


def test_missing_model_clip_and_pretrain_misuse_are_one_line(
        tiny: dict[str, Path], models: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    base = ["run", "--method", "boostalign", "--task", "cifar10-class", "--store",
            str(tmp_path / "store")]
    code, _, err = cli(capsys, monkeypatch, *base, *sets([f"task.data={tiny['bin']}"]))
    assert code == 1 and "ubench pretrain --task cifar10-class" in error_line(err)
    bare = tmp_path / "no-injection"
    bare.mkdir()
    for f in ("unet", "scheduler", "conditioner.json"):
        os.symlink(models["model"] / f, bare / f)
    code, _, err = cli(capsys, monkeypatch, *base,
                       *sets([f"task.data={tiny['bin']}", f"task.model={bare}"]))
    assert code == 1
    assert "hf download timm/vit_base_patch32_clip_224.openai" in error_line(err)
    code, _, err = cli(capsys, monkeypatch, *base,
                       *sets([f"task.data={tiny['bin']}", f"task.model={tiny['root']}"]))
    assert code == 1 and "not a diffusers model folder" in error_line(err)
    code, _, err = cli(capsys, monkeypatch, "run", "--method", "retrain", "--task",
                       "cifar10-class", "--store", str(tmp_path / "store"),
                       *sets([f"task.data={tiny['bin']}", f"task.model={models['model']}",
                              *TINY_SETS]))
    assert code == 1
    assert "ubench pretrain --task cifar10-class --exclude-class 0" in error_line(err)
    code, _, err = cli(capsys, monkeypatch, "pretrain", "--task", "digits-class")
    assert code == 2 and "applies to: cifar10-class" in error_line(err)
    code, _, err = cli(capsys, monkeypatch, "pretrain", "--task", "cifar10-class",
                       "--set", "method.lr=1")
    assert code == 2 and "scope must be one of task" in error_line(err)
    code, _, err = cli(capsys, monkeypatch, "pretrain", "--task", "cifar10-class-tiny",
                       "--set", f"task.data={tiny['bin']}", "--exclude-class", "10")
    assert code == 2 and "--exclude-class must be in 0..9" in error_line(err)


def test_without_data_or_model_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The acceptance command on a machine without CIFAR-10 or a model (its wall time in a fresh
    process is measured in docs/tasks/cifar10.md, not asserted here)."""
    for var, value in (("HF_HOME", tmp_path / "hf"), ("HF_HUB_CACHE", tmp_path / "hf" / "hub"),
                       ("UBENCH_HOME", tmp_path / "home")):
        monkeypatch.setenv(var, str(value))
    code, out, err = cli(capsys, monkeypatch, "run", "--method", "boostalign", "--task",
                         "cifar10-class", "--store", str(tmp_path / "store"))
    assert code == 1 and out == ""
    line = error_line(err)
    assert "hf download uoft-cs/cifar10" in line and "cifar-10-binary.tar.gz" in line
    assert not (tmp_path / "store" / "cifar10-class").exists()
    assert not (tmp_path / "home").exists()


def test_the_gpu_check_script_runs_on_the_cpu(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("cifar10_gpu", ROOT / "bench/cifar10_gpu.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "gpu.json"
    result = bench.main(["--device", "cpu", "--tiny", "--pretrain-seconds", "0.5",
                         "--unlearn-steps", "2", "--out", str(out)])
    assert json.loads(out.read_text())["tiny"] is True
    assert result["pretrain"]["images_per_second"] > 0
    assert [u["method"] for u in result["unlearn"]] == ["boostalign", "graddiff"]
    assert all(u["median_step_seconds"] > 0 for u in result["unlearn"])


def test_the_table1_plan_loads_and_names_the_download() -> None:
    """plans/cifar10-table1.toml is a sweep plan: checked without the data, expanding to the
    paper's grid; resolving its runs (their identities digest the data) names the download."""
    from ubench.core.errors import PlanError
    from ubench.core.hub import cached_snapshot
    from ubench.sweep.plan import _expand, load_plan

    plan = load_plan(ROOT / "plans" / "cifar10-table1.toml")
    runs = {b.name: len(list(_expand(b))) for b in plan.blocks}
    assert runs == {"table1": 100, "table1-rg": 10, "table3-diversity": 12, "table1-paper": 60}
    table1 = next(b for b in plan.blocks if b.name == "table1")
    assert table1.task["forget_class"] == tuple(range(10))
    assert {"boostalign", "graddiff", "finetune", "salun", "base", "retrain"} <= \
        set(table1.methods)
    assert set(plan.suites["budget"].blocks) == {"table1", "table1-rg", "table3-diversity"}
    if cached_snapshot("uoft-cs/cifar10", ["plain_text/train-*"], repo_type="dataset"):
        pytest.skip("CIFAR-10 is on this machine")
    with pytest.raises(PlanError, match=r"cifar10-table1\.toml:\d+: .*hf download uoft-cs/cifar10"):
        load_plan(ROOT / "plans" / "cifar10-table1.toml", suite="table1").specs()


def test_a_cifar_run_is_attacked_through_the_cli(tiny: dict[str, Path], models: dict[str, Path],
                                                store: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The class-conditional attacks on cifar10-class: the task's probe (UA's forget-class
    generations, its sampler) and detector (CLIP zero-shot), budget 0 = the run's own UA."""
    code, _out, err = cli(capsys, monkeypatch, "run", "--method", "graddiff", "--task",
                         "cifar10-class", *sets([f"task.data={tiny['bin']}",
                                                 f"task.model={models['model']}", *TINY_SETS,
                                                 "task.fid=false", *METHOD_SETS["graddiff"],
                                                 "attack.budgets=0,2", "attack.samples=4",
                                                 "attack.batch_size=4"]),
                         "--attacks", "relearn,invert")
    assert code == 0, err
    run = next((store / "cifar10-class" / "graddiff").glob("*/record.json")).parent
    rec = read_record(run / "record.json")
    attacks = {p.parent.parent.name: json.loads(p.read_text())
               for p in run.glob("attacks/*/*/attack.json")}
    assert sorted(attacks) == ["invert", "relearn"]
    relearn = attacks["relearn"]["metrics"]
    assert sorted(relearn) == ["relearn_ua@0", "relearn_ua@2"]
    assert relearn["relearn_ua@0"]["value"] == rec["metrics"]["ua"]["value"]
    assert relearn["relearn_ua@0"]["n"] == 8
    assert "CLIP" in relearn["relearn_ua@0"]["definition"]["success"]
