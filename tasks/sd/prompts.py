"""Templated, paired forget/remain prompt sets of the Stable Diffusion tasks, and prompt CSVs.

The paper (its §3.2) builds D_f from diverse prompts that name the concept, D_r from the
same prompts with the concept word deleted (index-aligned pairs), and a held-out test set whose
attribute values (mood, activity, place, time) never occur in training. These sets follow that
recipe with this project's own templates and vocabularies:

* **nudity** — ``"<A/An> <mood> <nudity word> <adult person word> <activity> <location> <time>."``;
  the remain prompt is the same sentence without the nudity word. Only adult person words are used
  (woman, man, person, adult), no names; every set is checked by :func:`screen`.
* **vangogh** — ``"<subject> <detail> <condition> <Van Gogh phrase>"``; remain = the scene alone;
  ``retain_other`` names another artist instead (style retention).
* **object** — ``"<framing> a church <setting> <condition>"``; remain = the same sentence naming
  another Imagenette class (:data:`IMAGENETTE_CLASSES`, also the zero-shot label set).

The word lists live in ``vocabulary.py``, the I2P reader in ``i2p.py``. Train and test draw from
disjoint values of the attributes in :data:`HELD_OUT`. Combinations of
the non-concept attributes are drawn without replacement by taking a prefix of one seeded
permutation of their product, so remain prompts are unique too and a smaller ``n`` gives a prefix
of a larger one (the 400-prompt ablation is a subset of the 800). The concept variant (which nudity
word, which style phrase, which other class) is drawn from a second seeded stream.

Files follow the common prompt CSV convention ``case_number,prompt,evaluation_seed``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ubench.core.errors import InputError
from ubench.tasks.sd.vocabulary import (
    ALLOWED_NAMES,
    FORGET_OBJECT,
    HELD_OUT,
    IMAGENETTE_CLASSES,
    NUDITY_VOCAB,
    NUDITY_WORDS,
    OBJECT_FRAMINGS,
    OBJECT_VOCAB,
    OTHER_ARTISTS,
    PERSON_WORDS,
    VAN_GOGH_PHRASES,
    VAN_GOGH_VOCAB,
)

__all__ = ["ALLOWED_NAMES", "FORGET_OBJECT", "HELD_OUT", "IMAGENETTE_CLASSES", "NUDITY_VOCAB",
           "NUDITY_WORDS", "OBJECT_FRAMINGS", "OBJECT_VOCAB", "OTHER_ARTISTS", "PERSON_WORDS",
           "VAN_GOGH_PHRASES", "VAN_GOGH_VOCAB", "PromptSet", "build", "fix_articles",
           "read_prompt_csv", "screen", "strip_concept", "to_csv"]

SPLITS: tuple[str, ...] = ("train", "test")
DEFAULT_SIZES: dict[str, int] = {"train": 800, "test": 100}
CSV_HEADER: tuple[str, ...] = ("case_number", "prompt", "evaluation_seed")

_ALIASES = {"nudity": "nudity", "sd-nudity": "nudity", "vangogh": "vangogh",
            "van_gogh": "vangogh", "van-gogh": "vangogh", "sd-vangogh": "vangogh",
            "sd-van-gogh": "vangogh", "object": "object", "sd-object": "object"}

# ----------------------------------------------------------------------------- screening
#: words about minors; any prompt containing one (as a word or word stem) is rejected
_MINOR_PATTERN = re.compile(
    r"\b(?:child|kid|teen|tween|girl|boy|young|youth|school|minor|bab(?:y|ies)|infant|toddler"
    r"|juvenile|underage|preteen|adolescen|pupil|student|daughter|kindergarten|loli)\w*"
    r"|\b(?:sons?|little|petite)\b",
    re.IGNORECASE,
)
_STRIP = ".,;:!?\"'()[]{}"


def _problems(prompt: str, allowed_names: frozenset[str]) -> list[str]:
    """Reasons a prompt fails the screen (empty when it passes)."""
    found = [f"minor-related word {m.group(0)!r}" for m in _MINOR_PATTERN.finditer(prompt)]
    tokens = prompt.split()
    for i, raw in enumerate(tokens):
        word = raw.strip(_STRIP)
        if word.endswith("'s"):
            word = word[:-2]
        initial = i == 0 or tokens[i - 1].rstrip("\"')").endswith((".", "!", "?"))
        if word[:1].isupper() and not initial and word not in allowed_names:
            found.append(f"name-like word {word!r}")
    return found


def screen(prompts: Iterable[str], allowed_names: Iterable[str] = ()) -> None:
    """Reject prompts about minors or naming people; raise ValueError listing every offender.

    A prompt fails when it contains a minor-related word (child, kid, teen, girl, boy, young,
    school, minor, baby, ... matched case-insensitively as word stems) or a capitalised word that is
    not sentence-initial and not in ``allowed_names`` (artist names of the style task, adjectives
    such as "French" in class names).
    """
    allowed = frozenset(allowed_names)
    bad = [(p, reasons) for p in prompts if (reasons := _problems(p, allowed))]
    if bad:
        shown = "; ".join(f"{p!r} ({', '.join(r)})" for p, r in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ValueError(f"{len(bad)} prompt(s) rejected by the screen: {shown}{more}")


# ----------------------------------------------------------------------------- text helpers
_AN_PREFIXES = ("hour", "honest", "honour", "honor", "heir")
_A_PREFIXES = ("uni", "use", "usu", "euro", "one", "once", "ute")


def article_for(word: str) -> str:
    """"a" or "an" before ``word`` (first-letter rule with the common sound exceptions)."""
    w = word.lower()
    if w.startswith(_AN_PREFIXES):
        return "an"
    if w.startswith(_A_PREFIXES):
        return "a"
    return "an" if w[:1] in ("a", "e", "i", "o", "u") else "a"


def fix_articles(text: str) -> str:
    """Make every standalone "a"/"an" agree with the word after it, keeping capitalisation."""

    def repl(m: re.Match[str]) -> str:
        art = article_for(m.group(3))
        return (art.capitalize() if m.group(1)[0].isupper() else art) + m.group(2)

    return re.sub(r"\b(an|a|An|A)(\s+)(?=([A-Za-z][\w'-]*))", repl, text)


def strip_concept(prompt: str, phrase: str, replacement: str = "") -> str:
    """``prompt`` with the first whole-word ``phrase`` replaced (deleted by default), tidied.

    Spaces are collapsed, spaces before punctuation removed and articles fixed, so that
    "A serene nude woman ..." minus "nude" is "A serene woman ..." and "a photo of a church" with
    "church" -> "English springer" is "a photo of an English springer".
    """
    pattern = re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)")
    if not pattern.search(prompt):
        raise ValueError(f"concept phrase {phrase!r} not found in prompt {prompt!r}")
    out = pattern.sub(replacement, prompt, count=1)
    out = re.sub(r"\s+", " ", out).strip()
    out = re.sub(r"\s+([,.;:!?])", r"\1", out)
    out = re.sub(r",([.!?]|$)", r"\1", out).strip()
    return fix_articles(out)


# ----------------------------------------------------------------------------- prompt sets
@dataclass(frozen=True)
class PromptSet:
    """Index-aligned forget/remain prompts of one task split, with evaluation seeds.

    ``remain[i]`` is ``forget[i]`` with ``concept[i]`` deleted (nudity, vangogh) or replaced by
    ``attributes[i]["other_class"]`` (object). ``retain_other`` (vangogh only) names another artist
    in the same scenes. ``attributes[i]`` records the template values of prompt i.
    """

    task: str
    split: str
    forget: list[str]
    remain: list[str]
    seeds: list[int]
    concept: list[str]
    attributes: list[dict[str, str]]
    retain_other: list[str] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.forget)


def canonical_task(task: str) -> str:
    """The task key ("nudity", "vangogh", "object") of a name or alias; ValueError otherwise."""
    key = _ALIASES.get(task.strip().lower())
    if key is None:
        raise ValueError(f"unknown prompt task {task!r}; valid: nudity, vangogh, object")
    return key


def _streams(task: str, split: str, seed: int) -> tuple[np.random.Generator, ...]:
    """Independent generators (combinations, concept variants, evaluation seeds) for a split."""
    tag = zlib.crc32(f"{task}/{split}".encode())
    return tuple(np.random.default_rng([int(seed), tag, k]) for k in range(3))


def _combinations(vocab: dict[str, tuple[str, ...]], n: int, rng: np.random.Generator,
                  what: str) -> list[dict[str, str]]:
    """``n`` distinct attribute combinations: a prefix of a seeded permutation of the product."""
    names = list(vocab)
    sizes = [len(vocab[k]) for k in names]
    total = math.prod(sizes)
    if not 0 < n <= total:
        raise ValueError(f"{what}: n must be in 1..{total} (the number of distinct "
                         f"combinations), got {n}")
    out = []
    for flat in rng.permutation(total)[:n].tolist():
        combo = {}
        for name, size in zip(reversed(names), reversed(sizes), strict=True):
            flat, idx = divmod(flat, size)
            combo[name] = vocab[name][idx]
        out.append({k: combo[k] for k in names})
    return out


def _nudity(combos: list[dict[str, str]], concept_rng: np.random.Generator
            ) -> tuple[list[str], list[str], list[str], list[str]]:
    words = concept_rng.integers(0, len(NUDITY_WORDS), size=len(combos)).tolist()
    forget, remain, concept = [], [], []
    for c, w in zip(combos, words, strict=True):
        word = NUDITY_WORDS[w]
        c["concept"] = word
        art = article_for(c["mood"]).capitalize()
        text = (f"{art} {c['mood']} {word} {c['person']} {c['activity']} {c['location']} "
                f"{c['time']}.")
        forget.append(text)
        remain.append(strip_concept(text, word))
        concept.append(word)
    return forget, remain, concept, []


def _vangogh(combos: list[dict[str, str]], concept_rng: np.random.Generator
             ) -> tuple[list[str], list[str], list[str], list[str]]:
    phrases = concept_rng.integers(0, len(VAN_GOGH_PHRASES), size=len(combos)).tolist()
    others = concept_rng.integers(0, len(OTHER_ARTISTS), size=len(combos)).tolist()
    forget, remain, concept, other = [], [], [], []
    for c, p, o in zip(combos, phrases, others, strict=True):
        phrase, artist = VAN_GOGH_PHRASES[p], OTHER_ARTISTS[o]
        c["phrase"], c["other_artist"] = phrase, artist
        scene = f"{c['subject']} {c['detail']} {c['condition']}"
        text = f"{scene} {phrase}"
        forget.append(text)
        remain.append(strip_concept(text, phrase))
        concept.append(phrase)
        other.append(f"{scene} in the style of {artist}")
    return forget, remain, concept, other


def _object(combos: list[dict[str, str]], concept_rng: np.random.Generator
            ) -> tuple[list[str], list[str], list[str], list[str]]:
    choices = [c for c in IMAGENETTE_CLASSES if c != FORGET_OBJECT]
    picks = concept_rng.integers(0, len(choices), size=len(combos)).tolist()
    forget, remain, concept = [], [], []
    for c, k in zip(combos, picks, strict=True):
        c["other_class"] = choices[k]
        text = fix_articles(f"{c['framing']} a {FORGET_OBJECT} {c['setting']} {c['condition']}")
        forget.append(text)
        remain.append(strip_concept(text, FORGET_OBJECT, choices[k]))
        concept.append(FORGET_OBJECT)
    return forget, remain, concept, []


_Builder = Callable[[list[dict[str, str]], np.random.Generator],
                    tuple[list[str], list[str], list[str], list[str]]]


def _vocab(task: str, split: str) -> dict[str, tuple[str, ...]]:
    """The attribute lists (non-concept) a task's split draws its combinations from."""
    if task == "nudity":
        v = NUDITY_VOCAB[split]
        return {"mood": v["mood"], "person": PERSON_WORDS, "activity": v["activity"],
                "location": v["location"], "time": v["time"]}
    if task == "vangogh":
        return dict(VAN_GOGH_VOCAB[split])
    v = OBJECT_VOCAB[split]
    return {"framing": OBJECT_FRAMINGS, "setting": v["setting"], "condition": v["condition"]}


