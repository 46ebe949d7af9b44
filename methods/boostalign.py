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

**Memory.** One parameter-sized buffer beyond ``.grad``: the forget direction ``a`` (the forget
backward's own gradient tensors, negated in place). ``r`` is computed straight into ``.grad``;
the dot products and norms are accumulated in float64 chunk by chunk (exact products, no float64
copy of a whole tensor), and ``a' + lambda r'`` is written into ``.grad`` in place. On Stable
Diffusion's 860M-parameter UNet that is 3.4 GB, the least the rule can use.

**Not tuned.** The defaults stay the paper's (lambda 5, clip alpha 0.1) while the baselines are
tuned (``bench/plans/tune-digits.txt``). For information, the same grid as ``graddiff`` on
digits-class (forget class 0, seed 0, one thread), UA / RA / FD:

| remain_weight | clip_alpha 0.1 | clip_alpha 1.0 |
|---|---|---|
| 1 | 1.000 / 0.999 / 31.2 | 1.000 / 0.989 / 41.0 |
| 5 | 1.000 / 0.999 / 28.1 (default) | 1.000 / 0.997 / 25.2 |

**Differences from the reference implementation.**

* Dot products and norms are accumulated per parameter tensor in float64 instead of flattening the
  network into one float32 vector (exact products; less memory: no flat copies).
* A zero forget or remain direction skips the projection (it has nothing to project against);
  the code would divide by zero. No ``epsilon`` is added to the denominators: when
  ``<a, r> < 0`` both norms are non-zero, and a guard would bias the step at small scales.
* ``threshold`` truncation switches the forget term off once the loss exceeds ``m`` (step =
  ``lambda r``). The code's ``loss / ||loss||`` has an exactly zero gradient, so its ascent
  vector is zero, its projection coefficient 0/0 = NaN fails the ``< 0`` test and its step is
  the same ``lambda r``: identical, not a deviation. ``full`` remain gradients weight chunks by
  their size (the code weights the last, smaller chunk as if it were full).
* Non-finite gradients stop the run (the code silently replaces them with ``nan_to_num``).
* Steps, lr and ``clip_alpha`` are re-tuned for the 0.65M-parameter digits model (README).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar

import torch

from ubench.api import UnlearnRequest
from ubench.methods._gradient import (
    GradientConfig,
    GradientMethod,
    forget_backward,
    remain_backward,
)
from ubench.methods._loop import Loop

#: elements per chunk of the float64 reductions and the in-place combine (bounds temporaries to
#: a few MB whatever the tensor size)
CHUNK = 1 << 20


def _chunks(x: torch.Tensor, y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Matching views of at most :data:`CHUNK` elements of two same-shaped tensors (the whole
    tensors when either is not contiguous)."""
    if not (x.is_contiguous() and y.is_contiguous()):
        yield x, y
        return
    xf, yf = x.view(-1), y.view(-1)
    for lo in range(0, xf.numel(), CHUNK):
        yield xf[lo:lo + CHUNK], yf[lo:lo + CHUNK]


def dots(a: Sequence[torch.Tensor], r: Sequence[torch.Tensor]) -> tuple[float, float, float]:
    """(<a, r>, ||a||^2, ||r||^2) over all tensors as one vector, accumulated in float64.

    Each product is exact (float32 x float32 fits a float64); partial sums are added in tensor
    order, chunk by chunk, on the tensors' device, with one synchronisation at the end.
    """
    acc: torch.Tensor | None = None
    for x, y in zip(a, r, strict=True):
        for xc, yc in _chunks(x, y):
            xd, yd = xc.double(), yc.double()
            part = torch.stack([torch.sum(xd * yd), torch.sum(xd * xd), torch.sum(yd * yd)])
            acc = part if acc is None else acc + part
    if acc is None:
        return 0.0, 0.0, 0.0
    ar, aa, rr = acc.tolist()
    return float(ar), float(aa), float(rr)


def restricted_gradient_(a: Sequence[torch.Tensor], r: Sequence[torch.Tensor], weight: float
                         ) -> bool:
    """Overwrite ``r`` with ``a' + weight * r'`` (the restricted-gradient rule); return whether
    the directions conflicted (``<a, r> < 0``, and the projection was applied).

    Tensors are per parameter, treated as one vector. ``a`` is left as it was. A zero ``a`` or
    ``r`` cannot conflict (its dot product is 0): the plain ``a + weight * r`` is written.
    """
    s, aa, rr = dots(a, r)
    conflict = s < 0  # implies aa > 0 and rr > 0: no guard needed
    ca, cr = (s / rr, s / aa) if conflict else (0.0, 0.0)
    with torch.no_grad():
        for x, y in zip(a, r, strict=True):
            for xc, yc in _chunks(x, y):
                if conflict:
                    torch.add(xc - ca * yc, weight * (yc - cr * xc), out=yc)
                else:
                    torch.add(xc, weight * yc, out=yc)
    return conflict


class BoostAlign(GradientMethod):
    """Restricted gradient (Ko et al. 2024): forget ascent and remain descent, each projected off the other when they conflict."""  # noqa: E501

    name: ClassVar[str] = "boostalign"
    paper: ClassVar[str | None] = "https://arxiv.org/abs/2412.07808"
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data", "remain_data"})
    log_counters: ClassVar[tuple[str, ...]] = ("conflicts",)

    def step(self, loop: Loop, request: UnlearnRequest, cfg: GradientConfig, step: int
             ) -> Mapping[str, float]:
        lf, off = forget_backward(loop, cfg, step, sign=1.0)
        a: list[torch.Tensor] | None = None
        if not off:  # keep the forget gradients as the one buffer, negated: a = -grad l_f
            a = []
            for p in loop.params:
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                a.append(g.neg_())
                p.grad = None
        lr = remain_backward(loop, request, cfg, step, weight=1.0)
        grads = []
        for p in loop.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        if a is None:  # forget term off: the step is lambda r
            torch._foreach_mul_(grads, cfg.remain_weight)
        elif restricted_gradient_(a, grads, cfg.remain_weight):
            loop.log["conflicts"] += 1
        return {"forget_loss": lf, "remain_loss": lr}
