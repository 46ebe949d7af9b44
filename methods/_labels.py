"""Pieces shared by the random-label family (``rl``, ``salun``): pseudo labels and their loss.

SalUn's random-label forgetting loss for diffusion models (Fan et al., ICLR 2024, and its DDPM
code) trains the forget condition ``c`` to predict, on the *same* noisy input ``x_t`` (same ``t``,
same noise), what the model predicts under a *pseudo* condition ``c'``:

    l_f = || eps_theta(x_t, t, c) - stopgrad(eps_theta(x_t, t, c')) ||^2   (mean over elements)

The target branch is detached: only the forget branch learns; the pseudo condition's own
behaviour is left alone. For class-conditional models ``c'`` is another class; the rule is
explicit (``next`` = (c + 1) mod K, SalUn's CIFAR-10 choice; ``random`` = a uniformly random
other class per sample). For text-conditioned models ``c'`` is the forget prompt's anchor (its
paired remain prompt), supplied by the task.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ubench.api import ConditionedSet
from ubench.core.errors import IncompatibleError
from ubench.models.diffusion import DiffusionModel


def pseudo_labels(labels: Any, num_classes: int, rule: str,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Another class for every label: ``next`` = (y + 1) mod K, ``random`` = uniform over y' != y.

    ``random`` draws one shift in ``1..K-1`` per sample from ``generator`` (on CPU), so the pseudo
    label is uniform over the K - 1 other classes and never equals the label.
    """
    y = torch.as_tensor(labels, dtype=torch.long).reshape(-1).cpu()
    if num_classes < 2:
        raise ValueError(f"random labels need at least 2 classes; got {num_classes}")
    if rule == "next":
        return (y + 1) % num_classes
    if rule == "random":
        shift = torch.randint(1, num_classes, y.shape, generator=generator)
        return (y + shift) % num_classes
    raise ValueError(f"unknown pseudo-label rule {rule!r}; valid: next, random")


def num_classes_of(model: DiffusionModel, method: str) -> int:
    """The class count of a class-conditional model; a clear error for any other conditioner."""
    k = getattr(model.conditioner, "num_classes", None)
    if k is None:
        raise IncompatibleError(
            f"method {method!r} picks pseudo *classes* and needs a class-conditional model")
    return int(k)


def text_anchors(model: DiffusionModel, forget: ConditionedSet, method: str) -> list[str] | None:
    """The pseudo prompt of every forget sample on a text-conditioned model (``None`` otherwise).

    Text tasks give each forget prompt an anchor (its paired remain prompt); without anchors a
    random-label method has no pseudo condition, which is a task bug, reported clearly.
    """
    if not model.text_conditioned:
        return None
    if forget.anchors is None or len(forget.anchors) != len(forget):
        raise IncompatibleError(
            f"method {method!r} needs one anchor prompt per forget prompt on a text-conditioned "
            "task (ConditionedSet.anchors); this task does not provide them")
    return [str(a) for a in forget.anchors]


def random_label_loss(model: DiffusionModel, x0: torch.Tensor, cond: torch.Tensor,
                      pseudo_cond: torch.Tensor, generator: torch.Generator | None = None
                      ) -> torch.Tensor:
    """MSE between eps_theta(x_t, c) and the stop-gradient eps_theta(x_t, c') on one shared x_t.

    ``x_t``, ``t`` and the noise are drawn once from ``generator`` (as in ``denoising_loss``); the
    target is computed under ``torch.no_grad`` so no gradient flows through the pseudo branch.
    """
    x_t, t, _noise = model.noised(x0, generator)
    with torch.no_grad():
        target = model.predict_noise(x_t, t, pseudo_cond)
    return F.mse_loss(model.predict_noise(x_t, t, cond), target)