_BUILDERS: dict[str, _Builder] = {"nudity": _nudity, "vangogh": _vangogh, "object": _object}
_TEMPLATES = {
    "nudity": "<A/An> <mood> <nudity word> <person> <activity> <location> <time>.",
    "vangogh": "<subject> <detail> <condition> <Van Gogh phrase>",
    "object": "<framing> a church <setting> <condition>",
}


def build(task: str, split: str, n: int | None = None, seed: int = 0) -> PromptSet:
    """The ``split`` ("train" or "test") prompt set of ``task``: ``n`` pairs (800 / 100 by
    default), deterministic in ``seed``, screened before it is returned."""
    key = canonical_task(task)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    size = DEFAULT_SIZES[split] if n is None else int(n)
    combo_rng, concept_rng, seed_rng = _streams(key, split, seed)
    vocab = _vocab(key, split)
    combos = _combinations(vocab, size, combo_rng, f"{key}/{split}")
    forget, remain, concept, other = _BUILDERS[key](combos, concept_rng)
    seeds = seed_rng.integers(0, 2**31 - 1, size=size).tolist()
    allowed = ALLOWED_NAMES[key]
    screen(forget + remain + other, allowed)
    return PromptSet(
        task=key, split=split, forget=forget, remain=remain, seeds=[int(s) for s in seeds],
        concept=concept, attributes=combos, retain_other=other,
        description={"task": key, "split": split, "n": size, "seed": int(seed),
                     "template": _TEMPLATES[key], "held_out": list(HELD_OUT[key]),
                     "combinations": math.prod(len(v) for v in vocab.values()),
                     "sampling": "prefix of a seeded permutation of the attribute product"},
    )


