"""``esd-u``, ``esd-x``, ``esd-full`` — erasing concepts by negative-guidance self-distillation.

Paper: Gandikota, Materzynska, Fiotto-Kaufman and Bau, "Erasing Concepts from Diffusion Models",
ICCV 2023, https://arxiv.org/abs/2303.07345 (official code: rohitgandikota/erasing,
``esd_diffusers.py``).

**Idea.** Classifier-free guidance moves a prediction *towards* a concept with
``eps_0 + w (eps_c - eps_0)``; ESD bakes the opposite move into the weights. A frozen copy of the
original model (the teacher) gives, on a noisy input ``x_t``, the unconditional prediction
``eps_0`` and the concept prediction ``eps_c``; the model is trained so that its *conditional*
prediction is the negatively guided one::

    target = eps*_0(x_t, t) - eta * (eps*_c(x_t, t) - eps*_0(x_t, t))      (frozen teacher *)
    loss   = || eps_theta(x_t, t, c) - target ||^2

ESD needs no data: ``x_t`` comes from the model itself. Each step draws a random stop index
``k``, starts from Gaussian noise and runs the first ``k`` of ``ddim_steps`` DDIM steps with the
*current* model under ``c`` with guidance ``start_guidance`` (no gradient), landing at the DDIM
timestep ``t = timesteps[k]``. The forget *images* of the request are not used — only its
conditions: the concept's own prompts where the task names them (``request.concept``: "nudity"
on SD, the concept's phrasings on the t2i tasks — ESD erases a concept *word*, and erasing whole
scene prompts would erase every attribute they name), else the distinct forget conditions (class
ids on digits); each sample of a batch draws one of them uniformly.

The three registered variants differ only in which weights train (the model layer's scopes):
``esd-u`` = ``noxattn`` (everything but cross-attention, the time embedding and the output layer;
ESD's choice for unconditional erasure such as nudity), ``esd-x`` = ``xattn`` (cross-attention
only; ESD's choice for prompt-specific erasure such as artists), ``esd-full`` = every parameter.
On a class-conditional model (digits-class) there is no cross-attention: ``esd-u`` then trains
everything but the time embedding and the output layer, and ``esd-x`` is refused before anything
is loaded, with the list of tasks it fits.

**Hyper-parameters** (:class:`ESDConfig`): ``negative_guidance`` eta 1.0, ``ddim_steps`` 50,
``start_guidance`` 3.0 (ESD defaults); ``steps`` 150 (ESD: 1,000 iterations; modest here, about a
minute on two CPU cores for the digits model, until tuned); ``lr`` 1e-4 (ESD: Adam 1e-5 for Stable
Diffusion; 1e-4 is the Adam rate of SalUn's CIFAR-10 DDPM port of ESD and of our other methods on
the 0.65M-parameter digits model); ``batch_size`` 8 (ESD: 1; extra samples are nearly free on
small models and reduce gradient noise).

**Tuning** (``plans/tune-digits.toml``: digits-class, forget class 0, seed 0, 150 steps;
rule: UA >= 0.99, RA within 0.005 of the best, then lowest FD). UA / RA / FD:

| variant | lr 1e-4 | lr 3e-4 |
|---|---|---|
| esd-u | **1.000 / 0.969 / 55.9** | 1.000 / 0.957 / 49.5 |
| esd-full | **1.000 / 0.966 / 61.4** | 1.000 / 0.960 / 52.7 |

Chosen: lr 1e-4 for both (the higher rate buys FD with RA). esd-x is not tuned here (digits
models have no cross-attention).

**Differences from the reference implementation.**

* The training timestep is exactly the DDIM timestep ``x_t`` is at; the diffusers script maps the
  DDIM index ``k`` to ``int(k / 50 * 1000)`` on the 1000-step schedule, which lands up to one DDIM
  interval (about 20 steps) away from the noise level of ``x_t``.
* A batch of ``batch_size`` independent starting noises (and conditions) per step, sharing one
  stop index; ESD uses one latent per step.
* The anchor is always the null condition (ESD's ``erase_from`` = the concept itself); erasing a
  concept *towards* another anchor is not implemented.
* For class-conditional models the "prompt" is the forget class id and the empty prompt is the
  null class, both through the model layer's conditioner.
* The stop index is drawn from ``1..ddim_steps-2`` with the run generator, as in
  ``esd_diffusers.py`` (``randint(1, nsteps - 1)``); partial denoising uses DDIM with eta 0 and no
  sample clipping, the same sampler as evaluation.
* Non-finite losses or gradient norms stop the run (``DivergedError``); the code trains on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from ubench.api import Method, RunContext, UnlearnOutput, UnlearnRequest
from ubench.core.config import OPTIMISATION_BOUNDS, BaseConfig, Bound, require
from ubench.models.diffusion import DiffusionModel
from ubench.training.loop import Loop, check_finite

HINT = "lower method.lr or method.negative_guidance"


@dataclass(frozen=True)
class ESDConfig(BaseConfig):
    """Hyper-parameters of ``esd-full`` (ESD defaults where they transfer)."""

    #: optimisation steps (ESD: 1,000 iterations; modest here, ~1 min on digits, until tuned)
    steps: int = 150
    #: Adam learning rate (ESD on SD: 1e-5; SalUn's CIFAR-10 DDPM port of ESD: 1e-4)
    lr: float = 1e-4
    #: partially denoised samples per step (ESD: 1)
    batch_size: int = 8
    #: eta in target = eps_0 - eta (eps_c - eps_0) (ESD: 1.0)
    negative_guidance: float = 1.0
    #: DDIM steps of the schedule the stop index is drawn from (ESD: 50)
    ddim_steps: int = 50
    #: guidance w while making x_t with the current model (ESD: 3.0)
    start_guidance: float = 3.0
    #: which parameters train; fixed per variant (``esd-u``: noxattn, ``esd-x``: xattn)
    scope: Literal["full", "xattn", "noxattn"] = "full"

    #: the scope this variant trains (``scope`` must equal it)
    variant_scope: ClassVar[str] = "full"

    bounds: ClassVar[Mapping[str, Bound]] = {
        **OPTIMISATION_BOUNDS, "negative_guidance": Bound(ge=0),
        "ddim_steps": Bound(ge=3, le=1000), "start_guidance": Bound(ge=0)}

    def validate(self) -> None:
        require(self.scope == self.variant_scope,
                f"scope is fixed to {self.variant_scope!r} for this ESD variant; use esd-full, "
                f"esd-u (noxattn) or esd-x (xattn) for another scope")


@dataclass(frozen=True)
class ESDuConfig(ESDConfig):
    """Hyper-parameters of ``esd-u``: those of ``esd-full`` on the ``noxattn`` scope."""

    scope: Literal["full", "xattn", "noxattn"] = "noxattn"
    variant_scope: ClassVar[str] = "noxattn"


@dataclass(frozen=True)
class ESDxConfig(ESDConfig):
    """Hyper-parameters of ``esd-x``: those of ``esd-full`` on the ``xattn`` scope."""

    scope: Literal["full", "xattn", "noxattn"] = "xattn"
    variant_scope: ClassVar[str] = "xattn"


@torch.no_grad()
def esd_target(frozen: DiffusionModel, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
               negative_guidance: float) -> torch.Tensor:
    """eps_0 - eta (eps_c - eps_0) from the frozen teacher (no gradient)."""
    eps_0 = frozen.predict_noise(x_t, t, frozen.null_condition(x_t.shape[0]))
    eps_c = frozen.predict_noise(x_t, t, cond)
    return eps_0 - negative_guidance * (eps_c - eps_0)


def distinct_conditions(conditions: Any) -> list[Any]:
    """The distinct forget conditions, in order of first appearance (class ids or prompts)."""
    values = conditions.reshape(-1).tolist() if isinstance(conditions, torch.Tensor) \
        else list(conditions)
    return list(dict.fromkeys(values))


class ESDMethod(Method[ESDConfig]):
    """Shared implementation of the ESD variants (not registered itself)."""

    paper: ClassVar[str | None] = "https://arxiv.org/abs/2303.07345"
    Config: ClassVar[type[BaseConfig]] = ESDConfig
    #: only for the forget *conditions*; ESD never looks at the forget images
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data"})

    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: ESDConfig,
                ctx: RunContext) -> UnlearnOutput:
        cfg = config
        assert request.forget is not None  # runner checked
        # ESD erases the concept's own prompt where the task names one (SD: "nudity"), else
        # the distinct forget conditions (class ids; prompts on tasks without a concept prompt)
        source = "concept prompts" if request.concept else "forget conditions"
        conditions = list(request.concept) if request.concept \
            else distinct_conditions(request.forget.conditions)
        teacher = model.clone_frozen()  # the base weights, before any checkpoint is loaded
        loop = Loop(model, ctx, scope=cfg.scope, steps=cfg.steps, lr=cfg.lr, hint=HINT)
        loop.log.update(conditions=conditions[:10], n_conditions=len(conditions),
                        condition_source=source, scope=cfg.scope)
        gen = loop.noise  # stop index, conditions, starting noise

        def body(step: int) -> Mapping[str, float]:
            stop = int(torch.randint(1, cfg.ddim_steps - 1, (1,), generator=gen))
            pick = torch.randint(0, len(conditions), (cfg.batch_size,), generator=gen)
            cond = model.encode([conditions[i] for i in pick.tolist()])
            x_t, t = model.denoise_partially(cond, steps=cfg.ddim_steps, stop=stop,
                                             guidance=cfg.start_guidance, generator=gen)
            target = esd_target(teacher, x_t, t, cond, cfg.negative_guidance)
            loss = F.mse_loss(model.predict_noise(x_t, t, cond), target)
            check_finite(loss, "the ESD loss", step, HINT)
            loss.backward()
            return {"loss": float(loss.detach())}

        return loop.run(body)


class ESDFull(ESDMethod):
    """ESD (Gandikota et al. 2023): negative-guidance self-distillation on every parameter."""

    name: ClassVar[str] = "esd-full"
    family: ClassVar[str] = "esd"
    #: the fair protocol's tuning space (8 points per family; docs/protocol.md): lr x the
    #: negative guidance eta
    search_space: ClassVar[Mapping[str, Mapping[str, Sequence[Any]]]] = {
        "class-conditional": {"lr": [1e-5, 3e-5, 1e-4, 3e-4], "negative_guidance": [1.0, 3.0]},
        "text-conditional": {"lr": [1e-5, 3e-5, 1e-4, 3e-4], "negative_guidance": [1.0, 3.0]},
    }
    Config: ClassVar[type[BaseConfig]] = ESDConfig


class ESDu(ESDMethod):
    """ESD-u (Gandikota et al. 2023): negative-guidance self-distillation outside cross-attention."""  # noqa: E501

    name: ClassVar[str] = "esd-u"
    family: ClassVar[str] = "esd"
    #: the fair protocol's tuning space (8 points per family; docs/protocol.md): lr x the
    #: negative guidance eta
    search_space: ClassVar[Mapping[str, Mapping[str, Sequence[Any]]]] = {
        "class-conditional": {"lr": [1e-5, 3e-5, 1e-4, 3e-4], "negative_guidance": [1.0, 3.0]},
        "text-conditional": {"lr": [1e-5, 3e-5, 1e-4, 3e-4], "negative_guidance": [1.0, 3.0]},
    }
    Config: ClassVar[type[BaseConfig]] = ESDuConfig


class ESDx(ESDMethod):
    """ESD-x (Gandikota et al. 2023): negative-guidance self-distillation on cross-attention only."""  # noqa: E501

    name: ClassVar[str] = "esd-x"
    family: ClassVar[str] = "esd"
    #: the fair protocol's tuning space (8 points; docs/protocol.md): lr x the negative
    #: guidance eta; cross-attention alone needs larger steps (t2i recipe lr 1e-3)
    search_space: ClassVar[Mapping[str, Mapping[str, Sequence[Any]]]] = {
        "text-conditional": {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "negative_guidance": [1.0, 3.0]},
    }
    Config: ClassVar[type[BaseConfig]] = ESDxConfig
    #: explicit, besides ``scope=xattn``: without cross-attention there is nothing to train
    requires_model: ClassVar[frozenset[str]] = frozenset({"xattn"})
