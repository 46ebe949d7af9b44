"""The two terms shared by the gradient family (boostalign, graddiff, ga, finetune).

Every step of the family uses up to two gradients over the trainable parameters, as the official
code does (paper §3, "restricted gradient"; code ``nsfw_RGD.py`` / ``training_loop.py``):

* the **forget ascent direction** ``a = -grad(l_f)``, with ``l_f`` the (truncated) denoising
  loss on a forget batch — subtracting ``a`` *increases* the forget loss;
* the **remain descent direction** ``r = grad(l_r)``, with ``l_r`` the denoising loss on a remain
  batch (``minibatch``) or on the whole of D_r (``full``, the paper's RGD on CIFAR-10), chunks
  weighted by their size.

Each method's step body backpropagates the terms it uses straight into ``.grad``
(:func:`forget_backward`, :func:`remain_backward`) and Adam takes the step; ``graddiff``, ``ga``
and ``finetune`` need no buffer beyond ``.grad``, ``boostalign`` one (it must see ``a`` and ``r``
apart to project them). Truncation of the forget loss:

* ``clip`` — per element, ``min((eps_theta - eps)^2, clip_alpha)`` before averaging (the CIFAR
  code); elements already past the cap give no gradient, bounding the ascent;
* ``threshold`` — on the scalar batch loss (the SD code): once ``l_f > threshold_m`` the forget
  term is switched off for the step and only the remain term acts. The official code divides the
  loss by its own norm instead; that quotient is identically 1 and its gradient is exactly zero,
  so the official step is the same ``lambda r`` (docs/decisions.md);
* ``none`` — plain ascent.

The loop itself (batches, finiteness checks, checkpoints, progress) is ``_loop.Loop``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ubench.api import Method, RunContext, UnlearnOutput, UnlearnRequest
from ubench.core.config import OPTIMISATION_BOUNDS, BaseConfig, Bound
from ubench.models.diffusion import DiffusionModel
from ubench.training.loop import Loop, check_finite


@dataclass(frozen=True)
class GradientConfig(BaseConfig):
    """Hyper-parameters shared by the gradient family (defaults tuned on digits-class;
    docs/tasks/digits.md)."""

    #: optimisation steps (the paper: 782 on CIFAR-10, 100 on SD)
    steps: int = 100
    #: Adam learning rate (the paper: 1e-5 for models 100x-1000x larger than ours)
    lr: float = 1e-4
    #: forget (and remain, in ``minibatch`` mode) batch size; the paper: 64 (CIFAR), 8 (SD)
    batch_size: int = 64
    #: lambda, the remain weight (CIFAR script: 5; SD script "alpha": 1.6)
    remain_weight: float = 5.0
    #: forget-loss truncation: ``clip`` (per element, CIFAR), ``threshold`` (scalar, SD), ``none``
    truncation: Literal["clip", "threshold", "none"] = "clip"
    #: cap of the per-element squared error for ``clip`` (CIFAR script "alpha": 0.1)
    clip_alpha: float = 0.1
    #: scalar forget-loss threshold m for ``threshold`` (SD script: 1.1)
    threshold_m: float = 1.1
    #: remain gradient from one ``minibatch`` per step or from the ``full`` D_r (paper's RGD)
    remain_gradient: Literal["minibatch", "full"] = "full"
    #: which parameters train: ``full`` (paper), ``xattn`` or ``noxattn`` (ESD's scopes)
    scope: Literal["full", "xattn", "noxattn"] = "full"

    bounds: ClassVar[Mapping[str, Bound]] = {
        **OPTIMISATION_BOUNDS, "remain_weight": Bound(ge=0), "clip_alpha": Bound(gt=0),
        "threshold_m": Bound(gt=0)}


#: what to try when the gradient family diverges
HINT = "lower method.lr or method.remain_weight, or use method.truncation=clip"


def forget_backward(loop: Loop, cfg: GradientConfig, step: int, sign: float
                    ) -> tuple[float, bool]:
    """Backpropagate ``sign *`` the truncated forget loss of the next forget batch into ``.grad``.

    ``sign=-1`` accumulates the ascent direction ``a``; ``+1`` the plain gradient (negating the
    loss negates every gradient exactly). Returns (the raw, untruncated batch loss; whether
    threshold truncation switched the term off — then nothing is backpropagated and the loop's
    ``forget_off`` counter goes up).
    """
    assert loop.forget is not None
    model = loop.model
    x0, y = loop.forget.next()
    err = model.denoising_error(x0.to(model.device), model.encode(y), loop.noise)
    raw = err.mean()
    check_finite(raw, "the forget loss", step, HINT)
    if cfg.truncation == "threshold" and float(raw.detach()) > cfg.threshold_m:
        loop.log["forget_off"] += 1
        return float(raw.detach()), True
    loss = err.clamp(max=cfg.clip_alpha).mean() if cfg.truncation == "clip" else raw
    (loss * sign).backward()
    return float(raw.detach()), False


def remain_backward(loop: Loop, cfg: GradientConfig, step: int, weight: float) -> float:
    """Backpropagate ``weight *`` the remain loss into ``.grad``; return the (unweighted) loss.

    ``minibatch``: the next remain batch. ``full``: every chunk of D_r, each loss scaled by its
    share of the set, so ``.grad`` receives the gradient of the mean loss over D_r.
    """
    assert loop.remain is not None
    model = loop.model
    batches = [loop.remain.next()] if cfg.remain_gradient == "minibatch" \
        else loop.remain.chunks(cfg.batch_size)
    total = sum(len(b[0]) for b in batches)
    loss_sum = 0.0
    for x0, y in batches:
        loss = model.denoising_loss(x0.to(model.device), model.encode(y), loop.noise)
        check_finite(loss, "the remain loss", step, HINT)
        (loss * (weight * len(x0) / total)).backward()
        loss_sum += float(loss.detach()) * len(x0) / total
    return loss_sum


def fill_missing_grads(params: list[torch.nn.Parameter]) -> None:
    """Give every parameter without a gradient a zero one, so that Adam counts the step for it
    (a switched-off forget term is a zero step, not a skipped one)."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


class GradientMethod(Method[GradientConfig]):
    """Base of the gradient family: subclasses say which terms they use and write the step."""

    Config: ClassVar[type[BaseConfig]] = GradientConfig
    uses_forget: ClassVar[bool] = True
    uses_remain: ClassVar[bool] = True
    #: counters of the train log a step body increments (``forget_off`` comes with the forget term)
    log_counters: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def step(self, loop: Loop, request: UnlearnRequest, cfg: GradientConfig, step: int
             ) -> Mapping[str, float]:
        """Leave this step's gradient in ``.grad``; return the losses to report."""

    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: GradientConfig,
                ctx: RunContext) -> UnlearnOutput:
        loop = Loop(model, ctx, scope=config.scope, steps=config.steps, lr=config.lr, hint=HINT,
                    forget=request.forget if self.uses_forget else None,
                    remain=request.remain if self.uses_remain else None,
                    batch_size=config.batch_size)
        loop.log.update(dict.fromkeys(self.log_counters, 0))
        if self.uses_forget:
            loop.log["forget_off"] = 0

        def body(step: int) -> Mapping[str, float]:
            scalars = self.step(loop, request, config, step)
            fill_missing_grads(loop.params)
            return scalars

        return loop.run(body)
