"""The gradient family: truncation modes, remain-gradient modes, and the gradient each method
leaves in ``.grad`` against a reference computed with separate autograd calls."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ubench.api import ConditionedSet, RunContext, Stream, UnlearnRequest
from ubench.core.config import build_config
from ubench.methods._gradient import GradientConfig
from ubench.methods.boostalign import BoostAlign
from ubench.methods.finetune import Finetune
from ubench.methods.ga import GradientAscent
from ubench.methods.graddiff import GradDiff
from ubench.models.diffusion import DiffusionModel, class_conditional_model
from ubench.training.loop import Batches


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


def test_boostalign_counts_conflicts(tmp_path: Path) -> None:
    _, log = run(BoostAlign, tmp_path)
    assert 0 <= log["conflicts"] <= 3 and log["steps"] == 3 and log["forget_off"] == 0


def _reference_directions(cfg: GradientConfig) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(a, r) at the base weights for step 0, each from its own autograd call, drawing the same
    batches and noise as the loop (the run's FORGET, REMAIN and NOISE streams)."""
    ctx = RunContext(seed=0, device="cpu", run_dir=Path("."))
    model = tiny()
    params = model.trainable_parameters("full")
    noise = ctx.generator(Stream.NOISE)
    forget = Batches(REQ.forget, cfg.batch_size, ctx.generator(Stream.FORGET))
    remain = Batches(REQ.remain, cfg.batch_size, ctx.generator(Stream.REMAIN))
    x0, y = forget.next()
    err = model.denoising_error(x0, model.encode(y), noise)
    a = [-g for g in torch.autograd.grad(err.clamp(max=cfg.clip_alpha).mean(), params)]
    r = [torch.zeros_like(p) for p in params]
    chunks = remain.chunks(cfg.batch_size)
    total = sum(len(c[0]) for c in chunks)
    for x, yr in chunks:
        loss = model.denoising_loss(x, model.encode(yr), noise) * (len(x) / total)
        for acc, g in zip(r, torch.autograd.grad(loss, params), strict=True):
            acc.add_(g)
    return a, r


def _step_gradient(method, tmp_path: Path, cfg: GradientConfig) -> list[torch.Tensor]:
    """The ``.grad`` a one-step run leaves behind (the gradient of step 0, at the base weights)."""
    model = tiny()
    method().unlearn(model, REQ, cfg, RunContext(seed=0, device="cpu", run_dir=tmp_path,
                                                 checkpoint_every=0))
    return [p.grad.clone() for p in model.unet.parameters()]


def test_graddiff_leaves_a_plus_lambda_r_in_grad(tmp_path: Path) -> None:
    cfg = build_config(GradientConfig, {"steps": 1, "batch_size": 4, "remain_weight": 2.5},
                       "test")
    a, r = _reference_directions(cfg)
    got = _step_gradient(GradDiff, tmp_path, cfg)
    for g, x, y in zip(got, a, r, strict=True):
        torch.testing.assert_close(g, x + 2.5 * y, rtol=1e-5, atol=1e-7)


def test_boostalign_leaves_the_restricted_gradient_in_grad(tmp_path: Path) -> None:
    cfg = build_config(GradientConfig, {"steps": 1, "batch_size": 4, "remain_weight": 2.5},
                       "test")
    a, r = _reference_directions(cfg)
    fa = torch.cat([x.flatten() for x in a]).double()
    fr = torch.cat([y.flatten() for y in r]).double()
    s = float(fa @ fr)
    if s < 0:
        want = (fa - s / float(fr @ fr) * fr) + 2.5 * (fr - s / float(fa @ fa) * fa)
    else:
        want = fa + 2.5 * fr
    got = torch.cat([g.flatten() for g in _step_gradient(BoostAlign, tmp_path, cfg)]).double()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------- protocol v2's knobs
def test_clip_x0_caps_the_denoised_image_error(tmp_path: Path) -> None:
    """``clip-x0`` is ``min(eps_err^2, alpha * SNR(t))``: the cap binds at high noise (small SNR)
    and not at low noise, the opposite of ``clip``; its loss is the eps-MSE where nothing binds."""
    model = tiny()
    x0, y = REQ.forget.images, REQ.forget.conditions
    err, snr = model.denoising_error_snr(x0, model.encode(y), torch.Generator().manual_seed(3))
    assert torch.equal(err, model.denoising_error(x0, model.encode(y),
                                                  torch.Generator().manual_seed(3)))
    abar = model.noise_scheduler.alphas_cumprod
    assert snr.shape == (len(x0), 1, 1, 1)
    assert float(snr.min()) >= float(abar[-1] / (1 - abar[-1])) - 1e-9
    # the denoised image's error equals the eps error divided by the SNR, exactly
    x_t_err = err / snr
    assert torch.allclose(x_t_err * snr, err)
    alpha = 0.1
    capped = torch.minimum(err, alpha * snr)
    high = (snr < 1e-2).flatten()
    low = (snr > 1e2).flatten()
    if high.any():  # at high noise the cap binds on (nearly) every element
        assert float((capped[high] < err[high]).float().mean()) > 0.9
    if low.any():  # at low noise it never binds
        assert torch.equal(capped[low], err[low])


