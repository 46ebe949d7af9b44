"""Anchor pairs shared by ``ca`` and ``sa``: an image of the *anchor* concept, the anchor
condition it was made under, and the *target* (forget) condition it should now stand for.

Concept Ablation trains the target condition to predict, on anchor images, what the anchor
condition predicts ("a photo of Grumpy Cat" -> "a photo of a cat"); Selective Amnesia's Stable
Diffusion recipe maximises the likelihood of anchor-like images ("a middle-aged man") under the
forget condition. Both need, per training sample, the triple (anchor image, anchor condition,
target condition). ubench's tasks already hold it:

* **text-conditioned tasks** (t2i, SD) give every forget prompt an anchor, its paired remain prompt
  (``ConditionedSet.anchors``), and D_r holds the base model's generation of each remain prompt.
  The anchor image of forget prompt ``j`` is the D_r image generated from ``anchors[j]``;
* **class-conditional tasks** (digits) have no anchor prompts: every D_r image is an anchor image
  of its own class, and its target is the forget class (with several forget classes, they are
  assigned round robin). The forget class is thereby pulled towards the remaining classes, a
  mixture, as the retrain oracle draws one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ubench.api import ConditionedSet, UnlearnRequest, as_conditions, take_conditions
from ubench.core.errors import IncompatibleError
from ubench.methods._labels import text_anchors
from ubench.models.diffusion import DiffusionModel


@dataclass(frozen=True)
class AnchorPairs:
    """Anchor images with their anchor conditions (``anchor``), and the target condition of each
    (``targets``: class ids or prompts, indexed like ``anchor``)."""

    anchor: ConditionedSet
    targets: Any

    def targets_of(self, idx: torch.Tensor) -> Any:
        """The target conditions of the samples at ``idx`` (a batch's ``Batches.last``)."""
        return take_conditions(self.targets, idx)


def distinct(conditions: Any) -> list[Any]:
    """The distinct conditions, in order of first appearance (class ids or prompts)."""
    values = conditions.reshape(-1).tolist() if isinstance(conditions, torch.Tensor) \
        else list(conditions)
    return list(dict.fromkeys(values))


def anchor_pairs(model: DiffusionModel, request: UnlearnRequest, method: str) -> AnchorPairs:
    """The (anchor image, anchor condition, target condition) triples of a request.

    Raises :class:`IncompatibleError` (one line) when a text task gives no anchor prompts, or
    when an anchor prompt has no generated image in D_r.
    """
    forget, remain = request.forget, request.remain
    if forget is None or remain is None:
        raise IncompatibleError(f"method {method!r} needs D_f and D_r (forget_data, remain_data)")
    anchors = text_anchors(model, forget, method)
    if anchors is None:  # class-conditional: D_r images stand for their own classes
        targets = distinct(forget.conditions)
        n = len(remain)
        target_ids = torch.tensor([int(targets[i % len(targets)]) for i in range(n)])
        return AnchorPairs(ConditionedSet(remain.images, as_conditions(remain.conditions),
                                          {"anchor": "D_r images, their own classes"}),
                           target_ids)
    image_of: dict[str, int] = {}
    for i, prompt in enumerate(as_conditions(remain.conditions)):
        image_of.setdefault(str(prompt), i)
    missing = [a for a in anchors if a not in image_of]
    if missing:
        raise IncompatibleError(
            f"method {method!r} needs an image of every anchor prompt in D_r; this task's D_r has "
            f"none for {len(missing)} of them (e.g. {missing[0]!r})")
    idx = torch.tensor([image_of[a] for a in anchors])
    images = remain.images[idx]
    return AnchorPairs(ConditionedSet(images, list(anchors),
                                      {"anchor": "D_r generation of each forget prompt's anchor"}),
                       [str(c) for c in as_conditions(forget.conditions)])
