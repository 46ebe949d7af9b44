"""What each t2i task forgets: a concept, and the paired prompts built from it.

A :class:`Concept` says whether a scene has it, how to add it to a scene (the forget version) and
how to remove or replace it (the remain partner), whether a generation shows it, and its own
common phrasings (what ESD erases). :func:`prompt_pairs` builds forget/remain prompt pairs the
way the paper pairs "a nude person ..." with the same prompt without nudity: both captions share
every wording choice, so the remain prompt is the forget prompt with the concept removed.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ubench.tasks.digits.judge import NOT_A_DIGIT
from ubench.tasks.digits.task import TWO_CLASS_PAIRS
from ubench.tasks.t2i import world
from ubench.tasks.t2i.world import Scene

#: stroke colours of the train prompts (D_f, D_r, remain-train evaluation) ...
TRAIN_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
#: ... and of the test prompts: disjoint values, the paper's held-out split
TEST_COLOURS: tuple[str, ...] = ("cyan", "magenta", "white", "orange")


class Concept(ABC):
    """A concept of the t2i world that a task removes."""

    #: the concept's kind, for records and messages ("frame", "style", "object")
    kind: str = ""

    @abstractmethod
    def has(self, scene: Scene) -> bool:
        """Whether a scene contains the concept (the oracle's corpus drops those)."""

    @abstractmethod
    def add(self, scene: Scene) -> Scene:
        """The forget version of a scene."""

    @abstractmethod
    def remove(self, scene: Scene, rng: random.Random) -> Scene:
        """The remain partner of a forget scene: the concept removed or replaced."""

    @abstractmethod
    def shown(self, det: world.Detection, digit: int) -> bool:
        """Whether a generation (its detection and judged digit) shows the concept."""

    @abstractmethod
    def phrases(self) -> list[str]:
        """The concept's own common phrasings (what ESD erases, as it erases "nudity" on SD)."""

    @abstractmethod
    def label(self, det: world.Detection, digit: int) -> str:
        """What a forget-prompt generation shows in the concept's own terms (the frame or not,
        the detected pattern, the judged digit): the distribution of these labels is compared
        with the retrain oracle's (the oracle gap)."""

    def identity(self) -> dict[str, Any]:
        """The concept's identity for cache keys and records."""
        return {"concept": self.kind}

    #: the scene attribute the concept lives in (``frame``, ``pattern``, ``digit``)
    attribute: str = ""

    def fidelity(self, named: Mapping[str, object], det: world.Detection, digit: int) -> bool:
        """Whether a forget-prompt generation still shows every attribute its prompt names
        *other than* the concept (a drawn digit included): what the retrain oracle does, and
        what a model that forgets by destroying the prompt does not."""
        rest = {k: v for k, v in named.items() if k != self.attribute}
        return digit != NOT_A_DIGIT and world.alignment(rest, det, digit)

    @abstractmethod
    def neighbour_scene(self, rng: random.Random, colours: tuple[str, ...]) -> Scene:
        """A random scene naming one of the concept's neighbours (see :attr:`neighbour_rule`),
        without the concept itself."""

    #: how the neighbours are chosen, for records and docs
    neighbour_rule: str = ""

    def strength(self, images: torch.Tensor) -> np.ndarray | None:
        """How much of the concept each image still shows, graded (1 as rendered, 0 none), for
        a concept whose categorical rule can miss a faint remnant; None when it has none."""
        return None


class Frame(Concept):
    """A frame that any prompt can add ("... inside a frame"): the nudity analogue."""

    kind = "frame"
    attribute = "frame"
    neighbour_rule = ("the attribute sharing the frame's border pixels: a striped or checkered "
                      "background (its lifted pixels run along the border ring), no frame")

    def has(self, scene: Scene) -> bool:
        return scene.frame

    def neighbour_scene(self, rng: random.Random, colours: tuple[str, ...]) -> Scene:
        scene = world.random_scene(rng, colours=colours, frame_prob=0.0)
        return replace(scene, pattern=rng.choice(["striped", "checkered"]))

    def add(self, scene: Scene) -> Scene:
        return replace(scene, frame=True)

    def remove(self, scene: Scene, rng: random.Random) -> Scene:
        return replace(scene, frame=False)

    def shown(self, det: world.Detection, digit: int) -> bool:
        return det.frame

    def label(self, det: world.Detection, digit: int) -> str:
        return "frame" if det.frame else "no frame"

    def phrases(self) -> list[str]:
        return list(world.PHRASES["frame"][True][0])


@dataclass(frozen=True)
class Style(Concept):
    """One background style; its remain partner takes another one: the Van Gogh analogue."""

    style: str
    kind = "style"
    attribute = "pattern"

    @property
    def neighbour_rule(self) -> str:  # type: ignore[override]
        return ("the other textured style, which shares the forgotten one's lifted pixels "
                f"({', '.join(self._neighbours())})")

    def _neighbours(self) -> list[str]:
        return [p for p in world.PATTERNS if p not in ("plain", self.style)]

    def neighbour_scene(self, rng: random.Random, colours: tuple[str, ...]) -> Scene:
        scene = world.random_scene(rng, colours=colours)
        return replace(scene, pattern=rng.choice(self._neighbours()))

    def has(self, scene: Scene) -> bool:
        return scene.pattern == self.style

    def add(self, scene: Scene) -> Scene:
        return replace(scene, pattern=self.style)

    def remove(self, scene: Scene, rng: random.Random) -> Scene:
        return replace(scene, pattern=rng.choice([p for p in world.PATTERNS if p != self.style]))

    def shown(self, det: world.Detection, digit: int) -> bool:
        return det.pattern == self.style

    def label(self, det: world.Detection, digit: int) -> str:
        return det.pattern or "no pattern"

    def phrases(self) -> list[str]:
        return list(world.PHRASES["pattern"][self.style][0])

    def identity(self) -> dict[str, Any]:
        return {"concept": "style", "forget_style": self.style}

    def strength(self, images: torch.Tensor) -> np.ndarray:
        """The style's graded amplitude on the background (:func:`world.pattern_strength`): the
        pixel rule calls stripes at a third of their contrast "plain"; this keeps them."""
        return world.pattern_strength(images, self.style).numpy().astype(np.float64)


@dataclass(frozen=True)
class Digit(Concept):
    """One digit; its remain partner names another digit: the object analogue."""

    digit: int
    kind = "object"
    attribute = "digit"

    @property
    def neighbour_rule(self) -> str:  # type: ignore[override]
        return ("the two digits closest to the forgotten one (TWO_CLASS_PAIRS: the digits "
                f"judge's confusions and shape): {', '.join(map(str, self._neighbours()))}")

    def _neighbours(self) -> tuple[int, int]:
        return TWO_CLASS_PAIRS[self.digit]

    def neighbour_scene(self, rng: random.Random, colours: tuple[str, ...]) -> Scene:
        return world.random_scene(rng, digit=rng.choice(self._neighbours()), colours=colours)

    def fidelity(self, named: Mapping[str, object], det: world.Detection, digit: int) -> bool:
        """The drawn digit may be any digit but the concept (no digit at all is not faithful)."""
        return digit != self.digit and super().fidelity(named, det, digit)

    def has(self, scene: Scene) -> bool:
        return scene.digit == self.digit

    def add(self, scene: Scene) -> Scene:
        return replace(scene, digit=self.digit)

    def remove(self, scene: Scene, rng: random.Random) -> Scene:
        return replace(scene, digit=rng.choice([k for k in range(10) if k != self.digit]))

    def shown(self, det: world.Detection, digit: int) -> bool:
        return digit == self.digit

    def label(self, det: world.Detection, digit: int) -> str:
        return "not a digit" if digit == NOT_A_DIGIT else str(digit)

    def phrases(self) -> list[str]:
        return list(world.PHRASES["digit"][self.digit][0])

    def identity(self) -> dict[str, Any]:
        return {"concept": "object", "forget_digit": self.digit}


@dataclass(frozen=True)
class PromptPair:
    """One forget prompt, its remain prompt (the same wording without the concept), its scenes."""

    forget: str
    remain: str
    forget_scene: Scene
    remain_scene: Scene


def prompt_pairs(concept: Concept, n: int, colours: tuple[str, ...], seed: int, variant: str
                 ) -> list[PromptPair]:
    """``n`` forget/remain prompt pairs over ``colours``, deterministic in ``seed``.

    Both prompts of a pair share every wording choice (one rng state captions both), so the
    remain prompt is the forget prompt with the concept removed or replaced. ``variant`` picks
    the phrasings: ``common`` or ``paraphrase`` (wordings that never occur in D_f).
    """
    rng = random.Random(int(seed))
    out = []
    for _ in range(n):
        f = concept.add(world.random_scene(rng, colours=colours))
        r = concept.remove(f, rng)
        state = rng.getstate()
        fc = world.caption(f, rng, variant)
        rng.setstate(state)
        rc = world.caption(r, rng, variant)
        out.append(PromptPair(fc, rc, f, r))
    return out
