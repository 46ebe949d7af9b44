"""The restricted-gradient rule against a float64 reference on random vectors, written in place."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ubench.methods import boostalign
from ubench.methods.boostalign import dots, restricted_gradient_


def reference(a: np.ndarray, r: np.ndarray, lam: float) -> np.ndarray:
    """The paper's rule (official code, §2.2 of its release), written directly on flat float64
    vectors."""
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


def combine(a: list[torch.Tensor], r: list[torch.Tensor], lam: float
            ) -> tuple[list[torch.Tensor], bool]:
    """The rule for forget direction ``a`` on copies of ``r`` (it takes the forget loss's
    gradient ``g = -a`` and writes into its second argument)."""
    out = [t.clone() for t in r]
    return out, restricted_gradient_([-x for x in a], out, lam)


def flat(ts: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([t.flatten() for t in ts]).double().numpy()


SHAPES = [(4, 3), (7,), (2, 2, 5)]
DIM = sum(int(np.prod(s)) for s in SHAPES)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("lam", [0.5, 1.0, 5.0])
def test_matches_float64_reference(seed: int, lam: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=DIM)
    r = rng.normal(size=DIM)
    got, conflict = combine(split(a, SHAPES), split(r, SHAPES), lam)
    want = reference(a.astype(np.float32).astype(np.float64),
                     r.astype(np.float32).astype(np.float64), lam)
    assert conflict == bool(a.astype(np.float32) @ r.astype(np.float32) < 0)
    np.testing.assert_allclose(flat(got), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_conflicting_case_decreases_both_losses(seed: int) -> None:
    """After projection both directional derivatives are >= 0 (both losses decrease)."""
    rng = np.random.default_rng(100 + seed)
    a = rng.normal(size=DIM)
    r = -a + 0.3 * rng.normal(size=DIM)  # strongly conflicting
    assert a @ r < 0
    got, conflict = combine(split(a, SHAPES), split(r, SHAPES), 2.0)
    d = flat(got)
    assert conflict
    assert d @ a >= -1e-6 and d @ r >= -1e-6
    # the naive sum would increase one of the two losses here
    naive = a + 2.0 * r
    assert min(naive @ a, naive @ r) < 0


@pytest.mark.parametrize("scale", [1e-3, 1e-6, 1e-8])
def test_tiny_gradients_are_projected_exactly(scale: float) -> None:
    """No epsilon in the denominators: at ||a||^2 ~ 1e-12 (and below) the step is the exact rule
    and still raises the forget loss (an additive guard was off by ~25 % there)."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=DIM) * scale / np.sqrt(DIM)
    r = (-a + 0.5 * rng.normal(size=DIM) * scale / np.sqrt(DIM))
    a32, r32 = a.astype(np.float32).astype(np.float64), r.astype(np.float32).astype(np.float64)
    got, conflict = combine(split(a, SHAPES), split(r, SHAPES), 1.6)
    d = flat(got)
    assert conflict
    np.testing.assert_allclose(d, reference(a32, r32, 1.6), rtol=1e-4,
                               atol=1e-6 * float(np.abs(d).max()))
    assert d @ a32 > 0 and d @ r32 > 0


def test_non_conflicting_case_is_plain_weighted_sum() -> None:
    a = np.array([1.0, 2.0, 0.5, -1.0] * 6)
    r = np.array([0.5, 1.0, 0.0, 0.2] * 6)
    assert a @ r > 0
    got, conflict = combine(split(a, [(24,)]), split(r, [(24,)]), 3.0)
    assert not conflict
    np.testing.assert_allclose(got[0].numpy(), (a + 3.0 * r).astype(np.float32), rtol=1e-6)


def test_orthogonal_projection_properties() -> None:
    """With lambda = 1 the projected parts are orthogonal to the *other original* gradient."""
    a = np.array([1.0, 0.0, 0.0])
    r = np.array([-1.0, 1.0, 0.0])
    got, _ = combine([torch.tensor(a)], [torch.tensor(r)], 1.0)
    a2 = a - (a @ r) / (r @ r) * r
    r2 = r - (a @ r) / (a @ a) * a
    assert abs(a2 @ r) < 1e-12 and abs(r2 @ a) < 1e-12
    np.testing.assert_allclose(got[0].numpy(), a2 + r2)