def test_clip_x0_with_a_tiny_cap_moves_nothing(tmp_path: Path) -> None:
    model, _ = run(GradientAscent, tmp_path, truncation="clip-x0", clip_alpha=1e-30)
    assert torch.equal(params(model), params(tiny()))


def test_relative_threshold_is_a_multiple_of_the_measured_base_loss(tmp_path: Path) -> None:
    """``threshold_unit=base-loss``: m is measured on the base model before the first step and
    recorded; the measurement is deterministic and leaves the run's random streams alone."""
    from ubench.methods._gradient import base_forget_loss

    base = base_forget_loss(tiny(), REQ.forget, 4)
    # the batch size only regroups the same draws
    assert base == pytest.approx(base_forget_loss(tiny(), REQ.forget, 5), rel=1e-5)
    _, log = run(GradientAscent, tmp_path / "a", truncation="threshold", threshold_m=3.0,
                 threshold_unit="base-loss")
    assert log["base_forget_loss"] == pytest.approx(base, rel=1e-6)
    assert log["threshold"] == pytest.approx(3 * base, rel=1e-6)
    _, absolute = run(GradientAscent, tmp_path / "b", truncation="threshold", threshold_m=3.0)
    assert absolute["threshold"] == 3.0 and "base_forget_loss" not in absolute
    # m below the base loss: every step is switched off, as with an absolute m that small
    model, low = run(GradientAscent, tmp_path / "c", truncation="threshold", threshold_m=0.5,
                     threshold_unit="base-loss")
    assert low["forget_off"] == 3
    assert torch.equal(params(model), params(tiny()))


def test_paired_batches_take_the_forget_batch_indices() -> None:
    """``batching=paired``: remain batch i holds the pairs of forget batch i (the SD code's two
    index-aligned loaders), not a draw of its own."""
    f = ConditionedSet(torch.arange(10.).view(10, 1, 1, 1), [f"f{i}" for i in range(10)])
    r = ConditionedSet(-torch.arange(10.).view(10, 1, 1, 1), [f"r{i}" for i in range(10)])
    fb = Batches(f, 4, torch.Generator().manual_seed(0))
    rb = Batches(r, 4, torch.Generator().manual_seed(1))
    for _ in range(5):
        xf, cf = fb.next()
        xr, cr = rb.take(fb.last)
        assert torch.equal(xr, -xf)
        assert [c[1:] for c in cr] == [c[1:] for c in cf]


def test_paired_batching_needs_minibatch_remain_gradients_and_paired_data(
        tmp_path: Path) -> None:
    from ubench.core.errors import ConfigError, IncompatibleError
    from ubench.run.identity import resolve

    with pytest.raises(ConfigError, match="remain_gradient=minibatch"):
        build_config(GradientConfig, {"batching": "paired", "remain_gradient": "full"}, "t")
    with pytest.raises(ConfigError, match="batching=independent"):
        run(GradDiff, tmp_path, batching="paired", remain_gradient="minibatch")  # 12 vs 10
    with pytest.raises(IncompatibleError, match="not index-aligned pairs"):
        resolve("graddiff", "digits-class-tiny", overrides=[
            "method.batching=paired", "method.remain_gradient=minibatch"])
    spec = resolve("boostalign", "t2i-attribute-tiny")
    assert spec.method_config.batching == "paired"  # the t2i recipe: the paper's pairs


def test_paired_graddiff_runs_on_paired_data(tmp_path: Path) -> None:
    req = UnlearnRequest(forget=data(0, 8, 0), remain=data(3, 8, 1))
    cfg = build_config(GradientConfig, {"steps": 3, "batch_size": 4, "batching": "paired",
                                        "remain_gradient": "minibatch"}, "test")
    out = GradDiff().unlearn(tiny(), req, cfg, RunContext(seed=0, device="cpu",
                                                          run_dir=tmp_path, checkpoint_every=0))
    assert out.train_log["steps"] == 3
