"""Training a conditional diffusion model from scratch (base models and retrain oracles).

Deterministic given the seed: batches, timesteps, noise and label dropout all come from one
``torch.Generator``; the initial weights come from the model builder's own seed. Label dropout
(replacing the label by the null class with probability ``label_dropout``) teaches the
unconditional branch that classifier-free guidance needs. The returned model is the EMA of the
weights, as is standard for diffusion models. Conditions are class ids (dropped to the null
class) or prompts (dropped to the empty prompt, as Stable Diffusion was trained).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ubench.models.diffusion import DiffusionModel


@dataclass(frozen=True)
class TrainSpec:
    """How to train a base/oracle model (part of the asset's cache key)."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    #: cosine decay from lr to lr * final_lr_ratio; stabilises the last steps for the EMA
    final_lr_ratio: float = 0.05
    ema_decay: float = 0.995
    label_dropout: float = 0.1
    seed: int = 0


def _dropped(model: DiffusionModel, labels: torch.Tensor | Sequence[str], idx: torch.Tensor,
             drop: torch.Tensor) -> Any:
    """The batch's conditions with the dropped ones replaced by the null condition."""
    if model.text_conditioned:
        return ["" if d else labels[i] for i, d in zip(idx.tolist(), drop.tolist(), strict=True)]
    assert isinstance(labels, torch.Tensor)
    y = labels[idx].clone()
    y[drop] = model.conditioner.null_id  # type: ignore[union-attr]
    return y


def train_diffusion(model: DiffusionModel, images: torch.Tensor,
                    labels: torch.Tensor | Sequence[str], spec: TrainSpec,
                    progress: Callable[[int, int, float], None] | None = None
                    ) -> DiffusionModel:
    """Train ``model`` on (images, conditions) and return its EMA copy (``model`` changes too).

    ``labels`` are class ids (a LongTensor) for class-conditional models or one prompt per image
    for text-conditioned ones.
    """
    gen = torch.Generator("cpu").manual_seed(spec.seed)
    params: list[torch.Tensor] = list(model.trainable_parameters("full"))
    opt = torch.optim.AdamW(params, lr=spec.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: spec.final_lr_ratio + (1 - spec.final_lr_ratio) * 0.5
        * (1 + math.cos(math.pi * min(s, spec.steps) / spec.steps)))
    ema = model.clone_frozen()
    ema_params = list(ema.unet.parameters())
    n = images.shape[0]
    order = torch.randperm(n, generator=gen)
    pos = 0
    model.unet.train()
    for step in range(spec.steps):
        if pos + spec.batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + spec.batch_size]
        pos += spec.batch_size
        x0 = images[idx].to(model.device)
        drop = torch.rand(len(idx), generator=gen) < spec.label_dropout
        loss = model.denoising_loss(x0, model.encode(_dropped(model, labels, idx, drop)), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(spec.ema_decay, (1 + step) / (10 + step))  # warm-up of the EMA
            torch._foreach_lerp_(ema_params, params, 1 - d)
        if progress is not None:
            progress(step + 1, spec.steps, float(loss.detach()))
    return ema
