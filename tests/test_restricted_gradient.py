"""The restricted-gradient rule against a float64 reference on random vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ubench.methods.boostalign import restricted_gradient


def reference(a: np.ndarray, r: np.ndarray, lam: float) -> np.ndarray:
    """The digest's §2.2 rule, written directly on flat float64 vectors."""
    s = a @ r
    if s < 0:
        a2 = a - s / (r @ r) * r
        r2 = r - s / (a @ a) * a
        return a2 + lam * r2
    return a + lam * r


def split(v: np.ndarray, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """Cut a flat vector into per-parameter float32 tensors (as a network's gradients are)."""
    out, pos = [], 0
    for shp in shapes:
        n = int(np.prod(shp))
        out.append(torch.tensor(v[pos:pos + n].reshape(shp), dtype=torch.float32))
        pos += n
    return out


SHAPES = [(4, 3), (7,), (2, 2, 5)]
DIM = sum(int(np.prod(s)) for s in SHAPES)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("lam", [0.5, 1.0, 5.0])
def test_matches_float64_reference(seed: int, lam: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=DIM)
    r = rng.normal(size=DIM)
    got, conflict = restricted_gradient(split(a, SHAPES), split(r, SHAPES), lam)
    flat = torch.cat([g.flatten() for g in got]).double().numpy()
    want = reference(a.astype(np.float32).astype(np.float64),
                     r.astype(np.float32).astype(np.float64), lam)
    assert conflict == bool(a.astype(np.float32) @ r.astype(np.float32) < 0)
    np.testing.assert_allclose(flat, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_conflicting_case_decreases_both_losses(seed: int) -> None:
    """After projection both directional derivatives are >= 0 (both losses decrease)."""
    rng = np.random.default_rng(100 + seed)
    a = rng.normal(size=DIM)
    r = -a + 0.3 * rng.normal(size=DIM)  # strongly conflicting
    assert a @ r < 0
    got, conflict = restricted_gradient(split(a, SHAPES), split(r, SHAPES), 2.0)
    d = torch.cat([g.flatten() for g in got]).double().numpy()
    assert conflict
    assert d @ a >= -1e-6 and d @ r >= -1e-6
    # the naive sum would increase one of the two losses here
    naive = a + 2.0 * r
    assert min(naive @ a, naive @ r) < 0


def test_non_conflicting_case_is_plain_weighted_sum() -> None:
    a = np.array([1.0, 2.0, 0.5, -1.0] * 6)
    r = np.array([0.5, 1.0, 0.0, 0.2] * 6)
    assert a @ r > 0
    shapes = [(24,)]
    got, conflict = restricted_gradient(split(a, shapes), split(r, shapes), 3.0)
    assert not conflict
    np.testing.assert_allclose(got[0].numpy(), (a + 3.0 * r).astype(np.float32), rtol=1e-6)


def test_orthogonal_projection_properties() -> None:
    """With lambda = 1 the projected parts are orthogonal to the *other original* gradient."""
    a = np.array([1.0, 0.0, 0.0])
    r = np.array([-1.0, 1.0, 0.0])
    got, _ = restricted_gradient([torch.tensor(a)], [torch.tensor(r)], 1.0)
    a2 = a - (a @ r) / (r @ r) * r
    r2 = r - (a @ r) / (a @ a) * a
    assert abs(a2 @ r) < 1e-12 and abs(r2 @ a) < 1e-12
    np.testing.assert_allclose(got[0].numpy(), a2 + r2)


def test_zero_forget_gradient_is_safe() -> None:
    """A zero forget direction (threshold truncation) never divides by zero."""
    r = [torch.randn(5)]
    got, conflict = restricted_gradient([torch.zeros(5)], r, 1.6)
    assert not conflict
    assert torch.allclose(got[0], 1.6 * r[0])
