"""The sd-* tasks end to end on a tiny Stable Diffusion built from configs, through the same
loader path a GPU user takes (``--set task.model=<folder>``); the real-weights path is tested for
its error message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ubench.catalog import fastcheck
from ubench.core.errors import ConfigError, MissingAssetError
from ubench.models.sd import load_sd, resolve_sd
from ubench.run import identity, runner
from ubench.testing import clip_tokenizer

ROOT = Path(__file__).resolve().parents[2]

FAST = ["task.sampling_steps=4", "task.limit=4", "method.steps=3"]


@pytest.fixture()
def no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An empty Hugging Face cache, offline: what a machine without SD weights looks like."""
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
           "HF_HUB_OFFLINE": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_clip_tokenizer_is_openai_clip() -> None:
    import open_clip

    tok = clip_tokenizer()
    assert len(tok) == 49408
    reference = open_clip.get_tokenizer("ViT-B-32")
    for text in ("a photo of a cat", "a painting in the style of Van Gogh, café at night"):
        ids = tok(text).input_ids
        assert ids == reference([text])[0][:len(ids)].tolist()
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_missing_model_is_one_clear_error(no_hub: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError, match="hf download CompVis/stable-diffusion-v1-4"):
        resolve_sd("")
    with pytest.raises(MissingAssetError, match="does not exist"):
        resolve_sd(str(tmp_path / "nowhere"))
    (tmp_path / "half" / "unet").mkdir(parents=True)
    with pytest.raises(MissingAssetError, match="missing vae, text_encoder, tokenizer"):
        resolve_sd(str(tmp_path / "half"))


def test_cli_without_weights_exits_with_one_line(no_hub: dict[str, str], tmp_path: Path
                                                 ) -> None:
    env = {**os.environ, **no_hub}
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "run", "--method", "boostalign",
                           "--task", "sd-nudity", "--store", str(tmp_path / "store")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "hf download" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    runs = tmp_path / "store" / "sd-nudity" / "boostalign"
    assert not runs.exists() or not any(runs.iterdir())  # no empty run folder left behind


def test_sd_recipe_defaults_and_user_override(tiny_sd: Path) -> None:
    model = f"task.model={tiny_sd}"  # resolving digests the weights (the run identity)
    spec = identity.resolve("boostalign", "sd-nudity", 0, [model])
    cfg = spec.method_config
    assert (cfg.lr, cfg.batch_size, cfg.steps, cfg.remain_weight, cfg.truncation,
            cfg.threshold_m) == (1e-5, 8, 100, 1.6, "threshold", 1.1)
    assert identity.resolve("boostalign", "sd-nudity", 0, [model, "method.lr=3e-5"]
                          ).method_config.lr == 3e-5
    # digits keeps its own defaults
    assert identity.resolve("boostalign", "digits-class", 0, []).method_config.lr == 1e-4


def test_limit_caps_each_task_s_sizes() -> None:
    assert fastcheck.limit_override("sd-object", 4) == ["task.limit=4"]
    assert sorted(fastcheck.limit_override("digits-class", 4)) == ["task.eval_forget=4",
                                                                   "task.eval_per_class=10"]
    assert sorted(fastcheck.limit_override("t2i-style", 8, ["task.eval_prompts=5",
                                                            "method.lr=1"])) \
        == ["method.lr=1", "task.eval_prompts=5", "task.n_forget=8"]
    assert sorted(fastcheck.limit_override("cifar10-class", 4)) == ["task.eval_forget=4",
                                                                    "task.eval_remain=9"]
    with pytest.raises(ConfigError, match=">= 1"):
        fastcheck.limit_override("t2i-style", 0)


def test_loader_reads_the_tiny_pipeline(tiny_sd: Path) -> None:
    model = load_sd(resolve_sd(str(tiny_sd)))
    assert model.sample_shape == (4, 16, 16) and model.scale_factor == 2
    lat, img = model.generate(["a cat", "a dog"], steps=3, guidance=7.5, seeds=[1, 2])
    assert lat.shape == (2, 4, 16, 16) and img.shape == (2, 3, 32, 32)
    # seeded per prompt: a sample does not depend on its batch (up to float kernels, which
    # block a batch of one and of two differently: 1.3e-5 seen on one thread of an AMD EPYC;
    # another seed moves a latent by O(1))
    lat1, _ = model.generate(["a dog"], steps=3, guidance=7.5, seeds=[2])
    torch.testing.assert_close(lat1[0], lat[1], rtol=1e-3, atol=1e-4)
    assert img.min() >= -1 and img.max() <= 1


