"""The random-label, SalUn and ESD baselines: their pieces against hand computations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler

from tests.conftest import TINY
from tests.unit.conftest import random_set
from ubench.api import ConditionedSet, RunContext, Stream, UnlearnRequest
from ubench.core.errors import DivergedError, IncompatibleError
from ubench.methods._labels import pseudo_labels, random_label_loss
from ubench.methods.esd import ESDConfig, ESDFull, distinct_conditions, esd_target
from ubench.methods.rl import RandomLabel, RandomLabelConfig
from ubench.methods.salun import SalUn, SalUnConfig, forget_saliency, top_fraction_mask
from ubench.models.diffusion import DiffusionModel, class_conditional_model
from ubench.run import identity

_set = random_set


def _request() -> UnlearnRequest:
    return UnlearnRequest(forget=_set([0], 10, 1), remain=_set([1, 2, 3], 4, 2))


def _ctx(tmp_path: Path, **kw) -> RunContext:
    return RunContext(seed=0, device="cpu", run_dir=tmp_path, **{"checkpoint_every": 0, **kw})


# ----------------------------------------------------------------------------- random label
@pytest.mark.parametrize("rule", ["next", "random"])
def test_pseudo_labels_never_equal_the_label(rule: str) -> None:
    y = torch.arange(10).repeat(100)
    p = pseudo_labels(y, 10, rule, torch.Generator().manual_seed(0))
    assert p.shape == y.shape and bool((p != y).all())
    assert int(p.min()) >= 0 and int(p.max()) <= 9  # never the null class (10)
    if rule == "next":
        assert torch.equal(p, (y + 1) % 10)
    else:  # every other class shows up for every label
        for c in range(10):
            assert set(p[y == c].tolist()) == set(range(10)) - {c}


def test_random_pseudo_labels_follow_the_generator() -> None:
    y = torch.zeros(50, dtype=torch.long)
    a = pseudo_labels(y, 10, "random", torch.Generator().manual_seed(4))
    b = pseudo_labels(y, 10, "random", torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


def test_random_label_target_branch_has_no_gradient(model: DiffusionModel) -> None:
    x0 = _set([0], 4, 0).images
    loss = random_label_loss(model, x0, model.encode([0] * 4), model.encode([7] * 4),
                             torch.Generator().manual_seed(0))
    loss.backward()
    emb = model.unet.class_embedding.weight.grad
    assert emb is not None
    assert float(emb[0].abs().sum()) > 0  # the forget condition learns
    assert float(emb[7].abs().sum()) == 0  # the pseudo condition only sets the target
    # the value is the MSE against the detached pseudo prediction on the same x_t, t, noise
    x_t, t, _ = model.noised(x0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = (model.predict_noise(x_t, t, model.encode([0] * 4))
                - model.predict_noise(x_t, t, model.encode([7] * 4))).pow(2).mean()
    torch.testing.assert_close(loss.detach(), want)


def test_rl_nan_is_diverged_with_a_hint(model: DiffusionModel, tmp_path: Path) -> None:
    cfg = RandomLabelConfig(steps=5, lr=1e30, batch_size=4, grad_clip=0)
    with pytest.raises(DivergedError, match=r"became .* lower method\.lr"):
        RandomLabel().unlearn(model, _request(), cfg, _ctx(tmp_path))


# ----------------------------------------------------------------------------- SalUn
def test_top_fraction_mask_keeps_the_requested_fraction() -> None:
    g = torch.Generator().manual_seed(0)
    scores = [torch.rand(7, 5, generator=g), torch.rand(13, generator=g) * 3,
              torch.rand(2, 3, 4, generator=g)]
    n = sum(s.numel() for s in scores)
    for ratio in (0.5, 0.3, 1.0):
        mask = top_fraction_mask(scores, ratio)
        assert [m.shape for m in mask] == [s.shape for s in scores]
        kept = torch.cat([m.reshape(-1) for m in mask]).bool()
        flat = torch.cat([s.reshape(-1) for s in scores])
        assert int(kept.sum()) == round(ratio * n)
        if ratio < 1:  # a global ranking: every kept score beats every dropped one
            assert float(flat[kept].min()) >= float(flat[~kept].max())


def test_saliency_pass_leaves_weights_alone(model: DiffusionModel) -> None:
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    params = model.trainable_parameters("full")
    sal = forget_saliency(model, params, _set([0], 10, 1), 4, torch.Generator().manual_seed(0))
    assert all(s.shape == p.shape and bool((s >= 0).all()) for s, p in zip(sal, params,
                                                                              strict=True))
    assert all(p.grad is None for p in params)
    for k, v in model.unet.state_dict().items():
        assert torch.equal(v, before[k])


def test_salun_changes_only_masked_weights(model: DiffusionModel, tmp_path: Path) -> None:
    cfg = SalUnConfig(steps=3, batch_size=4, mask_ratio=0.5)
    # the mask SalUn will compute: same base weights, same seed stream (Stream.SALIENCY)
    twin = model.clone()
    params = twin.trainable_parameters("full")
    saliency = forget_saliency(twin, params, _request().forget, cfg.batch_size,
                               _ctx(tmp_path).generator(Stream.SALIENCY))
    mask = top_fraction_mask(saliency, cfg.mask_ratio)
    before = [p.detach().clone() for p in model.unet.parameters()]
    out = SalUn().unlearn(model, _request(), cfg, _ctx(tmp_path))
    after = list(out.model.unet.parameters())
    changed = kept = 0
    for b, a, m in zip(before, after, mask, strict=True):
        moved = a.detach() != b
        assert not bool((moved & (m == 0)).any()), "a weight outside the mask changed"
        changed += int(moved.sum())
        kept += int(m.sum())
    assert changed > 0.5 * kept
    log = out.train_log
    assert log["mask_kept"] == kept and log["mask_total"] == sum(p.numel() for p in after)
    assert log["mask_sparsity"] == pytest.approx(1 - kept / log["mask_total"])
    assert kept == round(0.5 * log["mask_total"])
    assert log["steps"] == 3 and not any(p.requires_grad for p in after)


# ----------------------------------------------------------------------------- ESD
def test_esd_target_matches_hand_computation(model: DiffusionModel) -> None:
    frozen = model.clone_frozen()
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(3, 1, 8, 8, generator=g)
    t = torch.tensor([900, 500, 20])
    cond = model.encode([2, 2, 5])
    eps_0 = model.predict_noise(x_t, t, model.encode([10, 10, 10])).detach()  # 10 = null class
    eps_c = model.predict_noise(x_t, t, cond).detach()
    for eta in (0.0, 1.0, 2.5):
        got = esd_target(frozen, x_t, t, cond, eta)
        assert not got.requires_grad
        torch.testing.assert_close(got, eps_0 - eta * (eps_c - eps_0))


def test_partial_denoising_is_the_start_of_sampling(model: DiffusionModel) -> None:
    steps, guidance, labels = 4, 2.0, [1, 4, 4]
    full = model.sample(labels, steps=steps, guidance=guidance,
                        generator=torch.Generator().manual_seed(5))
    cond = model.encode(labels)
    x0, t0 = model.denoise_partially(cond, steps=steps, stop=0, guidance=guidance,
                                     generator=torch.Generator().manual_seed(5))
    assert torch.equal(x0, torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(5)))
    x, t = model.denoise_partially(cond, steps=steps, stop=steps - 1, guidance=guidance,
                                   generator=torch.Generator().manual_seed(5))
    sched = DDIMScheduler.from_config(model.noise_scheduler.config, clip_sample=False)
    sched.set_timesteps(steps)
    assert t.tolist() == [int(sched.timesteps[-1])] * 3 and int(t0[0]) == int(sched.timesteps[0])
    with torch.no_grad():
        last = sched.step(model.guided_noise(x, t, cond, guidance), sched.timesteps[-1], x)
    torch.testing.assert_close(last.prev_sample.clamp(-1, 1), full)


def test_esd_uses_only_the_forget_conditions(model: DiffusionModel, tmp_path: Path) -> None:
    assert distinct_conditions(torch.tensor([3, 3, 1, 3])) == [3, 1]
    assert distinct_conditions(["a nude person", "a nude person"]) == ["a nude person"]
    data = _set([0], 6, 1)
    nan_images = ConditionedSet(torch.full_like(data.images, float("nan")), data.conditions)
    cfg = ESDConfig(steps=2, batch_size=2, ddim_steps=4)
    out = ESDFull().unlearn(model, UnlearnRequest(forget=nan_images), cfg, _ctx(tmp_path))
    assert out.train_log["conditions"] == [0] and out.train_log["steps"] == 2


def test_esd_x_refused_on_digits_before_anything_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, store = tmp_path / "home", tmp_path / "results"
    home.mkdir()
    monkeypatch.setenv("UBENCH_HOME", str(home))
    monkeypatch.setenv("UBENCH_STORE", str(store))
    with pytest.raises(IncompatibleError, match="cross-attention") as e:
        identity.resolve("esd-x", TINY, 0, [])
    assert "esd-x" in str(e.value) and "Tasks it fits" in str(e.value)
    env = {**os.environ, "UBENCH_HOME": str(home), "UBENCH_STORE": str(store)}
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "run", "--method", "esd-x",
                           "--task", "digits-class"], capture_output=True, text=True, env=env,
                          timeout=300)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("error: ") and "cross-attention" in lines[-1]
    assert "esd-x" in lines[-1] and proc.stdout == ""
    assert not any(home.iterdir()) and not store.exists()  # no asset, no run folder


# ----------------------------------------------------------------------------- resume
@pytest.mark.parametrize(("method", "cfg"), [
    (RandomLabel, RandomLabelConfig(steps=5, batch_size=4, pseudo="random")),
    (SalUn, SalUnConfig(steps=5, batch_size=4)),
    (ESDFull, ESDConfig(steps=5, batch_size=2, ddim_steps=4)),
])
def test_interrupted_unlearning_resumes_bit_for_bit(method, cfg, tmp_path: Path) -> None:
    base = class_conditional_model(resolution=8, channels=(16, 32), seed=3)
    straight = method().unlearn(base.clone(), _request(), cfg, _ctx(tmp_path / "a")).model

    def stop_at_3(step: int, total: int, scalars: dict[str, float]) -> None:
        assert total == 5 and all(v == v for v in scalars.values())
        if step == 3:
            raise KeyboardInterrupt

    run_dir = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        method().unlearn(base.clone(), _request(), cfg,
                         _ctx(run_dir, checkpoint_every=2, on_step=stop_at_3))
    out = method().unlearn(base.clone(), _request(), cfg, _ctx(run_dir, checkpoint_every=2))
    assert out.train_log["resumed_from"] == 2 and out.train_log["steps"] == 5
    for (n, p), (_, q) in zip(out.model.unet.named_parameters(),
                              straight.unet.named_parameters(), strict=True):
        assert torch.equal(p, q), n
