"""The attacks' pieces against hand computations: learned conditions, the simplex projection,
the straight-through draw, timesteps, metric ids, configs, the registry and the schema."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from ubench.api import attack_metric_id, parse_attack_metric_id, supports_attacks
from ubench.attacks.softprompt import (
    SoftPromptConfig,
    _StraightThrough,
    draw_tokens,
    project_simplex,
    timestep_schedule,
)
from ubench.catalog import builtins as catalog
from ubench.catalog import fastcheck
from ubench.catalog.registry import ATTACKS, TASKS
from ubench.core.config import build_config
from ubench.core.errors import ConfigError, UnknownComponentError
from ubench.models import soft
from ubench.models.diffusion import class_conditional_model, text_conditional_model
from ubench.store.record import ATTACK_SCHEMA_FILE, generate_attack_schema


# ---------------------------------------------------------------------- learned conditions
@pytest.fixture(scope="module")
def text_model():
    return text_conditional_model(resolution=8, channels=(16, 32))


PROMPTS = ["a red seven on blue with stripes", "the number 3 inside a frame"]


def test_prefix_of_nothing_is_the_plain_encoding(text_model) -> None:
    plain = text_model.encode(PROMPTS)
    none = soft.encode_prefixed(text_model, PROMPTS, torch.zeros(0, 384))
    torch.testing.assert_close(none, plain, rtol=0, atol=1e-5)


def test_a_word_embedding_as_prefix_is_the_word_written(text_model) -> None:
    table = soft.token_table(text_model)
    word = table[soft.token_ids(text_model, "green")].detach()
    spliced = soft.encode_prefixed(text_model, PROMPTS, word)
    written = text_model.encode(["green " + p for p in PROMPTS])
    torch.testing.assert_close(spliced, written, rtol=0, atol=1e-5)


def test_prefix_gradient_reaches_only_the_vector(text_model) -> None:
    v = torch.randn(2, 384, requires_grad=True)
    soft.encode_prefixed(text_model, PROMPTS, v).square().sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0
    assert all(p.grad is None for p in text_model.conditioner.text_model().encoder.parameters())


def test_prefixed_ids_keep_room_for_the_end_token(text_model) -> None:
    long = " ".join(["seven"] * 60)
    ids, mask = soft.prefixed_ids(text_model, [long], 5)
    tok = text_model.conditioner.text_model().tokenizer
    assert ids.shape == (1, 24) and int(mask.sum()) == 24
    assert ids[0, 0] == tok.cls_token_id and ids[0, -1] == tok.sep_token_id


def test_learned_class_is_a_row_nobody_trained() -> None:
    model = class_conditional_model(resolution=8, channels=(16, 32))
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([10, 500, 900])
    reference = model.predict_noise(x, t, torch.tensor([1, 2, 10]))
    row = model.unet.class_embedding.weight[2].detach().clone().requires_grad_(True)
    with soft.learned_class(model, row):
        out = model.predict_noise(x, t, torch.tensor([1, soft.LEARNED_CLASS, 10]))
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
    out.sum().backward()
    assert row.grad is not None and row.grad.abs().sum() > 0
    # outside the block the hook is gone: -1 is an invalid class again
    with pytest.raises(IndexError):
        model.predict_noise(x[:1], t[:1], torch.tensor([soft.LEARNED_CLASS]))


# ---------------------------------------------------------------------- softprompt pieces
def _bisection_projection(a: np.ndarray) -> np.ndarray:
    """UnlearnDiffAtk's projection (clip(a - mu, 0, 1) with sum 1), by bisection on mu."""
    lo, hi = a.min() - 1, a.max()
    for _ in range(200):
        mu = (lo + hi) / 2
        if np.clip(a - mu, 0, 1).sum() > 1:
            lo = mu
        else:
            hi = mu
    return np.clip(a - (lo + hi) / 2, 0, 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=40))
