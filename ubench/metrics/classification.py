"""Judge-based forgetting and retention: unlearning accuracy (UA) and remaining accuracy (RA).

Definitions as in the paper's CIFAR-10 evaluation (its §5.1), with the judge supplied by the task:

* UA = 1 - (fraction of images generated for the forget condition that the judge assigns to the
  forget concept). Higher is better; 1 means no generation shows the concept.
* RA = fraction of images generated for remaining conditions that the judge assigns to the
  condition they were generated for. Higher is better.

* garbage rate = fraction of forget-condition generations the judge *rejects* (its "not a
  digit" / "random noise" label). Not a score to maximise: UA counts a rejected image as
  forgotten, and the garbage rate says how much of that forgetting is a collapse to non-images.
  Read it against the retrain oracle's (a model that never saw the class draws other digits,
  not noise). Lower is better.

* neighbour accuracy = RA over the remain-condition generations of the two classes closest to
  the forget class (the judge's most confused pair, ``TWO_CLASS_PAIRS``): a side effect on the
  neighbours that averaging over nine classes hides. Higher is better.
* judge agreement (on the forget and on the remain generations) = fraction of generations on
  which two independent judges (the validated judge and its partner, another architecture and
  augmentation) give the same label. Not a
  quality of the model but of the verdict: read it against the two judges' agreement on real
  digits (97.8 %) and on the base model's and the retrain oracle's generations.

All are means of per-sample 0/1 outcomes, so the bootstrap interval is over samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ubench.api import Metric, MetricValue


class UnlearningAccuracy(Metric):
    """Unlearning accuracy: 1 - fraction of forget-condition generations judged as the concept."""

    name: ClassVar[str] = "ua"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "forget"
    headline: ClassVar[bool] = True

    @classmethod
    def from_predictions(cls, predicted: np.ndarray, forget_label: int,
                         definition: Mapping[str, Any]) -> MetricValue:
        """UA from the judge's predictions on the forget-condition generations."""
        return cls.from_scores(np.asarray(predicted) != forget_label, definition)


class RemainingAccuracy(Metric):
    """Remaining accuracy: fraction of remain-condition generations judged as their condition."""

    name: ClassVar[str] = "ra"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
    headline: ClassVar[bool] = True

    @classmethod
    def from_predictions(cls, predicted: np.ndarray, target: np.ndarray,
                         definition: Mapping[str, Any]) -> MetricValue:
        """RA from the judge's predictions on remain-condition generations and their targets."""
        return cls.from_scores(np.asarray(predicted) == np.asarray(target), definition)


class GarbageRate(Metric):
    """Garbage rate: fraction of forget-condition generations the judge rejects as not an image of any class."""  # noqa: E501

    name: ClassVar[str] = "garbage_rate"
    higher_is_better: ClassVar[bool] = False
    split: ClassVar[str] = "forget"

    @classmethod
    def from_predictions(cls, predicted: np.ndarray, reject_label: int,
                         definition: Mapping[str, Any]) -> MetricValue:
        """The rate of ``reject_label`` among the judge's predictions on forget generations."""
        return cls.from_scores(np.asarray(predicted) == reject_label, definition)


class NeighbourAccuracy(Metric):
    """Neighbour accuracy: remain-condition generations of the classes closest to the forget class judged right."""  # noqa: E501

    name: ClassVar[str] = "neighbour_accuracy"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"


class JudgeAgreementForget(Metric):
    """Judge agreement on forget generations: the validated judge and its partner give the same label."""  # noqa: E501

    name: ClassVar[str] = "judge_agreement_forget"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "forget"


class JudgeAgreementRemain(Metric):
    """Judge agreement on remain generations: the validated judge and its partner give the same label."""  # noqa: E501

    name: ClassVar[str] = "judge_agreement_remain"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