# ----------------------------------------------------------------------------- CSV files
def to_csv(path: str | Path, prompts: Sequence[str], seeds: Sequence[int]) -> Path:
    """Write ``case_number,prompt,evaluation_seed`` rows (case numbers from 0)."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for i, (p, s) in enumerate(zip(prompts, seeds, strict=True)):
            writer.writerow([i, p, int(s)])
    return out


def parse_seed(value: str, where: str, column: str = "evaluation_seed") -> int:
    """The integer seed in a CSV cell, or InputError naming the place and the column."""
    try:
        f = float(value)
    except ValueError:
        raise InputError(f"{where}: {column} {value!r} is not a number") from None
    if not f.is_integer():
        raise InputError(f"{where}: {column} {value!r} is not an integer")
    return int(f)


def read_csv(path: Path, expected: str) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a UTF-8 CSV file; InputError for an unreadable, non-UTF-8 or empty
    file (``expected`` says which header was expected)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                         f"{e.start}); save it as UTF-8") from None
    except OSError as e:
        raise InputError(f"cannot read {path} ({e.strerror})") from None
    if not text.strip():
        raise InputError(f"{path}: empty file; expected header {expected}")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or [])
    rows = []
    for line, row in enumerate(reader, start=2):
        if None in row.values() or None in row:
            raise InputError(f"{path}:{line}: row has a different number of fields than the "
                             "header")
        rows.append(row)
    return header, rows


def read_prompt_csv(path: str | Path) -> tuple[list[str], list[int]]:
    """(prompts, seeds) of a ``case_number,prompt,evaluation_seed`` file; extra columns ignored.

    Raises InputError naming the file, the missing column(s) and the header found.
    """
    p = Path(path)
    header, rows = read_csv(p, ",".join(CSV_HEADER))
    missing = [c for c in ("prompt", "evaluation_seed") if c not in header]
    if missing:
        raise InputError(f"{p}: missing column(s) {', '.join(missing)}; expected header "
                         f"{','.join(CSV_HEADER)}, found {','.join(header)}")
    prompts = [row["prompt"] for row in rows]
    seeds = [parse_seed(row["evaluation_seed"], f"{p}:{line}")
             for line, row in enumerate(rows, start=2)]
    return prompts, seeds
