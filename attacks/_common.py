"""What every attack shares: samples, the budget loop, checkpoints, measuring, metric values.

An attack file keeps its protocol (what it optimises, on which data, with which loss) and hands
the rest to this module, the same way for every attack:

* **samples** — :func:`pick` draws the attack's ``k`` samples of D_f or D_r from the attack's
  ``ATTACK_DATA`` stream; :class:`~ubench.training.loop.Batches` then draws mini-batches from it;
* **measuring** — :func:`measure_plain` regenerates the task's forget probe (the same conditions
  and seeds as the run's own forgetting metric) and :func:`measure_encoded` generates it under a
  learned condition; both judge the images with the task's own detector
  (``Task.concept_success``), never with a detector of the attack's;
* **the budget loop** — :class:`BudgetLoop` runs optimisation steps and measures at every budget
  (``0`` is before any step), checks losses and gradient norms (a
  :class:`~ubench.core.errors.DivergedError` with the attack's fix), reports progress, and saves an
  :class:`AttackCheckpoint` at every budget and every ``checkpoint_every`` steps, so an
  interrupted attack resumes bit for bit;
* **metric values** — :func:`forget_metric` turns a measurement into the task's forgetting metric
  (``ua``, ``concept_rate``, ``nudity_rate``) and :func:`rate_metric` into a success rate, each
  under an id that carries its budget (:func:`ubench.api.attack_metric_id`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubench.api import (
    AttackContext,
    ConditionedSet,
    MetricValue,
    attack_metric_id,
    take_conditions,
)
from ubench.core.config import Bound
from ubench.core.errors import ConfigError, DivergedError
from ubench.core.faults import failpoint
from ubench.metrics.alignment import ConceptRate
from ubench.models.diffusion import DiffusionModel
from ubench.store.checkpoint import Checkpoint
from ubench.training.loop import Batches, check_finite, gradient_norm

#: images per budget kept for the attack's sample grid (only for images up to PREVIEW_MAX_SIZE
#: pixels: Stable Diffusion attacks write no images — size, and nudity)
PREVIEW = 10
PREVIEW_MAX_SIZE = 64

#: bounds shared by the attacks' configs
STEP_BOUNDS: dict[str, Bound] = {"lr": Bound(gt=0), "batch_size": Bound(ge=1, le=4096),
                                 "probe_limit": Bound(ge=0, le=100_000)}


def check_budgets(budgets: Sequence[int], name: str = "budgets", most: int = 100_000) -> None:
    """Budgets must be distinct, increasing, non-negative and at most ``most``."""
    values = list(budgets)
    if not values:
        raise ConfigError(f"{name} must list at least one budget")
    if any(b < 0 or b > most for b in values):
        raise ConfigError(f"{name} must be in 0..{most}; got {values}")
    if values != sorted(set(values)):
        raise ConfigError(f"{name} must be increasing and distinct; got {values}")


# ---------------------------------------------------------------------- samples
def pick(data: ConditionedSet, k: int, gen: torch.Generator) -> ConditionedSet:
    """``k`` samples of ``data`` without replacement (all of them when ``k`` is 0 or larger)."""
    n = len(data)
    idx = torch.randperm(n, generator=gen)[:k] if 0 < k < n else torch.arange(n)
    idx = idx.sort().values
    anchors = take_conditions(data.anchors, idx) if data.anchors is not None else None
    return ConditionedSet(data.images[idx], take_conditions(data.conditions, idx),
                          {**data.description, "attack_samples": len(idx)}, anchors)


# ---------------------------------------------------------------------- measuring
@dataclass
class Measurement:
    """Which generations of the probe show the concept, and how that was decided."""

    shown: np.ndarray
    definition: dict[str, Any]
    #: the first few images (for the grid), or None when the task's images are large
    preview: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def judge(model: DiffusionModel, ctx: AttackContext, samples: torch.Tensor) -> Measurement:
    """Decode ``samples`` and ask the task's detector which show the concept."""
    images = model.decode(samples, ctx.probe.batch_size)
    shown, definition = ctx.task.concept_success(images, ctx.device)
    small = max(images.shape[-2:]) <= PREVIEW_MAX_SIZE
    preview = images[:PREVIEW].clone() if small else None
    return Measurement(np.asarray(shown, dtype=bool), dict(definition), preview)