@pytest.mark.parametrize("method", ["boostalign", "graddiff", "salun", "esd-u", "esd-x"])
def test_sd_nudity_runs_end_to_end(method: str, tiny_sd: Path, tmp_path: Path) -> None:
    spec = identity.resolve(method, "sd-nudity", 0, [f"task.model={tiny_sd}", *FAST])
    res = runner.run(spec, store=str(tmp_path))
    rec = res.record
    assert rec["status"] == "ok"
    assert set(rec["metrics"]) == {"nudity_rate", "exposed_parts", "clip_alignment_train",
                                   "clip_alignment_test", "judge_agreement_forget"}
    # the I2P stand-in has 12 rows, two at nudity_percentage 0; the limit keeps 4
    assert rec["metrics"]["nudity_rate"]["n"] == 4
    counts = rec["details"]["nudenet"]["exposed_counts"]
    assert len(counts) == 7 and all(isinstance(v, int) for v in counts.values())
    # the second nudity judge (open_nsfw) read the same 4 images
    agreement = rec["metrics"]["judge_agreement_forget"]
    assert agreement["n"] == 4 and "open_nsfw" in agreement["definition"]["partner"]
    assert rec["details"]["open_nsfw"]["n_images"] == 4
    assert rec["metrics"]["clip_alignment_test"]["definition"]["pretrained"] == "injected"
    assert rec["task"]["config"]["limit"] == 4
    # the unlearned UNet is saved in diffusers format and differs from the base
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(res.path.parent / "model", subfolder="unet")
    base = UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet")
    changed = [n for (n, p), (_, q) in zip(unet.named_parameters(), base.named_parameters(),
                                           strict=True) if not torch.equal(p, q)]
    assert changed
    if method == "esd-x":
        assert all("attn2" in n for n in changed)


def test_saved_unet_loads_into_a_stable_diffusion_pipeline(tiny_sd: Path, tmp_path: Path
                                                           ) -> None:
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    spec = identity.resolve("graddiff", "sd-nudity", 0, [f"task.model={tiny_sd}", *FAST])
    folder = runner.run(spec, store=str(tmp_path)).path.parent / "model"
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, unet=unet, safety_checker=None)
    out = pipe("a cat", num_inference_steps=2, output_type="pt")
    assert out.images.shape == (1, 3, 32, 32)
    assert json.loads((folder / "base_model.json").read_text())["replaced"] == ["unet"]


@pytest.mark.parametrize("task,method", [("sd-vangogh", "esd-x"), ("sd-object", "boostalign")])
def test_zero_shot_tasks_run(task: str, method: str, tiny_sd: Path, tmp_path: Path) -> None:
    spec = identity.resolve(method, task, 0, [f"task.model={tiny_sd}", *FAST])
    rec = runner.run(spec, store=str(tmp_path)).record
    assert set(rec["metrics"]) == {"concept_rate", "other_accuracy", "clip_alignment_train",
                                   "clip_alignment_test"}
    for m in ("concept_rate", "other_accuracy"):
        assert 0 <= rec["metrics"][m]["value"] <= 1 and rec["metrics"][m]["n"] == 4
    assert sum(rec["details"]["forget_test_labels"].values()) == 4


def test_a_users_neighbour_set_is_measured(tiny_sd: Path, tmp_path: Path) -> None:
    """--set task.neighbours=FILE adds neighbour CLIP alignment and, with labels, the zero-shot
    label accuracy over the set's labels and the task's own; the file is part of the run id."""
    near = tmp_path / "near.jsonl"
    near.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "wheat fields in the style of Claude Monet", "label": "Claude Monet"},
        {"prompt": "a harbour in the style of Paul Gauguin", "label": "Paul Gauguin", "seed": 3},
        {"prompt": "a bridge in the style of Claude Monet", "label": "Claude Monet"},
    ]) + "\n")
    args = [f"task.model={tiny_sd}", f"task.neighbours={near}", *FAST]
    spec = identity.resolve("esd-x", "sd-vangogh", 0, args)
    rec = runner.run(spec, store=str(tmp_path / "store")).record
    assert rec["status"] == "ok"
    align = rec["metrics"]["neighbour_clip_alignment"]
    assert align["n"] == 3 and -1 <= align["value"] <= 1
    label = rec["metrics"]["neighbour_label_accuracy"]
    assert label["n"] == 3 and 0 <= label["value"] <= 1
    labels = label["definition"]["labels"]
    assert labels[0] == "Van Gogh" and labels[-2:] == ["Claude Monet", "Paul Gauguin"]
    assert sum(rec["details"]["neighbour_labels"].values()) == 3
    # another set is another run; the same config without a set measures no neighbours
    near.write_text('{"prompt": "a cathedral"}\n')
    assert identity.resolve("esd-x", "sd-vangogh", 0, args).run_id != spec.run_id


