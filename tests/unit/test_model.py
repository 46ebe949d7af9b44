"""The model layer's verbs on a tiny class-conditional model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ubench.core.errors import IncompatibleError, MissingAssetError
from ubench.models.diffusion import DiffusionModel, class_conditional_model

# ``model``: the tiny class-conditional UNet of tests/unit/conftest.py


def test_same_seed_same_initialisation_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = class_conditional_model(resolution=8, channels=(16, 32), seed=3)
    assert torch.equal(torch.rand(1), before)  # global RNG untouched
    b = class_conditional_model(resolution=8, channels=(16, 32), seed=3)
    for (_, p), (_, q) in zip(a.unet.named_parameters(), b.unet.named_parameters(), strict=True):
        assert torch.equal(p, q)


def test_save_load_round_trip(model: DiffusionModel, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "m" / "scheduler" / "scheduler_config.json").is_file()
    loaded = DiffusionModel.load(tmp_path / "m")
    x = torch.randn(4, 1, 8, 8)
    t = torch.tensor([1, 10, 100, 999])
    c = model.encode([0, 3, 9, 10])
    assert torch.equal(model.predict_noise(x, t, c), loaded.predict_noise(x, t, c))


def test_load_missing_folder_is_clear(tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError, match="no ubench model"):
        DiffusionModel.load(tmp_path / "nothing")


def test_sampling_is_batch_invariant_with_seeds(model: DiffusionModel) -> None:
    labels = [1, 2, 3, 4, 5]
    a = model.sample(labels, steps=3, guidance=2.0, seeds=[10, 11, 12, 13, 14], batch_size=5)
    b = model.sample(labels, steps=3, guidance=2.0, seeds=[10, 11, 12, 13, 14], batch_size=2)
    c = model.sample(labels[2:], steps=3, guidance=2.0, seeds=[12, 13, 14])
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a[2:], c, atol=1e-5)
    assert a.min() >= -1 and a.max() <= 1


def test_guidance_one_skips_unconditional_branch(model: DiffusionModel) -> None:
    calls = []
    orig = model.predict_noise

    def spy(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return orig(x, t, c)

    model.predict_noise = spy  # type: ignore[method-assign]
    model.sample([0, 1], steps=2, guidance=1.0, seeds=[0, 1])
    assert calls == [2, 2]
    calls.clear()
    model.sample([0, 1], steps=2, guidance=3.0, seeds=[0, 1])
    assert calls == [4, 4]


def test_scopes(model: DiffusionModel) -> None:
    full = model.trainable_parameters("full")
    assert all(p.requires_grad for p in model.unet.parameters())
    noxattn = dict(model.named_parameters("noxattn"))
    assert not any(n.startswith(("time_embedding", "conv_out")) for n in noxattn)
    assert len(noxattn) < len(full)
    model.trainable_parameters("noxattn")
    frozen = [n for n, p in model.unet.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("time_embedding", "conv_out")) for n in frozen)
    with pytest.raises(IncompatibleError, match="cross-attention"):
        model.named_parameters("xattn")


def test_clone_frozen_is_independent(model: DiffusionModel) -> None:
    twin = model.clone_frozen()
    assert not any(p.requires_grad for p in twin.unet.parameters())
    with torch.no_grad():
        next(model.unet.parameters()).add_(1.0)
    assert not torch.equal(next(model.unet.parameters()), next(twin.unet.parameters()))


def test_denoising_loss_is_reproducible(model: DiffusionModel) -> None:
    x0 = torch.rand(8, 1, 8, 8) * 2 - 1
    c = model.encode(list(range(8)))
    l1 = model.denoising_loss(x0, c, torch.Generator().manual_seed(0))
    l2 = model.denoising_loss(x0, c, torch.Generator().manual_seed(0))
    assert torch.equal(l1, l2)
    err = model.denoising_error(x0, c, torch.Generator().manual_seed(0))
    assert err.shape == x0.shape and torch.allclose(err.mean(), l1)
