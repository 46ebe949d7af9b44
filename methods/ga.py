"""``ga`` — gradient ascent on the forget set only.

The simplest unlearning baseline: maximise the denoising loss on D_f, with no term that protects
anything else. It uses the family's truncation (default per-element ``clip``), without which it
destroys the model within a few steps; ``method.truncation=none`` gives plain, unbounded ascent.

**Differences from the reference implementation.** The SalUn/RGD repositories'
``gradient_ascent.py`` has no truncation; ours is on by default so that GA is a fair baseline
under the same step budget.
"""

from __future__ import annotations

from typing import ClassVar

from ubench.methods._gradient import GradientMethod, Grads


class GradientAscent(GradientMethod):
    """Gradient ascent on the forget set only."""

    name: ClassVar[str] = "ga"
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data"})
    uses_remain: ClassVar[bool] = False

    def combine(self, a: Grads, r: Grads, weight: float) -> tuple[Grads, dict[str, float]]:
        return a, {}
