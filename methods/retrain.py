"""``retrain`` — reference row: the gold-standard oracle, retrained without the forget data.

The task trains (once, cached) the same architecture with the same recipe on the remain classes
only. No unlearning method can be expected to beat it on remaining quality; the distance of a
method to it is the honest measure of "forgot as if never trained on it".
"""

from __future__ import annotations

from typing import Any, ClassVar

from ubench.api import Method, RunContext, UnlearnOutput, UnlearnRequest
from ubench.core.config import BaseConfig
from ubench.methods.base import NoConfig
from ubench.models.diffusion import DiffusionModel


class Retrain(Method):
    """Reference row: the oracle trained from scratch without the forget data."""

    name: ClassVar[str] = "retrain"
    Config: ClassVar[type[BaseConfig]] = NoConfig
    requires: ClassVar[frozenset[str]] = frozenset({"oracle"})
    reference: ClassVar[bool] = True

    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: Any,
                ctx: RunContext) -> UnlearnOutput:
        assert request.oracle is not None  # guaranteed by the runner's compatibility check
        oracle = request.oracle().to(model.device)
        oracle.unet.requires_grad_(False)
        return UnlearnOutput(oracle, [n for n, _ in oracle.unet.named_parameters()],
                             {"steps": 0, "oracle": "trained from scratch without forget data"})
