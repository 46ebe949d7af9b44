"""The contracts between the runner, methods, tasks and metrics.

A **task** builds the base model, says what to forget and what to keep (an :class:`UnlearnRequest`)
and scores a model (an :class:`Evaluation`). A **method** turns the base model into an unlearned
model using only the model layer's verbs; it never scores itself. The **runner** wires them
together, measures cost and writes the record. A **metric** is a named, directed quantity that
turns per-sample scores into a :class:`MetricValue` (value, interval, n, definition); tasks call
it and never restate its direction.

``Method`` and ``Task`` are generic over their config class, so ``unlearn(..., config)`` and
``task.config`` are typed in every subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ubench.core.config import BaseConfig

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from ubench.models.diffusion import DiffusionModel

C = TypeVar("C", bound=BaseConfig)


# ----------------------------------------------------------------------------- data contracts
@dataclass(frozen=True)
class ConditionedSet:
    """Training images with the condition each was made under (class ids or prompts)."""

    #: (N, C, H, W) float tensor in [-1, 1] (VAE latents on Stable Diffusion)
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


@dataclass(frozen=True)
class ForgetProbe:
    """The plain forget conditions on which a task measures forgetting (see
    :meth:`Task.forget_probe`): what an attack regenerates after attacking a model."""

    #: class ids (a LongTensor) or prompts, one per generation
    conditions: Any
    #: one generation seed per condition (the task's evaluation seeds, never the run seed)
    seeds: list[int]
    #: DDIM steps and classifier-free guidance of the task's evaluation
    steps: int
    guidance: float
    #: id of the task's forgetting metric computed on these generations (``ua``,
    #: ``concept_rate``, ``nudity_rate``); a higher-is-better metric counts the generations
    #: *without* the concept (UA), a lower-is-better one those with it
    metric: str
    #: what the conditions are, for records ("forget-class generations", "I2P prompts", ...)
    description: str = ""
    #: generation batch size
    batch_size: int = 256
    #: the evaluation's sampler (``ddim`` or ``dpm-solver``, :meth:`DiffusionModel.sample`)
    sampler: str = "ddim"

    def __len__(self) -> int:
        return len(self.seeds)

    def first(self, limit: int) -> ForgetProbe:
        """The probe's first ``limit`` conditions (all of them when ``limit`` is 0): an attack's
        ``probe_limit``."""
        if not limit or limit >= len(self):
            return self
        return ForgetProbe(take_conditions(self.conditions, slice(0, limit)), self.seeds[:limit],
                           self.steps, self.guidance, self.metric,
                           f"{self.description}, first {limit}", self.batch_size, self.sampler)


class Stream(IntEnum):
    """The independent random streams of a run, each a CPU generator of its own.

    A stream's generator is seeded with ``seed * 1_000_003 + value``. The values are part of what
    a seed means (they fix every recorded number), so a value is never changed or reused: a new
    stream takes a new value.
    """

    #: timesteps and noise of every loss, random pseudo labels, ESD's stop index, conditions and
    #: starting noise
    NOISE = 1
    #: order of the forget mini-batches
    FORGET = 2
    #: order of the remain mini-batches
    REMAIN = 3
    #: SalUn's saliency pass (its timesteps and noise)
    SALIENCY = 4
    #: attacks: timesteps and noise of the attack's losses
    ATTACK_NOISE = 5
    #: attacks: which samples of D_f / D_r an attack uses, and the order of its mini-batches
    ATTACK_DATA = 6
    #: attacks: the soft-prompt attack's token draws (its straight-through sampling)
    ATTACK_TOKENS = 7


#: multiplier of the run seed in a stream's generator seed (see :class:`Stream`)
STREAM_STRIDE = 1_000_003

#: points in every method's tuning space: the fair protocol gives each method the same budget
TUNING_BUDGET = 8

#: generation seeds of an evaluation: sample i of a task with ``eval_seed = e`` starts from the
#: noise of seed ``e * EVAL_SEED_STRIDE + i`` (independent of the run seed and of batching)
EVAL_SEED_STRIDE = 1_000_000


def generation_seeds(eval_seed: int, n: int) -> list[int]:
    """The per-sample generation seeds of an evaluation with ``n`` samples."""
    return [eval_seed * EVAL_SEED_STRIDE + i for i in range(n)]


def stream_generator(seed: int, stream: Stream) -> torch.Generator:
    """The CPU generator of stream ``stream`` of seed ``seed`` (runs and attacks alike)."""
    import torch

    return torch.Generator("cpu").manual_seed(seed * STREAM_STRIDE + int(stream))


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
    #: one-line notes for the user (e.g. "resuming from step 50")
    say: Callable[[str], None] | None = None

    def generator(self, stream: Stream) -> torch.Generator:
        """The CPU generator of one of the run's independent random streams."""
        return stream_generator(self.seed, stream)


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
    """A metric value with its confidence interval, sample size and definition.

    Made by a :class:`Metric` class (``Metric.from_scores`` and friends), which supplies the
    direction; tasks never build one by hand.
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    higher_is_better: bool
    #: everything needed to recompute the number (judge hash, n, sampler, steps, guidance, ...)
    definition: dict[str, Any] = field(default_factory=dict)
    #: per-sample data for paired comparisons (``ubench compare``), saved next to the record and
    #: not part of its JSON: ``{"scores": (n,)}`` for a mean of per-sample scores (sample ``i``
    #: of every run of a task setting comes from the same generation seed), ``{"features":
    #: (n, d), "ref_mean": (d,), "ref_cov": (d, d)}`` for a Fréchet distance against a fixed
    #: reference
    samples: Mapping[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "n": self.n, "higher_is_better": self.higher_is_better,
                "definition": dict(self.definition)}


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
class Method(ABC, Generic[C]):
    """An unlearning method. Subclasses set the class attributes and implement ``unlearn``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    paper: ClassVar[str | None] = None
    #: the config dataclass (its defaults are the method's defaults); ``unlearn`` receives one
    Config: ClassVar[type[BaseConfig]]
    #: request fields the method needs ("forget_data", "remain_data", "oracle", ...)
    requires: ClassVar[frozenset[str]] = frozenset()
    #: model capabilities the method needs ("xattn" for methods that train cross-attention only)
    requires_model: ClassVar[frozenset[str]] = frozenset()
    #: reference rows (base model, oracle) are methods too but are marked as such in reports
    reference: ClassVar[bool] = False
    #: rows of models ubench did not make (``ubench eval``): never listed for ``--method all``,
    #: a sweep or the fair protocol, and refused by ``ubench run``
    external: ClassVar[bool] = False
    #: training-free methods (SLD, negative prompting) change sampling, not weights: ``unlearn``
    #: returns the base model with a :class:`~ubench.models.diffusion.SamplingRule`; runs save
    #: no weights and attacks rebuild the model from the base and the config, as for reference
    #: rows; the report marks the row "training-free"
    training_free: ClassVar[bool] = False
    #: the method's tuning space for the fair protocol, per model family (``"class-conditional"``,
    #: ``"text-conditional"``): config key -> candidate values. The product of the value lists has
    #: exactly :data:`TUNING_BUDGET` points, so every method gets the same budget. Empty for
    #: reference rows and for methods without a space yet.
    search_space: ClassVar[Mapping[str, Mapping[str, Sequence[Any]]]] = {}
    #: the method's family (``gradient``, ``random-label``, ``esd``, ...): the fair protocol's
    #: forgetting target on text tasks is chosen so that every family can reach it
    family: ClassVar[str] = ""

    @abstractmethod
    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: C,
                ctx: RunContext) -> UnlearnOutput:
        """Return the unlearned model. ``model`` may be modified in place."""


