"""``ga`` — gradient ascent on the forget set only.

The simplest unlearning baseline: maximise the denoising loss on D_f, with no term that protects
anything else. It uses the family's truncation (default per-element ``clip``);
``method.truncation=none`` gives plain, unbounded ascent. Even truncated, nothing anchors the
other classes, and Adam moves every weight by about ``lr`` per step: on the digits model GA
either forgets by wrecking the whole model or does not forget at all.

**Tuning** (``plans/tune-digits.toml``: digits-class, forget class 0, seed 0; rule: UA >= 0.99,
RA within 0.005 of the best, then lowest FD). UA / RA / FD:

| lr | 10 steps | 30 steps | 100 steps |
|---|---|---|---|
| 1e-4 | **1.000 / 0.111 / 1040** | 1.000 / 0.111 / 1104 | 1.000 / 0.111 / 1110 |
| 1e-5 | 0.000 / 1.000 / 49.4 | 0.166 / 0.959 / 71.1 | — |
| 1e-6 | — | — | 0.000 / 0.999 / 52.3 |

No cell both forgets and keeps the other classes. The rule picks lr 1e-4 for 10 steps.

**Differences from the reference implementation.** The SalUn/RGD repositories'
``gradient_ascent.py`` has no truncation; ours is on by default so that GA is a fair baseline
under the same step budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ubench.api import UnlearnRequest
from ubench.core.config import BaseConfig
from ubench.methods._gradient import GradientConfig, GradientMethod, forget_backward
from ubench.training.loop import Loop


@dataclass(frozen=True)
class GradientAscentConfig(GradientConfig):
    """GradientConfig with ga's tuned step budget."""

    #: tuned on digits-class (module docstring)
    steps: int = 10


class GradientAscent(GradientMethod):
    """Gradient ascent on the forget set only."""

    name: ClassVar[str] = "ga"
    family: ClassVar[str] = "gradient"
    #: the fair protocol's tuning space (8 points per family; docs/protocol.md)
    search_space: ClassVar[Mapping[str, Mapping[str, Sequence[Any]]]] = {
        "class-conditional": {"lr": [1e-5, 3e-5, 1e-4, 3e-4], "clip_alpha": [0.1, 1.0]},
        "text-conditional": {"lr": [3e-6, 1e-5, 3e-5, 1e-4], "threshold_m": [3.0, 9.0],
                             "threshold_unit": ["base-loss"]},
    }
    requires: ClassVar[frozenset[str]] = frozenset({"forget_data"})
    uses_remain: ClassVar[bool] = False
    Config: ClassVar[type[BaseConfig]] = GradientAscentConfig

    def step(self, loop: Loop, request: UnlearnRequest, cfg: GradientConfig, step: int
             ) -> Mapping[str, float]:
        lf, _ = forget_backward(loop, cfg, step, sign=-1.0)
        return {"forget_loss": lf}
