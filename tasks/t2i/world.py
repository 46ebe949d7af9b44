"""The procedural captioned-image world of the t2i tasks, and its exact evaluators.

Every image is a 12x12 RGB canvas built from one of scikit-learn's 8x8 handwritten digits plus four
independent attributes that a caption names: the stroke ``colour`` (8 bright colours), the dark
``background`` colour (4), the background ``pattern`` (plain, striped, checkered) and an optional
``frame`` (a 1-pixel ring in the stroke colour). Compositing, in [0, 1] RGB:

* texture ``T(i, j) = clip(bg + LIFT * M_pattern(i, j))`` over the whole canvas;
* the digit's intensity ``a`` (its [-1, 1] image mapped to [0, 1]) sits in the centre 8x8
  (rows/cols 2..9) and mixes ``(1 - a) * T + a * stroke`` there;
* with ``frame=True`` the outer ring (row/col 0 and 11) is painted in the stroke colour;
* the result is mapped to [-1, 1] as ``2 * p - 1``.

Because the world is procedural, whether a generated image shows what its prompt asks for can be
decided by fixed pixel rules (:func:`detect`) rather than by a learned judge: only the digit's
identity needs the digits classifier, fed with the digit map :func:`detect` recovers. On rendered
images the rules are exact (attributes 100 %, digit map to float precision).

Captions (:func:`caption`) name every attribute through synonyms and several templates, with a
"common" and a disjoint "paraphrase" set of phrasings per value, so that unlearning can be tested
on wordings that never occur in training prompts.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

SIZE: int = 12
DIGIT_SIZE: int = 8
#: first row/column of the digit inside the canvas (a 2-pixel margin all around)
OFFSET: int = 2
#: how much a patterned background pixel is lifted, on every channel
LIFT: float = 0.3

#: stroke colours: a bright palette, RGB in [0, 1]
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.15, 0.15),
    "green": (0.15, 0.9, 0.15),
    "blue": (0.3, 0.5, 1.0),
    "yellow": (1.0, 0.95, 0.15),
    "cyan": (0.15, 0.95, 0.95),
    "magenta": (0.95, 0.2, 0.95),
    "white": (1.0, 1.0, 1.0),
    "orange": (1.0, 0.55, 0.1),
}
#: background colours: a dark palette, RGB in [0, 1] (lifted by LIFT they stay below 1)
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "black": (0.0, 0.0, 0.0),
    "navy": (0.0, 0.0, 0.4),
    "maroon": (0.4, 0.0, 0.0),
    "forest": (0.0, 0.3, 0.0),
}
PATTERNS: tuple[str, ...] = ("plain", "striped", "checkered")
#: the attributes of a scene, in the order captions and named_attributes list them
ATTRIBUTES: tuple[str, ...] = ("digit", "colour", "background", "pattern", "frame")


@dataclass(frozen=True)
class Scene:
    """What one image shows; a caption determines all of it except the digit's handwriting."""

    digit: int
    colour: str
    background: str
    pattern: str = "plain"
    frame: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.digit, bool) or not isinstance(self.digit, int) \
                or not 0 <= self.digit <= 9:
            raise ValueError(f"digit must be an int in 0..9, got {self.digit!r}")
        for name, value, valid in (("colour", self.colour, COLOURS),
                                   ("background", self.background, BACKGROUNDS),
                                   ("pattern", self.pattern, PATTERNS)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
        if not isinstance(self.frame, bool):
            raise ValueError(f"frame must be True or False, got {self.frame!r}")


def random_scene(rng: random.Random, digit: int | None = None,
                 colours: Sequence[str] | None = None, frame_prob: float = 0.5) -> Scene:
    """A uniformly random scene; deterministic given ``rng``.

    The digit is drawn unless given, the stroke colour from ``colours`` (default: all), and a
    frame with probability ``frame_prob``.
    """
    d = rng.randrange(10) if digit is None else digit
    return Scene(d, rng.choice(list(colours or COLOURS)), rng.choice(list(BACKGROUNDS)),
                 rng.choice(PATTERNS), rng.random() < frame_prob)


# ---------------------------------------------------------------------------------------------
# rendering


def _pattern_masks() -> torch.Tensor:
    """(len(PATTERNS), SIZE, SIZE) 0/1 masks of the lifted background pixels, per pattern."""
    i = torch.arange(SIZE).view(-1, 1).expand(SIZE, SIZE)
    j = torch.arange(SIZE).view(1, -1).expand(SIZE, SIZE)
    plain = torch.zeros(SIZE, SIZE)
    striped = (i % 2 == 0).float()
    checkered = ((i // 2 + j // 2) % 2 == 0).float()
    return torch.stack([plain, striped, checkered])


def _ring(distance: int) -> torch.Tensor:
    """(SIZE, SIZE) bool mask of the pixels exactly ``distance`` pixels in from the border."""
    i = torch.arange(SIZE).view(-1, 1)
    j = torch.arange(SIZE).view(1, -1)
    edge = torch.minimum(torch.minimum(i, SIZE - 1 - i), torch.minimum(j, SIZE - 1 - j))
    return edge == distance


_MASKS = _pattern_masks()
#: the frame ring
_RING0 = _ring(0)
#: never covered by digit or frame: pure background texture, what detect reads it from
_RING1 = _ring(1)
_CENTRE = slice(OFFSET, OFFSET + DIGIT_SIZE)


def _palette(table: Mapping[str, tuple[float, float, float]]) -> torch.Tensor:
    return torch.tensor(list(table.values()), dtype=torch.float32)


_COLOUR_RGB = _palette(COLOURS)
_BACKGROUND_RGB = _palette(BACKGROUNDS)
_COLOUR_NAMES = tuple(COLOURS)
_BACKGROUND_NAMES = tuple(BACKGROUNDS)


def _digit_maps(digit_images: torch.Tensor) -> torch.Tensor:
    """(N, 8, 8) or (N, 1, 8, 8) images -> (N, 8, 8) float32, shape checked."""
    x = digit_images
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3 or tuple(x.shape[1:]) != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(f"digit images must be (N, 8, 8) or (N, 1, 8, 8), got "
                         f"{tuple(digit_images.shape)}")
    return x.float()


def render(scenes: Sequence[Scene], digit_images: torch.Tensor) -> torch.Tensor:
    """Draw ``scenes[k]`` with the handwriting ``digit_images[k]`` (in [-1, 1]).

    Returns ``(N, 3, 12, 12)`` float32 in [-1, 1]. The scene's ``digit`` label is not checked
    against the image: the image *is* the digit. Vectorised over the batch.
    """
    x = _digit_maps(digit_images).cpu()
    n = len(scenes)
    if x.shape[0] != n:
        raise ValueError(f"{n} scenes but {x.shape[0]} digit images")
    a = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    stroke = torch.tensor([COLOURS[s.colour] for s in scenes],
                          dtype=torch.float32).reshape(n, 3, 1, 1)
    bg = torch.tensor([BACKGROUNDS[s.background] for s in scenes],
                      dtype=torch.float32).reshape(n, 3, 1, 1)
    pattern = torch.tensor([PATTERNS.index(s.pattern) for s in scenes], dtype=torch.long)
    texture = (bg + LIFT * _MASKS[pattern].unsqueeze(1)).clamp(0.0, 1.0)
    cover = torch.zeros(n, 1, SIZE, SIZE)
    cover[:, 0, _CENTRE, _CENTRE] = a
    p = (1.0 - cover) * texture + cover * stroke
    framed = torch.tensor([s.frame for s in scenes], dtype=torch.bool).reshape(n, 1, 1, 1)
    p = torch.where(framed & _RING0, stroke.expand_as(p), p)
    return (2.0 * p - 1.0).float()


# ---------------------------------------------------------------------------------------------
# detection

#: a background estimate farther than this (RGB Euclidean) from every palette colour is None
BACKGROUND_TOLERANCE: float = 0.2
#: a stroke estimate farther than this from the chosen palette colour is None
COLOUR_TOLERANCE: float = 0.25
#: ring-1 RMS residual (per channel) above which no pattern fits: pattern None
PATTERN_TOLERANCE: float = 0.15
#: a stroke fit leaving more than this share of the centre's energy unexplained: colour None
COLOUR_FIT: float = 0.5
#: pixels at least this inked are "strong": each one's own unmixed colour can be checked
STRONG: float = 0.75
#: share of strong pixels whose unmixed colour must lie within COLOUR_TOLERANCE of the stroke
STROKE_AGREEMENT: float = 0.6
#: fewer full-ink pixel equivalents than this in the centre: no stroke, colour None
MIN_INK: float = 2.0
#: share of ring-0 pixels that must look like the stroke for a frame
FRAME_FRACTION: float = 0.75
#: with no stroke estimate at all, a ring-0 pixel counts as frame when this far from the texture
#: (half the smallest palette stroke-to-texture distance, about 0.36)
FRAME_CONTRAST: float = 0.18


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` sees in one image; None where no palette value fits."""

    colour: str | None
    background: str | None
    pattern: str | None
    frame: bool


def detect(images: torch.Tensor) -> tuple[list[Detection], torch.Tensor]:
    """Read the attributes and the digit map off ``(N, 3, 12, 12)`` images in [-1, 1].

    Deterministic pixel rules, vectorised over the batch (pixels are clamped to [0, 1] first):

    1. **pattern and background** from ring 1 (the 40 pixels one in from the border, never
       covered by digit or frame). For each pattern hypothesis, subtract ``LIFT * mask`` from
       those pixels; the per-channel median is the base colour and the RMS deviation from it is
       the fit. The best-fitting pattern wins (None if its RMS > PATTERN_TOLERANCE); the
       background is the palette colour nearest the base (None if > BACKGROUND_TOLERANCE).
       The texture ``T`` is then rebuilt everywhere from the *estimated* base and the pattern,
       so that a slightly off-palette background still subtracts cleanly.
    2. **colour**: for every palette stroke ``s`` fit the per-pixel mix ``a = <p - T, s - T> /
       |s - T|^2`` (clipped to [0, 1]) over the centre 8x8; the colour with the smallest residual
       ``|p - T - a (s - T)|^2`` is the candidate. The stroke colour is then estimated directly
       by least-squares unmixing, ``s_hat = sum a (p - (1 - a) T) / sum a^2``. The colour is
       None (scattered colours are noise, not one stroke) when ``s_hat`` is farther than
       COLOUR_TOLERANCE from the candidate; when the fit leaves more than COLOUR_FIT of the
       centre's energy ``sum |p - T|^2`` unexplained; when fewer than STROKE_AGREEMENT of the
       strong pixels (``a >= STRONG``), each unmixed on its own as ``T + (p - T) / a``, lie
       within COLOUR_TOLERANCE of it; or when there is almost no ink (``sum a`` or the number
       of strong pixels below MIN_INK).
    3. **digit map**: the fitted ``a`` of the detected colour, as ``2 a - 1`` (exact on rendered
       images); when the colour is None, the per-pixel max-channel ``|p - T|`` instead.
    4. **frame**: at least FRAME_FRACTION of the ring-0 pixels are closer to the stroke (the
       palette colour, else ``s_hat`` when there is ink) than to ``T``; with no stroke estimate
       at all, at least that share is more than FRAME_CONTRAST away from ``T``.

    Returns the detections and the digit maps ``(N, 1, 8, 8)`` in [-1, 1], on the input's device,
    ready for the digits judge.
    """
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, SIZE, SIZE):
        raise ValueError(f"images must be (N, 3, {SIZE}, {SIZE}), got {tuple(images.shape)}")
    device = images.device
    p = ((images.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
    n = p.shape[0]
    rows = torch.arange(n)

    # 1. pattern and background, from ring 1
    ring = p[:, :, _RING1]                                       # (N, 3, 40)
    lifted = LIFT * _MASKS[:, _RING1]                            # (P, 40)
    resid = ring.unsqueeze(1) - lifted[None, :, None, :]         # (N, P, 3, 40)
    bases = resid.median(dim=-1).values                          # (N, P, 3)
    rms = (resid - bases.unsqueeze(-1)).pow(2).mean(dim=(2, 3)).sqrt()   # (N, P)
    best_fit, pattern_idx = rms.min(dim=1)
    base = bases[rows, pattern_idx]                              # (N, 3)
    bg_dist, bg_idx = torch.cdist(base, _BACKGROUND_RGB).min(dim=1)
    texture = (base[:, :, None, None]
               + LIFT * _MASKS[pattern_idx].unsqueeze(1)).clamp(0.0, 1.0)   # (N, 3, 12, 12)

    # 2. colour, from the centre
    pc = p[:, :, _CENTRE, _CENTRE]
    tc = texture[:, :, _CENTRE, _CENTRE]
    diff = pc - tc                                               # (N, 3, 8, 8)
    towards = _COLOUR_RGB[None, :, :, None, None] - tc.unsqueeze(1)       # (N, K, 3, 8, 8)
    mix = ((diff.unsqueeze(1) * towards).sum(2)
           / towards.pow(2).sum(2).clamp_min(1e-8)).clamp(0.0, 1.0)       # (N, K, 8, 8)
    residual = (diff.unsqueeze(1) - mix.unsqueeze(2) * towards).pow(2).sum(dim=(2, 3, 4))
    best_residual, colour_idx = residual.min(dim=1)
    unexplained = best_residual / diff.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-8)
    a = mix[rows, colour_idx]                                    # (N, 8, 8)
    ink = a.sum(dim=(1, 2))
    unmixed = (a.unsqueeze(1) * (pc - (1.0 - a.unsqueeze(1)) * tc)).sum(dim=(2, 3))
    s_hat = unmixed / a.pow(2).sum(dim=(1, 2)).clamp_min(1e-8).unsqueeze(1)   # (N, 3)
    stroke = _COLOUR_RGB[colour_idx]                             # (N, 3)
    has_ink = ink >= MIN_INK
    # every strong pixel, unmixed on its own (T + (p - T) / a), should show the same stroke
    strong = a >= STRONG
    own = tc + diff / a.clamp_min(STRONG).unsqueeze(1)
    agrees = ((own - stroke[:, :, None, None]).norm(dim=1) <= COLOUR_TOLERANCE) & strong
    agreement = agrees.sum(dim=(1, 2)) / strong.sum(dim=(1, 2)).clamp_min(1)
    colour_ok = (has_ink & (strong.sum(dim=(1, 2)) >= MIN_INK) & (unexplained <= COLOUR_FIT)
                 & (agreement >= STROKE_AGREEMENT)
                 & ((s_hat - stroke).norm(dim=1) <= COLOUR_TOLERANCE))

    # 3. digit map
    fallback = diff.abs().amax(dim=1).clamp(0.0, 1.0)
    a_map = torch.where(colour_ok[:, None, None], a, fallback)
    digit_maps = (2.0 * a_map - 1.0).unsqueeze(1)

    # 4. frame, from ring 0
    edge = p[:, :, _RING0]                                       # (N, 3, 44)
    edge_t = texture[:, :, _RING0]
    s_ref = torch.where(colour_ok[:, None], stroke, s_hat)
    closer = (edge - s_ref.unsqueeze(-1)).norm(dim=1) < (edge - edge_t).norm(dim=1)
    contrast = (edge - edge_t).norm(dim=1) > FRAME_CONTRAST
    like_stroke = torch.where(has_ink[:, None], closer, contrast).float().mean(dim=1)
    framed = like_stroke >= FRAME_FRACTION

    detections = [
        Detection(colour=_COLOUR_NAMES[c] if ok_c else None,
                  background=_BACKGROUND_NAMES[b] if ok_b else None,
                  pattern=PATTERNS[q] if ok_q else None,
                  frame=bool(f))
        for c, ok_c, b, ok_b, q, ok_q, f in zip(
            colour_idx.tolist(), colour_ok.tolist(),
            bg_idx.tolist(), (bg_dist <= BACKGROUND_TOLERANCE).tolist(),
            pattern_idx.tolist(), (best_fit <= PATTERN_TOLERANCE).tolist(),
            framed.tolist(), strict=True)
    ]
    return detections, digit_maps.to(device)


def pattern_strength(images: torch.Tensor, pattern: str) -> torch.Tensor:
    """How strongly ``pattern`` is drawn on each image's background, graded: the least-squares
    amplitude of its mask on ring 1 (the pure-background pixels :func:`detect` reads), per
    channel, averaged, in units of ``LIFT``. 1 is the pattern as rendered, 0 none of it.

    :func:`detect` decides the pattern categorically (the best fit at full amplitude), so a
    background drawn with the pattern at a third of its contrast reads "plain" there; this is the
    check of how much of the pattern is left (used by ``scripts/judge_generations.py``)."""
    if pattern not in PATTERNS or pattern == "plain":
        raise ValueError(f"pattern must be one of {[q for q in PATTERNS if q != 'plain']}, "
                         f"got {pattern!r}")
    p = ((images.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
    ring = p[:, :, _RING1]                                       # (N, 3, 40)
    mask = _MASKS[PATTERNS.index(pattern)][_RING1]               # (40,)
    centred = mask - mask.mean()
    amp = ((ring - ring.mean(dim=-1, keepdim=True)) * centred).sum(-1) / centred.pow(2).sum()
    return amp.mean(dim=1) / LIFT


def alignment(named: Mapping[str, object], det: Detection, judged_digit: int) -> bool:
    """Whether an image shows every attribute its prompt names.

    ``named`` maps attribute names (see ATTRIBUTES) to the required values; only the keys
    present are checked. ``"digit"`` is compared with ``judged_digit`` (the digits judge's
    verdict on the detected digit map), ``"frame": True`` requires a frame and ``False`` forbids
    one; the other attributes must equal the detection (a None detection matches nothing).
    """
    for key, want in named.items():
        if key == "digit":
            ok = judged_digit == want
        elif key == "frame":
            ok = det.frame == bool(want)
        elif key in ("colour", "background", "pattern"):
            got = getattr(det, key)
            ok = got is not None and got == want
        else:
            raise ValueError(f"unknown attribute {key!r}; valid: {', '.join(ATTRIBUTES)}")
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# captions

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _article(word: str) -> str:
    """'a' or 'an' before ``word`` (by sound, for this world's vocabulary)."""
    w = word.lower()
    if w.startswith(("one", "uni", "use", "eu")):
        return "a"
    return "an" if w[:1] in ("a", "e", "i", "o", "u", "8") else "a"


def _digit_phrases(d: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    w = _DIGIT_WORDS[d]
    common = (f"{_article(w)} {w}", f"the digit {d}", f"a handwritten {w}", f"the number {d}")
    paraphrase = (f"the numeral {w}", f"a penned {d}", f"the figure {w}")
    return common, paraphrase


#: attribute -> value -> (common phrasings, paraphrase phrasings); the two sets never share a
#: phrasing and no paraphrase contains a common phrasing of its value as whole words. A plain
#: pattern may also go unsaid and an absent frame always does (frame has only the key True).
PHRASES: dict[str, dict[object, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "digit": {d: _digit_phrases(d) for d in range(10)},
    "colour": {
        "red": (("red", "bright red", "scarlet"), ("crimson", "ruby")),
        "green": (("green", "bright green", "emerald"), ("lime", "jade")),
        "blue": (("blue", "bright blue", "sky blue"), ("azure", "cornflower")),
        "yellow": (("yellow", "bright yellow", "lemon yellow"), ("golden", "canary")),
        "cyan": (("cyan", "aqua", "turquoise"), ("aquamarine", "teal")),
        "magenta": (("magenta", "pink", "hot pink"), ("orchid", "purple")),
        "white": (("white", "pure white", "snow white"), ("ivory", "chalky")),
        "orange": (("orange", "bright orange", "tangerine"), ("amber", "marigold")),
    },
    # no background phrasing contains a stroke colour's name ("navy blue", "forest green")
    "background": {
        "black": (("on a black background", "against black", "over a black backdrop"),
                  ("against inky darkness", "on a coal background")),
        "navy": (("on a navy background", "against navy", "over a navy backdrop"),
                 ("against a midnight backdrop", "on an indigo background")),
        "maroon": (("on a maroon background", "against maroon", "over a maroon backdrop"),
                   ("on a burgundy background", "against a wine backdrop")),
        "forest": (("on a forest background", "against dark forest tones",
                    "over a forest backdrop"),
                   ("on a pine background", "against deep woodland")),
    },
    "pattern": {
        "plain": (("with no pattern", "with a plain fill", "without any pattern"),
                  ("with a uniform fill", "with an even fill")),
        "striped": (("with horizontal stripes", "with stripes", "with a striped pattern"),
                    ("with banded lines", "with horizontal bands")),
        "checkered": (("with checkered squares", "with a checked pattern", "with checks"),
                      ("like a chessboard", "with alternating tiles")),
    },
    "frame": {
        True: (("inside a frame", "with a border", "framed"),
               ("within an outline", "in a box", "boxed in")),
    },
}

#: caption templates; ``{colour_digit}`` is the digit phrasing with the colour as an adjective.
#: Empty slots (an unsaid plain pattern, no frame) collapse, so no double spaces appear.
TEMPLATES: tuple[str, ...] = (
    "{digit} in {colour} {background} {pattern} {frame}",
    "{colour_digit} {background} {pattern} {frame}",
    "{colour_digit} {frame} {background} {pattern}",
    "{digit} drawn in {colour} {frame} {background} {pattern}",
    "a picture of {colour_digit} {background} {pattern} {frame}",
)
VARIANTS: tuple[str, ...] = ("any", "common", "paraphrase")
#: chance that a caption of a plain scene leaves the pattern unsaid
PLAIN_UNSAID: float = 0.5


def _with_adjective(phrase: str, adjective: str) -> str:
    """'a seven' + 'orange' -> 'an orange seven'; 'the digit 7' + 'red' -> 'the red digit 7'."""
    first, _, rest = phrase.partition(" ")
    if first in ("a", "an"):
        return f"{_article(adjective)} {adjective} {rest}"
    if first == "the":
        return f"the {adjective} {rest}"
    return f"{adjective} {phrase}"


def _fill(template: str, slots: Mapping[str, str]) -> str:
    filled = template.format(colour_digit=_with_adjective(slots["digit"], slots["colour"]),
                             **slots)
    return " ".join(filled.split())


def _choices(attribute: str, value: object, variant: str) -> tuple[str, ...]:
    common, paraphrase = PHRASES[attribute][value]
    if variant == "common":
        return common
    if variant == "paraphrase":
        return paraphrase
    return common + paraphrase


def caption(scene: Scene, rng: random.Random, variant: str = "any") -> str:
    """A caption of ``scene``: a random template and random phrasings, deterministic given rng.

    It always names digit, colour and background, names a pattern other than plain (plain is
    named with probability 1 - PLAIN_UNSAID) and names the frame only when there is one.
    ``variant`` picks the phrasings: "common", "paraphrase" (disjoint from common) or "any".
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown caption variant {variant!r}; valid: {', '.join(VARIANTS)}")
    template = rng.choice(TEMPLATES)
    slots = {key: rng.choice(_choices(key, getattr(scene, key), variant))
             for key in ("digit", "colour", "background")}
    # the coin is drawn for every scene, so two scenes that differ in one attribute get the same
    # wording for all the others from the same rng state (the t2i tasks' paired prompts)
    coin = rng.random()
    unsaid = scene.pattern == "plain" and coin < PLAIN_UNSAID
    slots["pattern"] = "" if unsaid else rng.choice(_choices("pattern", scene.pattern, variant))
    slots["frame"] = rng.choice(_choices("frame", True, variant)) if scene.frame else ""
    return _fill(template, slots)


def canonical_caption(scene: Scene) -> str:
    """The one fixed wording: first template, first common phrasing, plain and no frame unsaid."""
    slots = {key: PHRASES[key][getattr(scene, key)][0][0]
             for key in ("digit", "colour", "background")}
    slots["pattern"] = "" if scene.pattern == "plain" else PHRASES["pattern"][scene.pattern][0][0]
    slots["frame"] = PHRASES["frame"][True][0][0] if scene.frame else ""
    return _fill(TEMPLATES[0], slots)


def named_attributes(scene: Scene) -> dict[str, object]:
    """What any caption of ``scene`` names: all five attributes (an unsaid pattern means plain
    and an unsaid frame means none, by construction of the captions)."""
    return {key: getattr(scene, key) for key in ATTRIBUTES}
