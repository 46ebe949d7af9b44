"""``ubench eval`` end to end on tiny tasks: a model a run saved, copied elsewhere, re-saved as
one safetensors file and in the original (CompVis) layout, is scored with the run's own
metrics under one identity; bad sources are refused in one line before anything is written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST, TINY
from ubench.core.errors import ConfigError, IncompatibleError, MissingAssetError
from ubench.run import identity
from ubench.run.external import resolve_eval
from ubench.run.job import run_job
from ubench.store.layout import MODEL_DIR

T2I = "t2i-attribute-tiny"


def _spec(method: str, task: str):
    sets = list(FAST) if task == TINY else ["method.steps=4", "method.batch_size=8"]
    return identity.resolve(method, task, 0, sets)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, ubench_home: Path) -> dict[str, dict]:
    """A digits ga run and a t2i graddiff run, each with its saved model."""
    store = tmp_path_factory.mktemp("eval") / "store"
    out = {}
    for method, task in (("ga", TINY), ("graddiff", T2I)):
        res = run_job(_spec(method, task), store=store).run
        out[task] = {"record": res.record, "folder": res.path.parent, "store": store}
    return out


def _values(rec: dict) -> dict[str, float]:
    return {k: m["value"] for k, m in rec["metrics"].items()}


def _eval(task: str, src: str | Path, store: Path, **kw) -> dict:
    spec = resolve_eval(task, [str(src)], store=kw.pop("lookup", None), **kw)[0]
    return run_job(spec, store=store).run.record


def _safetensors(folder: Path, to: Path) -> Path:
    from safetensors.torch import load_file, save_file

    state = load_file(str(next((folder / "unet").glob("*.safetensors"))))
    save_file(state, str(to))
    return to


@pytest.mark.parametrize("task", [TINY, T2I])
def test_a_saved_model_scores_as_its_run_from_every_layout(made: dict, task: str,
                                                           tmp_path: Path) -> None:
    run = made[task]
    copied = shutil.copytree(run["folder"] / MODEL_DIR, tmp_path / "elsewhere" / "my-model")
    by_id = resolve_eval(task, [run["record"]["run_id"][:10]], store=run["store"])[0]
    single = resolve_eval(task, [str(_safetensors(copied, tmp_path / "unet.safetensors"))])[0]
    by_copy = _eval(task, copied, tmp_path / "b")
    # the same weights: one identity (so one record), and the run's own numbers
    assert by_id.run_id == by_copy["run_id"] == single.run_id
    assert _values(by_copy) == _values(run["record"])
    assert by_id.method_cls.external and by_id.source["kind"] == "run"
    assert by_id.source["run_id"] == run["record"]["run_id"]
    assert (by_copy["source"]["name"], by_copy["source"]["layout"]) == ("my-model", "ubench")
    assert by_copy["method"]["id"] == "external" and single.source["layout"] == "safetensors"
    assert run["record"]["model_digest"] == by_copy["method"]["config"]["model"]
    # `ubench compare --pair-by model` pairs the run with its re-scoring: every delta 0
    from ubench.report.compare import compare

    result = compare(run["store"], tmp_path / "b", pair_by="model")
    assert len(result.pairs) == 1 and not result.regressions
    deltas = [m for p in result.pairs for m in p.metrics]
    assert deltas and all(m.delta == 0 for m in deltas)
    assert {m.interval for m in deltas if m.metric != "fd"} == {"paired"}
    # the report shows it in the task's table, marked external, named by its source
    from ubench.report.build import build_report

    build_report(tmp_path / "b", tmp_path / "report", formats=("md", "csv"))
    board = (tmp_path / "report" / "README.md").read_text()
    assert f"my-model \\[external {by_copy['method']['config']['model'][:8]}\\]" in board
    # an attack rebuilds the row from its saved model like any run's
    rebuilt = identity.rebuild_run_spec(by_copy)
    assert rebuilt.run_id == by_copy["run_id"] and rebuilt.method_cls.external


def test_the_original_layout_converts_to_the_same_record(made: dict, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from ubench.testing import to_ldm

    run = made[T2I]
    state = load_file(str(next((run["folder"] / MODEL_DIR / "unet").glob("*.safetensors"))))
    ldm = to_ldm(state, layers_per_block=1)
    assert all(k.startswith("model.diffusion_model.") for k in ldm)
    torch.save({"state_dict": ldm, "global_step": 0}, tmp_path / "erased.ckpt")
    save_file(ldm, str(tmp_path / "erased.safetensors"))
    ckpt, st, own = resolve_eval(T2I, [str(tmp_path / "erased.ckpt"),
                                       str(tmp_path / "erased.safetensors"),
                                       str(run["folder"] / MODEL_DIR)])
    assert ckpt.source["layout"] == st.source["layout"] == "compvis"
    # a folder holding one weights file (a hub repository of a released erased UNet)
    (tmp_path / "released").mkdir()
    shutil.copy(tmp_path / "erased.ckpt", tmp_path / "released" / "esd-u.pt")
    released = resolve_eval(T2I, [str(tmp_path / "released")])[0]
    assert released.run_id == ckpt.run_id and released.source["layout"] == "compvis"
    # diffusers' converter gives back exactly the run's weights: the same record
    assert ckpt.run_id == st.run_id == own.run_id


class Evil:
    """A pickled object: loading it would run code; ubench must refuse it."""

    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "ubench.cli.main", "eval", *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_bad_sources_are_refused_in_one_line_and_write_nothing(made: dict, tmp_path: Path
                                                               ) -> None:
    from diffusers import UNet2DModel

    store = tmp_path / "store"
    t2i_model = made[T2I]["folder"] / MODEL_DIR
    other = tmp_path / "other-size"
    UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                block_out_channels=(24, 48), down_block_types=("DownBlock2D",) * 2,
                up_block_types=("UpBlock2D",) * 2, num_class_embeds=11,
                norm_num_groups=8).save_pretrained(other, safe_serialization=True)
    torch.save({"state_dict": Evil()}, tmp_path / "evil.ckpt")
    good = _safetensors(t2i_model, tmp_path / "good.safetensors")
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[:5000])
    cases = {
        "text-conditioned": (TINY, str(t2i_model)),
        "another UNet size": (TINY, str(other)),
        "weights_only": (T2I, str(tmp_path / "evil.ckpt")),
        "not a readable .safetensors": (T2I, str(tmp_path / "truncated.safetensors")),
        "hf download someone/erased-unet": (T2I, "someone/erased-unet"),
        "does not exist": (T2I, str(tmp_path / "nowhere")),
    }
    for needle, (task, src) in cases.items():
        proc = _cli("--task", task, "--model", src, "--store", str(store),
                    env={"HF_HUB_CACHE": str(tmp_path / "empty-hub")})
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode != 0 and needle in last, (needle, proc.stderr[-800:])
        assert "Traceback" not in proc.stderr and "pwned" not in proc.stdout + proc.stderr
    assert not store.exists() or not list(store.rglob("record.json"))
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "run", "--method",
                           "external", "--task", TINY], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "ubench eval" in proc.stderr.strip().splitlines()[-1]


def test_a_pipeline_is_checked_component_by_component(made: dict, tmp_path: Path) -> None:
    import json

    model = made[T2I]["folder"] / MODEL_DIR
    pipe = tmp_path / "pipe"
    shutil.copytree(model / "unet", pipe / "unet")
    shutil.copytree(model / "scheduler", pipe / "scheduler")
    spec = resolve_eval(T2I, [str(pipe)])[0]  # its own scheduler: accepted
    assert spec.source["layout"] == "diffusers-pipeline"
    assert spec.run_id == resolve_eval(T2I, [str(model)])[0].run_id
    cfg = pipe / "scheduler" / "scheduler_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "num_train_timesteps": 500}))
    with pytest.raises(IncompatibleError, match=r"scheduler\.num_train_timesteps=500"):
        resolve_eval(T2I, [str(pipe)])
    shutil.copytree(model / "scheduler", pipe / "scheduler", dirs_exist_ok=True)
    (pipe / "scheduler" / "scheduler_config.json").write_text(
        (model / "scheduler" / "scheduler_config.json").read_text())
    (pipe / "vae").mkdir()
    with pytest.raises(IncompatibleError, match=r"vae \(the task's model has none"):
        resolve_eval(T2I, [str(pipe)])


@pytest.mark.slow
@pytest.mark.heavy
def test_a_stable_diffusion_pipeline_scores_as_the_base_row(tiny_sd: Path, tmp_path: Path,
                                                           ubench_home: Path) -> None:
    """The real SD branch on a tiny pipeline: the pipeline folder itself is accepted (its text
    encoder, VAE and scheduler are the task's), and its UNet scored as an external model gives
    the base row's numbers; a pipeline with another VAE is refused before any sampling."""
    from safetensors.torch import load_file, save_file

    sets = [f"task.model={tiny_sd}", "task.limit=2"]
    spec = resolve_eval("sd-nudity", [str(tiny_sd)], overrides=sets)[0]
    assert spec.source["layout"] == "diffusers-pipeline"
    scored = run_job(spec, store=tmp_path / "a").run.record
    base = run_job(identity.resolve("base", "sd-nudity", 0, sets), store=tmp_path / "b").run.record
    assert _values(scored) == _values(base)
    other = shutil.copytree(tiny_sd, tmp_path / "other-vae")
    weights = next((other / "vae").glob("*.safetensors"))
    state = load_file(str(weights))
    first = sorted(state)[0]
    state[first] = state[first] + 1.0
    save_file(state, str(weights))
    with pytest.raises(IncompatibleError, match="vae weights"):
        resolve_eval("sd-nudity", [str(other)], overrides=sets)


@pytest.mark.slow
@pytest.mark.heavy
def test_training_free_methods_change_sampling_and_survive_an_attack(
        made: dict, tmp_path: Path) -> None:
    """negprompt and sld on the tiny t2i task: no weights saved, the rows marked, their samples
    differ from the base model's, and a relearning attack rebuilds the rule from the config."""
    from ubench.run.job import attack_one

    store = tmp_path / "store"
    sets: list[str] = []
    base = run_job(identity.resolve("base", T2I, 0, sets), store=store).run.record
    for method, extra in (("negprompt", []), ("sld", ["method.preset=max"])):
        res = run_job(identity.resolve(method, T2I, 0, [*sets, *extra]), store=store).run
        rec = res.record
        assert rec["method"]["training_free"] and "model" not in rec["artifacts"]
        assert not (res.path.parent / MODEL_DIR).exists()
        assert _values(rec) != _values(base), f"{method} sampled as the base model"
    attacked = attack_one("relearn", rec["run_id"], sets=["attack.budgets=0,2",
                                                          "attack.samples=8",
                                                          "attack.batch_size=4"], store=store)
    assert attacked.record["status"] == "ok"
    assert "training-free method rebuilt by 'sld'" in \
        attacked.record["details"]["attacked_model"]
    from ubench.report.build import build_report

    build_report(store, tmp_path / "report", formats=("md",))
    board = (tmp_path / "report" / "README.md").read_text()
    assert board.count("*(training-free)*") >= 2
    with pytest.raises(ConfigError, match="training-free"):
        resolve_eval(T2I, [rec["run_id"]], store=store)


def test_a_hub_id_is_read_from_the_local_cache_only(made: dict, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The real lookup (huggingface_hub's snapshot_download, local files only) on a cache laid
    out as the hub client leaves it: refs/main names the snapshot folder."""
    model = made[T2I]["folder"] / MODEL_DIR
    repo = tmp_path / "hub" / "models--someone--erased-unet"
    snap = repo / "snapshots" / ("a" * 40)
    shutil.copytree(model / "unet", snap / "unet")
    shutil.copytree(model / "scheduler", snap / "scheduler")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub, own = resolve_eval(T2I, ["someone/erased-unet", str(model)])
    assert hub.source["kind"] == "hub" and hub.source["revision"] == "a" * 40
    assert hub.run_id == own.run_id
    with pytest.raises(MissingAssetError, match="hf download someone/other"):
        resolve_eval(T2I, ["someone/other"])


def test_an_external_row_is_attacked_like_a_run(made: dict, tmp_path: Path) -> None:
    from ubench.run.job import attack_one

    store = tmp_path / "store"
    rec = _eval(TINY, made[TINY]["folder"] / MODEL_DIR, store)
    att = attack_one("relearn", rec["run_id"], store=store,
                     sets=["attack.budgets=0,2", "attack.samples=8", "attack.batch_size=4"])
    assert att.record["status"] == "ok" and att.record["run"]["method"]["id"] == "external"
    assert "saved model" in att.record["details"]["attacked_model"]
