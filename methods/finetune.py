"""``finetune`` — fine-tuning on the remain set only (the paper's "Finetune" baseline).

Forgetting here comes only from catastrophic forgetting of what D_r does not contain; it never
pushes the forget concept away, so UA usually stays low. The remain weight is irrelevant (the
gradient is ``r`` alone).
"""

from __future__ import annotations

from typing import ClassVar

from ubench.methods._gradient import GradientMethod, Grads


class Finetune(GradientMethod):
    """Fine-tuning on the remain set only."""

    name: ClassVar[str] = "finetune"
    requires: ClassVar[frozenset[str]] = frozenset({"remain_data"})
    uses_forget: ClassVar[bool] = False

    def combine(self, a: Grads, r: Grads, weight: float) -> tuple[Grads, dict[str, float]]:
        return r, {}
