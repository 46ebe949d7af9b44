"""The training-free methods' sampling rules against their references: SLD's step against
diffusers' ``StableDiffusionPipelineSafe.perform_safety_guidance`` (the reference
implementation, installed with diffusers), negative prompting against its closed form."""

from __future__ import annotations

import pytest
import torch

from ubench.methods.negprompt import NegativeRule
from ubench.methods.sld import PRESETS, SafetyRule


class _Stub:
    """Predicts a fixed noise per condition row: lets a rule's arithmetic be checked alone."""

    def __init__(self, preds: dict[float, torch.Tensor]) -> None:
        self.preds = preds

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor
                      ) -> torch.Tensor:
        return torch.stack([self.preds[float(c)] for c in cond[:, 0]])

    def null_condition(self, n: int) -> torch.Tensor:
        return torch.full((n, 1), 0.0)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return torch.full((len(prompts), 1), 2.0)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_sld_matches_the_diffusers_safe_pipeline_step_by_step(preset: str) -> None:
    from diffusers.pipelines.deprecated.stable_diffusion_safe import (
        SafetyConfig,
        StableDiffusionPipelineSafe,
    )

    cfg = getattr(SafetyConfig, preset.upper())
    g = torch.Generator().manual_seed(0)
    steps, w = 50, 7.5
    rule = SafetyRule("nudity", preset, "paper")
    x = torch.zeros(1, 4, 3, 3)
    cond = torch.full((1, 1), 1.0)
    ref_momentum = None
    state = None
    for i in range(steps):
        e_c, e_u, e_s = (torch.randn(4, 3, 3, generator=g) * 0.1 for _ in range(3))
        model = _Stub({1.0: e_c, 0.0: e_u, 2.0: e_s})
        if state is None:
            state = rule.begin(model, cond, steps)  # type: ignore[arg-type]
        ours = rule.noise(model, x, torch.zeros(1), cond, w, i, state)  # type: ignore[arg-type]
        guide, ref_momentum = StableDiffusionPipelineSafe.perform_safety_guidance(
            None, True, ref_momentum, (e_c - e_u)[None], (e_c[None], e_u[None], e_s[None]), i,
            cfg["sld_guidance_scale"], cfg["sld_warmup_steps"], cfg["sld_threshold"],
            cfg["sld_momentum_scale"], cfg["sld_mom_beta"])
        assert torch.allclose(ours, e_u + w * guide, atol=1e-6), (preset, i)


def test_sld_scales_its_warm_up_to_the_task_steps() -> None:
    model = _Stub({})
    cond = torch.full((2, 1), 1.0)
    assert SafetyRule("c", "medium", "paper").begin(model, cond, 25)["warmup"] == 5  # type: ignore[arg-type]
    assert SafetyRule("c", "weak", "paper").begin(model, cond, 50)["warmup"] == 15  # type: ignore[arg-type]
    assert SafetyRule("c", "weak", "none").begin(model, cond, 50)["warmup"] == 0  # type: ignore[arg-type]


def test_negative_prompting_is_guidance_away_from_the_concept() -> None:
    g = torch.Generator().manual_seed(1)
    e_c, e_u, e_n = (torch.randn(1, 4, 3, 3, generator=g)[0] for _ in range(3))
    model = _Stub({1.0: e_c, 0.0: e_u, 2.0: e_n})
    x, cond, w = torch.zeros(1, 4, 3, 3), torch.full((1, 1), 1.0), 7.5
    auto = NegativeRule("c", None)
    got = auto.noise(model, x, torch.zeros(1), cond, w, 0, auto.begin(model, cond, 25))  # type: ignore[arg-type]
    assert torch.allclose(got, e_n + w * (e_c - e_n), atol=1e-6)
    # the same push with its weight set apart: eps_u-anchored, (w - 1) reproduces SD-NEGP
    apart = NegativeRule("c", w - 1)
    got2 = apart.noise(model, x, torch.zeros(1), cond, w, 0, apart.begin(model, cond, 25))  # type: ignore[arg-type]
    assert torch.allclose(got2, got, atol=1e-5)