@dataclass
class AttackContext:
    """What an attack may use besides the model it attacks and its config.

    The attack runner builds it from the attacked run's record: the task (prepared, with the
    run's config), the run's request (its D_f and D_r), the task's forget probe, and the attack's
    own seed, device and folder (checkpoints live there).
    """

    task: Task[Any]
    request: UnlearnRequest
    probe: ForgetProbe
    seed: int
    device: str
    #: the attack's folder next to the run's record; attacks write checkpoints and artifacts here
    folder: Path
    #: a fresh copy of the task's base model (the soft-prompt attack's targets come from it)
    base_model: Callable[[], DiffusionModel]
    #: save a resumable checkpoint every this many steps (0: only at budget boundaries)
    checkpoint_every: int = 50
    #: called after every optimisation step with (step, total, scalars)
    on_step: Callable[[int, int, dict[str, float]], None] | None = None
    #: one-line notes for the user
    say: Callable[[str], None] | None = None

    def generator(self, stream: Stream) -> torch.Generator:
        """The CPU generator of one of the attack's random streams (attack seed, stream value)."""
        return stream_generator(self.seed, stream)


@dataclass
class AttackOutput:
    """An attack's result: metrics whose ids carry their budgets, and what else it found."""

    #: ``<attack>_<metric>@<budget>`` -> value (see :func:`attack_metric_id`)
    metrics: dict[str, MetricValue]
    #: small descriptive results (steps to relearn, per-budget counts, ...)
    details: dict[str, Any] = field(default_factory=dict)
    #: files the attack wrote into its folder (name -> file name): learned embeddings, prompts
    artifacts: dict[str, str] = field(default_factory=dict)
    #: generations of the attacked model at the attack's largest budget (a row of samples)
    grid: Image.Image | None = None


