"""The unlearning loop: everything an optimisation-based method needs except its step body.

A method builds a :class:`Loop` (its parameter scope, step count, learning rate and the data it
draws batches from) and hands :meth:`Loop.run` a *step body*: a function of the step index that
computes the method's losses and leaves the gradient to apply in the parameters' ``.grad``. The
loop does the rest, the same way for every method:

* **seeded batches** — :class:`Batches` over D_f and D_r, each drawn from its own named random
  stream (:class:`~ubench.api.Stream`); the loop's ``noise`` generator is the ``NOISE`` stream;
* **finiteness** — the step body checks its losses with :func:`check_finite`; the loop checks the
  gradient's norm before every optimiser step; either raises
  :class:`~ubench.core.errors.DivergedError` with the method's fix hint (a failed record, no silent
  ``nan_to_num``);
* **checkpoints** — every ``ctx.checkpoint_every`` steps, atomically (:class:`Checkpointer`:
  weights, optimiser state, every generator, batch positions, the log); a run started again
  resumes from the last one bit for bit;
* **progress** — ``ctx.on_step(step, total, scalars)`` after every step, with the scalars the step
  body returns (also logged as ``final_<name>``);
* **freeze** — at the end every UNet parameter is frozen and the method's scope is reported as
  the changed parameters.

Per step the loop clears ``.grad`` (``set_to_none``), calls the body, checks the norm and steps
Adam; it holds no parameter-sized buffer of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ubench.api import (
    ConditionedSet,
    RunContext,
    Stream,
    UnlearnOutput,
    as_conditions,
    take_conditions,
)
from ubench.core.errors import DivergedError
from ubench.core.faults import failpoint
from ubench.models.diffusion import DiffusionModel
from ubench.store.checkpoint import Checkpoint

#: a step body: step index -> scalars to report (losses); it leaves the gradient in ``.grad``
StepBody = Callable[[int], Mapping[str, float]]


class Batches:
    """Endless, reshuffled mini-batches of a :class:`ConditionedSet` from one seeded generator.

    An epoch is a permutation of the set; a batch that would run past its end starts a new
    permutation instead (every batch has ``batch_size`` items). ``last`` holds the indices of the
    latest batch, to look up per-sample side data such as anchors.
    """

    def __init__(self, data: ConditionedSet, batch_size: int, gen: torch.Generator) -> None:
        self.data, self.bs, self.gen = data, min(batch_size, len(data)), gen
        self.conditions = as_conditions(data.conditions)
        self.order = torch.randperm(len(data), generator=gen)
        self.pos = 0
        self.last: torch.Tensor = self.order[:0]

    def next(self) -> tuple[torch.Tensor, Any]:
        """The next (images, conditions) batch."""
        if self.pos + self.bs > len(self.data):
            self.order, self.pos = torch.randperm(len(self.data), generator=self.gen), 0
        idx = self.order[self.pos:self.pos + self.bs]
        self.pos += self.bs
        self.last = idx
        return self.data.images[idx], take_conditions(self.conditions, idx)

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The (images, conditions) at ``idx`` (paired batches: the items another stream drew),
        without moving this stream."""
        self.last = idx
        return self.data.images[idx], take_conditions(self.conditions, idx)

    def chunks(self, size: int) -> list[tuple[torch.Tensor, Any]]:
        """The whole set in order, cut into chunks of ``size`` (the last may be smaller)."""
        return [(self.data.images[i:i + size], take_conditions(self.conditions, slice(i, i + size)))
                for i in range(0, len(self.data), size)]

    def state(self) -> dict[str, Any]:
        return {"order": self.order.tolist(), "pos": self.pos}

    def load(self, state: Mapping[str, Any]) -> None:
        self.order, self.pos = torch.tensor(state["order"]), int(state["pos"])


def check_finite(value: torch.Tensor | float, what: str, step: int, hint: str) -> None:
    """Raise :class:`DivergedError` naming ``what``, the step and ``hint`` (the fix to try) if
    ``value`` is NaN or infinite."""
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise DivergedError(f"{what} became {v} at step {step}; {hint}")


def gradient_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The global L2 norm of the parameters' ``.grad`` (0 when none has one); allocates only
    one scalar per tensor."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, 2.0)


def inner_descent(params: list[torch.nn.Parameter], loss: Callable[[], torch.Tensor],
                  steps: int, lr: float) -> float:
    """Bi-level methods' inner problem (EraseDiff's theta^K): ``steps`` Adam steps on ``loss``
    from the current weights with a fresh optimiser state, then the loss there; the weights
    and their ``.grad`` are restored before returning, so the outer loop's optimiser, weights
    and checkpoints never see the inner steps."""
    saved = [p.detach().clone() for p in params]
    inner = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        inner.zero_grad(set_to_none=True)
        loss().backward()
        inner.step()
    with torch.no_grad():
        value = float(loss())
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
            p.grad = None
    return value


