"""``sld`` — Safe Latent Diffusion: safety guidance against a concept at sampling time.

Paper: Schramowski, Brack, Deiseroth and Kersting, "Safe Latent Diffusion: Mitigating
Inappropriate Degeneration in Diffusion Models", CVPR 2023, https://arxiv.org/abs/2211.05105
(reference implementation: diffusers' ``StableDiffusionPipelineSafe``,
``pipelines/deprecated/stable_diffusion_safe``, with its ``SafetyConfig`` presets).

**Idea.** Classifier-free guidance ``eps_u + w (eps_c - eps_u)`` gains a third prediction,
``eps_S``, under the *safety concept* S, and a safety term subtracted from the guidance where the
prompt's prediction is close to the concept's (the paper's Eqs. 3-8, as the pipeline computes
them per element)::

    mu      = where(eps_c - eps_S >= lambda, 0, clamp(|eps_c - eps_S| * s_S, max=1))   (Eq. 6)
    gamma   = mu * (eps_S - eps_u) + s_m * nu                                           (Eqs. 4, 7)
    nu      = beta_m * nu + (1 - beta_m) * gamma                                        (Eq. 8)
    eps     = eps_u + w (eps_c - eps_u - gamma)      from step delta on (warm-up)       (Eq. 3)

Nothing is trained: the weights are the base model's and the safety guidance is part of
sampling, so it is rebuilt from the config wherever the model is sampled again (attacks,
``ubench eval``).

**Hyper-parameters** (:class:`SLDConfig`): ``preset`` — the paper's four configurations
(diffusers' ``SafetyConfig``; warm-up delta, scale s_S, threshold lambda, momentum scale s_m,
momentum beta_m): weak (15, 20, 0.0, 0.0, 0.0), medium (10, 1000, 0.01, 0.3, 0.4; the pipeline's
default), strong (7, 2000, 0.025, 0.5, 0.7), max (0, 5000, 1.0, 0.5, 0.7); ``concept`` — the
safety concept; empty (the default) uses the task's concept prompts joined by ", " ("nudity" on
sd-nudity) rather than SLD's long list of inappropriate content, so that the row erases what the
other methods erase; ``warmup`` — ``paper`` scales the preset's warm-up from the 50 steps it was
set for to the task's sampling steps (10 of 50 is 5 of 25), ``none`` applies the guidance from the
first step.

**Tuning** (fair protocol, text-conditional only): ``preset`` {weak, medium, strong, max} x
``warmup`` {paper, none} = 8 points, the budget of every other method. Why warm-up: the presets'
thresholds were set on Stable Diffusion's noise predictions; on a small model whose predictions
differ in scale, when the guidance starts is the knob that still means the same thing.

**Differences from the reference implementation.** The pipeline counts warm-up in steps of its
own schedule; ubench scales it to the task's steps (``warmup=paper``). The safety concept
defaults to the task's concept instead of the I2P categories. The pipeline runs the three
branches as one batch of three; so does ubench (``predict_noise`` on the stacked batch), which
changes nothing but speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ubench.api import Method, RunContext, UnlearnOutput, UnlearnRequest
from ubench.core.config import BaseConfig
from ubench.core.errors import ConfigError
from ubench.methods._sampling import concept_text
from ubench.models.diffusion import DiffusionModel

#: diffusers' SafetyConfig: (warm-up steps of 50, s_S, lambda, s_m, beta_m)
PRESETS: dict[str, tuple[int, float, float, float, float]] = {
    "weak": (15, 20.0, 0.0, 0.0, 0.0),
    "medium": (10, 1000.0, 0.01, 0.3, 0.4),
    "strong": (7, 2000.0, 0.025, 0.5, 0.7),
    "max": (0, 5000.0, 1.0, 0.5, 0.7),
}
#: the number of sampling steps the presets' warm-up counts were set for
PRESET_STEPS = 50


@dataclass(frozen=True)
class SLDConfig(BaseConfig):
    """Safe Latent Diffusion."""

    #: weak | medium | strong | max (the paper's configurations)
    preset: str = "medium"
    #: the safety concept ("" = the task's concept prompts, joined by ", ")
    concept: str = ""
    #: paper (the preset's warm-up, scaled to the task's steps) | none (from the first step)
    warmup: str = "paper"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"method sld.preset must be one of {', '.join(PRESETS)}; got "
                              f"{self.preset!r}")
        if self.warmup not in ("paper", "none"):
            raise ConfigError(f"method sld.warmup must be paper or none; got {self.warmup!r}")


class SafetyRule:
    """SLD's guidance (the pipeline's ``perform_safety_guidance``) as a sampling rule."""

    name = "sld"

    def __init__(self, concept: str, preset: str, warmup: str) -> None:
        self.concept = concept
        self.warmup_of_50, self.scale, self.threshold, self.momentum, self.beta = PRESETS[preset]
        self.scaled = warmup == "paper"

    def begin(self, model: DiffusionModel, cond: torch.Tensor, steps: int) -> Any:
        warm = round(self.warmup_of_50 * steps / PRESET_STEPS) if self.scaled else 0
        concept = model.encode([self.concept]).expand(len(cond), *([-1] * (cond.dim() - 1)))
        return {"concept": concept, "warmup": warm, "nu": None}

    def noise(self, model: DiffusionModel, x_t: torch.Tensor, t: torch.Tensor,
              cond: torch.Tensor, guidance: float, step: int, state: Any) -> torch.Tensor:
        three = model.predict_noise(torch.cat([x_t, x_t, x_t]), torch.cat([t, t, t]),
                                    torch.cat([cond, model.null_condition(len(cond)),
                                               state["concept"]]))
        e_c, e_u, e_s = three.chunk(3)
        guide = e_c - e_u
        if state["nu"] is None:
            state["nu"] = torch.zeros_like(guide)
        scale = torch.clamp((e_c - e_s).abs() * self.scale, max=1.0)  # Eq. 6
        mu = torch.where(e_c - e_s >= self.threshold, torch.zeros_like(scale), scale)
        gamma = (e_s - e_u) * mu + self.momentum * state["nu"]  # Eqs. 4, 7
        state["nu"] = self.beta * state["nu"] + (1 - self.beta) * gamma  # Eq. 8
        if step >= state["warmup"]:
            guide = guide - gamma  # Eq. 3
        return e_u + guidance * guide


class SLD(Method):
    """Safe Latent Diffusion (Schramowski et al. 2023): safety guidance away from a concept."""

    name: ClassVar[str] = "sld"
    paper: ClassVar[str | None] = "https://arxiv.org/abs/2211.05105"
    Config: ClassVar[type[BaseConfig]] = SLDConfig
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data"})
    #: text-conditioned models only (the safety concept is a prompt)
    requires_model: ClassVar[frozenset[str]] = frozenset({"xattn"})
    training_free: ClassVar[bool] = True
    family: ClassVar[str] = "inference-time"
    search_space: ClassVar[dict[str, dict[str, list[Any]]]] = {
        "text-conditional": {"preset": ["weak", "medium", "strong", "max"],
                             "warmup": ["paper", "none"]},
    }

    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: Any,
                ctx: RunContext) -> UnlearnOutput:
        concept = concept_text(request, config.concept)
        model.unet.requires_grad_(False)
        model.sampling_rule = SafetyRule(concept, config.preset, config.warmup)
        return UnlearnOutput(model, [], {"steps": 0, "concept": concept,
                                         "preset": config.preset, "warmup": config.warmup})
