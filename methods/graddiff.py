"""``graddiff`` — gradient difference: ascent on D_f plus lambda times descent on D_r.

The baseline the restricted gradient improves on (paper §3; the code's ``GradDiff``): the same
loop, data, truncation and remain weight as ``boostalign``, with the two directions simply
summed, ``a + lambda r``, even when they conflict. With ``task.remain_policy=balanced`` this is
the paper's ``GradDiff_D``. Both terms are backpropagated into ``.grad`` (the ascent with a
negated loss, the remain term scaled by lambda), so the step needs no buffer beyond ``.grad``.

**Differences from the reference implementation.** The paper's CIFAR GradDiff takes 64-image remain
mini-batches while RGD uses the full remain set; here both default to ``remain_gradient=full`` so
that the *only* difference between the two rows is the projection (set
``method.remain_gradient=minibatch`` for the paper's variant).

**Tuning** (``plans/tune-digits.toml``: digits-class, forget class 0, seed 0; rule: UA >= 0.99,
RA within 0.005 of the best, then lowest FD). Grid remain_weight x clip_alpha, UA / RA / FD:

| remain_weight | clip_alpha 0.1 | clip_alpha 1.0 |
|---|---|---|
| 1 | 1.000 / 0.999 / 32.2 | 1.000 / 0.991 / 24.9 |
| 5 | 1.000 / 0.999 / 38.1 | **1.000 / 0.996 / 22.4** |

Chosen: remain_weight 5, clip_alpha 1.0 (boostalign keeps the paper's 0.1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ubench.api import UnlearnRequest
from ubench.core.config import BaseConfig
from ubench.methods._gradient import (
    GradientConfig,
    GradientMethod,
    forget_backward,
    remain_backward,
)
from ubench.training.loop import Loop


@dataclass(frozen=True)
class GradDiffConfig(GradientConfig):
    """GradientConfig with graddiff's tuned defaults (see the module docstring)."""

    #: tuned on digits-class (CIFAR script: 0.1); bounds a per-element eps error here
    clip_alpha: float = 1.0


class GradDiff(GradientMethod):
    """Gradient difference: forget ascent plus weighted remain descent, summed without projection."""  # noqa: E501

    name: ClassVar[str] = "graddiff"
    family: ClassVar[str] = "gradient"
    #: the fair protocol's tuning space (8 points per family; docs/protocol.md)
    search_space: ClassVar[Mapping[str, Mapping[str, Sequence[Any]]]] = {
        "class-conditional": {"lr": [1e-4, 3e-4], "remain_weight": [1.0, 5.0],
                              "truncation": ["clip", "clip-x0"], "clip_alpha": [0.1]},
        "text-conditional": {"lr": [1e-5, 3e-5, 1e-4, 3e-4], "threshold_m": [3.0, 9.0],
                             "threshold_unit": ["base-loss"]},
    }
    paper: ClassVar[str | None] = "https://arxiv.org/abs/2412.07808"
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data", "remain_data"})
    Config: ClassVar[type[BaseConfig]] = GradDiffConfig

    def step(self, loop: Loop, request: UnlearnRequest, cfg: GradientConfig, step: int
             ) -> Mapping[str, float]:
        lf, _ = forget_backward(loop, cfg, step, sign=-1.0)
        lr = remain_backward(loop, cfg, step, weight=cfg.remain_weight)
        return {"forget_loss": lf, "remain_loss": lr}