class Checkpointer:
    """Resumable checkpoints of one run's unlearning, in ``<run_dir>/checkpoint/``
    (:class:`~ubench.store.checkpoint.Checkpoint`): the UNet's weights, the optimiser state, the
    state of every named generator, the position of every batch stream and the training log."""

    def __init__(self, run_dir: Path) -> None:
        self.checkpoint = Checkpoint(run_dir)

    def exists(self) -> bool:
        return self.checkpoint.exists()

    def save(self, step: int, model: DiffusionModel, optimizer: torch.optim.Optimizer,
             generators: Mapping[str, torch.Generator], batches: Mapping[str, Batches],
             log: Mapping[str, Any], elapsed: float = 0.0) -> None:
        self.checkpoint.save(
            {"step": step, "log": dict(log), "elapsed_seconds": elapsed,
             "batches": {k: b.state() for k, b in batches.items()}},
            tensors={"unet": model.unet.state_dict()},
            objects={"optimizer": optimizer.state_dict(),
                     "rng": {k: g.get_state() for k, g in generators.items()}})

    def load(self, model: DiffusionModel, optimizer: torch.optim.Optimizer,
             generators: Mapping[str, torch.Generator], batches: Mapping[str, Batches]
             ) -> tuple[int, dict[str, Any], float]:
        """Restore everything :meth:`save` wrote; return (step to continue from, log, seconds
        spent on the steps before it)."""
        ckpt = self.checkpoint
        model.unet.load_state_dict(ckpt.tensors("unet"))
        optimizer.load_state_dict(ckpt.object("optimizer"))
        rng = ckpt.object("rng")
        for name, gen in generators.items():
            gen.set_state(rng[name])
        state = ckpt.state()
        for name, b in batches.items():
            b.load(state["batches"][name])
        return int(state["step"]), dict(state["log"]), float(state.get("elapsed_seconds", 0.0))


class Loop:
    """One method's unlearning run: parameters, Adam, random streams, batches, log, checkpoints.

    ``scope`` picks the trainable parameters (the model layer's ``full`` / ``xattn`` /
    ``noxattn``); ``forget`` / ``remain`` (optional) become :class:`Batches` of ``batch_size``
    on the ``FORGET`` / ``REMAIN`` streams. Anything a method computes from the base weights
    (a frozen teacher, a saliency mask) must be computed before :meth:`run`, which loads a
    checkpoint when there is one.
    """

    def __init__(self, model: DiffusionModel, ctx: RunContext, *, scope: str, steps: int,
                 lr: float, hint: str, forget: ConditionedSet | None = None,
                 remain: ConditionedSet | None = None, batch_size: int = 1) -> None:
        self.model, self.ctx, self.steps, self.hint = model, ctx, steps, hint
        self.named = model.named_parameters(scope)
        self.params = model.trainable_parameters(scope)
        self.optimizer = torch.optim.Adam(self.params, lr=lr)
        #: timesteps, noise and every other random draw of the step body
        self.noise = ctx.generator(Stream.NOISE)
        self.forget = Batches(forget, batch_size, ctx.generator(Stream.FORGET)) \
            if forget is not None else None
        self.remain = Batches(remain, batch_size, ctx.generator(Stream.REMAIN)) \
            if remain is not None else None
        #: the train log of the record; step bodies may add counters to it
        self.log: dict[str, Any] = {}
        self.checkpointer = Checkpointer(ctx.run_dir)

    def _streams(self) -> tuple[dict[str, torch.Generator], dict[str, Batches]]:
        batches = {k: b for k, b in (("forget", self.forget), ("remain", self.remain))
                   if b is not None}
        generators = {"noise": self.noise, **{k: b.gen for k, b in batches.items()}}
        return generators, batches

    def run(self, body: StepBody) -> UnlearnOutput:
        """Resume if a checkpoint exists, run the remaining steps, freeze; the method's output."""
        generators, batches = self._streams()
        start, before = 0, 0.0
        if self.checkpointer.exists():
            start, saved, before = self.checkpointer.load(self.model, self.optimizer, generators,
                                                          batches)
            self.log.update(saved, resumed_from=start, seconds_before_resume=before)
            if self.ctx.say is not None:
                self.ctx.say(f"resuming from the checkpoint at step {start} of {self.steps}")
        t0 = time.perf_counter()
        self.model.unet.train()
        for step in range(start, self.steps):
            self.optimizer.zero_grad(set_to_none=True)
            scalars = dict(body(step))
            check_finite(gradient_norm(self.params), "the gradient norm", step, self.hint)
            self.optimizer.step()
            self.log.update({f"final_{k}": v for k, v in scalars.items()}, steps=step + 1)
            every = self.ctx.checkpoint_every
            if every and (step + 1) % every == 0 and step + 1 < self.steps:
                self.checkpointer.save(step + 1, self.model, self.optimizer, generators,
                                       batches, self.log, before + time.perf_counter() - t0)
            failpoint(f"step:{step + 1}")
            if self.ctx.on_step is not None:
                self.ctx.on_step(step + 1, self.steps, scalars)
        self.model.unet.requires_grad_(False)
        return UnlearnOutput(self.model, [n for n, _ in self.named], self.log)
