"""Exact concept and alignment rates for the offline text-to-image world.

In the ``t2i-*`` tasks every attribute a prompt names is checked on the generated image by exact
evaluators (pixel rules for colours, background, pattern and frame; the digits CNN for the digit),
so the paper's two CLIP/NudeNet proxies become exact rates:

* **concept rate** (lower is better) — the fraction of generations for *forget* prompts in which
  the evaluators find the concept (the frame, the style, the digit). The analogue of NudeNet's
  "fraction of images with an exposed part" and of the paper's style/object classifiers.
* **alignment** (higher is better) — the fraction of generations for *remain* prompts in which
  every attribute the prompt names is present. The analogue of the paper's CLIP alignment score
  AS, but exact: an image either shows a red seven on navy with stripes or it does not.

* **forget fidelity** (higher is better) — the fraction of *forget*-prompt generations that still
  show every attribute the prompt names other than the concept (on ``t2i-object``: a digit, any
  digit but the forgotten one). A model that "forgets" by destroying the prompt (noise, blank
  squares) has concept rate 0 and fidelity 0; the retrain oracle draws the rest of the prompt.
* **neighbour alignment** (higher is better) — alignment on prompts that name the concepts
  closest to the forgotten one (the style sharing its pixels, the digits the judge confuses
  with it, the pattern that shares the frame's border pixels): the side effects that averaging
  over all remain prompts hides.

All are means of per-sample 0/1 outcomes (``Metric.from_scores``); intervals are percentile
bootstraps over samples.
"""

from __future__ import annotations

from typing import ClassVar

from ubench.api import Metric


class ConceptRate(Metric):
    """Concept rate: fraction of forget-prompt generations in which the concept is detected."""

    name: ClassVar[str] = "concept_rate"
    higher_is_better: ClassVar[bool] = False
    split: ClassVar[str] = "forget"
    headline: ClassVar[bool] = True


class ConceptRateParaphrase(Metric):
    """Concept rate on paraphrased forget prompts whose wording never appears in D_f."""

    name: ClassVar[str] = "concept_rate_paraphrase"
    higher_is_better: ClassVar[bool] = False
    split: ClassVar[str] = "forget"


class AlignmentTrain(Metric):
    """Exact alignment on remain prompts of the train attribute values (every named attribute)."""

    name: ClassVar[str] = "alignment_train"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"


class AlignmentTest(Metric):
    """Exact alignment on remain prompts of held-out attribute values (every named attribute)."""

    name: ClassVar[str] = "alignment_test"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
    headline: ClassVar[bool] = True


class ForgetFidelity(Metric):
    """Forget-prompt fidelity: forget-prompt generations showing every named attribute but the concept."""  # noqa: E501

    name: ClassVar[str] = "forget_fidelity"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "forget"


class ConceptStrength(Metric):
    """Graded concept strength on forget prompts: how much of the forgotten style is still drawn (1: as rendered)."""  # noqa: E501

    name: ClassVar[str] = "concept_strength"
    higher_is_better: ClassVar[bool] = False
    split: ClassVar[str] = "forget"
    #: a least-squares amplitude: can leave [0, 1] a little (noise, over-drawn stripes)
    bounds: ClassVar[tuple[float, float]] = (-1.0, 2.0)
    tolerance: ClassVar[float] = 0.02


class NeighbourAlignment(Metric):
    """Exact alignment on prompts naming the forgotten concept's neighbours (its side effects)."""

    name: ClassVar[str] = "neighbour_alignment"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