@pytest.mark.parametrize("which", ["forget", "remain", "both"])
def test_zero_directions_skip_the_projection(which: str) -> None:
    """A zero vector cannot conflict: no division, the plain weighted sum."""
    a = torch.zeros(5) if which in ("forget", "both") else torch.randn(5)
    r = torch.zeros(5) if which in ("remain", "both") else torch.randn(5)
    got, conflict = combine([a], [r], 1.6)
    assert not conflict and bool(torch.isfinite(got[0]).all())
    assert torch.equal(got[0], a + 1.6 * r)


def test_writes_into_r_in_place_and_leaves_g(monkeypatch: pytest.MonkeyPatch) -> None:
    """The combined step lands in r's own storage; g is untouched; blocking changes nothing."""
    gen = torch.Generator().manual_seed(0)
    a = [torch.randn(13, 5, generator=gen), torch.randn(40, generator=gen)]
    r = [-x + 0.1 * torch.randn(x.shape, generator=gen) for x in a]
    whole, _ = combine(a, r, 5.0)
    g = [-x for x in a]
    g_before = [x.clone() for x in g]
    monkeypatch.setattr(boostalign, "BLOCK", 7)  # blocks that cut across every tensor
    blocked = [x.clone() for x in r]
    ptrs = [x.data_ptr() for x in blocked]
    assert restricted_gradient_(g, blocked, 5.0)
    assert [x.data_ptr() for x in blocked] == ptrs
    for x, y in zip(g, g_before, strict=True):
        assert torch.equal(x, y)
    for x, y in zip(blocked, whole, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_the_folded_sign_is_the_old_formula_bit_for_bit() -> None:
    """With the same coefficients, -(g + ca r) + w (r + cr g) is (a - ca r) + w (r - cr a) for
    a = -g, to the last bit (negation is exact; rounding is symmetric)."""
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(1000, generator=gen)
    r = -a + 0.3 * torch.randn(1000, generator=gen)
    s, aa, rr = dots([a], [r])
    old = (a - (s / rr) * r) + 2.5 * (r - (s / aa) * a)
    new = [r.clone()]
    assert restricted_gradient_([-a], new, 2.5)
    assert torch.equal(new[0], old)


def test_dots_match_float64_sums() -> None:
    g = torch.Generator().manual_seed(1)
    a = [torch.randn(300, generator=g), torch.randn(4, 4, generator=g)]
    r = [torch.randn(300, generator=g), torch.randn(4, 4, generator=g)]
    fa, fr = flat(a), flat(r)
    s, aa, rr = dots(a, r)
    assert s == pytest.approx(float(fa @ fr), rel=1e-6)
    assert aa == pytest.approx(float(fa @ fa), rel=1e-6)
    assert rr == pytest.approx(float(fr @ fr), rel=1e-6)


@pytest.mark.parametrize("conflicting", [True, False])
@pytest.mark.parametrize("device", ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
def test_the_fused_accelerator_path_matches_the_block_path(conflicting: bool, device: str
                                                           ) -> None:
    """The multi-tensor path a GPU takes (dots by per-tensor dot + ``_foreach_norm``, the update
    as one linear combination) gives the block path's dots, decision and step up to float32
    rounding; forced with ``fused=True`` on the CPU, and on CUDA by default where there is one."""
    gen = torch.Generator().manual_seed(7)
    a = [torch.randn(13, 5, generator=gen), torch.randn(4000, generator=gen),
         torch.randn(3, 3, 3, generator=gen)]
    sign = -1.0 if conflicting else 1.0
    r = [sign * x + 0.5 * torch.randn(x.shape, generator=gen) for x in a]
    g = [-x for x in a]
    ref = [x.clone() for x in r]
    ref_dots = dots(g, ref, fused=False)
    ref_conflict = restricted_gradient_(g, ref, 5.0, fused=False)
    assert ref_conflict is conflicting
    g_dev = [x.to(device) for x in g]
    got = [x.clone().to(device) for x in r]
    fused = True if device == "cpu" else None  # None: chosen by the tensors' device
    got_dots = dots(g_dev, got, fused=fused)
    for x, y in zip(got_dots, ref_dots, strict=True):
        assert x == pytest.approx(y, rel=1e-5)
    assert restricted_gradient_(g_dev, got, 5.0, fused=fused) is conflicting
    for x, y in zip(got, ref, strict=True):
        torch.testing.assert_close(x.cpu(), y, rtol=1e-5, atol=1e-5)
    assert dots([], [], fused=True) == (0.0, 0.0, 0.0)
