"""A user's neighbour prompt set for the Stable Diffusion tasks: the concepts close to the erased
one whose damage ``neighbour_clip_alignment`` (and, with labels, ``neighbour_label_accuracy``)
measures.

Erasing a concept damages visually or semantically close ones (EraseBench, HUB): erasing
"Van Gogh" may take Monet and Gauguin with it, erasing "church" the cathedral. Which neighbours
matter is the user's question, so the set is theirs: ``--set task.neighbours=FILE``, a JSON
Lines file (UTF-8), one object per line::

    {"prompt": "a painting of wheat fields in the style of Claude Monet", "label": "Claude Monet"}
    {"prompt": "a starry night over a harbour by Paul Gauguin", "label": "Paul Gauguin", "seed": 7}

* ``prompt`` (required): the text the model is asked to draw; at most :data:`MAX_PROMPT_CHARS`
  characters. It is only ever tokenised, never formatted or executed.
* ``seed`` (optional, ``0 <= seed < 2**31``): the generation seed of that prompt; without it a
  fixed seed per prompt position (:func:`default_seed`), so the set alone determines the images.
* ``label`` (optional, on every line or on none): the neighbour the image should show. With
  labels the run also reports how often CLIP zero-shot, choosing among the set's labels and the
  task's own (the erased concept included), picks the line's label.

Blank lines and lines starting with ``#`` are skipped. The file's content digest is part of the
run's identity (a changed set is another run). Every problem is one line naming the file, the
line and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ubench.core.config import MAX_SAMPLES
from ubench.core.errors import ConfigError, MissingAssetError

#: the longest prompt accepted (CLIP reads 77 tokens; longer text is only truncated)
MAX_PROMPT_CHARS = 1000
#: the longest label accepted
MAX_LABEL_CHARS = 200
#: the largest file read (a set of MAX_SAMPLES prompts fits far below it)
MAX_FILE_BYTES = 64 * 1024 * 1024


def default_seed(line_index: int) -> int:
    """The generation seed of the ``line_index``-th prompt that names none (0-based)."""
    return (3_000_017 * (line_index + 1)) % 2**31


@dataclass(frozen=True)
class NeighbourSet:
    """The prompts, seeds and (optional) labels of a neighbour set, in file order."""

    source: str
    prompts: list[str]
    seeds: list[int]
    labels: list[str] | None


def load_neighbours(path: str) -> NeighbourSet:
    """Read and check a neighbour set (see the module docstring for the format)."""
    p = Path(path).expanduser()
    fix = "see docs/tasks/sd.md, 'Neighbour prompts', for the format"
    if not p.is_file():
        raise MissingAssetError(f"the neighbour prompt set {p} does not exist; pass an existing "
                                f"JSON Lines file with --set task.neighbours=FILE ({fix})")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f"the neighbour prompt set {p} is over {MAX_FILE_BYTES >> 20} MiB; "
                          f"keep at most {MAX_SAMPLES} prompts ({fix})")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"the neighbour prompt set {p} is unreadable as UTF-8 text ({e}); "
                          f"{fix}") from None
    prompts: list[str] = []
    seeds: list[int] = []
    labels: list[str | None] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{p}, line {number}"
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{where} is not a JSON object ({e.__class__.__name__}); write one "
                              f'object per line, e.g. {{"prompt": "..."}} ({fix})') from None
        if not isinstance(row, dict):
            raise ConfigError(f'{where} is not a JSON object; write {{"prompt": "..."}} ({fix})')
        unknown = sorted(set(row) - {"prompt", "seed", "label"})
        if unknown:
            raise ConfigError(f"{where} has an unknown key {unknown[0][:40]!r}; valid: prompt, "
                              f"seed, label ({fix})")
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError(f'{where} needs a non-empty "prompt" string ({fix})')
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ConfigError(f"{where}: the prompt has {len(prompt)} characters; keep it under "
                              f"{MAX_PROMPT_CHARS} ({fix})")
        seed = row.get("seed", default_seed(len(prompts)))
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ConfigError(f'{where}: "seed" must be an integer in [0, 2**31) ({fix})')
        label = row.get("label")
        if label is not None and (not isinstance(label, str) or not label.strip()
                                  or len(label) > MAX_LABEL_CHARS):
            raise ConfigError(f'{where}: "label" must be a non-empty string of at most '
                              f"{MAX_LABEL_CHARS} characters ({fix})")
        prompts.append(prompt)
        seeds.append(seed)
        labels.append(label)
        if len(prompts) > MAX_SAMPLES:
            raise ConfigError(f"the neighbour prompt set {p} has over {MAX_SAMPLES} prompts; "
                              f"keep at most {MAX_SAMPLES} ({fix})")
    if not prompts:
        raise ConfigError(f"the neighbour prompt set {p} has no prompt; write one JSON object "
                          f"per line ({fix})")
    labelled = [lab is not None for lab in labels]
    if any(labelled) and not all(labelled):
        first = labelled.index(False) if labelled[0] else labelled.index(True)
        raise ConfigError(f"the neighbour prompt set {p} labels some prompts and not others "
                          f"(prompt {first + 1} differs from the first); label every prompt or "
                          f"none ({fix})")
    return NeighbourSet(str(p), prompts, seeds,
                        [str(lab) for lab in labels] if all(labelled) else None)
