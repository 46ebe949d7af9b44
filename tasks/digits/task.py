"""Task ``digits-class``: forget one digit from a class-conditional DDPM trained by ubench.

The offline analogue of the paper's CIFAR-10 class forgetting (its §4.1):

* **base model** — a class-conditional ``UNet2DModel`` (8x8, 0.65M parameters) trained here on the
  train split of scikit-learn's digits with 10 % label dropout (null class = 10) for guidance;
* **D_f** — every train image of ``forget_class`` (the paper uses all 5,000 images of the class);
* **D_r** — chosen by ``remain_policy``: ``balanced`` takes ``remain_per_class`` images from each of
  the nine other classes (the paper's diverse set, 50/class on CIFAR-10), ``two-class`` takes the
  same total from the two classes closest to the forget class (the paper's Table 3 "Case 1"
  low-diversity control); drawn without replacement with the run seed;
* **oracle** — the same architecture and recipe trained from scratch without the forget class;
* **metrics** — UA and RA judged by a CNN trained here (≥ 98 % held-out accuracy), and FD between
  judge features of remain-class generations and real held-out remain-class digits. Generation
  seeds are fixed by ``eval_seed`` and independent of the run seed, so every method is scored on
  the same starting noise.

Why 8x8 and not 16x16: the data is natively 8x8, and at equal CPU time 8x8 training reaches higher
sample accuracy (``bench/resolution.py`` measures both; numbers in docs/tasks/digits.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ubench.api import (
    ConditionedSet,
    Evaluation,
    ForgetProbe,
    MetricValue,
    Task,
    TuningRule,
    UnlearnRequest,
    generation_seeds,
)
from ubench.core.bootstrap import BOOTSTRAP_SEED
from ubench.core.config import MAX_SAMPLES, SEED_BOUND, BaseConfig, Bound, with_defaults
from ubench.core.digest import stable_hash
from ubench.core.errors import ConfigError, MissingAssetError, UbenchError
from ubench.metrics.classification import (
    GarbageRate,
    JudgeAgreementForget,
    JudgeAgreementRemain,
    NeighbourAccuracy,
    RemainingAccuracy,
    UnlearningAccuracy,
)
from ubench.metrics.frechet import FrechetDistance
from ubench.models.diffusion import DiffusionModel, class_conditional_model
from ubench.store.cache import asset_dir, cached, is_cached, load_cached
from ubench.store.grids import class_grid
from ubench.store.pinned import (
    export_model,
    export_tensors,
    pinned_digest,
    pinned_folder,
    write_entry,
)
from ubench.tasks.digits.data import data_digest, load_digits_splits
from ubench.tasks.digits.judge import (
    HEADLINE_JUDGE,
    NOT_A_DIGIT,
    VALIDATED_JUDGES,
    DigitsJudge,
    Judge,
    JudgeRecipe,
    JudgeSpec,
    judge_predict,
    judge_quality,
    load_judge,
    train_judge,
)
from ubench.tasks.digits.stress import accuracy_table
from ubench.training.diffusion import TrainSpec, train_diffusion

#: a run is flagged when its judges' agreement interval lies wholly this far below their agreement
#: on real held-out digits (docs/judges.md)
AGREEMENT_MARGIN: float = 0.05

#: the two classes "closest" to each digit (by the judge's confusions and shape), for the
#: low-diversity ``two-class`` remain policy; never contains the forget class itself
TWO_CLASS_PAIRS: dict[int, tuple[int, int]] = {
    0: (6, 8), 1: (7, 4), 2: (3, 8), 3: (5, 8), 4: (1, 9),
    5: (3, 6), 6: (0, 5), 7: (1, 9), 8: (3, 9), 9: (4, 7),
}
NUM_CLASSES = 10

Say = Callable[[str], None]
Progress = Callable[[str, int, int, dict[str, float]], None]


@dataclass(frozen=True)
class DigitsConfig(BaseConfig):
    """Parameters of ``digits-class`` (all recorded; all part of the run identity)."""

    #: the digit to forget
    forget_class: int = 0
    #: how D_r is built: ``balanced`` (paper's diverse set) or ``two-class`` (Table 3 Case 1)
    remain_policy: Literal["balanced", "two-class"] = "balanced"
    #: images per remaining class for ``balanced``; ``two-class`` uses the same total (9 x this)
    remain_per_class: int = 25
    #: number of generations for the forget class (UA)
    eval_forget: int = 500
    #: generations per remaining class (RA, FD)
    eval_per_class: int = 100
    #: DDIM steps for evaluation sampling (eta = 0)
    sampling_steps: int = 25
    #: classifier-free guidance scale w in eps_u + w (eps_c - eps_u)
    guidance: float = 2.0
    #: base of the per-sample generation seeds (independent of the run seed)
    eval_seed: int = 0

    bounds: ClassVar[Mapping[str, Bound]] = {
        "eval_seed": SEED_BOUND,
        "forget_class": Bound(ge=0, le=NUM_CLASSES - 1), "remain_per_class": Bound(ge=1),
        "eval_forget": Bound(ge=1, le=MAX_SAMPLES), "eval_per_class": Bound(ge=2, le=MAX_SAMPLES),
        "sampling_steps": Bound(ge=1, le=1000), "guidance": Bound(ge=0)}


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of the base/oracle UNet (part of the cache key)."""

    channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    init_seed: int = 0


