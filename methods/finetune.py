"""``finetune`` — fine-tuning on the remain set only (the paper's "Finetune" baseline).

Forgetting here comes only from catastrophic forgetting of what D_r does not contain; it never
pushes the forget concept away, so UA usually stays low. The remain weight is irrelevant (the
gradient is ``r`` alone).

**Tuning** (``plans/tune-digits.toml``; digits-class, forget class 0, seed 0): lr 1e-4 gives
UA 0.000 / RA 1.000 / FD 49.2, lr 1e-3 gives UA 0.000 / RA 0.999 / FD 46.7. No cell forgets; by
the rule (highest UA, RA within 0.005 of the best, lowest FD) the default is lr 1e-3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ubench.api import UnlearnRequest
from ubench.core.config import BaseConfig
from ubench.methods._gradient import GradientConfig, GradientMethod, remain_backward
from ubench.training.loop import Loop


@dataclass(frozen=True)
class FinetuneConfig(GradientConfig):
    """GradientConfig with finetune's tuned learning rate."""

    #: tuned on digits-class (module docstring)
    lr: float = 1e-3


class Finetune(GradientMethod):
    """Fine-tuning on the remain set only."""

    name: ClassVar[str] = "finetune"
    family: ClassVar[str] = "gradient"
    #: the fair protocol's tuning space (8 points per family; docs/protocol.md)
    search_space: ClassVar[Mapping[str, Mapping[str, Sequence[Any]]]] = {
        "class-conditional": {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "steps": [100, 200]},
        "text-conditional": {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "steps": [100, 200]},
    }
    requires: ClassVar[frozenset[str]] = frozenset({"remain_data"})
    uses_forget: ClassVar[bool] = False
    Config: ClassVar[type[BaseConfig]] = FinetuneConfig

    def step(self, loop: Loop, request: UnlearnRequest, cfg: GradientConfig, step: int
             ) -> Mapping[str, float]:
        return {"remain_loss": remain_backward(loop, cfg, step, weight=1.0)}
