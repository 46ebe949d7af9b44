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

* ``clip`` — per element, ``min((eps_theta - eps)^2, clip_alpha)`` before averaging: a cap on
  the noise-prediction error (ubench's first reading of the CIFAR code); elements already past
  the cap give no gradient, bounding the ascent;
* ``clip-x0`` — the CIFAR code's own cap: per element on the error of the *denoised image*,
  ``w(t) * min((x0_theta - x0)^2, clip_alpha)`` with the weight that makes the uncapped loss the
  eps-MSE, ``w(t) = SNR(t) = abar_t / (1 - abar_t)``. Since ``(x0_theta - x0)^2 =
  (eps_theta - eps)^2 / SNR(t)``, this is ``min((eps_theta - eps)^2, clip_alpha * SNR(t))``: it
  binds at high noise, where ``clip`` never does, and not at low noise, where ``clip`` binds
  first (the code's EDM weight ``1/sigma_data^2 + 1/sigma^2`` differs from SNR(t) by a constant
  that only matters at low noise, where the cap does not bind);
* ``threshold`` — on the scalar batch loss (the SD code): once ``l_f > m`` the forget term is
  switched off for the step and only the remain term acts. ``threshold_unit=absolute`` takes
  ``m = threshold_m`` (the SD script's 1.1, set for SD's loss scale); ``base-loss`` measures
  the base model's own forget loss ``L0`` before the first step (:func:`base_forget_loss`) and
  takes ``m = threshold_m * L0``, so that the knob means the same on every model (the official
  README asks users with other data to re-tune m). The official code divides the loss by its
  own norm instead; that quotient is identically 1 and its gradient is exactly zero, so the
  official step is the same ``lambda r`` (docs/decisions.md);
* ``none`` — plain ascent.

Batches: ``batching=independent`` draws forget and remain mini-batches from their own
permutations; ``paired`` takes remain batch i as the pairs of forget batch i (the remain prompt
is the forget prompt without the concept), as the SD code zips two index-aligned loaders (it
needs a task that provides ``paired_data``, and mini-batch remain gradients).

The loop itself (batches, finiteness checks, checkpoints, progress) is ``_loop.Loop``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ubench.api import (
    ConditionedSet,
    Method,
    RunContext,
    UnlearnOutput,
    UnlearnRequest,
    as_conditions,
    take_conditions,
)
from ubench.core.config import OPTIMISATION_BOUNDS, BaseConfig, Bound, require
from ubench.core.errors import ConfigError
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
    #: forget-loss truncation: ``clip`` (per element, on the eps error), ``clip-x0`` (per
    #: element, on the denoised-image error: the CIFAR code), ``threshold`` (scalar, SD), ``none``
    truncation: Literal["clip", "clip-x0", "threshold", "none"] = "clip"
    #: cap of the per-element squared error for ``clip`` / ``clip-x0`` (CIFAR script "alpha": 0.1)
    clip_alpha: float = 0.1
    #: scalar forget-loss threshold m for ``threshold`` (SD script: 1.1), in ``threshold_unit``
    threshold_m: float = 1.1
    #: ``absolute``: m is an eps-MSE; ``base-loss``: m is a multiple of the base model's own
    #: forget loss, measured before the first step and recorded in the train log
    threshold_unit: Literal["absolute", "base-loss"] = "absolute"
    #: remain gradient from one ``minibatch`` per step or from the ``full`` D_r (paper's RGD)
    remain_gradient: Literal["minibatch", "full"] = "full"
    #: remain mini-batches drawn ``independent``ly of the forget batches, or ``paired`` with them
    #: (remain item i = forget item i without the concept; the SD code's zipped loaders)
    batching: Literal["independent", "paired"] = "independent"
    #: which parameters train: ``full`` (paper), ``xattn`` or ``noxattn`` (ESD's scopes)
    scope: Literal["full", "xattn", "noxattn"] = "full"

    bounds: ClassVar[Mapping[str, Bound]] = {
        **OPTIMISATION_BOUNDS, "remain_weight": Bound(ge=0), "clip_alpha": Bound(gt=0),
        "threshold_m": Bound(gt=0)}

    def validate(self) -> None:
        require(not (self.batching == "paired" and self.remain_gradient == "full"),
                "method.batching=paired pairs remain mini-batches with forget mini-batches; "
                "set method.remain_gradient=minibatch (or method.batching=independent)")


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
    err, snr = model.denoising_error_snr(x0.to(model.device), model.encode(y), loop.noise)
    raw = err.mean()
    check_finite(raw, "the forget loss", step, HINT)
    if cfg.truncation == "threshold" and float(raw.detach()) > loop.log["threshold"]:
        loop.log["forget_off"] += 1
        return float(raw.detach()), True
    if cfg.truncation == "clip":
        loss = err.clamp(max=cfg.clip_alpha).mean()
    elif cfg.truncation == "clip-x0":
        loss = torch.minimum(err, cfg.clip_alpha * snr).mean()
    else:
        loss = raw
    (loss * sign).backward()
    return float(raw.detach()), False


#: images of D_f and timestep strata of :func:`base_forget_loss` (64 x 25 = 1,600 terms)
BASE_LOSS_IMAGES, BASE_LOSS_STRATA = 64, 25
#: seed of its own generator: the measurement never touches the run's random streams, and is the
#: same for every run of a task instance
BASE_LOSS_SEED = 20_241_208


@torch.no_grad()
def base_forget_loss(model: DiffusionModel, forget: ConditionedSet, batch_size: int) -> float:
    """The model's mean eps-MSE on D_f, the quantity the ``threshold`` truncation compares.

    The per-timestep loss spans three orders of magnitude (on the t2i base model 0.40 at
    t < 50 and 6e-4 at t >= 800), so a plain Monte Carlo mean over uniform t is noisy; here the
    first ``BASE_LOSS_IMAGES`` images of D_f each get one timestep drawn uniformly inside each
    of ``BASE_LOSS_STRATA`` equal strata of [0, T) (stratified sampling: the same expectation as
    the training loss's uniform t), with noise from a generator of its own.
    """
    gen = torch.Generator().manual_seed(BASE_LOSS_SEED)
    n = min(len(forget), BASE_LOSS_IMAGES)
    images = forget.images[:n]
    conditions = take_conditions(as_conditions(forget.conditions), slice(0, n))
    steps = model.noise_scheduler.config.num_train_timesteps
    width = steps // BASE_LOSS_STRATA
    total, count = 0.0, 0
    for k in range(BASE_LOSS_STRATA):  # the draws do not depend on the batch size
        ts = k * width + torch.randint(0, width, (n,), generator=gen)
        noises = torch.randn(images.shape, generator=gen)
        for i in range(0, n, batch_size):
            x0 = images[i:i + batch_size].to(model.device)
            t, noise = ts[i:i + batch_size].to(model.device), noises[i:i + batch_size].to(x0)
            x_t = model.noise_scheduler.add_noise(x0, noise, t)
            cond = model.encode(take_conditions(conditions, slice(i, i + batch_size)))
            err = (model.predict_noise(x_t, t, cond) - noise).pow(2)
            total += float(err.mean(dim=tuple(range(1, err.dim()))).sum())
            count += len(x0)
    return total / count


def remain_backward(loop: Loop, cfg: GradientConfig, step: int, weight: float) -> float:
    """Backpropagate ``weight *`` the remain loss into ``.grad``; return the (unweighted) loss.

    ``minibatch``: the next remain batch. ``full``: every chunk of D_r, each loss scaled by its
    share of the set, so ``.grad`` receives the gradient of the mean loss over D_r.
    """
    assert loop.remain is not None
    model = loop.model
    if cfg.remain_gradient == "full":
        batches = loop.remain.chunks(cfg.batch_size)
    elif cfg.batching == "paired":
        assert loop.forget is not None
        batches = [loop.remain.take(loop.forget.last)]
    else:
        batches = [loop.remain.next()]
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
        if self.uses_remain and config.batching == "paired" and (
                request.remain is None or request.forget is None
                or len(request.remain) != len(request.forget)):
            raise ConfigError("method.batching=paired needs D_f and D_r of one size (item i of "
                              "each is a pair); set method.batching=independent")
        if self.uses_forget and config.truncation == "threshold":
            assert request.forget is not None
            m = config.threshold_m
            if config.threshold_unit == "base-loss":
                base = base_forget_loss(model, request.forget, config.batch_size)
                loop.log["base_forget_loss"] = base
                m *= base
            loop.log["threshold"] = m

        def body(step: int) -> Mapping[str, float]:
            scalars = self.step(loop, request, config, step)
            fill_missing_grads(loop.params)
            return scalars

        return loop.run(body)
