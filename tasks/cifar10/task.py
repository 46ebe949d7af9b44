"""Task ``cifar10-class``: forget one CIFAR-10 class from a class-conditional DDPM (paper §4.1).

The paper's Table 1 setting (its digest's §3.1, §4.1, §5.1), on the common model layer:

* **data** — CIFAR-10's train set from a local copy (``tasks/cifar10/data.py``: the binary release
  or the Hugging Face parquet files; never the pickles, never downloaded);
* **base model** — a class-conditional ``UNet2DModel`` (DDPM's CIFAR-10 network, 35.75M
  parameters, null class 10 for classifier-free guidance) from ``--set task.model=<folder>``
  (ubench, diffusers pipeline or bare UNet layout; safetensors) or the one
  ``ubench pretrain --task cifar10-class`` trained with the default recipe;
* **D_f** — every train image of ``forget_class`` (5,000); **D_r** — ``balanced``:
  ``remain_per_class`` (50) images of each other class (450, the paper's diverse set), or
  ``two-class``: the same total from the class's two related classes (:data:`TWO_CLASS_PAIRS`;
  the paper's Table 3 "Case 1"); drawn without replacement with the run seed;
* **oracle** (``retrain``) — ``ubench pretrain --task cifar10-class --exclude-class K`` or
  ``--set task.oracle=<folder>``; never trained inside a run;
* **metrics** — UA and RA by zero-shot CLIP ViT-B/32 (OpenAI weights, open_clip, QuickGELU) over
  the paper's 11 labels "a photo of a {x}" (the ten classes and "random noise"); FID by
  clean-fid's "clean" mode of the remaining-class generations against statistics of the whole
  local train set (computed once, cached by data digest and Inception weights); optionally the
  forget class's FID as a detail. Generation: per-sample seeds fixed by ``eval_seed`` (the same
  starting noise for every method), sampler and steps recorded; sample counts per side
  ``budget`` 5,000 (default) or ``paper`` 50,000.

A model folder holding ``ubench_assets.json`` (written only by
:func:`ubench.testing.inject_test_evaluators`) is evaluated with injected random networks, and
every metric says ``injected``; ``cifar10-class-tiny`` always injects them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ubench.api import (
    ConditionedSet,
    Evaluation,
    ForgetProbe,
    Task,
    TuningRule,
    UnlearnRequest,
    generation_seeds,
)
from ubench.core.bootstrap import BOOTSTRAP_SEED
from ubench.core.config import (
    MAX_BATCH,
    MAX_SAMPLES,
    SEED_BOUND,
    BaseConfig,
    Bound,
    require,
    with_defaults,
)
from ubench.core.digest import file_digest
from ubench.core.errors import ConfigError, MissingAssetError
from ubench.core.paths import ubench_home
from ubench.metrics.classification import GarbageRate, RemainingAccuracy, UnlearningAccuracy
from ubench.metrics.frechet import FID, FeatureNet, gaussian_stats
from ubench.models.diffusion import (
    SAMPLERS,
    DiffusionModel,
    class_conditional_model,
    load_class_conditional,
)
from ubench.store.cache import asset_dir, cached, load_cached
from ubench.store.grids import rgb_grid
from ubench.tasks.cifar10 import recipes as R
from ubench.tasks.cifar10.data import CLASSES, NUM_CLASSES, CifarData, as_float, load_train
from ubench.training.pretrain import CODE_VERSION, PretrainJob, PretrainSpec

#: index of the paper's reject label "random noise" among the CLIP labels
NOISE_LABEL = R.CLIP_LABELS.index("random noise")

Say = Callable[[str], None]
Progress = Callable[[str, int, int, dict[str, float]], None]
TWO_CLASS_PAIRS = R.TWO_CLASS_PAIRS


@dataclass(frozen=True)
class CifarConfig(BaseConfig):
    """Parameters of ``cifar10-class`` (all recorded; all part of the run identity)."""

    #: CIFAR-10: the binary release folder, a parquet file or folder; empty: the HF cache
    data: str = ""
    #: the base model's folder; empty: the model ``ubench pretrain`` trained by default
    model: str = ""
    #: the retrain oracle's folder; empty: ``ubench pretrain --exclude-class <forget_class>``'s
    oracle: str = ""
    #: open_clip ViT-B/32 OpenAI weights file; empty: the local Hugging Face cache
    clip_weights: str = ""
    #: clean-fid's inception-2015-12-05.pt; empty: ubench's weights folder or /tmp
    inception_weights: str = ""
    #: the class to forget (0 airplane .. 9 truck)
    forget_class: int = 0
    #: how D_r is built: ``balanced`` (the paper's diverse set) or ``two-class`` (Table 3 Case 1)
    remain_policy: Literal["balanced", "two-class"] = "balanced"
    #: images per remaining class for ``balanced`` (paper: 50); ``two-class`` uses 9 x this
    remain_per_class: int = 50
    #: evaluation sample counts per side: ``budget`` 5,000 or the ``paper``'s 50,000
    samples: Literal["budget", "paper"] = "budget"
    #: forget-class / remaining-class generations; 0: the ``samples`` preset's count
    eval_forget: int = 0
    eval_remain: int = 0
    #: diffusers sampler (``ddim``: DDIM eta 0; ``dpm-solver``: DPM-Solver++ 2M) and its steps
    sampler: Literal["ddim", "dpm-solver"] = "ddim"
    sampling_steps: int = 50
    #: classifier-free guidance w in eps_u + w (eps_c - eps_u); 1 = plain conditional sampling,
    #: as the paper samples its (unguided) EDM model
    guidance: float = 1.0
    #: base of the per-sample generation seeds (independent of the run seed)
    eval_seed: int = 0
    #: images per generation batch
    batch_size: int = 500
    #: FID of the remaining-class generations (needs the Inception weights)
    fid: bool = True
    #: also the forget-class generations' FID (a detail, not a metric)
    fid_forget: bool = False

    inputs: ClassVar[tuple[str, ...]] = ("data", "model", "oracle", "clip_weights",
                                         "inception_weights")
    bounds: ClassVar[Mapping[str, Bound]] = {
        "eval_seed": SEED_BOUND,
        "forget_class": Bound(ge=0, le=NUM_CLASSES - 1), "remain_per_class": Bound(ge=1),
        "eval_forget": Bound(ge=0, le=MAX_SAMPLES), "eval_remain": Bound(ge=0, le=MAX_SAMPLES),
        "sampling_steps": Bound(ge=1, le=1000), "guidance": Bound(ge=0),
        "batch_size": Bound(ge=1, le=MAX_BATCH)}

    def validate(self) -> None:
        require(self.sampler in SAMPLERS, f"sampler must be one of {', '.join(SAMPLERS)}")
        if self.data:  # the layout of a given data path, before the run writes anything
            from ubench.tasks.cifar10.data import check_layout

            check_layout(self.data)
        require(self.n_remain == 0 or self.n_remain >= NUM_CLASSES - 1,
                f"eval_remain must be 0 (the preset) or at least {NUM_CLASSES - 1} (one per "
                f"remaining class); got {self.eval_remain}")

    @property
    def n_forget(self) -> int:
        return self.eval_forget or R.EVAL_PRESETS[self.samples]

    @property
    def n_remain(self) -> int:
        return self.eval_remain or R.EVAL_PRESETS[self.samples]


class Cifar10Class(Task[CifarConfig]):
    """Forget one CIFAR-10 class from a class-conditional DDPM (paper Table 1); CLIP UA/RA + FID."""

    name: ClassVar[str] = "cifar10-class"
    version: ClassVar[str] = "1"
    #: --limit N: at most N forget and N remain generations (at least one per remaining class)
    limit_fields: ClassVar[Mapping[str, int]] = {"eval_forget": 1, "eval_remain": 9}
    instance_keys: ClassVar[tuple[str, ...]] = ("forget_class",)
    Config: ClassVar[type[BaseConfig]] = CifarConfig
    provides: ClassVar[frozenset[str]] = frozenset({"forget_data", "remain_data", "oracle"})
    model_capabilities: ClassVar[frozenset[str]] = frozenset({"class-conditional"})
    method_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = R.CIFAR_METHOD_DEFAULTS
    #: the fair protocol (docs/protocol.md): tune on forget classes 1 and 4 (seed 100; Table 1
    #: evaluates every class, so report the classes other than these when tuning), best RA
    #: among points reaching UA >= 0.95, ties within 0.005 to the lowest FID
    tuning_cells: ClassVar[tuple[Mapping[str, Any], ...]] = (
        {"forget_class": 1}, {"forget_class": 4})
    tuning_rule: ClassVar[TuningRule | None] = TuningRule(
        forget="ua", keep="ra", target=0.95, tie_margin=0.005,
        tie_break="fid")

    model_spec: ClassVar[R.ModelSpec] = R.ModelSpec()
    pretrain_spec: ClassVar[PretrainSpec] = R.PRETRAIN
    #: evaluate with injected random CLIP / Inception whatever the model folder says (tiny)
    injected_evaluators: ClassVar[bool] = False

    def __init__(self, config: CifarConfig) -> None:
        super().__init__(config)
        self._say: Say = lambda _m: None
        self._progress: Progress | None = None
        #: the run's device (set by ``base_model``): the oracle is loaded there too, so that
        #: every row of a table is generated with the same precision
        self._device = "cpu"

    # ------------------------------------------------------------------ data and models
    @cached_property
    def data(self) -> CifarData:
        return load_train(self.config.data)

    def pretrain_key(self, exclude_class: int | None, spec: PretrainSpec) -> dict[str, Any]:
        """Identity of a pretrained model: data, architecture, recipe, excluded class, code."""
        return {"task_family": "cifar10", "role": "base" if exclude_class is None else "oracle",
                "data": self.data.digest, "model": asdict(self.model_spec),
                "train": asdict(spec), "exclude_class": exclude_class,
                "code_version": CODE_VERSION}

    def default_model_dir(self, exclude_class: int | None = None) -> Path:
        """Where ``ubench pretrain`` puts the default-recipe model (base or oracle)."""
        return asset_dir("cifar10/pretrained", self.pretrain_key(exclude_class,
                                                                 self.pretrain_spec))

    def build_model(self) -> DiffusionModel:
        s = self.model_spec
        return class_conditional_model(
            resolution=32, channels=s.channels, layers_per_block=s.layers_per_block,
            num_classes=NUM_CLASSES, seed=s.init_seed, in_channels=3,
            attention_levels=s.attention_levels, norm_num_groups=s.norm_num_groups,
            **s.unet_options())

    def pretrain_job(self, exclude_class: int | None = None, steps: int | None = None,
                     batch_size: int | None = None, out: str | None = None) -> PretrainJob:
        """What ``ubench pretrain`` trains: the base model, or the oracle without a class."""
        if exclude_class is not None and not 0 <= exclude_class < NUM_CLASSES:
            raise ConfigError(f"--exclude-class must be in 0..{NUM_CLASSES - 1}; got "
                              f"{exclude_class}")
        spec = self.pretrain_spec
        changes = {k: v for k, v in (("steps", steps), ("batch_size", batch_size))
                   if v is not None}
        spec = PretrainSpec(**{**asdict(spec), **changes})
        spec.check()
        data = self.data
        keep = np.ones(len(data.labels), bool) if exclude_class is None \
            else data.labels != exclude_class
        key = self.pretrain_key(exclude_class, spec)
        what = (f"the base model of {self.name}" if exclude_class is None else
                f"the {self.name} oracle without class {exclude_class} ({CLASSES[exclude_class]})")
        target = Path(out).expanduser() if out else asset_dir("cifar10/pretrained", key)
        return PretrainJob(self.build_model, data.images[keep], data.labels[keep], spec, key,
                           target, what)

    def _pretrain_hint(self, exclude_class: int | None) -> str:
        flag = "" if exclude_class is None else f" --exclude-class {exclude_class}"
        field = "task.model" if exclude_class is None else "task.oracle"
        command = f"`ubench pretrain --task {self.name}{flag}`"
        if not self.injected_evaluators:  # the real task: a GPU job
            command = command[:-1] + " --device cuda` (a GPU; docs/tasks/cifar10.md)"
        return f"train it with {command} or pass --set {field}=/path/to/a/diffusers/folder"

    def _model_folder(self, exclude_class: int | None) -> Path:
        given = self.config.model if exclude_class is None else self.config.oracle
        if given:
            return Path(given).expanduser()
        folder = self.default_model_dir(exclude_class)
        if not (folder / "key.json").is_file():
            what = "base model" if exclude_class is None else \
                f"retrain oracle without class {exclude_class}"
            raise MissingAssetError(f"no {self.name} {what} on this machine; "
                                    + self._pretrain_hint(exclude_class))
        return folder

    def _load(self, exclude_class: int | None, device: str) -> DiffusionModel:
        folder = self._model_folder(exclude_class)
        model = load_class_conditional(folder, num_classes=NUM_CLASSES, in_channels=3,
                                       resolution=32, device=device,
                                       hint=self._pretrain_hint(exclude_class))
        model.mixed_precision = torch.device(device).type == "cuda"
        return model

    def base_model(self, device: str) -> DiffusionModel:
        self._device = device
        return self._load(None, device)

    def oracle_model(self, device: str) -> DiffusionModel:
        return self._load(self.config.forget_class, device)

    @cached_property
    def injected(self) -> dict[str, str]:
        """Evaluators the model folder asks to inject (test models only; see the module doc)."""
        if self.injected_evaluators:
            return {"clip": "tiny-random", "inception": "tiny-random"}
        from ubench.metrics.injected import ASSETS_FILE

        f = self._model_folder(None) / ASSETS_FILE
        return json.loads(f.read_text()) if f.is_file() else {}

    # ------------------------------------------------------------------ preparation
    def prepare(self, say: Say | None = None, progress: Progress | None = None) -> None:
        """Check every input, in this order, before any work: the data (read and decoded), the
        base model (loaded once on the CPU), the CLIP weights, the Inception weights. The FID
        reference statistics are computed at the first evaluation, on the run's device."""
        self._say, self._progress = say or (lambda _m: None), progress
        self.data  # noqa: B018 - reads the data or raises one line
        self._load(None, "cpu")
        if self.injected:
            names = ", ".join(sorted(k for k in self.injected if k != "note"))
            self._say(f"note: the evaluators ({names}) are injected test networks; scores are "
                      "meaningless")
        self.clip_checkpoint()
        if self.config.fid:
            self.inception_weights()

    def clip_checkpoint(self) -> Path | None:
        """The CLIP weights file (None when injected); one line when it is missing."""
        if self.injected.get("clip") == "tiny-random":
            return None
        from ubench.metrics.clip_score import resolve_clip_weights

        try:
            return resolve_clip_weights(R.CLIP_MODEL, R.CLIP_PRETRAINED,
                                        self.config.clip_weights or None)
        except MissingAssetError:
            if self.config.clip_weights:
                raise
            raise MissingAssetError(
                "CLIP ViT-B/32 (OpenAI weights) for UA/RA is not on this machine; download it "
                f"once with `hf download {R.CLIP_REPO} open_clip_model.safetensors` (605 MB, "
                "into the Hugging Face cache, found automatically) or pass --set "
                "task.clip_weights=/path/to/open_clip_model.safetensors; nothing is "
                "downloaded at run time") from None

    def inception_weights(self) -> Path | None:
        if self.injected.get("inception") == "tiny-random":
            return None
        from ubench.metrics.frechet import resolve_inception_weights

        return resolve_inception_weights(self.config.inception_weights)

    def feature_net(self, device: str = "cpu") -> FeatureNet:
        if not hasattr(self, "_features"):
            weights = self.inception_weights()
            if weights is None:
                from ubench.metrics.injected import tiny_inception_net

                self._features = tiny_inception_net(0)
            else:
                from ubench.metrics.frechet import inception_net

                self._features = inception_net(weights, device)
        return self._features

    def reference_stats(self, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of clean-fid features of the whole train set, built once and cached by
        data digest and feature network."""
        from safetensors.numpy import load_file, save_file

        net = self.feature_net(device)
        key = {"task_family": "cifar10", "role": "fid-reference", "data": self.data.digest,
               "features": net.name, "features_sha": net.sha, "mode": "clean",
               "images": len(self.data.labels), "code_version": "1"}

        def build(d: Path) -> None:
            self._say(f"computing the FID reference statistics of the {len(self.data.labels)} "
                      f"train images once (cached under {ubench_home() / 'cifar10'})")
            feats = self._features_of(torch.from_numpy(self.data.images).permute(0, 3, 1, 2),
                                      net, "FID reference")
            mu, sigma = gaussian_stats(feats)
            save_file({"mu": mu, "sigma": sigma}, str(d / "stats.safetensors"))

        d = cached("cifar10/fid-reference", key, build)
        stats = load_cached(d, "FID reference statistics",
                            lambda: load_file(str(d / "stats.safetensors")))
        self._reference_dir = d
        return stats["mu"], stats["sigma"]

    def _features_of(self, images_u8: torch.Tensor, net: FeatureNet, label: str) -> np.ndarray:
        from ubench.metrics.frechet import clean_features

        report = None
        if self._progress is not None:
            progress = self._progress

            def report(done: int, total: int) -> None:
                progress(label, done, total, {})

        return clean_features(images_u8.contiguous(), net, progress=report)

    def assets(self, uses_oracle: bool = False) -> dict[str, str]:
        """Digests of the data, the base model, the oracle (runs that use it) and the
        evaluators (CLIP, Inception): part of the run identity. A model that is not on the
        machine yet is left out (the run then stops in ``prepare`` with the fix)."""
        out: dict[str, str] = {"data": self.data.digest}
        try:
            folder = self._model_folder(None)
            out["model"] = _weights_digest(folder)
        except MissingAssetError:
            pass
        if uses_oracle:
            with contextlib.suppress(MissingAssetError, OSError):
                out["oracle"] = _weights_digest(self._model_folder(self.config.forget_class))
        # evaluators not on the machine yet: prepare() says which, after the model's checks
        with contextlib.suppress(MissingAssetError):
            clip = self.clip_checkpoint()
            out["clip"] = file_digest(clip) if clip is not None else "injected"
        if self.config.fid:
            with contextlib.suppress(MissingAssetError):
                inception = self.inception_weights()
                out["inception"] = (file_digest(inception) if inception is not None
                                    else "injected")
        return out

    # ------------------------------------------------------------------ request
    def remain_classes(self) -> list[int]:
        c = self.config
        if c.remain_policy == "two-class":
            return list(TWO_CLASS_PAIRS[c.forget_class])
        return [k for k in range(NUM_CLASSES) if k != c.forget_class]

    def request(self, seed: int) -> UnlearnRequest:
        c, data = self.config, self.data
        f_idx = data.indices_of(c.forget_class)
        if len(f_idx) == 0:
            raise ConfigError(f"the data has no image of class {c.forget_class}; check "
                              "task.data")
        forget = ConditionedSet(as_float(data.images[f_idx]),
                                torch.full((len(f_idx),), c.forget_class),
                                {"classes": [c.forget_class], "size": len(f_idx),
                                 "class_name": CLASSES[c.forget_class]})
        total = c.remain_per_class * (NUM_CLASSES - 1)
        classes = self.remain_classes()
        per_class = [total // len(classes) + (1 if i < total % len(classes) else 0)
                     for i in range(len(classes))]
        rng = np.random.default_rng(seed)  # the official code draws with a numpy RNG too
        chosen, ys = [], []
        for k, m in zip(classes, per_class, strict=True):
            pool = data.indices_of(k)
            if m > len(pool):
                raise ConfigError(
                    f"task.remain_per_class={c.remain_per_class} needs {m} images of class {k} "
                    f"for remain_policy={c.remain_policy}, but the data has {len(pool)}; lower "
                    "it")
            chosen.append(np.sort(rng.choice(pool, size=m, replace=False)))
            ys.append(np.full(m, k))
        idx = np.concatenate(chosen)
        remain = ConditionedSet(as_float(data.images[idx]), torch.from_numpy(np.concatenate(ys)),
                                {"policy": c.remain_policy, "classes": classes,
                                 "per_class": per_class, "size": total})
        return UnlearnRequest(forget=forget, remain=remain,
                              oracle=lambda: self.oracle_model(self._device))

    # ------------------------------------------------------------------ evaluation
    def eval_labels(self) -> tuple[np.ndarray, list[int]]:
        """The label of every generation (forget class first) and the remaining classes; the
        remaining count is split over the nine classes as evenly as possible."""
        c = self.config
        remain = [k for k in range(NUM_CLASSES) if k != c.forget_class]
        n = c.n_remain
        counts = [n // len(remain) + (1 if i < n % len(remain) else 0)
                  for i in range(len(remain))]
        labels = np.concatenate([np.full(c.n_forget, c.forget_class),
                                 *[np.full(m, k) for k, m in zip(remain, counts, strict=True)]])
        return labels.astype(np.int64), remain

    def generate(self, model: DiffusionModel, labels: np.ndarray, seeds: list[int]
                 ) -> torch.Tensor:
        """uint8 generations (N, 3, 32, 32), produced batch by batch (one seed per sample)."""
        c = self.config
        out = torch.empty((len(labels), 3, 32, 32), dtype=torch.uint8)
        step = max(c.batch_size, 1)
        for lo in range(0, len(labels), step):
            x = model.sample(torch.from_numpy(labels[lo:lo + step]), steps=c.sampling_steps,
                             guidance=c.guidance, seeds=seeds[lo:lo + step],
                             batch_size=step, sampler=c.sampler)
            out[lo:lo + len(x)] = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            if self._progress is not None:
                self._progress("generate", min(lo + step, len(labels)), len(labels), {})
        return out

    def clip_scorer(self, device: str) -> Any:
        from ubench.metrics.clip_score import ClipScorer

        if not hasattr(self, "_clip"):
            if self.clip_checkpoint() is None:
                from ubench.metrics.injected import tiny_random_extractor

                self._clip = ClipScorer(extractor=tiny_random_extractor(0))
            else:
                self._clip = ClipScorer(model_name=R.CLIP_MODEL, pretrained=R.CLIP_PRETRAINED,
                                        weights=self.clip_checkpoint(), device=device,
                                        batch_size=256 if device.startswith("cuda") else 32)
        return self._clip

    def evaluate(self, model: DiffusionModel, device: str) -> Evaluation:
        c = self.config
        labels, remain = self.eval_labels()
        nf = c.n_forget
        seeds = generation_seeds(c.eval_seed, len(labels))
        self._say(f"generating {nf} + {len(labels) - nf} images ({c.sampler}, "
                  f"{c.sampling_steps} steps)")
        images = self.generate(model, labels, seeds)
        generation = {"sampler": _sampler_name(c.sampler), "steps": c.sampling_steps,
                      "guidance": c.guidance, "generation_precision": "bf16 autocast"
                      if model.mixed_precision and device.startswith("cuda") else "fp32",
                      "generation_seeds": f"{seeds[0]}..{seeds[-1]} (one per sample)"}

        scorer = self.clip_scorer(device)
        pred = scorer.zero_shot(images, list(R.CLIP_LABELS), R.CLIP_TEMPLATE)
        clip_def = {**scorer.definition(), **generation,
                    "scorer": "open_clip zero-shot: argmax over the 11 labels",
                    "labels": list(R.CLIP_LABELS), "zero_shot_template": R.CLIP_TEMPLATE,
                    "bootstrap": f"95% percentile, {BOOTSTRAP_SEED=}"}
        metrics = {
            "ua": UnlearningAccuracy.from_predictions(pred[:nf], c.forget_class, {
                **clip_def, "forget_class": c.forget_class,
                "formula": "1 - mean(CLIP label == forget class) over forget-class generations"}),
            "ra": RemainingAccuracy.from_predictions(pred[nf:], labels[nf:], {
                **clip_def, "classes": remain,
                "formula": "mean(CLIP label == generated class) over remaining-class "
                           "generations"}),
            "garbage_rate": GarbageRate.from_predictions(pred[:nf], NOISE_LABEL, {
                **clip_def, "forget_class": c.forget_class,
                "formula": "mean(CLIP label == 'random noise') over forget-class generations"}),
        }
        details: dict[str, Any] = {
            "forget_judged_as": _label_counts(pred[:nf]),
            "remain_accuracy_per_class": {
                CLASSES[k]: float((pred[nf:][labels[nf:] == k] == k).mean()) for k in remain}}
        if c.fid:
            net = self.feature_net(device)
            mu_r, sig_r = self.reference_stats(device)
            fid_def = {**generation, "features": net.name, "features_sha": net.sha,
                       "mode": "clean-fid 'clean' (PIL bicubic resize to 299 on float32)",
                       "reference": f"all {len(self.data.labels)} images of the local train set "
                                    f"(data {self.data.digest}), as the paper's EDM reference",
                       "formula": "Frechet distance of Gaussians fitted to the feature sets"}
            feats = self._features_of(images[nf:], net, "FID features")
            metrics["fid"] = FID.from_stats(*gaussian_stats(feats), mu_r, sig_r,
                                            len(feats), fid_def)
            if c.fid_forget:
                ff = self._features_of(images[:nf], net, "FID features (forget)")
                details["fid_forget"] = FID.from_stats(*gaussian_stats(ff), mu_r, sig_r,
                                                       len(ff), fid_def).value
        samples = [{"seed": s, "condition": int(y), "judged": int(p),
                    "judged_label": R.CLIP_LABELS[int(p)], "split": "forget" if i < nf
                    else "remain", **({"label": R.CLIP_LABELS[int(p)]} if i < nf else {})}
                   for i, (s, y, p) in enumerate(zip(seeds, labels.tolist(), pred, strict=True))]
        rows = [images[torch.from_numpy(labels == k)][:10].float() / 127.5 - 1.0
                for k in [c.forget_class, *remain]]
        return Evaluation(metrics=metrics, grid=rgb_grid([r for r in rows if len(r)]),
                          samples=samples, details=details)


    # ------------------------------------------------------------------ attacks
    def forget_probe(self) -> ForgetProbe:
        """The forget-class generations of :meth:`evaluate` (its first ``n_forget`` seeds)."""
        c = self.config
        labels, _ = self.eval_labels()
        nf = c.n_forget
        seeds = generation_seeds(c.eval_seed, len(labels))[:nf]
        return ForgetProbe(torch.from_numpy(labels[:nf]), seeds, c.sampling_steps, c.guidance,
                           "ua", f"{nf} generations of the forget class",
                           max(c.batch_size, 1), c.sampler)

    def concept_success(self, images: torch.Tensor, device: str
                        ) -> tuple[np.ndarray, dict[str, Any]]:
        """CLIP zero-shot over the 11 labels calls the image the forget class (UA's test)."""
        u8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        scorer = self.clip_scorer(device)
        pred = scorer.zero_shot(u8, list(R.CLIP_LABELS), R.CLIP_TEMPLATE)
        return np.asarray(pred) == self.config.forget_class, {
            **scorer.definition(), "labels": list(R.CLIP_LABELS),
            "zero_shot_template": R.CLIP_TEMPLATE,
            "success": f"CLIP label == {CLASSES[self.config.forget_class]!r} (the forget class)"}


def _sampler_name(sampler: str) -> str:
    return {"ddim": "DDIM eta=0 (diffusers DDIMScheduler)",
            "dpm-solver": "DPM-Solver++ 2M (diffusers DPMSolverMultistepScheduler)"}[sampler]


def _label_counts(pred: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(pred, return_counts=True)
    return {R.CLIP_LABELS[int(v)]: int(n) for v, n in zip(values, counts, strict=True)}


def _weights_digest(folder: Path) -> str:
    """Digest of the UNet weights in a model folder of any supported layout."""
    for rel in ("unet/diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors"):
        if (folder / rel).is_file():
            return file_digest(folder / rel)
    found = sorted(folder.rglob("*.safetensors"))
    return file_digest(found[0]) if found else "missing"


#: cifar10-class with a tiny UNet, a seconds-long pretraining recipe, 2-step unlearning
#: recipes and a handful of generations; injected evaluators (tests)
TinyCifarConfig = with_defaults(CifarConfig, "TinyCifarConfig", remain_per_class=4,
                                eval_forget=8, eval_remain=18, sampling_steps=2, batch_size=64)


class Cifar10ClassTiny(Cifar10Class):
    """Tiny cifar10-class for tests: tiny UNet and recipes, injected evaluators (numbers meaningless)."""  # noqa: E501

    name: ClassVar[str] = "cifar10-class-tiny"
    Config: ClassVar[type[BaseConfig]] = TinyCifarConfig
    method_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = R.TINY_METHOD_DEFAULTS
    model_spec: ClassVar[R.ModelSpec] = R.TINY_MODEL
    pretrain_spec: ClassVar[PretrainSpec] = R.TINY_PRETRAIN
    injected_evaluators: ClassVar[bool] = True
