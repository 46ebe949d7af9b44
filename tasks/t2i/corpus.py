"""The t2i world's training corpus and the recipe that trains its text-conditioned models.

The base model (and a retrain oracle, on a corpus without the concept) is a
``UNet2DConditionModel`` trained by ubench on ``CorpusSpec.size`` random captioned scenes, through
the frozen MiniLM text encoder, at a fixed thread count so that the cached asset does not depend
on the machine.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ubench.core.env import fixed_threads
from ubench.models.diffusion import text_conditional_model
from ubench.tasks.digits.data import load_digits_splits
from ubench.tasks.t2i import world
from ubench.tasks.t2i.world import Scene
from ubench.training.diffusion import TrainSpec, train_diffusion

Progress = Callable[[str, int, int, dict[str, float]], None]


@dataclass(frozen=True)
class WorldModelSpec:
    """Architecture of the text-conditioned UNet (part of the cache key)."""

    channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    encoder: str = "minilm"
    max_length: int = 24
    #: cross-attention on the lowest-resolution block only ("low") or on every block ("all")
    cross_attention: str = "low"
    init_seed: int = 0


@dataclass(frozen=True)
class CorpusSpec:
    """The training corpus: random scenes, each with one random caption (any wording)."""

    size: int = 12000
    seed: int = 0
    #: probability that a scene has a frame
    frame_prob: float = 0.5


def build_corpus(spec: CorpusSpec, keep: Callable[[Scene], bool] | None = None
                 ) -> tuple[torch.Tensor, list[str], list[Scene]]:
    """Render ``spec.size`` random captioned scenes from the digits train split.

    ``keep`` filters scenes (the retrain oracle drops those with the concept); rejected draws are
    replaced, so the corpus always has ``spec.size`` items.
    """
    train, _ = load_digits_splits()
    by_class = [torch.nonzero(train.labels == k).reshape(-1).tolist() for k in range(10)]
    rng = random.Random(spec.seed)
    scenes: list[Scene] = []
    captions: list[str] = []
    picks: list[int] = []
    while len(scenes) < spec.size:
        s = world.random_scene(rng, frame_prob=spec.frame_prob)
        if keep is not None and not keep(s):
            continue
        scenes.append(s)
        captions.append(world.caption(s, rng, "any"))
        picks.append(rng.choice(by_class[s.digit]))
    images = world.render(scenes, train.images[picks])
    return images, captions, scenes


def train_world_model(directory: Path, label: str, model_spec: WorldModelSpec,
                      corpus_spec: CorpusSpec, train_spec: TrainSpec, threads: int,
                      keep: Callable[[Scene], bool] | None = None,
                      progress: Progress | None = None) -> str:
    """Train a world model on the corpus (filtered by ``keep``), save its EMA weights in
    ``directory``; returns a one-line summary."""
    images, captions, _ = build_corpus(corpus_spec, keep)
    s = model_spec
    model = text_conditional_model(resolution=world.SIZE, channels=s.channels,
                                   layers_per_block=s.layers_per_block, encoder=s.encoder,
                                   max_length=s.max_length, cross_attention=s.cross_attention,
                                   seed=s.init_seed)
    with fixed_threads(threads):
        model.conditioner.precompute([*captions, ""])  # type: ignore[union-attr]

        def report(step: int, total: int, loss: float) -> None:
            if progress is not None and (step % 10 == 0 or step == total):
                progress(f"train {label}", step, total, {"loss": loss})

        ema = train_diffusion(model, images, captions, train_spec, report)
    ema.save(directory)
    return f"{label}: trained {train_spec.steps} steps on {len(captions)} captions"