class DigitsClass(Task[DigitsConfig]):
    """Forget one digit class from a class-conditional DDPM trained on scikit-learn's 8x8 digits."""

    name: ClassVar[str] = "digits-class"
    version: ClassVar[str] = "1"
    #: --limit N: at most N forget generations and N per remaining class (at least 10: FD)
    limit_fields: ClassVar[Mapping[str, int]] = {"eval_forget": 1, "eval_per_class": 10}
    instance_keys: ClassVar[tuple[str, ...]] = ("forget_class",)
    Config: ClassVar[type[BaseConfig]] = DigitsConfig
    provides: ClassVar[frozenset[str]] = frozenset({"forget_data", "remain_data", "oracle"})
    model_capabilities: ClassVar[frozenset[str]] = frozenset({"class-conditional"})

    model_spec: ClassVar[ModelSpec] = ModelSpec()
    #: 1,500 AdamW steps: ~99 % judged sample accuracy at guidance 2; ~4 min on one core
    #: (docs/tasks/digits.md)
    train_spec: ClassVar[TrainSpec] = TrainSpec()
    judge_spec: ClassVar[JudgeSpec] = JudgeSpec()
    #: the judge must reach this held-out accuracy or the task refuses to score
    min_judge_accuracy: ClassVar[float] = 0.98
    #: train references in worker processes with one thread each (deterministic, 2 in parallel)
    use_workers: ClassVar[bool] = True
    #: the fair protocol: tune on forget class 4 (seed 100; the leaderboard evaluates classes
    #: 0, 2, 5 at seeds 0-2) with fewer evaluation samples, and pick the best RA among points
    #: reaching UA >= 0.95 (ties within 0.005: lowest FD). One cell, not the two (1 and 4) first
    #: planned: the whole protocol must fit the CPU budget (docs/protocol.md); class 4 separated
    #: the points more than class 1 on the first points tried
    tuning_cells: ClassVar[tuple[Mapping[str, Any], ...]] = (
        {"forget_class": 4, "eval_forget": 200, "eval_per_class": 40, "eval_seed": 100},)
    tuning_rule: ClassVar[TuningRule | None] = TuningRule(
        forget="ua", keep="ra", target=0.95, tie_margin=0.005,
        tie_break="fd")
    #: read the judge, base model and oracles from the pinned files shipped with ubench
    #: (``ubench/pinned``, built by ``ubench assets build digits-class``) instead of the cache
    pinned: ClassVar[bool] = True

    # ------------------------------------------------------------------ asset keys
    def _key(self, role: str, **extra: Any) -> dict[str, Any]:
        if role in VALIDATED_JUDGES:
            return {"task_family": "digits", "role": role, "data": data_digest(),
                    **self.validated_recipe(role).key()}
        key: dict[str, Any] = {"task_family": "digits", "role": role, "data": data_digest(),
                               "code_version": "2" if role == "judge" else "1", **extra}
        if role == "judge":
            key["judge"] = asdict(self.judge_spec)
        else:
            key["model"] = asdict(self.model_spec)
            key["train"] = asdict(self.train_spec)
        return key

    def _keys(self) -> dict[str, dict[str, Any]]:
        return {
            "judge": self._key("judge"),
            "base": self._key("base"),
            "oracle": self._key("oracle", without_class=self.config.forget_class),
            **{role: self._key(role) for role in VALIDATED_JUDGES},
        }

    def asset_name(self, role: str) -> str:
        """The pinned asset name of ``role`` (``digits/judge``, ``digits/base``,
        ``digits/oracle-3``)."""
        return f"digits/oracle-{self.config.forget_class}" if role == "oracle" else f"digits/{role}"

    # ------------------------------------------------------------------ preparation
    def prepare(self, say: Say | None = None, progress: Progress | None = None) -> None:
        """Check the pinned judge and base model (or, for tasks without pinned assets, train
        them into the cache). The oracle is only touched by runs that use it.

        Missing cached assets are trained in worker processes with one thread each, two at a
        time: deterministic whatever the machine's core count, and about twice as fast on two
        cores.
        """
        self.build_missing([HEADLINE_JUDGE, "base"], say, progress)
        self._check_judge()

    def build_missing(self, roles: list[str], say: Say | None = None,
                      progress: Progress | None = None) -> None:
        """Train the cached assets among ``roles`` that are missing (pinned tasks: none)."""
        if self.pinned:
            for role in roles:
                self.asset_folder(role)  # checks the files, or one line with the fix
            return
        keys = self._keys()
        missing = {r: keys[r] for r in roles if not is_cached(f"digits/{r}", keys[r])}
        if missing:
            (say or _quiet)(f"training {', '.join(missing)} for {self.name} once (cached under "
                            f"{asset_dir('digits', {}).parent})")
            jobs = [(role, key, type(self).__module__, type(self).__name__)
                    for role, key in missing.items()]
            if self.use_workers:
                _run_workers(jobs, say or _quiet, progress)
            else:
                for j in jobs:
                    (say or _quiet)(_build_asset(*j, None))

    def asset_folder(self, role: str) -> Path:
        """The folder of ``role``'s asset: the pinned files (checked) or the cache folder (trained
        first when missing)."""
        key = self._keys()[role]
        if self.pinned:
            return pinned_folder(self.asset_name(role), key, self.name)
        d = asset_dir(f"digits/{role}", key)
        if not (d / "key.json").is_file():
            self.build_missing([role])
        return d

    @property
    def judge_quality(self) -> dict[str, float]:
        """The headline judge's quality measured when it was built (``quality.json``)."""
        d = self.judge_dir
        return load_cached(d, "digits judge's quality", lambda: _read_quality(d))

    @property
    def judge_accuracy(self) -> float:
        """The judge's held-out accuracy on real digits, measured when it was built."""
        return float(self.judge_quality["heldout_accuracy"])

    def _check_judge(self) -> None:
        acc = self.judge_accuracy
        if acc < self.min_judge_accuracy:
            raise UbenchError(f"the digits judge reached only {acc:.3f} held-out accuracy "
                              f"(< {self.min_judge_accuracy}); delete "
                              f"{self.judge_dir} and retry")

    def build_asset(self, role: str, directory: Path,
                    report: Callable[[int, int, float], None] | None = None) -> str:
        """Train one asset into ``directory``; returns a one-line summary. Runs in a worker."""
        train, held = load_digits_splits()
        if role == "judge" or role in VALIDATED_JUDGES:
            net = (train_judge(train.images, train.labels, self.judge_spec) if role == "judge"
                   else self.validated_recipe(role).train(train.images, train.labels))
            from safetensors.torch import save_file

            save_file(net.state_dict(), str(directory / "judge.safetensors"))
            quality = judge_quality(net, held.images, held.labels)
            (directory / "quality.json").write_text(json.dumps(quality, indent=1) + "\n")
            return (f"judge: held-out accuracy {quality['heldout_accuracy']:.4f}, garbage "
                    f"rejected {quality['garbage_reject_rate']:.3f}")
        keep = torch.ones_like(train.labels, dtype=torch.bool)
        if role == "oracle":
            keep = train.labels != self.config.forget_class
        model = class_conditional_model(resolution=8, channels=self.model_spec.channels,
                                        layers_per_block=self.model_spec.layers_per_block,
                                        num_classes=NUM_CLASSES, seed=self.model_spec.init_seed)
        ema = train_diffusion(model, train.images[keep], train.labels[keep], self.train_spec,
                              report)
        ema.save(directory)
        return f"{role}: trained {self.train_spec.steps} steps on {int(keep.sum())} images"

    # ------------------------------------------------------------------ assets
    @property
    def judge_dir(self) -> Path:
        """The folder of the headline judge (:data:`HEADLINE_JUDGE`)."""
        return self.asset_folder(HEADLINE_JUDGE)

    @cached_property
    def judge(self) -> Judge:
        """The headline judge: what UA, RA, concept and garbage rates and FD features read."""
        return self.validated_judge(HEADLINE_JUDGE)

    @cached_property
    def original_judge(self) -> DigitsJudge:
        """The judge of the records made before issue 31 (``digits/judge``): kept pinned so that
        ``ubench assets judges`` shows what it misread, never behind a metric."""
        d = self.asset_folder("judge")
        net = load_cached(d, "digits judge", lambda: load_judge(str(d / "judge.safetensors")))
        assert isinstance(net, DigitsJudge)
        return net

    def validated_recipe(self, role: str) -> JudgeRecipe:
        """How the validated judge ``role`` is trained for this task (tiny tasks train it for a
        few epochs)."""
        return VALIDATED_JUDGES[role]

    def validated_judge(self, role: str) -> Judge:
        """One of the validated judges (``judge-robust``, ``judge-partner``), loaded from its
        pinned (or, for tiny tasks, cached) files."""
        if role not in VALIDATED_JUDGES:
            raise ConfigError(f"unknown judge {role!r}; valid: {', '.join(VALIDATED_JUDGES)}")
        d = self.asset_folder(role)
        arch = VALIDATED_JUDGES[role].arch
        return load_cached(d, f"digits {role}",
                           lambda: load_judge(str(d / "judge.safetensors"), arch))

    def judge_agreement(self, images: torch.Tensor, splits: Mapping[str, slice],
                        definition: Mapping[str, Any]
                        ) -> tuple[dict[str, MetricValue], dict[str, Any]]:
        """The validated judge and its partner on ``images`` (digit images in [-1, 1]): the
        agreement metrics of each split in ``splits`` (``forget``, ``remain``), and details —
        what each judge read on each split, their agreement on real held-out digits, and
        whether the run's **remain** split is flagged: an agreement whose interval lies wholly
        more than :data:`AGREEMENT_MARGIN` below the agreement on real digits (remain
        generations should be real digits of known classes). The forget split is not flagged
        here: what a model draws for a concept it no longer knows divides the judges even for
        the retrain oracle (52 % agreement on digits class 0), so the report compares a row's
        forget agreement with the oracle row's (``ubench.report.table``)."""
        robust, partner = (self.validated_judge(r) for r in VALIDATED_JUDGES)
        a = judge_predict(robust, images)[0].numpy()
        b = judge_predict(partner, images)[0].numpy()
        _, held = load_digits_splits()
        real = float((judge_predict(robust, held.images)[0]
                      == judge_predict(partner, held.images)[0]).float().mean())
        digests = {r: (pinned_digest(self.asset_name(r), self._key(r), self.name)
                       if self.pinned else "recipe:" + stable_hash(self._key(r), 16))
                   for r in VALIDATED_JUDGES}
        metrics: dict[str, MetricValue] = {}
        read: dict[str, dict[str, dict[str, int]]] = {}
        flagged = []
        cls = {"forget": JudgeAgreementForget, "remain": JudgeAgreementRemain}
        for split, where in splits.items():
            agree = a[where] == b[where]
            m = cls[split].from_scores(agree, {
                **definition, "judges": digests, "real_agreement": real,
                "formula": f"mean(judge-robust(x) == judge-partner(x)) over {split} "
                           "generations"})
            metrics[cls[split].name] = m
            read[split] = {r: {_label_name(int(k)): int(v) for k, v in
                               zip(*np.unique(p[where], return_counts=True), strict=True)}
                           for r, p in zip(VALIDATED_JUDGES, (a, b), strict=True)}
            if split == "remain" and m.ci_high < real - AGREEMENT_MARGIN:
                flagged.append(split)
        details = {"judges_read": read, "judges_real_agreement": real,
                   "judges_flagged": flagged}
        return metrics, details

    def _model(self, role: str, device: str) -> DiffusionModel:
        d = self.asset_folder(role)
        return load_cached(d, f"digits {role} model", lambda: DiffusionModel.load(d, device))

    def base_model(self, device: str) -> DiffusionModel:
        return self._model("base", device)

    def oracle_model(self, device: str) -> DiffusionModel:
        return self._model("oracle", device)

    def assets(self, uses_oracle: bool = False) -> dict[str, str]:
        """Digests of the judge, the base model, the data and (when used) this class's oracle:
        the pinned assets' manifest digests, or for unpinned (tiny) tasks the digests of the
        recipes that build them. Known before anything is loaded or trained."""
        roles = {"judge": HEADLINE_JUDGE, "base": "base",
                 **({"oracle": "oracle"} if uses_oracle else {})}
        keys = self._keys()
        out = {"data": data_digest()}
        for name, role in roles.items():
            out[name] = (pinned_digest(self.asset_name(role), keys[role], self.name)
                         if self.pinned else "recipe:" + stable_hash(keys[role], 16))
        return out

    # ------------------------------------------------------------------ pinned assets
    #: samples per class when a built model's quality is measured for the manifest
    quality_samples: ClassVar[int] = 50

    def pinned_names(self) -> list[str]:
        """Every pinned asset of the digits tasks, in build order."""
        return (["digits/judge", *(f"digits/{r}" for r in VALIDATED_JUDGES), "digits/base"]
                + [f"digits/oracle-{k}" for k in range(NUM_CLASSES)])

    def build_pinned(self, root: Path, say: Say, progress: Progress | None = None,
                     only: list[str] | None = None) -> list[str]:
        """Train the judges, the base model and the oracles of all ten classes (into the cache,
        two single-thread workers; finished ones are kept) and export them to ``root`` as pinned
        files with their manifest entries; the quality is measured on the stored files.
        ``only`` (asset names, e.g. ``digits/judge-robust``) builds just those. Returns the
        asset names written."""
        names = self.pinned_names()
        wanted = names if only is None else [n for n in names if n in only]
        unknown = sorted(set(only or ()) - set(names))
        if unknown:
            raise ConfigError(f"unknown asset {unknown[0]!r} for {self.name}; valid: "
                              f"{', '.join(names)}")
        keys = {n.removeprefix("digits/"): (
            self._key("oracle", without_class=int(n.rsplit("-", 1)[1]))
            if n.startswith("digits/oracle-") else self._key(n.removeprefix("digits/")))
            for n in wanted}
        missing = {r: k for r, k in keys.items()
                   if not is_cached(_cache_name(r), k)}
        if missing:
            say(f"training {len(missing)} assets ({', '.join(missing)}); finished ones are "
                f"cached under {asset_dir('digits', {}).parent}")
            jobs = [(_role_of(r), k,
                     type(self).__module__, type(self).__name__)
                    for r, k in missing.items()]
            _run_workers(jobs, say, progress)
        build = f"ubench assets build {self.name}"
        _, held = load_digits_splits()
        for role in [r for r in keys if r == "judge" or r in VALIDATED_JUDGES]:
            name = f"digits/{role}"
            target = root / name
            export_tensors(asset_dir(_cache_name(role), keys[role]) / "judge.safetensors",
                           target / "judge.safetensors")
            arch = VALIDATED_JUDGES[role].arch if role in VALIDATED_JUDGES else "cnn-maxpool"
            net = load_judge(str(target / "judge.safetensors"), arch)
            quality: dict[str, Any] = dict(judge_quality(net, held.images, held.labels))
            if role in VALIDATED_JUDGES:  # the stress table, measured on the stored weights
                quality["stress"] = accuracy_table(partial(_labels_of, net), held.images,
                                                   held.labels)
            (target / "quality.json").write_text(json.dumps(quality, indent=1) + "\n")
            write_entry(root, name, keys[role], quality, build)
            say(f"{name}: held-out accuracy {quality['heldout_accuracy']:.4f}, garbage "
                f"rejected {quality['garbage_reject_rate']:.3f}")
        models = [r for r in keys if r == "base" or r.startswith("oracle-")]
        if models:
            judge = load_judge(str(root / "digits/judge/judge.safetensors"))
        for role in models:
            key = keys[role]
            name = f"digits/{role}"
            export_model(asset_dir(_cache_name(role), key), root / name)
            model = DiffusionModel.load(root / name)
            without = key.get("without_class")
            q = self.sample_quality(model, judge, without)
            write_entry(root, name, key, q, build)
            say(f"{name}: judged sample accuracy {q['judged_accuracy']:.4f}"
                + (f", forget class {without} drawn {q['forget_class_rate']:.3f}"
                   if without is not None else ""))
        return wanted

    def sample_quality(self, model: DiffusionModel, judge: Judge,
                       without: int | None = None) -> dict[str, Any]:
        """How well ``model`` draws each digit, by ``judge``: ``quality_samples`` per class at the
        task's default sampler, fixed seeds. For an oracle (``without`` = its missing class) the
        accuracy is over the other classes and ``forget_class_rate`` is how often a sample
        conditioned on the missing class is still judged as it."""
        c = DigitsConfig()
        n = self.quality_samples
        labels = torch.arange(NUM_CLASSES).repeat_interleave(n)
        images = model.sample(labels, steps=c.sampling_steps, guidance=c.guidance,
                              seeds=generation_seeds(10_000, len(labels)))
        pred, _ = judge_predict(judge, images)
        hit = (pred == labels).float().reshape(NUM_CLASSES, n).mean(1)
        kept = [k for k in range(NUM_CLASSES) if k != without]
        out: dict[str, Any] = {
            "judged_accuracy": float(hit[kept].mean()),
            "per_class": {str(k): float(hit[k]) for k in range(NUM_CLASSES)},
            "rejected": float((pred == NOT_A_DIGIT).float().mean()),
            "samples_per_class": n, "sampler": f"DDIM {c.sampling_steps} steps",
            "guidance": c.guidance}
        if without is not None:
            out["forget_class_rate"] = float(hit[without])
        return out

    # ------------------------------------------------------------------ request
    def remain_classes(self) -> list[int]:
        c = self.config
        if c.remain_policy == "two-class":
            return list(TWO_CLASS_PAIRS[c.forget_class])
        return [k for k in range(NUM_CLASSES) if k != c.forget_class]

    def request(self, seed: int) -> UnlearnRequest:
        c = self.config
        train, _ = load_digits_splits()
        forget = ConditionedSet(
            train.of_class(c.forget_class),
            torch.full((int((train.labels == c.forget_class).sum()),), c.forget_class),
            {"classes": [c.forget_class], "size": int((train.labels == c.forget_class).sum())},
        )
        total = c.remain_per_class * (NUM_CLASSES - 1)
        classes = self.remain_classes()
        per_class = [total // len(classes) + (1 if i < total % len(classes) else 0)
                     for i in range(len(classes))]
        gen = torch.Generator("cpu").manual_seed(seed)
        xs, ys = [], []
        for k, m in zip(classes, per_class, strict=True):
            pool = train.of_class(k)
            if m > len(pool):
                raise ConfigError(
                    f"task.remain_per_class={c.remain_per_class} needs {m} images of class {k} "
                    f"for remain_policy={c.remain_policy}, but only {len(pool)} exist; lower it")
            xs.append(pool[torch.randperm(len(pool), generator=gen)[:m]])
            ys.append(torch.full((m,), k))
        remain = ConditionedSet(torch.cat(xs), torch.cat(ys), {
            "policy": c.remain_policy, "classes": classes, "per_class": per_class,
            "size": total})
        return UnlearnRequest(forget=forget, remain=remain,
                              oracle=lambda: self.oracle_model("cpu"))

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: DiffusionModel, device: str) -> Evaluation:
        c = self.config
        remain = [k for k in range(NUM_CLASSES) if k != c.forget_class]
        f_labels = torch.full((c.eval_forget,), c.forget_class)
        r_labels = torch.tensor(remain).repeat_interleave(c.eval_per_class)
        labels = torch.cat([f_labels, r_labels])
        seeds = generation_seeds(c.eval_seed, len(labels))
        images = model.sample(labels, steps=c.sampling_steps, guidance=c.guidance, seeds=seeds)
        pred, feats = judge_predict(self.judge, images)
        pred_np, feats_np = pred.numpy(), feats.double().numpy()
        nf = c.eval_forget
        _, held = load_digits_splits()
        real_mask = held.labels != c.forget_class
        _, real_feats = judge_predict(self.judge, held.images[real_mask])

        definition = {
            "judge": "digits CNN trained by ubench, 11 classes (10 = not a digit)",
            "judge_digest": self.assets()["judge"], "judge_quality": self.judge_quality,
            "sampler": "DDIM eta=0", "steps": c.sampling_steps, "guidance": c.guidance,
            "generation_seeds": f"{seeds[0]}..{seeds[-1]} (one per sample)",
            "bootstrap": f"95%, {BOOTSTRAP_SEED=}: percentile (UA, RA), basic (FD)",
        }
        metrics = {
            "ua": UnlearningAccuracy.from_predictions(pred_np[:nf], c.forget_class, {
                **definition, "forget_class": c.forget_class,
                "formula": "1 - mean(judge(x) == forget_class) over forget-class generations"}),
            "ra": RemainingAccuracy.from_predictions(pred_np[nf:], r_labels.numpy(), {
                **definition, "classes": remain,
                "formula": "mean(judge(x) == label) over remaining-class generations"}),
            "garbage_rate": GarbageRate.from_predictions(pred_np[:nf], NOT_A_DIGIT, {
                **definition, "forget_class": c.forget_class,
                "formula": "mean(judge(x) == not a digit) over forget-class generations"}),
            "fd": FrechetDistance.from_features(feats_np[nf:], real_feats.double().numpy(), {
                **definition, "features": "judge penultimate layer (64-d)",
                "reference": f"{int(real_mask.sum())} real held-out digits of remaining classes",
                "formula": "Frechet distance of Gaussians fitted to the two feature sets"}),
        }
        samples = [{"seed": s, "condition": int(y), "judged": int(p),
                    "split": "forget" if i < nf else "remain",
                    **({"label": _label_name(int(p))} if i < nf else {})}
                   for i, (s, y, p) in enumerate(zip(seeds, labels.tolist(), pred_np, strict=True))]
        # side effects on the neighbours: the two classes closest to the forget class
        neighbours = list(TWO_CLASS_PAIRS[c.forget_class])
        near = np.isin(r_labels.numpy(), neighbours)
        metrics["neighbour_accuracy"] = NeighbourAccuracy.from_scores(
            (pred_np[nf:] == r_labels.numpy())[near], {
                **definition, "classes": neighbours,
                "neighbour_rule": "the two classes closest to the forget class "
                                  "(TWO_CLASS_PAIRS: the judge's confusions and shape)",
                "formula": "mean(judge(x) == label) over the neighbour classes' generations"})
        agreement, judges = self.judge_agreement(
            images, {"forget": slice(0, nf), "remain": slice(nf, None)}, definition)
        metrics.update(agreement)
        grid = class_grid(images, labels, [c.forget_class, *remain], per_row=10)
        # what the forget-class generations turned into (judged class -> count)
        judged = dict(zip(*np.unique(pred_np[:nf], return_counts=True), strict=True))
        details = {"forget_judged_as": {_label_name(int(k)): int(v) for k, v in judged.items()},
                   **judges}
        return Evaluation(metrics=metrics, grid=grid, samples=samples, details=details)


    # ------------------------------------------------------------------ attacks
    def forget_probe(self) -> ForgetProbe:
        """The forget-class generations of :meth:`evaluate` (its first ``eval_forget`` seeds)."""
        c = self.config
        return ForgetProbe(torch.full((c.eval_forget,), c.forget_class),
                           generation_seeds(c.eval_seed, c.eval_forget), c.sampling_steps,
                           c.guidance, "ua", f"{c.eval_forget} generations of the forget class")

    def concept_success(self, images: torch.Tensor, device: str
                        ) -> tuple[np.ndarray, dict[str, Any]]:
        """The judge calls the image the forget class."""
        pred, _ = judge_predict(self.judge, images)
        return pred.numpy() == self.config.forget_class, {
            "detector": "digits CNN trained by ubench", "judge_sha": self.assets()["judge"],
            "success": f"judge(x) == {self.config.forget_class} (the forget class)"}