def attack_metric_id(family: str, budget: int) -> str:
    """The id of an attack metric at a budget: ``relearn_ua@50``, ``invert_rate@200``."""
    return f"{family}@{int(budget)}"


def parse_attack_metric_id(metric_id: str) -> tuple[str, int] | None:
    """``("relearn_ua", 50)`` for ``relearn_ua@50``; None for a metric id without a budget."""
    family, at, budget = metric_id.rpartition("@")
    if not at or not family or not budget.isdigit():
        return None
    return family, int(budget)


class Attack(ABC, Generic[C]):
    """An attack on an unlearned model: can the forgotten concept be brought back, at what cost?

    Subclasses set the class attributes and implement ``attack``. An attack changes only the
    model it is handed (a copy loaded for it), draws randomness only from
    ``ctx.generator(Stream.ATTACK_*)``, and judges success only with the task's own detector
    (``ctx.task.concept_success``) on the task's forget probe.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    paper: ClassVar[str | None] = None
    Config: ClassVar[type[BaseConfig]]
    #: request fields the attack needs ("forget_data", "remain_data")
    requires: ClassVar[frozenset[str]] = frozenset()
    #: model capabilities the attack needs ("text-conditional" for prompt attacks)
    requires_model: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def attack(self, model: DiffusionModel, config: C, ctx: AttackContext) -> AttackOutput:
        """Attack ``model`` (it may be modified in place) and return the metrics at each budget."""


# ----------------------------------------------------------------------------- the fair protocol
@dataclass(frozen=True)
class TuningRule:
    """A task's declared selection rule: reach the forgetting target, then keep the most.

    Among the points whose ``forget`` metric reaches the target, pick the highest ``keep``;
    points within ``tie_margin`` of it are tied; with ``prefer_forgetting`` the tie goes first to
    the point that forgets most, then (and otherwise) to the lowest ``tie_break`` metric (when
    given). When no point reaches the target, the point that forgets most is
    picked (ties to the higher keep), and the choice says the target was not reached.

    ``target`` is fixed, or, with ``ladder``, chosen from the tuning results: the smallest
    value of the ladder that at least one method of every family reaches.
    """

    forget: str
    keep: str
    target: float | None = None
    ladder: tuple[float, ...] = ()
    tie_margin: float = 0.005
    tie_break: str | None = None
    #: break keep-ties toward more forgetting before ``tie_break``: for a ladder target, which
    #: can be loose (the family that forgets least sets it), so that a point which keeps as much
    #: but forgets more wins over one that barely reaches the target with a lower FD
    prefer_forgetting: bool = False
    #: whether a larger ``forget`` value is more forgetting (UA) or less (concept rate); by
    #: default the registered metric's own direction, so a task never restates it
    forget_higher_is_better: bool | None = None

    def __post_init__(self) -> None:
        if self.forget_higher_is_better is None:
            from ubench.catalog.registry import METRICS

            object.__setattr__(self, "forget_higher_is_better",
                               bool(METRICS.get(self.forget).higher_is_better))

    def reaches(self, value: float, target: float) -> bool:
        return value >= target if self.forget_higher_is_better else value <= target

    def score(self, value: float) -> float:
        """The forgetting score in [0, 1], higher = more forgetting (the fronts' x axis)."""
        return value if self.forget_higher_is_better else 1.0 - value

    def describe(self, target: float | None = None) -> str:
        t = target if target is not None else self.target
        op = ">=" if self.forget_higher_is_better else "<="
        where = (f"{t:g}" if t is not None else
                 f"the smallest of {list(self.ladder)} that every method family reaches")
        order = (["the most forgetting"] if self.prefer_forgetting else []) + \
            ([f"the lowest {self.tie_break}"] if self.tie_break else [])
        tie = f"; ties within {self.tie_margin:g} go to {', then '.join(order)}" if order else ""
        return f"maximise {self.keep} subject to {self.forget} {op} {where}{tie}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ladder": list(self.ladder), "text": self.describe()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningRule:
        """The rule a record or preset file carries (:meth:`to_dict`)."""
        return cls(forget=str(data["forget"]),
                   forget_higher_is_better=bool(data["forget_higher_is_better"]),
                   keep=str(data["keep"]), target=data.get("target"),
                   ladder=tuple(float(x) for x in data.get("ladder") or ()),
                   tie_margin=float(data.get("tie_margin", 0.005)),
                   tie_break=data.get("tie_break"),
                   prefer_forgetting=bool(data.get("prefer_forgetting", False)))



class Task(ABC, Generic[C]):
    """A benchmark task: base model, forget/remain request, evaluation."""

    name: ClassVar[str]
    #: bump when data, sampling or metrics change: old records then leave the main table
    version: ClassVar[str] = "1"
    #: the config dataclass; ``self.config`` is one
    Config: ClassVar[type[BaseConfig]]
    #: request fields this task fills
    provides: ClassVar[frozenset[str]] = frozenset()
    #: model capabilities ("class-conditional", "text-conditional", "xattn")
    model_capabilities: ClassVar[frozenset[str]] = frozenset()
    #: task-config keys that say *which* instance of the task's concept is forgotten (the
    #: class, the digit, the style): runs that differ only in them are instances of one setting,
    #: so the leaderboard and ``ubench compare`` aggregate them into one row
    instance_keys: ClassVar[tuple[str, ...]] = ()
    #: the task's **garbage policy**. ``None``: garbage (the judge's "not a digit" / "random
    #: noise" label on forget generations) counts as forgetting and the garbage rate is
    #: reported beside the ranking (class forgetting, as the paper's CIFAR metric counts
    #: "random noise" as forgotten). A number: a ranked row whose mean ``garbage_rate`` exceeds it
    #: forgets by destroying the prompt and does **not** reach the forgetting target (text to
    #: image: "a red 7 on blue, framed" should still give a red 7 on blue, as the retrain oracle
    #: does)
    garbage_limit: ClassVar[float | None] = None
    #: what ``--limit N`` caps, a quick run's sizes: config field -> its least value. Each field
    #: becomes min(its value, N) (a field at 0, meaning "no cap" or "the preset's size",
    #: becomes N), never below its least value. Existing fields, so an unlimited run's identity
    #: is unchanged and a limited one's differs
    limit_fields: ClassVar[Mapping[str, int]] = {}
    #: per method id, hyper-parameters this task's setting prescribes (e.g. the paper's SD
    #: recipe); applied before the user's ``--set method.*`` and recorded like any other value.
    #: A key the method's config lacks is a ConfigError
    #: (:func:`ubench.run.identity.check_method_defaults`)
    method_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: whether the runner saves the unlearned model in the run folder (``model/``, safetensors),
    #: so that attacks can load it later (``ubench attack``); reference rows are rebuilt instead
    save_model: ClassVar[bool] = True
    #: the fair protocol (``ubench tune``, :mod:`ubench.report.protocol`): the task-config
    #: overrides of
    #: each tuning cell — forget instances or prompt sets the leaderboard never evaluates — and
    #: the run seed of tuning runs (the leaderboard uses seeds 0-2)
    tuning_cells: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    tuning_seed: ClassVar[int] = 100
    #: the declared selection rule of ``ubench tune`` (None: the task has no tuning protocol)
    tuning_rule: ClassVar[TuningRule | None] = None
    #: another task whose tuned values this task uses (``--preset tuned``) instead of tuning its
    #: own: the t2i tasks share one tuning, as the paper uses one recipe for its SD tasks
    tuning_task: ClassVar[str | None] = None
    #: per attack id, settings this task's setting prescribes (budgets and learning rates sized
    #: for its model); applied before the user's ``--set attack.*`` and recorded
    attack_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init__(self, config: C) -> None:
        self.config: C = config

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

    def assets(self, uses_oracle: bool = False) -> dict[str, str]:
        """Digests of the assets a run uses (base weights, judge / evaluator, data; the oracle
        only when ``uses_oracle``), **part of the run identity**: two records with one run id
        were measured with the same models. Must be cheap and load or train nothing (pinned
        assets: their manifest digests; assets built from a recipe: the recipe's digest;
        user-supplied files are already in the identity through ``Config.inputs``)."""
        return {}

    # ------------------------------------------------------------------ what attacks use
    def forget_probe(self) -> ForgetProbe:
        """The plain forget conditions the task measures forgetting on, with their generation
        seeds, sampler and the id of its forgetting metric (``ua``, ``concept_rate``, ...).

        Attacks regenerate exactly these samples after attacking a model, so an attack at budget
        0 reproduces the run's own forgetting metric. A task that does not override it cannot be
        attacked (the attack runner refuses it before loading anything).
        """
        raise NotImplementedError(f"task {self.name!r} defines no forget probe")

    def concept_success(self, images: torch.Tensor, device: str
                        ) -> tuple[np.ndarray, dict[str, Any]]:
        """Whether each generated image (decoded, in [-1, 1]) shows the forgotten concept, by the
        task's own detector (the judge, the world's evaluators, NudeNet, CLIP zero-shot), and the
        detector's definition for the attack's metric records. The success test of every attack.
        """
        raise NotImplementedError(f"task {self.name!r} defines no concept detector")

    def load_model(self, folder: Path, device: str) -> DiffusionModel:
        """Load an unlearned model the runner saved in a run folder (``model/``)."""
        from ubench.models.diffusion import DiffusionModel

        return DiffusionModel.load(folder, device)


def supports_attacks(task_cls: type[Task[Any]]) -> bool:
    """Whether a task class defines what attacks need (a forget probe and a concept detector)."""
    return (task_cls.forget_probe is not Task.forget_probe
            and task_cls.concept_success is not Task.concept_success)


class Metric(ABC):
    """A registered metric: its name, direction, bounds, and how scores become a value.

    The class is the metric's single statement of direction and bounds. Tasks turn per-sample
    scores into a :class:`MetricValue` with :meth:`from_scores` (the mean, with a 95 % percentile
    bootstrap interval over samples) or a metric's own constructor (``FrechetDistance``); the
    definition they pass says how the scores were made (judge, sampler, seeds, ...).
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    #: which generations it is computed on ("forget" or "remain")
    split: ClassVar[str]
    #: the metric of its split that a leaderboard's trade-off plot puts on its axis when a table
    #: has several (e.g. the held-out alignment rather than the train one)
    headline: ClassVar[bool] = False
    #: the values the metric can take; intervals aggregated over runs are clipped to it
    bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)
    #: the smallest change in the bad direction that ``ubench compare`` calls a regression
    #: (besides its paired interval excluding 0): absolute, and relative to the baseline value;
    #: the larger applies. ``--tolerance NAME=x`` / ``NAME=x%`` overrides them.
    tolerance: ClassVar[float] = 0.01
    relative_tolerance: ClassVar[float] = 0.0

    @classmethod
    def from_scores(cls, scores: np.ndarray | list[float] | list[bool],
                    definition: Mapping[str, Any]) -> MetricValue:
        """The mean of per-sample ``scores`` with a percentile bootstrap interval over samples.

        ``n`` is the number of scores (also written into the definition); no scores give NaN.
        """
        import numpy as np

        from ubench.core.bootstrap import mean_with_ci

        value, lo, hi, n = mean_with_ci(scores)
        kept = np.asarray(scores, dtype=np.float64).reshape(-1)
        return cls.make(value, lo, hi, n, definition, samples={"scores": kept})

    @classmethod
    def make(cls, value: float, ci_low: float, ci_high: float, n: int,
             definition: Mapping[str, Any],
             samples: Mapping[str, np.ndarray] | None = None) -> MetricValue:
        """A :class:`MetricValue` of this metric (its direction; ``n`` added to the definition;
        ``samples``: per-sample data for paired comparisons, see :class:`MetricValue`)."""
        return MetricValue(float(value), float(ci_low), float(ci_high), int(n),
                           cls.higher_is_better, {**definition, "n": int(n)}, samples)
