"""The loop shared by the gradient family (boostalign, graddiff, ga, finetune).

Every step computes up to two gradients over the trainable parameters, exactly as the official
code does (digest §2.2):

* the **forget ascent direction** ``a = -grad(l_f)``, with ``l_f`` the (truncated) denoising
  loss on a forget batch — so subtracting ``a`` *increases* the forget loss;
* the **remain descent direction** ``r = grad(l_r)``, with ``l_r`` the denoising loss on a remain
  batch (``minibatch``) or on the whole of D_r (``full``, the paper's RGD on CIFAR-10).

A method only decides how to combine them (``combine(a, r, weight)``); the result is written into
``.grad`` and Adam takes the step. Truncation of the forget loss:

* ``clip`` — per element, ``min((eps_theta - eps)^2, clip_alpha)`` before averaging (the CIFAR
  code); elements already past the cap give no gradient, bounding the ascent;
* ``threshold`` — on the scalar batch loss (the SD code): once ``l_f > threshold_m`` the forget
  direction is **set to zero and the projection skipped**, so only the remain term acts. (The
  official code divides the loss by its own norm, whose gradient is zero up to rounding but
  whose direction still steers the projection of ``r``; we choose the explicit reading, see
  README "Decisions");
* ``none`` — plain ascent.

A NaN or infinite loss or gradient stops the run with :class:`~ubench.errors.DivergedError`. The
loop checkpoints every ``ctx.checkpoint_every`` steps (weights, Adam state, RNG states) and resumes
from the last checkpoint, bit for bit, when the same run is started again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

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
from ubench.config import BaseConfig, require, validate_optimisation
from ubench.errors import DivergedError
from ubench.models.diffusion import DiffusionModel

Grads = list[torch.Tensor]


@dataclass(frozen=True)
class GradientConfig(BaseConfig):
    """Hyper-parameters shared by the gradient family (defaults tuned on digits-class; README)."""

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

    def validate(self) -> None:
        validate_optimisation(self)
        require(self.remain_weight >= 0, f"remain_weight must be >= 0; got {self.remain_weight}")
        require(self.clip_alpha > 0, f"clip_alpha must be > 0; got {self.clip_alpha}")
        require(self.threshold_m > 0, f"threshold_m must be > 0; got {self.threshold_m}")


class _Batches:
    """Endless, reshuffled mini-batches of a ConditionedSet from a seeded generator."""

    def __init__(self, data: ConditionedSet, batch_size: int, gen: torch.Generator) -> None:
        self.data, self.bs, self.gen = data, min(batch_size, len(data)), gen
        self.conditions = as_conditions(data.conditions)
        self.order = torch.randperm(len(data), generator=gen)
        self.pos = 0
        #: indices of the last batch (to look up per-sample side data such as anchors)
        self.last: torch.Tensor = self.order[:0]

    def next(self) -> tuple[torch.Tensor, Any]:
        if self.pos + self.bs > len(self.data):
            self.order, self.pos = torch.randperm(len(self.data), generator=self.gen), 0
        idx = self.order[self.pos:self.pos + self.bs]
        self.pos += self.bs
        self.last = idx
        return self.data.images[idx], take_conditions(self.conditions, idx)

    def state(self) -> dict[str, Any]:
        return {"order": self.order.tolist(), "pos": self.pos}

    def load(self, state: dict[str, Any]) -> None:
        self.order, self.pos = torch.tensor(state["order"]), int(state["pos"])


def _grads(params: Sequence[torch.nn.Parameter]) -> Grads:
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            for p in params]


#: what to try when the gradient family diverges (other methods pass their own ``hint``)
_HINT = "lower method.lr or method.remain_weight, or use method.truncation=clip"


def _check(value: torch.Tensor | float, what: str, step: int, hint: str = _HINT) -> None:
    """Raise :class:`DivergedError` (with ``hint``, the fix to try) if ``value`` is NaN or inf."""
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise DivergedError(f"{what} became {v} at step {step}; {hint}")


class GradientMethod(Method):
    """Base of the gradient family: subclasses say which terms they use and how to combine."""

    Config: ClassVar[type[BaseConfig]] = GradientConfig
    uses_forget: ClassVar[bool] = True
    uses_remain: ClassVar[bool] = True

    def combine(self, a: Grads, r: Grads, weight: float) -> tuple[Grads, dict[str, float]]:
        """Return the gradient to write into ``.grad`` and scalars to log."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the two terms
    def forget_direction(self, model: DiffusionModel, params: Sequence[torch.nn.Parameter],
                         batch: tuple[torch.Tensor, Any], cfg: GradientConfig,
                         gen: torch.Generator, step: int) -> tuple[Grads, float, bool]:
        """(a, raw loss, switched off): a = -grad of the truncated forget loss.

        ``a`` is all zeros (and "switched off" is true) when threshold truncation is active.
        """
        x0, y = batch
        err = model.denoising_error(x0.to(model.device), model.encode(y), gen)
        raw = err.mean()
        _check(raw.detach(), "the forget loss", step)
        if cfg.truncation == "clip":
            loss = err.clamp(max=cfg.clip_alpha).mean()
        elif cfg.truncation == "threshold" and float(raw.detach()) > cfg.threshold_m:
            return [torch.zeros_like(p) for p in params], float(raw.detach()), True
        else:
            loss = raw
        for p in params:
            p.grad = None
        loss.backward()
        return [-g for g in _grads(params)], float(raw.detach()), False

    def remain_direction(self, model: DiffusionModel, params: Sequence[torch.nn.Parameter],
                         batches: list[tuple[torch.Tensor, Any]],
                         gen: torch.Generator, step: int) -> tuple[Grads, float]:
        """r = grad of the remain loss, size-weighted over ``batches`` (one, or all of D_r)."""
        total = sum(len(b[0]) for b in batches)
        for p in params:
            p.grad = None
        loss_sum = 0.0
        for x0, y in batches:
            loss = model.denoising_loss(x0.to(model.device), model.encode(y), gen)
            _check(loss.detach(), "the remain loss", step)
            (loss * (len(x0) / total)).backward()
            loss_sum += float(loss.detach()) * len(x0) / total
        return _grads(params), loss_sum

    # ------------------------------------------------------------------ the loop
    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: Any,
                ctx: RunContext) -> UnlearnOutput:
        cfg: GradientConfig = config
        named = model.named_parameters(cfg.scope)
        params = model.trainable_parameters(cfg.scope)
        opt = torch.optim.Adam(params, lr=cfg.lr)
        gen = ctx.generator(1)  # noise and timesteps
        forget = _Batches(request.forget, cfg.batch_size, ctx.generator(2)) \
            if self.uses_forget and request.forget is not None else None
        remain = _Batches(request.remain, cfg.batch_size, ctx.generator(3)) \
            if self.uses_remain and request.remain is not None else None
        log: dict[str, Any] = {"conflicts": 0, "forget_off": 0}
        start = _resume(ctx, model, opt, gen, forget, remain, log)
        model.unet.train()
        for step in range(start, cfg.steps):
            zeros = [torch.zeros_like(p) for p in params]
            a, lf, off = (self.forget_direction(model, params, forget.next(), cfg, gen, step)
                          if forget else (zeros, float("nan"), True))
            r, lr_ = (self.remain_direction(model, params, self._remain_batches(remain, request,
                                                                               cfg), gen, step)
                      if remain else (zeros, float("nan")))
            g, info = self.combine(a, r, cfg.remain_weight)
            for p, gi in zip(params, g, strict=True):
                _check(gi.abs().sum(), "the combined gradient", step)
                p.grad = gi
            opt.step()
            log["conflicts"] += int(info.get("conflict", 0))
            log["forget_off"] += int(off and forget is not None)
            log.update(final_forget_loss=lf, final_remain_loss=lr_, steps=step + 1)
            if ctx.checkpoint_every and (step + 1) % ctx.checkpoint_every == 0 \
                    and step + 1 < cfg.steps:
                _save(ctx, model, opt, gen, forget, remain, log, step + 1)
            if ctx.on_step is not None:
                ctx.on_step(step + 1, cfg.steps, {"forget_loss": lf, "remain_loss": lr_})
        for p in model.unet.parameters():
            p.requires_grad_(False)
        return UnlearnOutput(model, [n for n, _ in named], log)

    @staticmethod
    def _remain_batches(remain: _Batches, request: UnlearnRequest, cfg: GradientConfig
                        ) -> list[tuple[torch.Tensor, Any]]:
        if cfg.remain_gradient == "minibatch":
            return [remain.next()]
        data = request.remain
        assert data is not None
        cond = as_conditions(data.conditions)
        return [(data.images[i:i + cfg.batch_size],
                 take_conditions(cond, slice(i, i + cfg.batch_size)))
                for i in range(0, len(data), cfg.batch_size)]