#: digits-class with a handful of generations and 3 sampling steps
TinyDigitsConfig = with_defaults(DigitsConfig, "TinyDigitsConfig", remain_per_class=4,
                                 eval_forget=16, eval_per_class=4, sampling_steps=3)


class DigitsClassTiny(DigitsClass):
    """Tiny digits-class for tests: small model, few steps, few samples (numbers meaningless)."""

    name: ClassVar[str] = "digits-class-tiny"
    Config: ClassVar[type[BaseConfig]] = TinyDigitsConfig
    model_spec: ClassVar[ModelSpec] = ModelSpec(channels=(16, 32))
    train_spec: ClassVar[TrainSpec] = TrainSpec(steps=40, batch_size=32)
    judge_spec: ClassVar[JudgeSpec] = JudgeSpec(epochs=3)
    min_judge_accuracy: ClassVar[float] = 0.5
    use_workers: ClassVar[bool] = False
    pinned: ClassVar[bool] = False

    def validated_recipe(self, role: str) -> JudgeRecipe:
        # the headline judge must pass min_judge_accuracy: 5 epochs reach ~0.69, 2 only ~0.29
        epochs = 5 if role == HEADLINE_JUDGE else 2
        return replace(VALIDATED_JUDGES[role], spec=JudgeSpec(epochs=epochs))
    tuning_cells: ClassVar[tuple[Mapping[str, Any], ...]] = ({"forget_class": 1},
                                                             {"forget_class": 4})


