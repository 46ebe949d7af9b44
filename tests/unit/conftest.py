"""Fixtures of the unit tests of methods: a tiny class-conditional model and random data."""

from __future__ import annotations

import pytest
import torch

from ubench.api import ConditionedSet
from ubench.models.diffusion import DiffusionModel, class_conditional_model


@pytest.fixture()
def model() -> DiffusionModel:
    """A 8x8 class-conditional UNet with fixed initial weights."""
    return class_conditional_model(resolution=8, channels=(16, 32), seed=3)


def random_set(classes: list[int], per_class: int, seed: int) -> ConditionedSet:
    """``per_class`` uniform-noise 8x8 images in [-1, 1] per class, seeded."""
    g = torch.Generator().manual_seed(seed)
    n = len(classes) * per_class
    return ConditionedSet(torch.rand(n, 1, 8, 8, generator=g) * 2 - 1,
                          torch.tensor(classes).repeat_interleave(per_class))
