"""The user's neighbour prompt set of the Stable Diffusion tasks: its format and every way a file
can be wrong (one line naming the file, the line and the fix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ubench.core.config import MAX_SAMPLES
from ubench.core.errors import ConfigError, MissingAssetError
from ubench.tasks.sd.neighbours import default_seed, load_neighbours


def _write(tmp_path: Path, *lines: str) -> str:
    p = tmp_path / "near.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(p)


def test_a_set_keeps_order_seeds_and_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, "# artists close to Van Gogh", "",
                  json.dumps({"prompt": "wheat fields by Claude Monet", "label": "Claude Monet"}),
                  json.dumps({"prompt": "a harbour by Paul Gauguin", "label": "Paul Gauguin",
                              "seed": 7}))
    n = load_neighbours(path)
    assert n.prompts == ["wheat fields by Claude Monet", "a harbour by Paul Gauguin"]
    assert n.seeds == [default_seed(0), 7]
    assert n.labels == ["Claude Monet", "Paul Gauguin"]


def test_labels_are_optional_but_all_or_none(tmp_path: Path) -> None:
    assert load_neighbours(_write(tmp_path, '{"prompt": "a cathedral"}')).labels is None
    mixed = _write(tmp_path, '{"prompt": "a cathedral", "label": "cathedral"}',
                   '{"prompt": "a chapel"}')
    with pytest.raises(ConfigError, match="label every prompt or none"):
        load_neighbours(mixed)


def test_hostile_text_is_data(tmp_path: Path) -> None:
    """Braces, quotes and shell syntax are kept verbatim: a prompt is only ever tokenised."""
    text = "{label} $(rm -rf ~) `id` {0.__class__}"
    n = load_neighbours(_write(tmp_path, json.dumps({"prompt": text, "label": "{x}"})))
    assert n.prompts == [text] and n.labels == ["{x}"]


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "is not a JSON object"),
    ("[1, 2]", "is not a JSON object"),
    ('{"prompt": ""}', 'needs a non-empty "prompt"'),
    ('{"text": "a cat"}', "unknown key 'text'"),
    ('{"prompt": "a cat", "seed": -1}', '"seed" must be an integer'),
    ('{"prompt": "a cat", "seed": 1.5}', '"seed" must be an integer'),
    ('{"prompt": "a cat", "seed": true}', '"seed" must be an integer'),
    ('{"prompt": "a cat", "label": 3}', '"label" must be a non-empty string'),
    (json.dumps({"prompt": "x" * 1001}), "keep it under 1000"),
])
def test_a_bad_line_is_one_line_naming_it(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path, '{"prompt": "a cat"}', line)
    with pytest.raises(ConfigError, match=message) as e:
        load_neighbours(path)
    assert "line 2" in str(e.value) and "\n" not in str(e.value)
    assert "docs/tasks/sd.md" in str(e.value)


def test_missing_empty_huge_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError, match="does not exist"):
        load_neighbours(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ConfigError, match="has no prompt"):
        load_neighbours(_write(tmp_path, "# nothing", ""))
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="unreadable as UTF-8"):
        load_neighbours(str(binary))
    many = "\n".join('{"prompt": "a"}' for _ in range(MAX_SAMPLES + 1))
    (tmp_path / "many.jsonl").write_text(many)
    with pytest.raises(ConfigError, match=f"over {MAX_SAMPLES} prompts"):
        load_neighbours(str(tmp_path / "many.jsonl"))