# ---------------------------------------------------------------------- helpers
def _quiet(_message: str) -> None:
    pass


def _label_name(label: int) -> str:
    """A judged label as the record writes it: the digit, or ``not a digit``."""
    return "not a digit" if label == NOT_A_DIGIT else str(label)


def _read_quality(folder: Path) -> dict[str, float]:
    """The judge's ``quality.json`` (a MissingAssetError when absent, for load_cached)."""
    path = folder / "quality.json"
    if not path.is_file():
        raise MissingAssetError(f"{path} is missing")
    quality = json.loads(path.read_text())
    float(quality["heldout_accuracy"])  # a bad value fails here, inside load_cached
    return dict(quality)


def _run_workers(jobs: list[tuple[str, dict[str, Any], str, str]], say: Say,
                 progress: Progress | None) -> None:
    """Build assets in two single-thread spawn workers, relaying their progress to ``progress``."""
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, wait

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(
            max_workers=min(2, len(jobs)), mp_context=ctx) as pool:
        q = manager.Queue()
        pending = {pool.submit(_build_asset, *j, q) for j in jobs}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            while True:
                try:
                    role, step, total, loss = q.get_nowait()
                except queue_mod.Empty:
                    break
                if progress is not None:
                    progress(f"train {role}", step, total, {"loss": loss})
            for f in done:
                say(f.result())