def test_simplex_projection_matches_the_bisection(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    p = project_simplex(x[None])[0]
    assert float(p.min()) >= 0 and abs(float(p.sum()) - 1) < 1e-9
    np.testing.assert_allclose(p.numpy(), _bisection_projection(x.numpy()), atol=1e-7)
    torch.testing.assert_close(project_simplex(p[None])[0], p)  # idempotent


def test_straight_through_draws_tokens_and_clips_the_gradient() -> None:
    probs = torch.tensor([[[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]], requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    drawn = torch.stack([draw_tokens(probs, gen) for _ in range(50)])
    assert drawn.shape == (50, 1, 2)
    assert (drawn[:, 0, 0] == 1).all()  # the only token with probability
    assert set(drawn[:, 0, 1].tolist()) == {0, 2}  # never a token of probability 0
    table = torch.eye(3)  # embedding = one-hot: the lookup is the one-hot vector itself
    emb = _StraightThrough.apply(probs, drawn[0], table)
    assert torch.equal(emb, torch.nn.functional.one_hot(drawn[0], 3).float())
    (emb * torch.tensor([[[5.0, -0.5, -7.0], [1.0, 2.0, 3.0]]])).sum().backward()
    assert torch.equal(probs.grad, torch.tensor([[[1.0, -0.5, -1.0], [1.0, 1.0, 1.0]]]))


def test_timesteps_are_unlearndiffatks() -> None:
    ts = timestep_schedule(1000, 50)
    assert ts[:3] == [10, 30, 50] and ts[-1] == 990 and len(ts) == 50


def test_softprompt_budgets_are_multiples_of_iterations() -> None:
    assert SoftPromptConfig().report_at() == [0, 2000]
    assert build_config(SoftPromptConfig, {"budgets": "0,400"}, "a").report_at() == [0, 400]
    with pytest.raises(ConfigError, match="multiples of iterations"):
        build_config(SoftPromptConfig, {"budgets": "0,50"}, "a")
    with pytest.raises(ConfigError, match="increasing"):
        build_config(SoftPromptConfig, {"budgets": "400,0"}, "a")


# ---------------------------------------------------------------------- ids, configs, registry
def test_metric_ids_carry_the_budget() -> None:
    assert attack_metric_id("relearn_ua", 50) == "relearn_ua@50"
    assert parse_attack_metric_id("relearn_concept_rate@200") == ("relearn_concept_rate", 200)
    assert parse_attack_metric_id("ua") is None and parse_attack_metric_id("x@y") is None


@pytest.mark.parametrize("name", list(catalog.BUILTIN_ATTACKS))
def test_catalogue_matches_the_attack_classes(name: str) -> None:
    cls = ATTACKS.get(name)
    assert cls.name == name
    assert cls.__doc__.strip().splitlines()[0] == catalog.BUILTIN_ATTACKS[name][1]
    doc = sys.modules[cls.__module__].__doc__
    for section in ("Paper", "protocol", "Budget defaults",
                    "Differences from the reference implementation"):
        assert section in doc, f"{name}: its docstring lacks {section!r}"
    with pytest.raises(ConfigError):
        build_config(cls.Config, {"budgets" if "budgets" in cls.Config.field_names()
                                  else "tokens": "-1"}, name)


def test_every_attack_module_is_catalogued() -> None:
    modules = {m.name for m in pkgutil.iter_modules([str(ROOT / "attacks")])
               if not m.name.startswith("_")}
    assert modules == {t.split(":")[0].rsplit(".", 1)[1]
                       for t, _ in catalog.BUILTIN_ATTACKS.values()}


def test_every_task_can_be_attacked() -> None:
    assert all(supports_attacks(TASKS.get(n)) for n in TASKS.names())


def test_bad_attack_ids_and_keys_are_refused_before_torch() -> None:
    with pytest.raises(UnknownComponentError, match="Did you mean 'relearn'"):
        fastcheck.check_attacks(["relern"], [])
    with pytest.raises(ConfigError, match="Did you mean 'lr'"):
        fastcheck.check_attacks(["relearn"], ["attack.lrr=1"])
    with pytest.raises(ConfigError, match="must be"):
        fastcheck.check_attacks(["relearn"], ["attack.lr=-1"])
    with pytest.raises(ConfigError, match="scope must be"):
        fastcheck.check_attacks(["relearn"], ["method.lr=1"])
    fastcheck.check_attacks(["relearn", "softprompt"], ["attack.iterations=4", "attack.lr=1e-3"])


def test_list_attacks_does_not_import_torch() -> None:
    code = ("import sys; from ubench.cli.main import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['list', 'attacks']); assert r.exit_code == 0, r.output;"
            " assert 'softprompt' in r.output and 'relearn' in r.output;"
            " print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_committed_attack_schema_is_generated() -> None:
    assert json.loads(ATTACK_SCHEMA_FILE.read_text()) == generate_attack_schema(), \
        "ubench/store/attack_record.schema.json is stale: run python scripts/check_schema.py "\
        "--write"


def test_every_prescribed_attack_setting_exists() -> None:
    from ubench.run.attack import attack_config

    for name in TASKS.names():
        task_cls = TASKS.get(name)
        for attack, values in task_cls.attack_defaults.items():
            config = attack_config(ATTACKS.get(attack), task_cls, {})
            assert all(getattr(config, k) == v for k, v in values.items())
