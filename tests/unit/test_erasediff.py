"""EraseDiff's first-order bi-level update on a toy problem, computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ubench.api import ConditionedSet, RunContext, UnlearnRequest
from ubench.methods.erasediff import EraseDiff, EraseDiffConfig, bilevel_step
from ubench.models.diffusion import class_conditional_model

A = [3.0, -1.0]  # minimiser of the forget objective f = 1/2 |theta - A|^2
B = [0.0, 2.0]  # minimiser of the remain objective F = 1/2 |theta - B|^2
THETA = [1.0, 0.5]
LR, K = 0.1, 2
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults


def _problem() -> tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]:
    theta = torch.nn.Parameter(torch.tensor(THETA, dtype=torch.float64))
    return theta, torch.tensor(A, dtype=torch.float64), torch.tensor(B, dtype=torch.float64)


def _inner_by_hand() -> list[float]:
    """K steps of a fresh Adam on f from THETA, element by element."""
    theta = list(THETA)
    m, v = [0.0, 0.0], [0.0, 0.0]
    for k in range(1, K + 1):
        for i in range(2):
            g = theta[i] - A[i]
            m[i] = BETA1 * m[i] + (1 - BETA1) * g
            v[i] = BETA2 * v[i] + (1 - BETA2) * g * g
            m_hat, v_hat = m[i] / (1 - BETA1 ** k), v[i] / (1 - BETA2 ** k)
            theta[i] -= LR * m_hat / (math.sqrt(v_hat) + EPS)
    return theta


def _f(theta: list[float]) -> float:
    return 0.5 * sum((t - a) ** 2 for t, a in zip(theta, A, strict=True))


def test_fixed_lambda_step_matches_the_hand_computation() -> None:
    theta, a, b = _problem()
    out = bilevel_step([theta], lambda: 0.5 * (theta - a).pow(2).sum(),
                       lambda: 0.5 * (theta - b).pow(2).sum(),
                       inner_steps=K, inner_lr=LR, lam=0.3)
    # the weights are back at theta after the inner loop
    assert theta.detach().tolist() == THETA
    # q = f(theta) - f(theta^K), theta^K from K Adam steps on f
    theta_k = _inner_by_hand()
    assert theta_k[0] == pytest.approx(1.0 + 2 * LR, abs=1e-3)  # ~lr per step towards A
    assert out["q"] == pytest.approx(_f(THETA) - _f(theta_k), rel=1e-12)
    assert out["q"] > 0  # theta does not yet satisfy the constraint
    # direction = grad F + lambda grad f = (theta - B) + 0.3 (theta - A), q's constant drops out
    want = [(t - bb) + 0.3 * (t - aa) for t, aa, bb in zip(THETA, A, B, strict=True)]
    assert theta.grad is not None
    assert theta.grad.tolist() == pytest.approx(want, rel=1e-12)
    assert out["lambda"] == 0.3
    assert out["forget_loss"] == pytest.approx(_f(THETA))
    # one SGD step of size zeta along it
    zeta = 0.5
    torch.optim.SGD([theta], lr=zeta).step()
    assert theta.detach().tolist() == pytest.approx([t - zeta * w for t, w in
                                                     zip(THETA, want, strict=True)], rel=1e-12)


def test_adaptive_lambda_matches_the_hand_computation() -> None:
    theta, a, b = _problem()
    out = bilevel_step([theta], lambda: 0.5 * (theta - a).pow(2).sum(),
                       lambda: 0.5 * (theta - b).pow(2).sum(),
                       inner_steps=K, inner_lr=LR, lam=0.0, rule="adaptive", eta=0.5)
    gq = [t - aa for t, aa in zip(THETA, A, strict=True)]  # (-2, 1.5)
    gr = [t - bb for t, bb in zip(THETA, B, strict=True)]  # (1, -1.5)
    cos = sum(x * y for x, y in zip(gq, gr, strict=True)) / (
        math.hypot(*gq) * math.hypot(*gr) + 1e-8)
    lam = max(0.5 - cos, 0.0)
    assert cos < 0 and out["lambda"] == pytest.approx(lam, rel=1e-12)
    assert theta.grad is not None
    assert theta.grad.tolist() == pytest.approx([r + lam * q for q, r in zip(gq, gr, strict=True)],
                                                rel=1e-12)
    # aligned objectives (cos > eta) switch the constraint off
    theta2 = torch.nn.Parameter(torch.tensor([5.0, 5.0], dtype=torch.float64))
    out2 = bilevel_step([theta2], lambda: 0.5 * (theta2 - a).pow(2).sum(),
                        lambda: 0.5 * (theta2 - a).pow(2).sum(),
                        inner_steps=1, inner_lr=LR, lam=0.0, rule="adaptive", eta=0.5)
    assert out2["lambda"] == 0.0


def test_runs_and_keeps_the_outer_optimiser_state_clean(tmp_path: Path) -> None:
    model = class_conditional_model(resolution=8, channels=(16, 32), seed=3)
    g = torch.Generator().manual_seed(0)
    req = UnlearnRequest(
        forget=ConditionedSet(torch.rand(6, 1, 8, 8, generator=g) * 2 - 1, torch.zeros(6).long()),
        remain=ConditionedSet(torch.rand(8, 1, 8, 8, generator=g) * 2 - 1,
                              torch.tensor([1, 2] * 4)))
    for target in ("uniform", "pseudo"):
        m = model.clone()
        out = EraseDiff().unlearn(m, req, EraseDiffConfig(steps=3, batch_size=4,
                                                          forget_target=target),
                                  RunContext(seed=0, device="cpu", run_dir=tmp_path / target,
                                             checkpoint_every=0))
        assert out.train_log["steps"] == 3
        assert {"final_q", "final_lambda", "final_forget_loss"} <= set(out.train_log)
        assert not any(p.requires_grad for p in out.model.unet.parameters())