def _labels_of(judge: Judge, images: torch.Tensor) -> torch.Tensor:
    """The labels ``judge`` gives ``images`` (for :func:`accuracy_table`)."""
    return judge_predict(judge, images)[0]


def _role_of(asset: str) -> str:
    """The build role of an asset: ``oracle-3`` is built as ``oracle``, the others as
    themselves."""
    return "oracle" if asset.startswith("oracle-") else asset


def _cache_name(asset: str) -> str:
    """The cache folder family of an asset (``digits/oracle`` for every oracle)."""
    return f"digits/{_role_of(asset)}"


def _build_asset(role: str, key: dict[str, Any], module: str, cls_name: str,
                 q: Any | None) -> str:
    """Worker entry point: build one asset of a digits task (importable for spawn).

    With a queue ``q`` it runs single-threaded and reports (role, step, total, loss) on it.
    """
    import importlib

    report = None
    if q is not None:
        torch.set_num_threads(1)

        def report(step: int, total: int, loss: float) -> None:
            if step % 10 == 0 or step == total:
                q.put((role, step, total, loss))

    task_cls = getattr(importlib.import_module(module), cls_name)
    task = task_cls(task_cls.Config(forget_class=key.get("without_class", 0)))
    summary: list[str] = []
    cached(_cache_name(role), key, lambda d: summary.append(task.build_asset(role, d, report)))
    return summary[0] if summary else f"{role}: found in cache"
