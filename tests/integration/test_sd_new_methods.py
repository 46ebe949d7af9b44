"""uce, ca, sa and erasediff end to end on the tiny Stable Diffusion (the loader path a GPU user
takes with ``--set task.model=<folder>``), with each method's SD recipe applied."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ubench.run import identity, runner

FAST = ["task.sampling_steps=4", "task.limit=4"]
#: per method: the overrides that keep it quick here (its SD recipe supplies the rest)
QUICK = {"uce": [], "ca": ["method.steps=3"], "erasediff": ["method.steps=2"],
         "sa": ["method.steps=3", "method.fisher_samples=4", "method.fisher_timesteps=2"]}


def test_sd_recipes_apply(tiny_sd: Path) -> None:
    # resolving an SD run digests its weights (the run identity): the tiny pipeline stands in
    model = [f"task.model={tiny_sd}"]
    assert identity.resolve("ca", "sd-object", 0, model).method_config.lr == 1.6e-5
    assert identity.resolve("sa", "sd-nudity", 0, model).method_config.surrogate == "anchor"
    cfg = identity.resolve("erasediff", "sd-vangogh", 0, model).method_config
    assert (cfg.lr, cfg.lam, cfg.scope) == (1e-5, 1.0, "noxattn")
    # digits keeps the method's own defaults
    assert identity.resolve("ca", "digits-class", 0, []).method_config.lr == 1e-4


@pytest.mark.parametrize("method", ["uce", "ca", "sa", "erasediff"])
def test_runs_end_to_end_on_tiny_sd(method: str, tiny_sd: Path, tmp_path: Path,
                                    ubench_home: Path) -> None:
    spec = identity.resolve(method, "sd-nudity", 0, [f"task.model={tiny_sd}", *FAST,
                                                   *QUICK[method]])
    res = runner.run(spec, store=str(tmp_path))
    rec = res.record
    assert rec["status"] == "ok" and rec["method"]["id"] == method
    assert set(rec["metrics"]) == {"nudity_rate", "exposed_parts", "clip_alignment_train",
                                   "clip_alignment_test", "judge_agreement_forget"}
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(res.path.parent / "model", subfolder="unet")
    base = UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet")
    changed = [n for (n, p), (_, q) in zip(unet.named_parameters(), base.named_parameters(),
                                           strict=True) if not torch.equal(p, q)]
    assert changed
    if method in ("uce", "ca"):  # UCE's edit and CA's default group: cross-attention K and V
        assert all("attn2.to_k" in n or "attn2.to_v" in n for n in changed), changed
    if method == "erasediff":  # its SD recipe trains noxattn
        assert not any("attn2" in n for n in changed)
    if method == "uce":
        log = rec["train_log"]
        assert log["closed_form"] and log["source"] == "concept prompts"
        assert log["examples"][0] == ["nudity", ""]


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize(("method", "sets"), [("negprompt", []),
                                              ("sld", ["method.preset=max"])])
def test_training_free_methods_sample_stable_diffusion(method: str, sets: list[str],
                                                       tiny_sd: Path, tmp_path: Path,
                                                       ubench_home: Path) -> None:
    """The sampling rules on the SD branch (CLIP text states, VAE latents): the concept is the
    task's ("nudity"), no weights are saved, and the generations differ from the base model's."""
    common = [f"task.model={tiny_sd}", *FAST]
    rec = runner.run(identity.resolve(method, "sd-nudity", 0, [*common, *sets]),
                     store=str(tmp_path)).record
    base = runner.run(identity.resolve("base", "sd-nudity", 0, common), store=str(tmp_path)
                      ).record
    assert rec["status"] == "ok" and rec["method"]["training_free"]
    assert "model" not in rec["artifacts"]
    assert "nudity" in (rec["train_log"].get("negative") or rec["train_log"].get("concept"))
    values = {k: m["value"] for k, m in rec["metrics"].items()}
    assert values != {k: m["value"] for k, m in base["metrics"].items()}