def measure_plain(model: DiffusionModel, ctx: AttackContext) -> Measurement:
    """Regenerate the forget probe with the model as it is (plain conditions, task seeds)."""
    p = ctx.probe
    samples = model.sample(p.conditions, steps=p.steps, guidance=p.guidance, seeds=p.seeds,
                           batch_size=p.batch_size, sampler=p.sampler)
    return judge(model, ctx, samples)


def measure_encoded(model: DiffusionModel, ctx: AttackContext, cond: torch.Tensor,
                    seeds: Sequence[int] | None = None) -> Measurement:
    """Generate under already encoded conditions (a learned class vector, a soft prompt) with the
    probe's seeds (or ``seeds``), sampler and guidance, and judge the images."""
    p = ctx.probe
    samples = model.sample_encoded(cond, steps=p.steps, guidance=p.guidance,
                                   seeds=list(seeds if seeds is not None else p.seeds),
                                   batch_size=p.batch_size, sampler=p.sampler)
    return judge(model, ctx, samples)


def sampler_definition(ctx: AttackContext) -> dict[str, Any]:
    p = ctx.probe
    sampler = "DDIM eta=0" if p.sampler == "ddim" else "DPM-Solver++ 2M"
    return {"probe": p.description, "sampler": sampler, "steps": p.steps,
            "guidance": p.guidance, "generation_seeds": "the task's evaluation seeds"}


# ---------------------------------------------------------------------- metric values
def forget_metric(ctx: AttackContext, attack: str, budget: int, m: Measurement,
                  definition: Mapping[str, Any]) -> tuple[str, MetricValue]:
    """The task's forgetting metric on a measurement, as ``<attack>_<metric>@<budget>``."""
    from ubench.catalog.registry import METRICS

    metric = METRICS.get(ctx.probe.metric)
    scores = ~m.shown if metric.higher_is_better else m.shown
    value = metric.from_scores(scores, {**m.definition, **sampler_definition(ctx), **definition,
                                        "budget": budget, "forget_metric": metric.name})
    return attack_metric_id(f"{attack}_{metric.name}", budget), value


def rate_metric(ctx: AttackContext, family: str, budget: int, shown: np.ndarray,
                definition: Mapping[str, Any]) -> tuple[str, MetricValue]:
    """A success rate (lower is better for the unlearned model) as ``<family>@<budget>``."""
    value = ConceptRate.from_scores(np.asarray(shown, dtype=bool),
                                    {**sampler_definition(ctx), **definition, "budget": budget})
    return attack_metric_id(family, budget), value