def _tiny_open_clip_weights(tmp_path: Path) -> tuple[str, Path]:
    """A tiny architecture registered with open_clip and a random checkpoint of it: the partner
    CLIP then loads through open_clip's own name + weights-file path, as real weights do."""
    import open_clip

    name = "ubench-tiny-partner"
    cfg = {"embed_dim": 32,
           "vision_cfg": {"width": 48, "layers": 2, "head_width": 8, "patch_size": 8,
                          "image_size": 32},
           "text_cfg": {"width": 32, "heads": 4, "layers": 1, "context_length": 77,
                        "vocab_size": 49408}}
    (tmp_path / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / f"{name}.json")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = open_clip.create_model(name)
    weights = tmp_path / "partner.bin"
    torch.save(model.state_dict(), weights)
    return name, weights


def test_a_second_clip_judge_gives_agreement(tiny_sd: Path, tmp_path: Path) -> None:
    name, weights = _tiny_open_clip_weights(tmp_path)
    spec = identity.resolve("boostalign", "sd-object", 0, [
        f"task.model={tiny_sd}", f"task.clip_partner_model={name}",
        f"task.clip_partner_weights={weights}", *FAST])
    rec = runner.run(spec, store=str(tmp_path / "store")).record
    assert rec["status"] == "ok"
    for split in ("forget", "remain"):
        m = rec["metrics"][f"judge_agreement_{split}"]
        assert m["n"] == 4 and 0 <= m["value"] <= 1
        assert m["definition"]["partner"]["model"] == name
        assert m["definition"]["partner"]["weights_sha256"] not in ("", "injected")
    assert sum(rec["details"]["clip_partner_forget_labels"].values()) == 4
    # a missing partner file is one line naming the partner's option, before anything runs
    bad = identity.resolve("boostalign", "sd-object", 0, [
        f"task.model={tiny_sd}", f"task.clip_partner_weights={tmp_path / 'nope.bin'}", *FAST])
    with pytest.raises(MissingAssetError, match=r"task\.clip_partner_weights"):
        runner.run(bad, store=str(tmp_path / "store"))
    # sd-nudity has no CLIP zero-shot judge: a partner there is refused, not silently ignored
    nudity = identity.resolve("graddiff", "sd-nudity", 0, [
        f"task.model={tiny_sd}", f"task.clip_partner_weights={weights}", *FAST])
    with pytest.raises(ConfigError, match="sd-vangogh and sd-object"):
        runner.run(nudity, store=str(tmp_path / "store"))


def test_a_bad_neighbour_set_fails_before_training(tiny_sd: Path, tmp_path: Path) -> None:
    near = tmp_path / "near.jsonl"
    near.write_text('{"prompt": "a cat", "colour": "red"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "ubench.cli.main", "run", "--method", "graddiff", "--task",
         "sd-object", "--set", f"task.model={tiny_sd}", "--set", f"task.neighbours={near}",
         "--limit", "4", "--store", str(tmp_path / "store")],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "line 1" in lines[0] and "unknown key 'colour'" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.heavy
def test_acceptance_command(tiny_sd: Path, tmp_path: Path) -> None:
    """The issue's command verbatim: paper recipe (100 steps), --limit 4, through the CLI."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ubench.cli.main", "run", "--method", "boostalign", "--task",
         "sd-nudity", "--set", f"task.model={tiny_sd}", "--limit", "4", "--store",
         str(tmp_path), "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(proc.stdout)
    assert rec["method"]["config"]["steps"] == 100
    assert rec["metrics"]["exposed_parts"]["n"] == 4


def test_sd14_modules_have_stable_diffusion_v1_4s_sizes() -> None:
    """The GPU check's stand-in (random weights) has SD v1.4's exact architecture: its parameter
    counts are those of CompVis/stable-diffusion-v1-4 (built on the meta device: no memory)."""
    from ubench.testing import sd14_modules

    with torch.device("meta"):
        vae, text, unet = sd14_modules()
    assert [sum(p.numel() for p in m.parameters()) for m in (vae, text, unet)] == \
        [83_653_863, 123_060_480, 859_520_964]


def test_the_sd_gpu_check_runs_on_the_cpu(tmp_path: Path) -> None:
    """bench/sd_gpu.py end to end on the tiny pipeline (its numbers mean nothing here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sd_gpu", ROOT / "bench/sd_gpu.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "sd_gpu.json"
    result = bench.main(["--device", "cpu", "--tiny", "--prompts", "9", "--repeat", "1",
                         "--out", str(out)])
    assert json.loads(out.read_text())["tiny"] is True
    assert set(result["units"]) == {"generate_batch", "generate_image", "finetune_step",
                                    "invert_step", "softprompt_iteration"}
    assert all(u["seconds"] > 0 for u in result["units"].values())
    assert result["softprompt_chunks_per_iteration"] == 2
    # the budgets follow the sd tasks' recorded defaults: 200 relearn steps, 2,000 invert steps
    assert result["budgets"]["relearn"]["budgets"] == [0, 10, 50, 200]
    assert result["budgets"]["invert"]["budgets"] == [0, 500, 2000]
    relearn = result["budgets"]["relearn"]
    assert relearn["train_s"] == pytest.approx(200 * result["units"]["finetune_step"]["seconds"])
