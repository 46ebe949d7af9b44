"""``resurgence`` — fine-tune on remain data only; does the forgotten concept come back?

Paper: Suriyakumar, Alur, Sekhari, Raghavan, Wilson, *Unstable Unlearning: The Hidden Risk of
Concept Resurgence in Diffusion Models* (arXiv 2410.08074); the same effect on classifiers:
Siddiqui et al. 2025 (arXiv 2505.22310: forget accuracy recovers after fine-tuning on the retain
set alone).

**Threat model and protocol.** Nobody attacks: a user fine-tunes the unlearned model on ordinary
data that does not contain the concept — here the run's own D_r (remain images with their
conditions), all of it by default or ``samples`` of it drawn with the attack's seed — with the
plain denoising loss (Adam, constant learning rate). After each budget S in ``budgets`` (0, 10,
50, 200 steps) the task's forget probe (the run's own forgetting conditions and seeds) is
regenerated and judged by the task's detector. Reported: the task's forgetting metric at every
budget (``resurgence_ua@200``, ``resurgence_concept_rate@200``, ...; ``@0`` is the run's own
number) and the first budget at which the concept rate reaches ``threshold``. On the ``retrain``
row the concept should stay away: the oracle has nothing to resurge.

**Budget defaults.** All of D_r, S in {0, 10, 50, 200}, Adam lr 1e-4, batch 16, every UNet
parameter (Stable Diffusion: lr 1e-5, batch 4, prescribed by the task).

**Differences from the reference implementation.** Suriyakumar et al. fine-tune Stable Diffusion
after mass concept erasure (MACE) and other erasure methods on *other* concepts' data (e.g. other
celebrities, other objects) for hundreds of steps and measure the erased concept with
classifiers. We (1) fine-tune on the task's D_r — the data the unlearning itself was told to
preserve, the closest "unrelated" data every task has; (2) use one constant-lr Adam schedule and
budgets in steps, with a measurement after each; (3) measure with the task's own detector on the
run's forget probe, so ``@0`` equals the run's number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from ubench.api import Attack, AttackContext, AttackOutput, Stream
from ubench.attacks._common import STEP_BOUNDS, check_budgets, curve_output, finetune_curve, pick
from ubench.core.config import BaseConfig, Bound
from ubench.models.diffusion import DiffusionModel

HINT = "lower attack.lr"


@dataclass(frozen=True)
class ResurgenceConfig(BaseConfig):
    """Budgets and optimiser of ``resurgence``."""

    #: remain samples fine-tuned on (0: all of D_r)
    samples: int = 0
    #: fine-tuning steps after which forgetting is measured (0: the unlearned model itself)
    budgets: tuple[int, ...] = (0, 10, 50, 200)
    #: Adam learning rate, constant
    lr: float = 1e-4
    #: mini-batch size
    batch_size: int = 16
    #: which parameters are fine-tuned
    scope: Literal["full", "xattn", "noxattn"] = "full"
    #: the concept counts as back once this fraction of the probe shows it
    threshold: float = 0.5
    #: measure on the first N generations of the task's forget probe (0: all of them)
    probe_limit: int = 0

    bounds: ClassVar[Mapping[str, Bound]] = {**STEP_BOUNDS, "samples": Bound(ge=0, le=100_000),
                                             "threshold": Bound(gt=0, le=1)}

    def validate(self) -> None:
        check_budgets(self.budgets)


class Resurgence(Attack[ResurgenceConfig]):
    """Concept resurgence: fine-tune on remain data only; does the forgotten concept return?"""

    name: ClassVar[str] = "resurgence"
    paper: ClassVar[str | None] = "Suriyakumar et al. 2024 (arXiv 2410.08074)"
    Config: ClassVar[type[BaseConfig]] = ResurgenceConfig
    requires: ClassVar[frozenset[str]] = frozenset({"remain_data"})

    def attack(self, model: DiffusionModel, config: ResurgenceConfig,
               ctx: AttackContext) -> AttackOutput:
        assert ctx.request.remain is not None  # the runner checked `requires`
        order = ctx.generator(Stream.ATTACK_DATA)
        data = pick(ctx.request.remain, config.samples, order)
        loop = finetune_curve(model, ctx, data, order, budgets=config.budgets, lr=config.lr,
                              batch_size=config.batch_size, scope=config.scope, hint=HINT,
                              loss_name="the fine-tuning loss")
        out: AttackOutput = curve_output(ctx, self.name, loop, config.threshold, {
            "attack": "resurgence: fine-tune on remain data only (Adam, constant lr)",
            "samples": len(data), "lr": config.lr, "scope": config.scope})
        out.details["data"] = data.description
        return out
