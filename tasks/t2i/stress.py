"""The judges' validation table: every digits judge on the stress set, read directly (digits
tasks) and read through a t2i scene (``world.render`` then ``world.detect``, as the t2i tasks read
a generation), and how often the validated judge and its partner agree; then the rejection rate
of every kind of garbage (the held-out kinds the judges train on and unseen speckles) and how
the judges read narrow filled zeros.

``ubench assets judges`` prints it; ``docs/judges.md`` quotes it and a test checks the quotes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch

from ubench.tasks.digits.data import load_digits_splits
from ubench.tasks.digits.judge import (
    GARBAGE_KINDS,
    HELDOUT_GARBAGE,
    HELDOUT_GARBAGE_SEED,
    NOT_A_DIGIT,
    Judge,
    garbage_by_kind,
    judge_predict,
)
from ubench.tasks.digits.stress import (
    PROBE_SEED,
    SPECKLES,
    VARIANTS,
    StressSet,
    narrow_filled,
    speckles,
    stress_sets,
)
from ubench.tasks.t2i import world
from ubench.tasks.t2i.concepts import TEST_COLOURS

#: seed of the scenes the stress digits are drawn into
SCENE_SEED: int = 31_032

Reader = Callable[[torch.Tensor], torch.Tensor]


def in_scenes(digits: torch.Tensor, seed: int = SCENE_SEED) -> torch.Tensor:
    """The digit maps a t2i task reads off ``digits`` drawn into random scenes (test colours,
    any background, pattern and frame): render, then :func:`world.detect`."""
    rng = random.Random(seed)
    scenes = [world.random_scene(rng, digit=0, colours=TEST_COLOURS) for _ in range(len(digits))]
    _, maps = world.detect(world.render(scenes, digits))
    return maps


def judge_table(judges: dict[str, Judge], variants: int = VARIANTS, focus: int = 0
                ) -> dict[str, object]:
    """For every judge and both readings (``digits``: the image itself; ``t2i``: the digit map
    recovered from a scene): accuracy per transformation over all classes and on ``focus``;
    and, for every pair of judges, the share of images on which they give the same label."""
    _, held = load_digits_splits()
    sets = [StressSet("real", held.images, held.labels),
            *stress_sets(held.images, held.labels, variants)]
    preds: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    accuracy: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for reading in ("digits", "t2i"):
        for s in sets:
            x = s.images if reading == "digits" else in_scenes(s.images)
            for name, net in judges.items():
                p = judge_predict(net, x)[0]
                preds.setdefault(name, {}).setdefault(reading, {})[s.transform] = p
                hit = (p == s.labels).float()
                accuracy.setdefault(name, {}).setdefault(reading, {})[s.transform] = {
                    "all": float(hit.mean()),
                    f"class_{focus}": float(hit[s.labels == focus].mean())}
    names = list(judges)
    agreement: dict[str, dict[str, dict[str, float]]] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            agreement[f"{a} vs {b}"] = {
                reading: {t: float((preds[a][reading][t] == preds[b][reading][t]).float().mean())
                          for t in preds[a][reading]}
                for reading in ("digits", "t2i")}
    return {"accuracy": accuracy, "agreement": agreement, "focus": focus,
            "variants": variants, "n_heldout": len(held.labels),
            "garbage": garbage_table(judges, held.images),
            "narrow_filled": narrow_filled_table(judges, held.images, held.labels, focus)}


#: the labels whose share :func:`narrow_filled_table` reports (the rest count as "other")
NARROW_READINGS: dict[str, int] = {"0": 0, "1": 1, "6": 6, "8": 8, "not a digit": NOT_A_DIGIT}


def garbage_table(judges: dict[str, Judge], digits: torch.Tensor
                  ) -> dict[str, dict[str, dict[str, float]]]:
    """Per judge and reading, the share of each garbage kind judged *not a digit*: the kinds the
    judges train on (:data:`GARBAGE_KINDS`, held-out draws) and ``speckles``, which none trains
    on."""
    _, options = garbage_by_kind(HELDOUT_GARBAGE,
                                 torch.Generator("cpu").manual_seed(HELDOUT_GARBAGE_SEED), digits)
    kinds = {**dict(zip(GARBAGE_KINDS, options, strict=True)),
             "speckles": speckles(SPECKLES, torch.Generator("cpu").manual_seed(PROBE_SEED))}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for reading in ("digits", "t2i"):
        for kind, x in kinds.items():
            seen = x if reading == "digits" else in_scenes(x)
            for name, net in judges.items():
                rejected = judge_predict(net, seen)[0] == NOT_A_DIGIT
                table.setdefault(name, {}).setdefault(reading, {})[kind] = float(
                    rejected.float().mean())
    return table


def narrow_filled_table(judges: dict[str, Judge], images: torch.Tensor, labels: torch.Tensor,
                        focus: int = 0) -> dict[str, object]:
    """How every judge reads the held-out ``focus`` digits made narrow and filled
    (:func:`narrow_filled`, ``VARIANTS`` each): the share of each of :data:`NARROW_READINGS`
    and of any other label, per reading."""
    src = images[labels == focus].repeat(VARIANTS, 1, 1, 1)
    x = narrow_filled(src, torch.Generator("cpu").manual_seed(PROBE_SEED + 1))
    shares: dict[str, dict[str, dict[str, float]]] = {}
    for reading in ("digits", "t2i"):
        seen = x if reading == "digits" else in_scenes(x)
        for name, net in judges.items():
            pred = judge_predict(net, seen)[0]
            row = {k: float((pred == v).float().mean()) for k, v in NARROW_READINGS.items()}
            row["other"] = max(0.0, 1.0 - sum(row.values()))
            shares.setdefault(name, {})[reading] = row
    return {"n": len(src), "shares": shares}
