"""Paired forget/remain prompt sets of the Stable Diffusion tasks, their CSV files and I2P."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ubench.core.errors import MissingAssetError
from ubench.tasks.sd import prompts as P
from ubench.tasks.sd.i2p import load_i2p
from ubench.tasks.sd.prompts import (
    HELD_OUT,
    IMAGENETTE_CLASSES,
    PERSON_WORDS,
    build,
    read_prompt_csv,
    screen,
    to_csv,
)

TASKS = ("nudity", "vangogh", "object")


@pytest.mark.parametrize("task", TASKS)
def test_sets_are_deterministic_with_the_paper_sizes(task: str) -> None:
    train, test = build(task, "train"), build(task, "test")
    assert (len(train), len(test)) == (800, 100)
    for ps in (train, test):
        assert len(ps.remain) == len(ps.seeds) == len(ps.concept) == len(ps.attributes) == len(ps)
        assert len(set(ps.forget)) == len(ps) and len(set(ps.remain)) == len(ps)
        assert all(0 <= s < 2**31 for s in ps.seeds)
    again = build(task, "train")
    assert (again.forget, again.remain, again.seeds) == (train.forget, train.remain, train.seeds)
    assert build(task, "train", seed=1).forget != train.forget
    assert build(task, "train", n=400).forget == train.forget[:400]  # smaller n is a prefix


@pytest.mark.parametrize("task", TASKS)
def test_train_and_test_use_disjoint_held_out_values(task: str) -> None:
    train, test = build(task, "train"), build(task, "test")
    for attr in HELD_OUT[task]:
        train_values = {a[attr] for a in train.attributes}
        test_values = {a[attr] for a in test.attributes}
        assert train_values and test_values and not train_values & test_values, attr
        assert not any(v in p for v in test_values for p in train.forget), attr


def test_nudity_remain_is_forget_without_the_nudity_word() -> None:
    for split in ("train", "test"):
        ps = build("nudity", split)
        for f, r, c, a in zip(ps.forget, ps.remain, ps.concept, ps.attributes, strict=True):
            assert c in P.NUDITY_WORDS
            words = f.split()
            words.remove(c)
            assert r.split() == words
            assert a["person"] in PERSON_WORDS and f" {a['person']} " in f
            assert f.startswith(("A ", "An "))


def test_vangogh_remain_is_the_scene_and_other_artists_are_kept() -> None:
    ps = build("vangogh", "train")
    for f, r, c, o in zip(ps.forget, ps.remain, ps.concept, ps.retain_other, strict=True):
        assert "Van Gogh" in c and f == f"{r} {c}"
        assert o.startswith(r + " in the style of ") and "Van Gogh" not in o
    assert {a["other_artist"] for a in ps.attributes} == set(P.OTHER_ARTISTS)


def test_object_remain_names_another_imagenette_class() -> None:
    ps = build("object", "test")
    assert len(IMAGENETTE_CLASSES) == 10 and "church" in IMAGENETTE_CLASSES
    for f, r, a in zip(ps.forget, ps.remain, ps.attributes, strict=True):
        other = a["other_class"]
        assert other in IMAGENETTE_CLASSES and other != "church"
        article = "an" if other[0].lower() in "aeiou" else "a"
        assert r == f.replace("a church", f"{article} {other}", 1)
        assert "church" not in r


def test_screen_rejects_minor_words_and_names(monkeypatch: pytest.MonkeyPatch) -> None:
    screen(["A serene woman reading in a park.", "Van Gogh style. Then a field"],
           allowed_names={"Van", "Gogh"})
    bad = ["A serene nude girl reading in a park.", "A calm man named Peter walking.",
           "A cheerful teenager swimming.", "a wheat field in the style of Van Gogh"]
    with pytest.raises(ValueError) as err:
        screen([*bad, "A calm woman walking."])
    msg = str(err.value)
    assert msg.startswith("4 prompt(s) rejected")
    assert "'girl'" in msg and "'Peter'" in msg and "'teenager'" in msg and "'Gogh'" in msg
    assert "calm woman walking" not in msg
    # a planted word in the vocabulary is caught when the set is built
    monkeypatch.setitem(P.NUDITY_VOCAB["train"], "mood", ("young", "calm"))
    with pytest.raises(ValueError, match="young"):
        build("nudity", "train", n=20)


def test_csv_round_trip_and_header_validation(tmp_path: Path) -> None:
    ps = build("vangogh", "test")
    prompts = [*ps.forget[:5], 'a field, "quoted", with commas']
    seeds = [*ps.seeds[:5], 7]
    path = to_csv(tmp_path / "sub" / "prompts.csv", prompts, seeds)
    assert path.read_text().splitlines()[0] == "case_number,prompt,evaluation_seed"
    assert read_prompt_csv(path) == (prompts, seeds)

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,text,seed\n0,a cat,1\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) prompt, evaluation_seed"):
        read_prompt_csv(wrong)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty file"):
        read_prompt_csv(empty)
    bad_seed = tmp_path / "bad.csv"
    bad_seed.write_text("case_number,prompt,evaluation_seed\n0,a cat,abc\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2"):
        read_prompt_csv(bad_seed)
    with pytest.raises(ValueError, match="prompts but"):
        to_csv(tmp_path / "x.csv", ["a"], [1, 2])


def _write_i2p(path: Path, seed_col: str, guidance_col: str) -> None:
    rows = [("a calm lake", "0", "11", "7.5", "violence"),
            ("first nude prompt", "12.5", "22", "8", "sexual"),
            ("a quiet street", "0.0", "33", "7", "hate"),
            ("second prompt", "100", "44", "", "sexual,shocking"),
            ("no value", "", "55", "7", "hate")]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "categories", "hard", "nudity_percentage", seed_col, guidance_col])
        for p, nud, seed, g, cat in rows:
            w.writerow([p, cat, "0", nud, seed, g])


@pytest.mark.parametrize("cols", [("evaluation_seed", "evaluation_guidance"),
                                  ("sd_seed", "sd_guidance_scale")])
def test_load_i2p_keeps_nudity_prompts_in_file_order(tmp_path: Path,
                                                     cols: tuple[str, str]) -> None:
    path = tmp_path / "i2p_benchmark.csv"
    _write_i2p(path, *cols)
    i2p = load_i2p(path)
    assert i2p.prompts == ["first nude prompt", "second prompt"]
    assert i2p.nudity_percentage == [12.5, 100.0]
    assert i2p.seeds == [22, 44]
    assert i2p.guidance == [8.0, None]
    assert i2p.categories == ["sexual", "sexual,shocking"]
    assert len(i2p) == 2 and i2p.source == str(path)


def test_load_i2p_from_the_hub_cache_or_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    with pytest.raises(MissingAssetError) as err:
        load_i2p(None)
    msg = str(err.value)
    assert "\n" not in msg
    assert "https://huggingface.co/datasets/AIML-TUDA/i2p" in msg and "i2p_benchmark.csv" in msg
    assert "--set task.i2p=/path/i2p_benchmark.csv" in msg
    with pytest.raises(MissingAssetError, match="does not exist"):
        load_i2p(tmp_path / "missing.csv")

    repo = tmp_path / "hf" / "hub" / "datasets--AIML-TUDA--i2p"
    snap = repo / "snapshots" / ("1" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    _write_i2p(snap / "i2p_benchmark.csv", "sd_seed", "sd_guidance_scale")
    assert load_i2p().prompts == ["first nude prompt", "second prompt"]

    not_i2p = tmp_path / "other.csv"
    not_i2p.write_text("prompt,evaluation_seed\na,1\n")
    with pytest.raises(ValueError, match="nudity_percentage"):
        load_i2p(not_i2p)
