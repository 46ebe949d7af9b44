"""The shared unlearning loop: random streams, batches, finiteness, checkpoints, the loop itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ubench.api import ConditionedSet, RunContext, Stream, generation_seeds
from ubench.core.errors import DivergedError
from ubench.models.diffusion import class_conditional_model
from ubench.training.loop import Batches, Checkpointer, Loop, check_finite, gradient_norm


def _set(n: int, label: int = 1) -> ConditionedSet:
    g = torch.Generator().manual_seed(n)
    return ConditionedSet(torch.rand(n, 1, 8, 8, generator=g), torch.full((n,), label))


def test_stream_values_are_fixed() -> None:
    """Stream values fix every recorded number: they may be added to, never changed."""
    fixed = {"NOISE": 1, "FORGET": 2, "REMAIN": 3, "SALIENCY": 4,  # the methods'
             "ATTACK_NOISE": 5, "ATTACK_DATA": 6, "ATTACK_TOKENS": 7}  # the attacks'
    values = {s.name: int(s) for s in Stream}
    assert {k: values.get(k) for k in fixed} == fixed
    assert len(set(values.values())) == len(values)  # a new stream takes a new value
    ctx = RunContext(seed=5, device="cpu", run_dir=Path("."))
    a, b = ctx.generator(Stream.NOISE), ctx.generator(Stream.NOISE)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(torch.rand(4, generator=ctx.generator(Stream.FORGET)),
                           torch.rand(4, generator=ctx.generator(Stream.NOISE)))
    assert torch.equal(torch.rand(2, generator=ctx.generator(Stream.REMAIN)),
                       torch.rand(2, generator=torch.Generator().manual_seed(5 * 1_000_003 + 3)))


def test_generation_seeds_do_not_depend_on_anything_but_eval_seed() -> None:
    assert generation_seeds(0, 3) == [0, 1, 2]
    assert generation_seeds(2, 2) == [2_000_000, 2_000_001]


def test_batches_cycle_through_reshuffled_epochs() -> None:
    b = Batches(_set(10), 4, torch.Generator().manual_seed(0))
    seen = [b.next()[0] for _ in range(2)]
    first_epoch = torch.cat(seen)
    assert len(first_epoch) == 8 and len({tuple(x.flatten().tolist()) for x in first_epoch}) == 8
    x, _ = b.next()  # 8 + 4 > 10: a new permutation, still a full batch
    assert len(x) == 4 and b.pos == 4
    chunks = b.chunks(4)
    assert [len(c[0]) for c in chunks] == [4, 4, 2]
    state = b.state()
    twin = Batches(_set(10), 4, torch.Generator().manual_seed(99))
    twin.load(state)
    assert torch.equal(twin.next()[0], b.next()[0])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), torch.tensor(float("-inf"))])
def test_check_finite_names_what_when_and_the_fix(value: float | torch.Tensor) -> None:
    with pytest.raises(DivergedError, match=r"the thing became .* at step 7; lower it"):
        check_finite(value, "the thing", 7, "lower it")
    check_finite(1.0, "the thing", 7, "lower it")


def test_gradient_norm_ignores_missing_grads() -> None:
    p, q = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    assert float(gradient_norm([p, q])) == 0.0
    p.grad = torch.full((3,), 2.0)
    assert float(gradient_norm([p, q])) == pytest.approx(12 ** 0.5)


def test_checkpoint_round_trip_and_private_temporary_folder(tmp_path: Path) -> None:
    model = class_conditional_model(resolution=8, channels=(16, 32), seed=1)
    ctx = RunContext(seed=0, device="cpu", run_dir=tmp_path)
    loop = Loop(model, ctx, scope="full", steps=1, lr=1e-3, hint="h", forget=_set(6),
                batch_size=4)
    loop.forget.next()  # type: ignore[union-attr]
    ck = Checkpointer(tmp_path)
    assert not ck.exists()
    gens = {"noise": loop.noise}
    batches = {"forget": loop.forget}
    ck.save(3, model, loop.optimizer, gens, batches, {"x": 1})  # type: ignore[dict-item]
    ck.save(4, model, loop.optimizer, gens, batches, {"x": 2})  # type: ignore[dict-item]
    assert ck.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert not (tmp_path / f"checkpoint.tmp-{os.getpid()}").exists()
    expect_noise = torch.rand(3, generator=loop.noise)
    expect_batch = loop.forget.next()[0]  # type: ignore[union-attr]
    other = class_conditional_model(resolution=8, channels=(16, 32), seed=2)
    loop2 = Loop(other, ctx, scope="full", steps=1, lr=1e-3, hint="h", forget=_set(6),
                 batch_size=4)
    step, log, elapsed = ck.load(other, loop2.optimizer, {"noise": loop2.noise},
                                 {"forget": loop2.forget})  # type: ignore[dict-item]
    assert (step, log, elapsed) == (4, {"x": 2}, 0.0)
    assert torch.equal(torch.rand(3, generator=loop2.noise), expect_noise)
    assert torch.equal(loop2.forget.next()[0], expect_batch)  # type: ignore[union-attr]
    for (_, p), (_, q) in zip(model.unet.named_parameters(), other.unet.named_parameters(),
                              strict=True):
        assert torch.equal(p, q)


def test_loop_checks_the_gradient_and_freezes(tmp_path: Path) -> None:
    model = class_conditional_model(resolution=8, channels=(16, 32), seed=1)
    ctx = RunContext(seed=0, device="cpu", run_dir=tmp_path, checkpoint_every=0)
    loop = Loop(model, ctx, scope="full", steps=2, lr=1e-3, hint="try less")

    def nan_body(step: int) -> dict[str, float]:
        for p in loop.params:
            p.grad = torch.full_like(p, float("nan"))
        return {}

    with pytest.raises(DivergedError, match="the gradient norm became nan at step 0; try less"):
        loop.run(nan_body)

    model = class_conditional_model(resolution=8, channels=(16, 32), seed=1)
    seen: list[tuple[int, int, dict[str, float]]] = []
    ctx = RunContext(seed=0, device="cpu", run_dir=tmp_path, checkpoint_every=0,
                     on_step=lambda s, t, sc: seen.append((s, t, sc)))
    loop = Loop(model, ctx, scope="full", steps=2, lr=1e-3, hint="h")

    def body(step: int) -> dict[str, float]:
        for p in loop.params:
            p.grad = torch.ones_like(p)
        return {"loss": float(step)}

    out = loop.run(body)
    assert seen == [(1, 2, {"loss": 0.0}), (2, 2, {"loss": 1.0})]
    assert out.train_log == {"final_loss": 1.0, "steps": 2}
    assert not any(p.requires_grad for p in out.model.unet.parameters())
    assert len(out.changed_parameters) == len(list(model.unet.parameters()))
