"""UCE's closed form against cases with a known answer, and its refusal of class models."""

from __future__ import annotations

import pytest
import torch

from ubench.core.errors import IncompatibleError
from ubench.methods.uce import UCEConfig, uce_factor
from ubench.run import identity


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_erased_embedding_maps_to_the_guide_output() -> None:
    """With a vanishing regulariser and no preserve term, W_new c_i = W_old a_i exactly (the
    erase equations have an exact solution when the erased states are independent)."""
    w = _rand(5, 16, seed=0)
    erase, guide = _rand(3, 16, seed=1), _rand(3, 16, seed=2)
    m = uce_factor(erase, guide, None, erase_scale=1.0, preserve_scale=1.0, lamb=1e-9)
    torch.testing.assert_close(erase @ (w @ m).T, guide @ w.T, rtol=0, atol=1e-6)
    # a state orthogonal to every erased one is untouched (at any lamb): the edit acts on the
    # erased states' span only
    q, _ = torch.linalg.qr(torch.cat([erase.T, _rand(16, 1, seed=3)], dim=1))
    other = q[:, -1]
    m = uce_factor(erase, guide, None, erase_scale=1.0, preserve_scale=1.0, lamb=0.5)
    torch.testing.assert_close(w @ m @ other, w @ other, rtol=0, atol=1e-12)


def test_preserved_embedding_is_kept() -> None:
    w = _rand(7, 12, seed=4)
    erase, guide = _rand(2, 12, seed=5), _rand(2, 12, seed=6)
    keep = _rand(4, 12, seed=7)
    # the preserve term dominates the erase term: preserved outputs stay W_old c_j
    m = uce_factor(erase, guide, keep, erase_scale=1.0, preserve_scale=1e8, lamb=0.5)
    torch.testing.assert_close(keep @ (w @ m).T, keep @ w.T, rtol=1e-6, atol=1e-6)
    # the regulariser dominates everything: W_new = W_old
    m = uce_factor(erase, guide, keep, erase_scale=1.0, preserve_scale=1.0, lamb=1e12)
    torch.testing.assert_close(w @ m, w, rtol=0, atol=1e-9)
    # preserved states orthogonal to the erased ones are kept exactly, at any scales
    q, _ = torch.linalg.qr(_rand(12, 6, seed=8))
    erase_o, keep_o = q[:, :2].T, q[:, 2:].T
    m = uce_factor(erase_o, guide, keep_o, erase_scale=3.0, preserve_scale=0.1, lamb=0.5)
    torch.testing.assert_close(keep_o @ (w @ m).T, keep_o @ w.T, rtol=0, atol=1e-9)


def test_closed_form_is_the_minimiser() -> None:
    """The factor minimises UCE's objective: its gradient at W_new is zero."""
    w = _rand(4, 6, seed=9)
    erase, guide, keep = _rand(3, 6, seed=10), _rand(3, 6, seed=11), _rand(2, 6, seed=12)
    s_e, s_p, lamb = 2.0, 0.7, 0.3
    w_new = (w @ uce_factor(erase, guide, keep, s_e, s_p, lamb)).requires_grad_(True)
    objective = (s_e * (erase @ w_new.T - guide @ w.T).pow(2).sum()
                 + s_p * (keep @ w_new.T - keep @ w.T).pow(2).sum()
                 + lamb * (w_new - w).pow(2).sum())
    (grad,) = torch.autograd.grad(objective, w_new)
    assert float(grad.abs().max()) < 1e-9


def test_refused_on_class_conditional_tasks_before_loading() -> None:
    with pytest.raises(IncompatibleError, match=r"cannot run on task 'digits-class'.*t2i"):
        identity.resolve("uce", "digits-class", 0, [])
    assert "uce" not in identity.methods_for("digits-class")
    assert "uce" in identity.methods_for("t2i-attribute")


def test_config_bounds() -> None:
    from ubench.core.errors import ConfigError

    with pytest.raises(ConfigError, match="lamb"):
        UCEConfig(lamb=0.0)
