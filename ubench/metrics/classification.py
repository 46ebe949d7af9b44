"""Judge-based forgetting and retention: unlearning accuracy (UA) and remaining accuracy (RA).

Definitions as in the paper's CIFAR-10 evaluation (§5.1 of the digest), with the judge supplied by
the task:

* UA = 1 - (fraction of images generated for the forget condition that the judge assigns to the
  forget concept). Higher is better; 1 means no generation shows the concept.
* RA = fraction of images generated for remaining conditions that the judge assigns to the
  condition they were generated for. Higher is better.

Both are means of per-sample 0/1 outcomes, so the bootstrap interval is over samples.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ubench.api import Metric
from ubench.metrics.bootstrap import bootstrap_ci


def unlearning_accuracy(pred: np.ndarray, forget_label: int) -> tuple[float, float, float, int]:
    """(UA, low, high, n) from the judge's predictions on forget-condition generations."""
    ok = (np.asarray(pred) != forget_label).astype(np.float64)
    lo, hi = bootstrap_ci(ok)
    return float(ok.mean()), lo, hi, len(ok)


def remaining_accuracy(pred: np.ndarray, target: np.ndarray) -> tuple[float, float, float, int]:
    """(RA, low, high, n) from predictions on remain-condition generations and their targets."""
    ok = (np.asarray(pred) == np.asarray(target)).astype(np.float64)
    lo, hi = bootstrap_ci(ok)
    return float(ok.mean()), lo, hi, len(ok)


class UnlearningAccuracy(Metric):
    """Unlearning accuracy: 1 - fraction of forget-condition generations judged as the concept."""

    name: ClassVar[str] = "ua"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "forget"


class RemainingAccuracy(Metric):
    """Remaining accuracy: fraction of remain-condition generations judged as their condition."""

    name: ClassVar[str] = "ra"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
