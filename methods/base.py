"""``base`` — reference row: the base model itself, with no unlearning.

It flows through the same runner, evaluation and records as every method, so the leaderboard's
"before" numbers are measured exactly like the "after" numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ubench.api import Method, RunContext, UnlearnOutput, UnlearnRequest
from ubench.core.config import BaseConfig
from ubench.models.diffusion import DiffusionModel


@dataclass(frozen=True)
class NoConfig(BaseConfig):
    """No hyper-parameters."""


class Base(Method):
    """Reference row: the base model, no unlearning."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type[BaseConfig]] = NoConfig
    reference: ClassVar[bool] = True

    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: Any,
                ctx: RunContext) -> UnlearnOutput:
        model.unet.requires_grad_(False)
        return UnlearnOutput(model, [], {"steps": 0})
