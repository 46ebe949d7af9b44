"""The gradient family's loop: truncation modes, remain-gradient modes, directions' signs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ubench.api import ConditionedSet, RunContext, UnlearnRequest
from ubench.config import build_config
from ubench.methods._gradient import GradientConfig
from ubench.methods.finetune import Finetune
from ubench.methods.ga import GradientAscent
from ubench.methods.graddiff import GradDiff
from ubench.models.diffusion import DiffusionModel, class_conditional_model


def tiny() -> DiffusionModel:
    return class_conditional_model(resolution=8, channels=(16, 32), seed=0)


def data(label: int, n: int, seed: int) -> ConditionedSet:
    g = torch.Generator().manual_seed(seed)
    return ConditionedSet(torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, torch.full((n,), label))


REQ = UnlearnRequest(forget=data(0, 12, 0), remain=data(3, 10, 1))


def run(method, tmp_path: Path, **over) -> tuple[DiffusionModel, dict]:
    cfg = build_config(GradientConfig, {"steps": 3, "batch_size": 4, **over}, "test")
    model = tiny()
    out = method().unlearn(model, REQ, cfg, RunContext(seed=0, device="cpu", run_dir=tmp_path,
                                                       checkpoint_every=0))
    return out.model, out.train_log


def params(m: DiffusionModel) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.unet.parameters()])


def test_threshold_switches_the_forget_term_off(tmp_path: Path) -> None:
    """Above the threshold the forget direction is zero: GA then leaves the weights untouched."""
    model, log = run(GradientAscent, tmp_path, truncation="threshold", threshold_m=1e-9)
    assert log["forget_off"] == 3
    assert torch.equal(params(model), params(tiny()))


def test_below_the_threshold_ga_moves_and_raises_the_forget_loss(tmp_path: Path) -> None:
    model, log = run(GradientAscent, tmp_path, truncation="threshold", threshold_m=1e9, lr=1e-2)
    assert log["forget_off"] == 0
    base = tiny()
    x0, y = REQ.forget.images, REQ.forget.conditions
    g = torch.Generator().manual_seed(5)
    before = base.denoising_loss(x0, base.encode(y), g)
    g = torch.Generator().manual_seed(5)
    after = model.denoising_loss(x0, model.encode(y), g)
    assert after > before


def test_clip_bounds_the_ascent(tmp_path: Path) -> None:
    """With a cap below every element's error, no element gives gradient: nothing moves."""
    model, _ = run(GradientAscent, tmp_path, truncation="clip", clip_alpha=1e-12)
    assert torch.equal(params(model), params(tiny()))


@pytest.mark.parametrize("mode", ["minibatch", "full"])
def test_finetune_lowers_the_remain_loss(mode: str, tmp_path: Path) -> None:
    model, log = run(Finetune, tmp_path, remain_gradient=mode, lr=1e-2, steps=5)
    assert log["steps"] == 5
    base = tiny()
    x0, y = REQ.remain.images, REQ.remain.conditions
    losses = []
    for m in (base, model):
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            losses.append(float(sum(m.denoising_loss(x0, m.encode(y), g) for _ in range(8))))
    assert losses[1] < losses[0]


def test_graddiff_counts_conflicts(tmp_path: Path) -> None:
    _, log = run(GradDiff, tmp_path)
    assert 0 <= log["conflicts"] <= 3 and log["steps"] == 3
