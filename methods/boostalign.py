"""``boostalign`` — restricted gradient + diversified data (Ko et al., NeurIPS 2024).

Paper: "Boosting Alignment for Post-Unlearning Text-to-Image Generative Models", arXiv 2412.07808
(official code: reds-lab/Restricted_gradient_diversity_unlearning @ 0075ecb).

**Idea.** Unlearning maximises the diffusion loss on the forget set D_f while keeping it low on the
remain set D_r. Summing the two gradients (GradDiff) can increase one loss when they conflict. The
restricted gradient takes, at every step, a direction that decreases both objectives to first
order: when the forget ascent direction ``a`` and the remain descent direction ``r`` conflict
(``<a, r> < 0``), each is projected onto the normal plane of the *other original* gradient,

    a' = a - (<a,r> / ||r||^2) r,        r' = r - (<a,r> / ||a||^2) a,

and the update is ``a' + lambda r'`` (otherwise the plain ``a + lambda r``). Then
``<a' + lambda r', a> = ||a||^2 (1 - cos^2) >= 0`` and
``<a' + lambda r', r> = lambda ||r||^2 (1 - cos^2) >= 0``.
The projection is over **all** trainable parameters as one vector, as in the code. The
"diversity" half of the method is the task's remain set (``task.remain_policy=balanced``).

**Hyper-parameters** (:class:`~ubench.methods._gradient.GradientConfig`): ``remain_weight`` lambda
(CIFAR script 5), ``truncation``/``clip_alpha`` (CIFAR: per-element clip at 0.1) or
``threshold_m`` (SD: 1.1), ``remain_gradient=full`` (RGD's full-batch D_r gradient), Adam.

**Not tuned.** The defaults stay the paper's (lambda 5, clip alpha 0.1) while the baselines are
tuned (``bench/plans/tune-digits.txt``). For information, the same grid as ``graddiff`` on
digits-class (forget class 0, seed 0, one thread), UA / RA / FD:

| remain_weight | clip_alpha 0.1 | clip_alpha 1.0 |
|---|---|---|
| 1 | 1.000 / 0.999 / 31.2 | 1.000 / 0.989 / 41.0 |
| 5 | 1.000 / 0.999 / 28.1 (default) | 1.000 / 0.997 / 25.2 |

**Differences from the reference implementation.**

* Dot products and norms are accumulated per parameter tensor in float64 instead of flattening the
  network into one float32 vector (same numbers, less memory; matters for SD's 860M parameters).
* A ``1e-12`` guard on the denominators (the code has none; a zero gradient would give NaN).
* ``threshold`` truncation sets the forget direction to zero and skips the projection once the
  loss exceeds ``m``; the code's ``loss / ||loss||`` has zero gradient but still steers the
  projection of ``r`` (digest §2.3). ``full`` remain gradients weight chunks by their size (the
  code weights the last, smaller chunk as if it were full).
* Non-finite gradients stop the run (the code silently replaces them with ``nan_to_num``).
* Steps, lr and ``clip_alpha`` are re-tuned for the 0.65M-parameter digits model (README).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ubench.methods._gradient import GradientMethod, Grads

_EPS = 1e-12


def restricted_gradient(a: Grads, r: Grads, weight: float) -> tuple[Grads, bool]:
    """Combine forget direction ``a`` and remain direction ``r`` by the restricted-gradient rule.

    Returns ``(a' + weight * r', conflicted)``; tensors are per-parameter, treated as one vector.
    """
    dot = sum(torch.sum(x.double() * y.double()) for x, y in zip(a, r, strict=True))
    s = float(dot)
    if s >= 0:
        return [x + weight * y for x, y in zip(a, r, strict=True)], False
    aa = float(sum(torch.sum(x.double() ** 2) for x in a))
    rr = float(sum(torch.sum(y.double() ** 2) for y in r))
    ca, cr = s / (rr + _EPS), s / (aa + _EPS)
    out = [(x - ca * y) + weight * (y - cr * x) for x, y in zip(a, r, strict=True)]
    return out, True


class BoostAlign(GradientMethod):
    """Restricted gradient (Ko et al. 2024): forget ascent and remain descent, each projected off the other when they conflict."""  # noqa: E501

    name: ClassVar[str] = "boostalign"
    paper: ClassVar[str | None] = "https://arxiv.org/abs/2412.07808"
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data", "remain_data"})

    def combine(self, a: Grads, r: Grads, weight: float) -> tuple[Grads, dict[str, float]]:
        g, conflict = restricted_gradient(a, r, weight)
        return g, {"conflict": float(conflict)}
