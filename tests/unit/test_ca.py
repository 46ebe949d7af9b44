"""Concept Ablation's loss and anchor pairs against hand computations."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.unit.conftest import random_set
from ubench.api import ConditionedSet, RunContext, UnlearnRequest
from ubench.core.errors import IncompatibleError
from ubench.methods._anchors import anchor_pairs
from ubench.methods.ca import CAConfig, ConceptAblation, ablation_loss, is_key_or_value
from ubench.models.diffusion import DiffusionModel

_set = random_set


def test_loss_is_zero_when_target_and_anchor_predictions_coincide(model: DiffusionModel) -> None:
    x0 = _set([1], 4, 0).images
    # the same condition on both branches
    loss = ablation_loss(model, x0, model.encode([2] * 4), model.encode([2] * 4),
                         torch.Generator().manual_seed(0))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert all(float(p.grad.abs().max()) == 0 for p in model.unet.parameters()
               if p.grad is not None)
    # two conditions whose embeddings are identical predict identically: zero as well
    with torch.no_grad():
        model.unet.class_embedding.weight[5] = model.unet.class_embedding.weight[2]
    same = ablation_loss(model, x0, model.encode([5] * 4), model.encode([2] * 4),
                         torch.Generator().manual_seed(0))
    assert float(same.detach()) == 0.0


def test_loss_value_and_only_the_target_branch_learns(model: DiffusionModel) -> None:
    x0 = _set([1], 4, 0).images
    model.unet.zero_grad(set_to_none=True)
    loss = ablation_loss(model, x0, model.encode([0] * 4), model.encode([7] * 4),
                         torch.Generator().manual_seed(0))
    x_t, t, _ = model.noised(x0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = (model.predict_noise(x_t, t, model.encode([0] * 4))
                - model.predict_noise(x_t, t, model.encode([7] * 4))).pow(2).mean()
    torch.testing.assert_close(loss.detach(), want)
    assert float(loss.detach()) > 0
    loss.backward()
    emb = model.unet.class_embedding.weight.grad
    assert float(emb[0].abs().sum()) > 0  # the target condition learns
    assert float(emb[7].abs().sum()) == 0  # the anchor only sets the target (stop-gradient)


def test_class_anchor_pairs_relabel_the_remain_images(model: DiffusionModel) -> None:
    req = UnlearnRequest(forget=_set([0], 5, 1), remain=_set([1, 2, 3], 2, 2))
    pairs = anchor_pairs(model, req, "ca")
    assert req.remain is not None
    assert torch.equal(pairs.anchor.images, req.remain.images)
    assert torch.equal(pairs.anchor.conditions, req.remain.conditions)
    assert pairs.targets.tolist() == [0] * 6
    assert pairs.targets_of(torch.tensor([1, 4])).tolist() == [0, 0]


def test_text_anchor_pairs_use_the_generation_of_each_anchor_prompt() -> None:
    text_model = SimpleNamespace(text_conditioned=True)
    forget = ConditionedSet(torch.zeros(3, 1, 2, 2), ["a x", "b x", "a x"],
                            anchors=["a", "b", "a"])
    remain = ConditionedSet(torch.arange(2.0).reshape(2, 1, 1, 1).expand(2, 1, 2, 2),
                            ["b", "a"])
    pairs = anchor_pairs(text_model, UnlearnRequest(forget=forget, remain=remain),  # type: ignore[arg-type]
                         "ca")
    assert pairs.anchor.conditions == ["a", "b", "a"]
    assert pairs.targets == ["a x", "b x", "a x"]
    assert pairs.anchor.images[:, 0, 0, 0].tolist() == [1.0, 0.0, 1.0]  # "a" is D_r image 1
    lonely = ConditionedSet(torch.zeros(1, 1, 2, 2), ["c x"], anchors=["c"])
    with pytest.raises(IncompatibleError, match="anchor prompt"):
        anchor_pairs(text_model, UnlearnRequest(forget=lonely, remain=remain),  # type: ignore[arg-type]
                     "ca")


def test_auto_scope_trains_everything_without_cross_attention(model: DiffusionModel,
                                                              tmp_path: Path) -> None:
    req = UnlearnRequest(forget=_set([0], 6, 1), remain=_set([1, 2], 4, 2))
    before = {n: p.detach().clone() for n, p in model.unet.named_parameters()}
    out = ConceptAblation().unlearn(model, req, CAConfig(steps=2, batch_size=4),
                                    RunContext(seed=0, device="cpu", run_dir=tmp_path,
                                               checkpoint_every=0))
    assert len(out.changed_parameters) == len(before)  # CA's full-weight group
    assert out.train_log["scope"] == "full" and out.train_log["steps"] == 2
    assert {"final_ablation_loss", "final_remain_loss"} <= set(out.train_log)


def test_key_value_names() -> None:
    assert is_key_or_value("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight")
    assert is_key_or_value("mid_block.attentions.0.transformer_blocks.0.attn2.to_v.weight")
    assert not is_key_or_value("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_q.weight")
    assert not is_key_or_value("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.weight")
