"""Selective Amnesia's EWC term, Fisher pass and its cache against hand computations."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.unit.conftest import random_set
from ubench.api import ConditionedSet, RunContext, UnlearnRequest
from ubench.methods import sa
from ubench.methods.sa import (
    SAConfig,
    SelectiveAmnesia,
    add_ewc_gradient,
    diagonal_fisher,
    ewc_penalty,
    fisher_conditions,
    normalised,
)
from ubench.models.diffusion import DiffusionModel

_set = random_set


def test_ewc_is_zero_at_the_base_weights_and_grows_away_from_them() -> None:
    g = torch.Generator().manual_seed(0)
    kw = {"generator": g, "dtype": torch.float64}
    base = [torch.randn(3, 4, **kw), torch.randn(5, **kw)]
    fisher = [torch.rand(3, 4, **kw) + 0.1, torch.rand(5, **kw) + 0.1]
    direction = [torch.randn(3, 4, **kw), torch.randn(5, **kw)]
    assert float(ewc_penalty(base, base, fisher, 2.0)) == 0.0
    values = [float(ewc_penalty([b + s * d for b, d in zip(base, direction, strict=True)],
                                base, fisher, 2.0)) for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in itertools.pairwise(values))  # grows
    # exactly quadratic along a ray, with the hand-computed constant
    want = 2.0 * sum(float((f * d * d).sum()) for f, d in zip(fisher, direction, strict=True))
    assert values[1] == pytest.approx(want, rel=1e-9)
    assert values[3] == pytest.approx(16 * want, rel=1e-9)


def test_ewc_gradient_is_the_penalty_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    base = [torch.randn(6, generator=g)]
    fisher = [torch.rand(6, generator=g)]
    p = torch.nn.Parameter(base[0] + torch.randn(6, generator=g))
    add_ewc_gradient([p], base, fisher, 3.0)
    q = p.detach().clone().requires_grad_(True)
    (3.0 * (fisher[0] * (q - base[0]).pow(2)).sum()).backward()
    torch.testing.assert_close(p.grad, q.grad)
    p.grad = None
    add_ewc_gradient([p], [p.detach().clone()], fisher, 3.0)
    assert float(p.grad.abs().max()) == 0.0  # no pull at the base weights


def test_diagonal_fisher_is_the_mean_squared_per_sample_gradient(model: DiffusionModel) -> None:
    params = [model.unet.class_embedding.weight, model.unet.conv_out.weight]
    images = _set([0, 1], 1, 0).images
    fisher = diagonal_fisher(model, params, images, [0, 1], 4, torch.Generator().manual_seed(7))
    # by hand: the same draws, one sample at a time
    gen = torch.Generator().manual_seed(7)
    want = [torch.zeros_like(p) for p in params]
    for i, c in enumerate([0, 1]):
        x0 = images[i:i + 1].repeat(4, 1, 1, 1)
        offset = torch.rand(4, generator=gen)
        t = ((torch.arange(4) + offset) * 1000 / 4).long()
        assert [int(v) // 250 for v in t] == [0, 1, 2, 3]  # one timestep per quarter
        noise = torch.randn(x0.shape, generator=gen)
        x_t = model.noise_scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(model.predict_noise(x_t, t, model.encode([c] * 4)), noise)
        for acc, gr in zip(want, torch.autograd.grad(loss, params), strict=True):
            acc += gr.pow(2) / 2
    for got, exp in zip(fisher, want, strict=True):
        torch.testing.assert_close(got, exp)
    # only the two used class embeddings have information
    assert float(fisher[0][0].sum()) > 0 and float(fisher[0][1].sum()) > 0
    assert float(fisher[0][5].sum()) == 0


def test_normalised_fisher_has_mean_one() -> None:
    f = normalised([torch.tensor([1.0, 3.0]), torch.tensor([[4.0]])])
    assert float(torch.cat([x.reshape(-1) for x in f]).mean()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="zero everywhere"):
        normalised([torch.zeros(3)])


def test_fisher_conditions(model: DiffusionModel) -> None:
    # every class round robin, never the null class (10)
    assert fisher_conditions(model, UnlearnRequest(), 23) == [i % 10 for i in range(23)]
    text = UnlearnRequest(forget=ConditionedSet(torch.zeros(2, 1), ["f1", "f2"]),
                          remain=ConditionedSet(torch.zeros(3, 1), ["r1", "f1", "r2"]))
    text_model = model.clone()
    text_model.conditioner = type("T", (), {"kind": "text"})()  # type: ignore[assignment]
    assert fisher_conditions(text_model, text, 2) == ["f1", "r2"]  # evenly over 4 distinct
    assert fisher_conditions(text_model, text, 6) == ["f1", "f2", "r1", "r2", "f1", "f2"]


def test_fisher_pass_is_cached_per_base_model(model: DiffusionModel, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UBENCH_HOME", str(tmp_path / "home"))
    req = UnlearnRequest(forget=_set([0], 6, 1), remain=_set([1, 2], 4, 2))
    cfg = SAConfig(steps=2, batch_size=4, fisher_samples=4, fisher_timesteps=2)
    calls: list[int] = []
    real = sa.diagonal_fisher

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sa, "diagonal_fisher", counting)
    named = model.named_parameters("full")

    def ctx(seed: int) -> RunContext:
        return RunContext(seed=seed, device="cpu", run_dir=tmp_path / f"run{seed}",
                          checkpoint_every=0)

    first, log1 = sa.cached_fisher(model, named, req, cfg, ctx(0))
    second, log2 = sa.cached_fisher(model, named, req, cfg, ctx(5))  # another run seed
    assert len(calls) == 1 and log1 == log2
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    # another forget class and D_r on the same base model: the same pass
    other = UnlearnRequest(forget=_set([3], 2, 9), remain=_set([4], 2, 9))
    sa.cached_fisher(model, named, other, cfg, ctx(0))
    assert len(calls) == 1
    # another base model (one weight moved) or another recipe: a new pass
    twin = model.clone()
    with torch.no_grad():
        twin.unet.conv_out.bias.add_(1e-3)
    sa.cached_fisher(twin, twin.named_parameters("full"), req, cfg, ctx(0))
    sa.cached_fisher(model, named, req, SAConfig(fisher_samples=4, fisher_timesteps=3), ctx(0))
    assert len(calls) == 3
    # a corrupt cache entry is one clear error that names the folder to delete
    folder = tmp_path / "home" / "sa" / "fisher" / log1["fisher_folder"]
    (folder / "fisher.safetensors").write_bytes(b"broken")
    from ubench.core.errors import CorruptAssetError

    with pytest.raises(CorruptAssetError, match="delete"):
        sa.cached_fisher(model, named, req, cfg, ctx(0))


def test_run_leaves_the_weights_near_the_base_with_a_strong_ewc(model: DiffusionModel,
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.setenv("UBENCH_HOME", str(tmp_path / "home"))
    req = UnlearnRequest(forget=_set([0], 6, 1), remain=_set([1, 2], 4, 2))
    base = {n: p.detach().clone() for n, p in model.unet.named_parameters()}

    def moved(ewc_weight: float) -> float:
        m = model.clone()
        out = SelectiveAmnesia().unlearn(
            m, req, SAConfig(steps=5, batch_size=4, fisher_samples=4, fisher_timesteps=2,
                             ewc_weight=ewc_weight, lr=1e-2, grad_clip=0.0),
            RunContext(seed=0, device="cpu", run_dir=tmp_path / str(ewc_weight),
                       checkpoint_every=0))
        assert out.train_log["steps"] == 5 and "final_ewc" in out.train_log
        return sum(float((p.detach() - base[n]).pow(2).sum())
                   for n, p in out.model.unet.named_parameters())

    assert moved(1e6) < moved(0.0)
