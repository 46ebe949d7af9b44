"""``rl`` — random label: teach the forget condition to behave like another condition.

Paper: Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in Both
Image Classification and Generation", ICLR 2024, https://arxiv.org/abs/2310.12508 (official code:
OPTML-Group/Unlearn-Saliency, ``DDPM/runners/diffusion.py``, ``--method rl`` without a mask). RL is
the paper's baseline and the forgetting half of SalUn (``salun`` = this + a weight-saliency mask).

**Idea.** Instead of pushing the forget loss up without bound (gradient ascent), relabel: for a
forget image ``x`` of condition ``c``, noise it to ``x_t`` and train ``eps_theta(x_t, t, c)`` to
match what the model itself predicts for the same ``x_t`` (same ``t``, same noise) under a pseudo
condition ``c'``, held fixed (stop-gradient). Generating with ``c`` then produces ``c'``-like
content; the target is bounded, so the loss cannot run away as ascent does. A remain term keeps
the other conditions intact::

    loss = || eps_theta(x_t, t, c) - sg(eps_theta(x_t, t, c')) ||^2          (a D_f batch)
           + remain_weight * || eps_theta(x'_t', t', c_r) - eps' ||^2          (a D_r batch)

The pseudo-label rule is explicit (``pseudo``): ``next`` = (c + 1) mod K, the released CIFAR-10
DDPM code's choice; ``random`` = a uniformly random other class per sample (the paper describes
the pseudo label as a random c' != c), drawn from the run's generator. On text-conditioned tasks
the pseudo condition of each forget prompt is its *anchor*, the paired remain prompt the task
provides (SalUn's SD code maps "a photo of a nude person" to "a photo of a person wearing
clothes"); ``pseudo`` is then unused. The loss and the labels live in ``_labels.py`` and are
shared with ``salun``.

**Hyper-parameters** (:class:`RandomLabelConfig`; SalUn CIFAR-10 DDPM values where they transfer):
``steps`` 100 (SalUn: 500 iterations; kept modest for the 0.65M-parameter digits model until
tuned), ``lr`` 1e-4 (Adam; SalUn CIFAR config), ``batch_size`` 64 for both batches (SalUn: 128;
the digits forget set has ~140 images), ``remain_weight`` alpha 1 (tuned below; the SalUn
DDPM README's ``--alpha`` is 1e-3, its SD scripts use 0.1), ``grad_clip`` 1.0 (SalUn CIFAR
config ``optim.grad_clip``), ``pseudo`` ``next``, ``scope`` ``full``.

**Tuning** (``plans/tune-digits.toml``: digits-class, forget class 0, seed 0; rule: UA >= 0.99,
RA within 0.005 of the best, then lowest FD). UA / RA / FD:

| remain_weight | lr 1e-4 | lr 3e-4 |
|---|---|---|
| 1e-3 (SalUn DDPM) | 0.950 / 0.072 / 718 | 1.000 / 0.103 / 606 |
| 1 | **1.000 / 1.000 / 42.7** | 1.000 / 1.000 / 53.2 |

Chosen: remain_weight 1, lr 1e-4. With SalUn's alpha = 1e-3 nothing anchors the other classes and
Adam moves every weight by ~lr per step, which wrecks a model this small within 100 steps.

**Differences from the reference implementation.**

* Timesteps are drawn i.i.d. uniformly; the code uses antithetic pairs ``(t, T-1-t)``.
* No label dropout and no UNet dropout while unlearning: the code calls its model in "train" mode,
  which replaces the condition by the null class with probability 0.1 (its ``cond_drop_prob``) in
  all three predictions and applies dropout 0.1; our UNet has no dropout and conditions are kept.
* Non-finite losses or gradient norms stop the run (``DivergedError``); the code trains on.
* ``pseudo=random`` is an addition (``next`` reproduces the code); ``scope`` allows ESD's subsets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from ubench.api import Method, RunContext, UnlearnOutput, UnlearnRequest, take_conditions
from ubench.core.config import OPTIMISATION_BOUNDS, BaseConfig, Bound
from ubench.methods._labels import (
    num_classes_of,
    pseudo_labels,
    random_label_loss,
    text_anchors,
)
from ubench.models.diffusion import DiffusionModel
from ubench.training.loop import Loop, check_finite

HINT = "lower method.lr, or set method.grad_clip (e.g. 1.0) if it is off"


@dataclass(frozen=True)
class RandomLabelConfig(BaseConfig):
    """Hyper-parameters of ``rl`` (SalUn CIFAR-10 DDPM defaults where they transfer)."""

    #: optimisation steps (SalUn CIFAR: 500 iterations; modest here until tuned on digits)
    steps: int = 100
    #: Adam learning rate (SalUn CIFAR config: 1e-4; SD: 1e-5)
    lr: float = 1e-4
    #: forget batch size, and remain batch size (SalUn CIFAR: 128; SD: 8)
    batch_size: int = 64
    #: alpha, weight of the remain denoising loss; tuned on digits-class (module docstring).
    #: SalUn DDPM README: 1e-3 (which destroys the 0.65M-parameter digits model); SD: 0.1
    remain_weight: float = 1.0
    #: pseudo-label rule: ``next`` = (c + 1) mod K (SalUn CIFAR code), ``random`` = any other class
    pseudo: Literal["next", "random"] = "next"
    #: clip the gradient's global norm to this before the step; 0 = off (SalUn CIFAR config: 1.0)
    grad_clip: float = 1.0
    #: which parameters train: ``full`` (SalUn), ``xattn`` or ``noxattn`` (ESD's scopes)
    scope: Literal["full", "xattn", "noxattn"] = "full"

    bounds: ClassVar[Mapping[str, Bound]] = {
        **OPTIMISATION_BOUNDS, "remain_weight": Bound(ge=0), "grad_clip": Bound(ge=0)}


class RandomLabel(Method[RandomLabelConfig]):
    """Random label: train the forget condition toward another condition's prediction, plus a remain term."""  # noqa: E501

    name: ClassVar[str] = "rl"
    family: ClassVar[str] = "random-label"
    #: the fair protocol's tuning space (8 points per family; docs/protocol.md): lr x the
    #: remain weight alpha
    search_space: ClassVar[Mapping[str, Mapping[str, Sequence[Any]]]] = {
        "class-conditional": {"lr": [3e-5, 1e-4, 3e-4, 1e-3], "remain_weight": [0.1, 1.0]},
        "text-conditional": {"lr": [1e-5, 3e-5, 1e-4, 3e-4], "remain_weight": [0.1, 1.0]},
    }
    paper: ClassVar[str | None] = "https://arxiv.org/abs/2310.12508"
    Config: ClassVar[type[BaseConfig]] = RandomLabelConfig
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data", "remain_data"})

    def gradient_mask(self, model: DiffusionModel, params: Sequence[torch.nn.Parameter],
                      request: UnlearnRequest, config: RandomLabelConfig, ctx: RunContext
                      ) -> tuple[list[torch.Tensor] | None, dict[str, Any]]:
        """A 0/1 tensor per parameter to multiply into every gradient (``None``: no mask).

        Called once, on the base weights, before any step or checkpoint is loaded. ``salun``
        overrides it with the weight-saliency mask.
        """
        return None, {}

    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: RandomLabelConfig,
                ctx: RunContext) -> UnlearnOutput:
        cfg = config
        assert request.forget is not None and request.remain is not None  # runner checked
        anchors = text_anchors(model, request.forget, self.name)
        num_classes = 0 if anchors is not None else num_classes_of(model, self.name)
        loop = Loop(model, ctx, scope=cfg.scope, steps=cfg.steps, lr=cfg.lr, hint=HINT,
                    forget=request.forget, remain=request.remain, batch_size=cfg.batch_size)
        mask, mask_log = self.gradient_mask(model, loop.params, request, cfg, ctx)
        loop.log.update(pseudo=cfg.pseudo, **mask_log)
        forget, remain = loop.forget, loop.remain
        assert forget is not None and remain is not None

        def body(step: int) -> Mapping[str, float]:
            # the two losses are backpropagated one after the other (only one graph alive); each
            # parameter receives one contribution from each, so .grad is what one backward of
            # their sum gives, bit for bit
            x_f, y_f = forget.next()
            y_p = take_conditions(anchors, forget.last) if anchors is not None \
                else pseudo_labels(y_f, num_classes, cfg.pseudo, loop.noise)
            lf = random_label_loss(model, x_f.to(model.device), model.encode(y_f),
                                   model.encode(y_p), loop.noise)
            check_finite(lf, "the forget (random-label) loss", step, HINT)
            lf.backward()
            x_r, y_r = remain.next()
            lr = model.denoising_loss(x_r.to(model.device), model.encode(y_r), loop.noise)
            check_finite(lr, "the remain loss", step, HINT)
            (cfg.remain_weight * lr).backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(loop.params, cfg.grad_clip)
            if mask is not None:  # after clipping, as in the SalUn code
                for p, m in zip(loop.params, mask, strict=True):
                    if p.grad is not None:
                        p.grad.mul_(m)
            return {"forget_loss": float(lf.detach()), "remain_loss": float(lr.detach())}

        return loop.run(body)
