"""The contracts between the runner, methods, tasks and metrics.

A **task** builds the base model, says what to forget and what to keep (an :class:`UnlearnRequest`)
and scores a model (an :class:`Evaluation`). A **method** turns the base model into an unlearned
model using only the model layer's verbs; it never scores itself. The **runner** wires them
together, measures cost and writes the record. A **metric** is a named, directed quantity with a
definition that is recorded next to every value.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ubench.config import BaseConfig

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from ubench.models.diffusion import DiffusionModel


# ----------------------------------------------------------------------------- data contracts
@dataclass(frozen=True)
class ConditionedSet:
    """Training images with the condition each was made under (class ids, later prompts)."""

    #: (N, C, H, W) float tensor in [-1, 1]
    images: torch.Tensor
    #: one condition per image: a LongTensor of class ids for class-conditional models, a list
    #: of prompts for text-conditioned ones
    conditions: Any
    #: how the set was built (policy, classes, counts); copied into the record
    description: dict[str, Any] = field(default_factory=dict)
    #: optional, one per image: the condition the concept should be replaced by (text tasks: the
    #: paired remain prompt, as SalUn maps "a photo of a nude person" to "... wearing clothes");
    #: random-label methods use it as the pseudo condition
    anchors: Any = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def take_conditions(conditions: Any, idx: Any) -> Any:
    """Select conditions by index: a tensor of class ids stays a tensor, prompts stay a list."""
    import torch

    if isinstance(idx, slice):
        return conditions[idx] if isinstance(conditions, torch.Tensor) else list(conditions[idx])
    if isinstance(conditions, torch.Tensor):
        return conditions[torch.as_tensor(idx, dtype=torch.long)]
    return [conditions[int(i)] for i in torch.as_tensor(idx).reshape(-1).tolist()]


def as_conditions(conditions: Any) -> Any:
    """Class ids as a LongTensor; a sequence of prompts as a list of strings."""
    import torch

    if isinstance(conditions, torch.Tensor):
        return conditions
    values = list(conditions)
    if values and isinstance(values[0], str):
        return [str(v) for v in values]
    return torch.as_tensor(values, dtype=torch.long)


@dataclass(frozen=True)
class UnlearnRequest:
    """What to forget and what to keep, as the task defines it.

    Fields are optional; a method lists the ones it needs in ``Method.requires`` and a task lists
    the ones it fills in ``Task.provides``. The runner checks ``requires <= provides`` before any
    weight is loaded.
    """

    #: D_f: data of the concept to remove ("forget_data")
    forget: ConditionedSet | None = None
    #: D_r: data whose generation must be preserved ("remain_data")
    remain: ConditionedSet | None = None
    #: builds the retrain-from-scratch oracle ("oracle")
    oracle: Callable[[], DiffusionModel] | None = None
    #: the concept's own prompt(s) on text tasks ("nudity"; "inside a frame", "framed", ...):
    #: what concept-erasure methods (ESD) condition on, as ESD erases "nudity" on SD
    concept: list[str] | None = None


@dataclass
class RunContext:
    """What a method may use besides the model, the request and its config."""

    seed: int
    device: str
    #: scratch folder of this run (checkpoints live here); methods write nowhere else
    run_dir: Path
    #: save a resumable checkpoint every this many steps (0 = never)
    checkpoint_every: int = 50
    #: called after every optimisation step with (step, total, scalars); the CLI draws a progress
    #: bar with it and tests use it to interrupt a run
    on_step: Callable[[int, int, dict[str, float]], None] | None = None

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed (offset separates independent streams)."""
        import torch

        return torch.Generator("cpu").manual_seed(self.seed * 1_000_003 + offset)


@dataclass
class UnlearnOutput:
    """A method's result: the unlearned model and a short account of the training."""

    model: DiffusionModel
    #: names of parameter tensors the method was allowed to change
    changed_parameters: list[str]
    #: a short summary (steps done, final losses, how often the gradients conflicted, ...)
    train_log: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricValue:
    """A metric value with its bootstrap confidence interval, sample size and definition."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    higher_is_better: bool
    #: everything needed to recompute the number (judge hash, n, sampler, steps, guidance, ...)
    definition: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Evaluation:
    """A task's verdict on one model."""

    metrics: dict[str, MetricValue]
    #: sample grid: forget condition(s) first, then remain conditions
    grid: Image.Image | None = None
    #: per-sample scores (condition, judged label, ...) written next to the record
    samples: list[dict[str, Any]] = field(default_factory=list)
    #: small descriptive results that are not metrics (copied into the record's "details")
    details: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- components
class Method(ABC):
    """An unlearning method. Subclasses set the class attributes and implement ``unlearn``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    paper: ClassVar[str | None] = None
    Config: ClassVar[type[BaseConfig]]
    #: request fields the method needs ("forget_data", "remain_data", "oracle", ...)
    requires: ClassVar[frozenset[str]] = frozenset()
    #: model capabilities the method needs ("xattn" for methods that train cross-attention only)
    requires_model: ClassVar[frozenset[str]] = frozenset()
    #: reference rows (base model, oracle) are methods too but are marked as such in reports
    reference: ClassVar[bool] = False

    @abstractmethod
    def unlearn(
        self, model: DiffusionModel, request: UnlearnRequest, config: Any, ctx: RunContext
    ) -> UnlearnOutput:
        """Return the unlearned model. ``model`` may be modified in place."""


class Task(ABC):
    """A benchmark task: base model, forget/remain request, evaluation."""

    name: ClassVar[str]
    #: bump when data, sampling or metrics change: old records then leave the main table
    version: ClassVar[str] = "1"
    Config: ClassVar[type[BaseConfig]]
    #: request fields this task fills
    provides: ClassVar[frozenset[str]] = frozenset()
    #: model capabilities ("class-conditional", "text-conditional", "xattn")
    model_capabilities: ClassVar[frozenset[str]] = frozenset()
    #: per method id, hyper-parameters this task's setting prescribes (e.g. the paper's SD
    #: recipe); applied before the user's ``--set method.*`` and recorded like any other value
    method_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: whether the runner saves the unlearned model in the run folder (``model/``)
    save_model: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    def prepare(self, say: Callable[[str], None] | None = None,
                progress: Callable[[str, int, int, dict[str, float]], None] | None = None
                ) -> None:
        """Build (or load from the cache) everything the task needs: models, judges, data.

        ``say`` receives one-line notes; ``progress(label, step, total, scalars)`` long steps.
        """

    @abstractmethod
    def base_model(self, device: str) -> DiffusionModel:
        """A fresh copy of the model to unlearn from."""

    @abstractmethod
    def request(self, seed: int) -> UnlearnRequest:
        """D_f, D_r and the other request fields, deterministic in ``seed``."""

    @abstractmethod
    def evaluate(self, model: DiffusionModel, device: str) -> Evaluation:
        """Score ``model`` with fixed generation seeds (independent of the run seed)."""

    def assets(self) -> dict[str, str]:
        """Content hashes of the cached assets (base model, judge, oracle) for the record."""
        return {}


class Metric(ABC):
    """A registered metric: its name, direction and what it measures."""

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    #: which generations it is computed on ("forget" or "remain")
    split: ClassVar[str]
    #: the values the metric can take; intervals aggregated over runs are clipped to it
    bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)
