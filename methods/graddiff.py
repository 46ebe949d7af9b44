"""``graddiff`` — gradient difference: ascent on D_f plus lambda times descent on D_r.

The baseline the restricted gradient improves on (digest §1, §6 "GradDiff"): the same loop, data,
truncation and remain weight as ``boostalign``, with the two directions simply summed,
``a + lambda r``, even when they conflict. With ``task.remain_policy=balanced`` this is the paper's
``GradDiff_D``.

**Differences from the reference implementation.** The paper's CIFAR GradDiff takes 64-image remain
mini-batches while RGD uses the full remain set; here both default to ``remain_gradient=full`` so
that the *only* difference between the two rows is the projection (set
``method.remain_gradient=minibatch`` for the paper's variant).
"""

from __future__ import annotations

from typing import ClassVar

from ubench.methods._gradient import GradientMethod, Grads


class GradDiff(GradientMethod):
    """Gradient difference: forget ascent plus weighted remain descent, summed without projection."""  # noqa: E501

    name: ClassVar[str] = "graddiff"
    paper: ClassVar[str | None] = "https://arxiv.org/abs/2412.07808"
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data", "remain_data"})

    def combine(self, a: Grads, r: Grads, weight: float) -> tuple[Grads, dict[str, float]]:
        dot = sum(float((x * y).sum()) for x, y in zip(a, r, strict=True))
        return [x + weight * y for x, y in zip(a, r, strict=True)], {"conflict": float(dot < 0)}