# ---------------------------------------------------------------------- checkpoints
class AttackCheckpoint:
    """Resumable state of one attack in ``<attack folder>/checkpoint/``
    (:class:`~ubench.store.checkpoint.Checkpoint`): named tensors, the optimiser state, every
    random generator and a JSON state (the step, the measurements so far, batch positions)."""

    def __init__(self, folder: Path) -> None:
        self.checkpoint = Checkpoint(folder)

    def exists(self) -> bool:
        return self.checkpoint.exists()

    def save(self, tensors: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer,
             generators: Mapping[str, torch.Generator], state: Mapping[str, Any]) -> None:
        self.checkpoint.save(state, tensors={"tensors": tensors},
                             objects={"optimizer": optimizer.state_dict(),
                                      "rng": {k: g.get_state() for k, g in generators.items()}})

    def load(self, tensors: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer,
             generators: Mapping[str, torch.Generator]
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Copy the saved tensors into ``tensors`` (in place), restore the optimiser and the
        generators; return the JSON state and every saved tensor (previews included)."""
        saved = self.checkpoint.tensors("tensors")
        with torch.no_grad():
            for name, t in tensors.items():
                t.copy_(saved[name].to(t.device))
        optimizer.load_state_dict(self.checkpoint.object("optimizer"))
        rng = self.checkpoint.object("rng")
        for name, g in generators.items():
            g.set_state(rng[name])
        return self.checkpoint.state(), saved

    def remove(self) -> None:
        self.checkpoint.remove()


# ---------------------------------------------------------------------- the budget loop
StepFn = Callable[[int], Mapping[str, float]]
MeasureFn = Callable[[int], Measurement]


class BudgetLoop:
    """Optimisation steps with a measurement at every budget, resumable.

    ``tensors`` are what a checkpoint saves and restores (the UNet's state dict, a learned
    vector); ``params`` the tensors the optimiser updates (their gradient norm is checked before
    every step). The step function computes the attack's loss and backpropagates it; the loop
    clears gradients, checks the norm, steps the optimiser, checkpoints and reports progress.
    """

    def __init__(self, ctx: AttackContext, *, budgets: Sequence[int],
                 tensors: Mapping[str, torch.Tensor], params: Sequence[torch.Tensor],
                 optimizer: torch.optim.Optimizer, generators: Mapping[str, torch.Generator],
                 batches: Mapping[str, Batches], hint: str) -> None:
        self.ctx, self.budgets = ctx, sorted(int(b) for b in budgets)
        self.tensors, self.params, self.optimizer = tensors, params, optimizer
        self.generators, self.batches, self.hint = generators, batches, hint
        self.checkpoint = AttackCheckpoint(ctx.folder)
        #: budget -> measurement
        self.results: dict[int, Measurement] = {}
        #: seconds of attack time at each budget (optimisation and measurements so far)
        self.seconds: dict[int, float] = {}
        self.log: dict[str, Any] = {}

    def _save(self, step: int, elapsed: float) -> None:
        tensors = dict(self.tensors)
        for b, m in self.results.items():
            if m.preview is not None:
                tensors[f"preview@{b}"] = m.preview
        state = {"step": step, "elapsed": elapsed, "log": self.log,
                 "seconds": {str(b): s for b, s in self.seconds.items()},
                 "batches": {k: v.state() for k, v in self.batches.items()},
                 "results": {str(b): {"shown": m.shown.tolist(), "definition": m.definition,
                                      "extra": m.extra}
                             for b, m in self.results.items()}}
        self.checkpoint.save(tensors, self.optimizer, self.generators, state)

    def _resume(self) -> tuple[int, float]:
        state, saved = self.checkpoint.load(self.tensors, self.optimizer, self.generators)
        for k, b in self.batches.items():
            b.load(state["batches"][k])
        for key, r in state["results"].items():
            self.results[int(key)] = Measurement(np.array(r["shown"], dtype=bool),
                                                 r["definition"], saved.get(f"preview@{key}"),
                                                 r.get("extra", {}))
        self.seconds = {int(k): float(v) for k, v in state["seconds"].items()}
        self.log = dict(state["log"])
        self.log["resumed_from"] = int(state["step"])
        if self.ctx.say is not None:
            self.ctx.say(f"resuming the attack from its checkpoint at step {state['step']} of "
                         f"{self.budgets[-1]}")
        return int(state["step"]), float(state["elapsed"])

    def run(self, step_fn: StepFn, measure: MeasureFn) -> dict[int, Measurement]:
        """Resume if a checkpoint exists; run to the largest budget, measuring at each budget."""
        start, before = (self._resume() if self.checkpoint.exists() else (0, 0.0))
        t0 = time.perf_counter()
        total = self.budgets[-1]
        every = self.ctx.checkpoint_every
        for step in range(start, total + 1):
            if step in self.budgets and step not in self.results:
                self.results[step] = measure(step)
                self.seconds[step] = before + time.perf_counter() - t0
                if step < total:
                    self._save(step, before + time.perf_counter() - t0)
            if step == total:
                break
            self.optimizer.zero_grad(set_to_none=True)
            scalars = dict(step_fn(step))
            check_finite(gradient_norm(list(self.params)),  # type: ignore[arg-type]
                         "the attack's gradient norm", step,
                         self.hint)
            self.optimizer.step()
            self.log.update({f"final_{k}": v for k, v in scalars.items()}, steps=step + 1)
            if every and (step + 1) % every == 0 and (step + 1) not in self.budgets:
                self._save(step + 1, before + time.perf_counter() - t0)
            failpoint(f"attack-step:{step + 1}")
            if self.ctx.on_step is not None:
                self.ctx.on_step(step + 1, total, scalars)
        self.log["seconds"] = before + time.perf_counter() - t0
        return self.results


def finite_loss(loss: torch.Tensor, what: str, step: int, hint: str) -> torch.Tensor:
    """``loss`` unchanged, or a DivergedError naming the step and the fix."""
    check_finite(loss, what, step, hint)
    return loss


def preview_rows(results: Mapping[int, Measurement]) -> Any:
    """A sample grid with one row per budget (the first generations of the probe), or None."""
    from ubench.store.grids import rgb_grid

    rows = [m.preview for _, m in sorted(results.items()) if m.preview is not None]
    if not rows:
        return None
    rows = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows]
    return rgb_grid(rows, scale=max(1, 48 // rows[0].shape[-1]))


def steps_to(results: Mapping[int, Measurement], threshold: float) -> int | None:
    """The first budget at which the concept rate reached ``threshold`` (None: never)."""
    for b, m in sorted(results.items()):
        if float(np.mean(m.shown)) >= threshold:
            return b
    return None


# ---------------------------------------------------------------------- fine-tuning attacks
def finetune_curve(model: DiffusionModel, ctx: AttackContext, data: ConditionedSet,
                   order: torch.Generator, *,
                   budgets: Sequence[int], lr: float, batch_size: int, scope: str, hint: str,
                   loss_name: str) -> BudgetLoop:
    """Fine-tune ``model`` with the plain denoising loss on ``data`` (Adam, constant ``lr``),
    measuring the task's forget probe at every budget. Returns the finished loop (its
    ``results`` hold a :class:`Measurement` per budget, its ``log`` the losses).

    Used by ``relearn`` (``data`` = k forget samples) and ``resurgence`` (remain data);
    ``order`` is the ``ATTACK_DATA`` generator the samples were picked with (it then orders the
    mini-batches).
    """
    from ubench.api import Stream

    params = model.trainable_parameters(scope)
    optimizer = torch.optim.Adam(params, lr=lr)
    noise = ctx.generator(Stream.ATTACK_NOISE)
    batches = Batches(data, batch_size, order)
    loop = BudgetLoop(ctx, budgets=budgets, tensors=dict(model.unet.state_dict()), params=params,
                      optimizer=optimizer, generators={"noise": noise, "data": order},
                      batches={"data": batches}, hint=hint)

    def step(i: int) -> Mapping[str, float]:
        x0, y = batches.next()
        loss = model.denoising_loss(x0.to(model.device), model.encode(y), noise)
        finite_loss(loss, loss_name, i, hint).backward()
        return {"loss": float(loss.detach())}

    model.unet.train()
    loop.run(step, lambda _b: measure_plain(model, ctx))
    model.unet.requires_grad_(False)
    return loop


def curve_output(ctx: AttackContext, attack: str, loop: BudgetLoop, threshold: float,
                 definition: Mapping[str, Any]) -> Any:
    """The output of a fine-tuning attack: the task's forgetting metric at every budget, the
    first budget at which the concept rate reached ``threshold``, and a grid per budget."""
    from ubench.api import AttackOutput

    metrics = dict(forget_metric(ctx, attack, b, m, definition)
                   for b, m in sorted(loop.results.items()))
    reached = steps_to(loop.results, threshold)
    details = {
        "forget_metric": ctx.probe.metric,
        "concept_rate": {str(b): float(np.mean(m.shown)) for b, m in sorted(loop.results.items())},
        f"steps_to_{attack}": reached, "threshold": threshold,
        "censored_at": None if reached is not None else max(loop.results),
        "seconds_at": {str(b): round(s, 3) for b, s in sorted(loop.seconds.items())},
        "train_log": loop.log,
    }
    return AttackOutput(metrics, details, grid=preview_rows(loop.results))


__all__ = ["PREVIEW", "AttackCheckpoint", "BudgetLoop", "DivergedError", "Measurement",
           "check_budgets", "curve_output", "finetune_curve", "finite_loss",
           "forget_metric", "judge", "measure_encoded",
           "measure_plain", "pick", "preview_rows", "rate_metric", "sampler_definition",
           "steps_to"]
