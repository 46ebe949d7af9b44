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
(CIFAR script 5), ``truncation``/``clip_alpha`` (CIFAR: per-element clip at 0.1; ``clip-x0`` is
the code's cap on the denoised-image error) or ``threshold_m`` (SD: 1.1; with
``threshold_unit=base-loss`` a multiple of the base model's forget loss), ``remain_gradient=full``
(RGD's full-batch D_r gradient), ``batching=paired`` (the SD code's index-aligned forget/remain
batches), Adam. The fair protocol tunes lr x lambda x truncation (class-conditional) and lr x m
(text-conditional) with the same 8-point budget as every method (docs/protocol.md).

**Memory and time.** One parameter-sized buffer beyond ``.grad``: the forget backward's own
gradient tensors (``a`` is their negation, folded into the coefficients, never materialised).
``r`` is computed straight into ``.grad``; the dot products and norms are BLAS reductions per
block accumulated in float64 (no float64 copy of any tensor), and ``a' + lambda r'`` is written
into ``.grad`` in place, block by block (on a GPU: multi-tensor kernels, the same arithmetic up
to float32 rounding). On Stable Diffusion's 860M-parameter UNet the buffer is 3.4 GB, the least
the rule can use; ``bench/step.py`` measures time and memory against ``graddiff``.

**Not tuned.** The defaults stay the paper's (lambda 5, clip alpha 0.1) while the baselines are
tuned (``plans/tune-digits.toml``). For information, the same grid as ``graddiff`` on
digits-class (forget class 0, seed 0, one thread), UA / RA / FD:

| remain_weight | clip_alpha 0.1 | clip_alpha 1.0 |
|---|---|---|
| 1 | 1.000 / 0.999 / 31.2 | 1.000 / 0.989 / 41.0 |
| 5 | 1.000 / 0.999 / 28.1 (default) | 1.000 / 0.997 / 25.2 |

**Differences from the reference implementation.**

* Dot products and norms are accumulated in float64 over blocks of each parameter tensor instead
  of flattening the network into one float32 vector (relative error ~1e-8 instead of ~1e-5 for
  one float32 dot over 860M entries; no flat copies).
* A zero forget or remain direction skips the projection (it has nothing to project against);
  the code would divide by zero. No ``epsilon`` is added to the denominators: when
  ``<a, r> < 0`` both norms are non-zero, and a guard would bias the step at small scales.
* ``threshold`` truncation switches the forget term off once the loss exceeds ``m`` (step =
  ``lambda r``). The code's ``loss / ||loss||`` has an exactly zero gradient, so its ascent
  vector is zero, its projection coefficient 0/0 = NaN fails the ``< 0`` test and its step is
  the same ``lambda r``: identical, not a deviation. ``full`` remain gradients weight chunks by
  their size (the code weights the last, smaller chunk as if it were full).
* Non-finite gradients stop the run (the code silently replaces them with ``nan_to_num``).
* Steps, lr and ``clip_alpha`` are re-tuned for the 0.65M-parameter digits model
  (docs/tasks/digits.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch

from ubench.api import UnlearnRequest
from ubench.methods._gradient import (
    GradientConfig,
    GradientMethod,
    forget_backward,
    remain_backward,
)
from ubench.training.loop import Loop

#: elements per block of the reductions and of the in-place combine on the CPU: small enough to
#: stay in cache, large enough to keep Python's per-block overhead small (``bench/step.py``)
BLOCK = 1 << 16


def _blocks(x: torch.Tensor, y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Matching views of two same-shaped tensors: blocks of :data:`BLOCK` elements on the CPU,
    the whole tensors on an accelerator (or when either is not contiguous)."""
    if x.device.type != "cpu" or not (x.is_contiguous() and y.is_contiguous()):
        yield x, y
        return
    xf, yf = x.view(-1), y.view(-1)
    for lo in range(0, xf.numel(), BLOCK):
        yield xf[lo:lo + BLOCK], yf[lo:lo + BLOCK]


def _fused(tensors: Sequence[torch.Tensor], fused: bool | None) -> bool:
    """Whether to take the accelerator path (multi-tensor kernels): by default, when the tensors
    are not on the CPU."""
    if fused is not None:
        return fused
    return bool(tensors) and tensors[0].device.type != "cpu"


def dots(a: Sequence[torch.Tensor], r: Sequence[torch.Tensor], fused: bool | None = None
         ) -> tuple[float, float, float]:
    """(<a, r>, ||a||^2, ||r||^2) over all tensors as one vector.

    On the CPU each block's dot products are BLAS float32 reductions; the blocks are accumulated
    in float64, with one synchronisation at the end. No float64 copy of any tensor is made; the
    relative error is ~1e-8 (float32 rounding within a block), against ~5e-6 for one float32 dot
    per tensor of a few million entries. On an accelerator (``fused``) the per-tensor float32
    results (one dot per tensor for the cross term, ``torch._foreach_norm`` for the norms) are
    summed in float64: a few kernel launches per tensor instead of seven, which is what the step
    costs there (``bench/step.py``: boostalign / graddiff 1.27 on an H200 before).
    """
    if not a:
        return 0.0, 0.0, 0.0
    if _fused(a, fused):
        cross = torch.stack([torch.dot(x.reshape(-1), y.reshape(-1))
                             for x, y in zip(a, r, strict=True)]).double().sum()
        na = torch.stack(torch._foreach_norm(list(a))).double().square().sum()
        nr = torch.stack(torch._foreach_norm(list(r))).double().square().sum()
        ar, aa, rr = torch.stack([cross, na, nr]).tolist()
        return float(ar), float(aa), float(rr)
    acc: torch.Tensor | None = None
    for x, y in zip(a, r, strict=True):
        for xb, yb in _blocks(x, y):
            xf, yf = xb.reshape(-1), yb.reshape(-1)
            part = torch.stack([torch.dot(xf, yf), torch.dot(xf, xf), torch.dot(yf, yf)])
            acc = part.double() if acc is None else acc + part.double()
    assert acc is not None
    ar, aa, rr = acc.tolist()
    return float(ar), float(aa), float(rr)


def restricted_gradient_(g: Sequence[torch.Tensor], r: Sequence[torch.Tensor], weight: float,
                         fused: bool | None = None) -> bool:
    """Overwrite ``r`` with ``a' + weight * r'`` for the forget direction ``a = -g`` (the
    restricted-gradient rule); return whether the directions conflicted (``<a, r> < 0``, and the
    projection was applied).

    ``g`` is the forget loss's gradient as backpropagated (``a`` is never materialised: negating
    is exact, so ``a - ca r = -(g + ca r)`` and ``r - cr a = r + cr g`` bit for bit); it is left as
    it was. Tensors are per parameter, treated as one vector. A zero ``g`` or ``r`` cannot conflict
    (its dot product is 0): the plain ``a + weight * r`` is written.

    On an accelerator (``fused``, default: tensors not on the CPU) the same update is written as
    the one linear combination it is, ``(weight - ca) r + (weight cr - 1) g``, by two
    multi-tensor kernels (``torch._foreach_mul_`` / ``_foreach_add_``) instead of five kernels
    per tensor; it equals the CPU's block-wise arithmetic up to float32 rounding.
    """
    s, aa, rr = dots(g, r, fused)
    s = -s  # <a, r> = -<g, r>
    conflict = s < 0  # implies aa > 0 and rr > 0: no guard needed
    ca, cr = (s / rr, s / aa) if conflict else (0.0, 0.0)
    with torch.no_grad():
        if _fused(r, fused):
            ys, gs = list(r), list(g)
            torch._foreach_mul_(ys, weight - ca)
            torch._foreach_add_(ys, gs, alpha=weight * cr - 1.0)
            return conflict
        for x, y in zip(g, r, strict=True):
            for gb, yb in _blocks(x, y):
                if conflict:
                    v = yb * ca  # -(a - ca r) = g + ca r
                    v.add_(gb)
                    u = gb * cr  # r - cr a = r + cr g
                    u.add_(yb).mul_(weight)
                    torch.sub(u, v, out=yb)
                else:
                    yb.mul_(weight).sub_(gb)  # a + weight r = weight r - g
    return conflict


class BoostAlign(GradientMethod):
    """Restricted gradient (Ko et al. 2024): forget ascent and remain descent, each projected off the other when they conflict."""  # noqa: E501

    name: ClassVar[str] = "boostalign"
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
    log_counters: ClassVar[tuple[str, ...]] = ("conflicts",)

    def step(self, loop: Loop, request: UnlearnRequest, cfg: GradientConfig, step: int
             ) -> Mapping[str, float]:
        lf, off = forget_backward(loop, cfg, step, sign=1.0)
        g: list[torch.Tensor] | None = None
        if not off:  # the one buffer: the forget loss's gradients (a = -g), taken out of .grad
            g = []
            for p in loop.params:
                g.append(p.grad if p.grad is not None else torch.zeros_like(p))
                p.grad = None
        lr = remain_backward(loop, cfg, step, weight=1.0)
        grads = []
        for p in loop.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        if g is None:  # forget term off: the step is lambda r
            torch._foreach_mul_(grads, cfg.remain_weight)
        elif restricted_gradient_(g, grads, cfg.remain_weight):
            loop.log["conflicts"] += 1
        return {"forget_loss": lf, "remain_loss": lr}
