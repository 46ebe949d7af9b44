"""``negprompt`` — negative prompting: guide away from the concept at sampling time.

The SD-NEGP baseline of the field's tables (P4D, Chin et al. 2024, arXiv 2309.06135; UnlearnDiffAtk
and Ring-A-Bell report it too): Stable Diffusion's ``negative_prompt``. Classifier-free guidance
forms each step's prediction as ``eps_u + w (eps_c - eps_u)``, pushing away from the
unconditional prediction; negative prompting puts the concept's prediction ``eps_n`` (the
prompt naming the concept) in the place of ``eps_u``::

    eps = eps_n + w (eps_c - eps_n)  =  eps_u + w (eps_c - eps_u) - (w - 1) (eps_n - eps_u)

so every step is pushed away from the concept with weight ``w - 1``. Nothing is trained; the
weights stay the base model's, and anyone with the weights can drop the negative prompt — which
is why the attacks matter for this row (a relearning attack fine-tunes the weights under the same
sampling rule, as an attacker of a deployed pipeline with a fixed negative prompt would).

**Hyper-parameters** (:class:`NegPromptConfig`): ``negative`` — the negative prompt; empty (the
default) uses the task's concept prompts (``request.concept``: "nudity" on sd-nudity; on
t2i-attribute the frame phrasings joined by ", ", as a user types several terms into one
negative prompt); ``scale`` — the weight of the push away from the concept: ``auto`` (the
default) is SD-NEGP's ``w - 1``, which needs two UNet evaluations per step as plain guidance
does; a number ``s`` gives ``eps_u + w (eps_c - eps_u) - s (eps_n - eps_u)`` (three
evaluations), the same rule with its weight set apart.

**Tuning** (fair protocol, text-conditional only): ``scale`` over 8 values, ``auto`` and
{0.5, 1, 2, 4, 8, 16, 32}; the budget of every other method.

**Differences from the reference implementation.** diffusers' ``negative_prompt`` is SD-NEGP with
``scale=auto``; with a number ubench adds the concept term beside the unconditional one, which
diffusers does not offer (it is the ``eps_u``-anchored form of the same push). Under guidance
``w = 1`` (no classifier-free guidance) ``auto`` is plain conditional sampling.
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


@dataclass(frozen=True)
class NegPromptConfig(BaseConfig):
    """Negative prompting."""

    #: the negative prompt ("" = the task's concept prompts, joined by ", ")
    negative: str = ""
    #: the weight of the push away from the concept: "auto" (SD-NEGP: w - 1) or a number
    scale: str = "auto"

    def __post_init__(self) -> None:
        if self.scale != "auto":
            try:
                value = float(self.scale)
            except ValueError:
                raise ConfigError(f"method negprompt.scale must be auto or a number; got "
                                  f"{self.scale!r}") from None
            if not 0 <= value <= 1e4:
                raise ConfigError(f"method negprompt.scale must be in 0..1e4; got {value}")


class NegativeRule:
    """The sampling rule: ``eps_n`` in the place of (or beside) ``eps_u``."""

    name = "negprompt"

    def __init__(self, text: str, scale: float | None) -> None:
        self.text, self.scale = text, scale

    def begin(self, model: DiffusionModel, cond: torch.Tensor, steps: int) -> Any:
        return model.encode([self.text]).expand(len(cond), *([-1] * (cond.dim() - 1)))

    def noise(self, model: DiffusionModel, x_t: torch.Tensor, t: torch.Tensor,
              cond: torch.Tensor, guidance: float, step: int, state: Any) -> torch.Tensor:
        if self.scale is None:  # SD-NEGP: eps_n + w (eps_c - eps_n)
            both = model.predict_noise(torch.cat([x_t, x_t]), torch.cat([t, t]),
                                       torch.cat([cond, state]))
            e_c, e_n = both.chunk(2)
            return e_n + guidance * (e_c - e_n)
        three = model.predict_noise(torch.cat([x_t, x_t, x_t]), torch.cat([t, t, t]),
                                    torch.cat([cond, model.null_condition(len(cond)), state]))
        e_c, e_u, e_n = three.chunk(3)
        return e_u + guidance * (e_c - e_u) - self.scale * (e_n - e_u)


class NegPrompt(Method):
    """Negative prompting (SD-NEGP): the concept's prompt in place of the unconditional branch."""

    name: ClassVar[str] = "negprompt"
    paper: ClassVar[str | None] = "https://arxiv.org/abs/2309.06135"
    Config: ClassVar[type[BaseConfig]] = NegPromptConfig
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data"})
    #: text-conditioned models only (the negative is a prompt)
    requires_model: ClassVar[frozenset[str]] = frozenset({"xattn"})
    training_free: ClassVar[bool] = True
    family: ClassVar[str] = "inference-time"
    search_space: ClassVar[dict[str, dict[str, list[Any]]]] = {
        "text-conditional": {"scale": ["auto", "0.5", "1", "2", "4", "8", "16", "32"]},
    }

    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: Any,
                ctx: RunContext) -> UnlearnOutput:
        text = concept_text(request, config.negative)
        scale = None if config.scale == "auto" else float(config.scale)
        model.unet.requires_grad_(False)
        model.sampling_rule = NegativeRule(text, scale)
        return UnlearnOutput(model, [], {"steps": 0, "negative": text,
                                         "scale": config.scale})
