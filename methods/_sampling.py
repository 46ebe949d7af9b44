"""What the training-free methods (``negprompt``, ``sld``) share: the prompt they steer from."""

from __future__ import annotations

from ubench.api import UnlearnRequest
from ubench.core.errors import ConfigError


def concept_text(request: UnlearnRequest, given: str) -> str:
    """The prompt a sampling-time method steers away from: ``given``, else the task's concept
    prompts, else its distinct forget prompts, joined by ", "."""
    if given:
        return given
    if request.concept:
        return ", ".join(request.concept)
    prompts = list(dict.fromkeys(str(c) for c in (request.forget.conditions
                                                  if request.forget is not None else [])))
    if not prompts:
        raise ConfigError("the task names no concept prompt; set method.negative")
    return ", ".join(prompts[:8])