# ---------------------------------------------------------------------- checkpoints
def _ckpt_dir(ctx: RunContext) -> Any:
    return ctx.run_dir / "checkpoint"


def _save(ctx: RunContext, model: DiffusionModel, opt: torch.optim.Optimizer,
          gen: torch.Generator, forget: _Batches | None, remain: _Batches | None,
          log: dict[str, Any], step: int) -> None:
    """Write a resumable checkpoint atomically (tmp folder, then rename)."""
    from safetensors.torch import save_file

    d = _ckpt_dir(ctx)
    tmp = d.with_name("checkpoint.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.unet.state_dict().items()},
              str(tmp / "unet.safetensors"))
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    torch.save({"gen": gen.get_state(),
                "forget_gen": forget.gen.get_state() if forget else None,
                "remain_gen": remain.gen.get_state() if remain else None}, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({
        "step": step, "log": log,
        "forget": forget.state() if forget else None,
        "remain": remain.state() if remain else None}))
    if d.exists():
        old = d.with_name("checkpoint.old")
        os.replace(d, old)
        os.replace(tmp, d)
        import shutil

        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, d)


def _resume(ctx: RunContext, model: DiffusionModel, opt: torch.optim.Optimizer,
            gen: torch.Generator, forget: _Batches | None, remain: _Batches | None,
            log: dict[str, Any]) -> int:
    """Load the last checkpoint if there is one; return the step to continue from."""
    d = _ckpt_dir(ctx)
    if not (d / "state.json").is_file():
        return 0
    from safetensors.torch import load_file

    model.unet.load_state_dict(load_file(str(d / "unet.safetensors")))
    opt.load_state_dict(torch.load(d / "optimizer.pt", weights_only=True))
    rng = torch.load(d / "rng.pt", weights_only=True)
    gen.set_state(rng["gen"])
    state = json.loads((d / "state.json").read_text())
    if forget:
        forget.gen.set_state(rng["forget_gen"])
        forget.load(state["forget"])
    if remain:
        remain.gen.set_state(rng["remain_gen"])
        remain.load(state["remain"])
    log.update(state["log"], resumed_from=state["step"])
    return int(state["step"])
