"""``ubench pretrain``: train a class-conditional diffusion model from scratch, resumably.

The recipe is DDPM's for CIFAR-10 (Ho et al. 2020, §4 and appendix B) with classifier-free
guidance's label dropout (Ho & Salimans 2022): Adam at a constant learning rate after a linear
warm-up, gradient-norm clipping, random horizontal flips, an exponential moving average (EMA) of
the weights — the EMA is the model that is saved — and the null class in place of the label
with probability ``label_dropout``. On CUDA the UNet runs under bf16 autocast while the weights,
the optimiser state and the EMA stay fp32 (the model layer's ``mixed_precision``).

**Resumable, bit for bit.** Every ``checkpoint_every`` steps the whole state (weights, EMA,
Adam, the random generator, the epoch's order and position, the step) is written atomically to
``<out>.partial/checkpoint``. A process killed at any moment (``kill -9`` included) is resumed by
running the same command again; on the CPU the final weights are then bit-identical to an
uninterrupted run's (``tests/integration/test_cifar_task.py`` kills one). The finished model is
written to a temporary folder and renamed to ``<out>``, in the layout
:meth:`~ubench.models.diffusion.DiffusionModel.save` writes, with ``pretrain.json`` (recipe,
data digest, time, throughput) and ``key.json`` (so a default-location model is a cached asset).

All randomness (batch order, flips, label dropout, timesteps, noise) comes from one CPU
generator seeded by the recipe, and the UNet's dropout from a per-step seed; on a GPU, kernels
may still differ in their last bits between runs (cuDNN), so GPU resumes are exact up to that.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubench.core.errors import ConfigError, DivergedError, StoreError
from ubench.core.faults import failpoint
from ubench.models.diffusion import DiffusionModel
from ubench.store.checkpoint import Checkpoint
from ubench.store.io import fresh_folder, swap_folder

#: bump when the training loop changes what a recipe produces (part of every model's key)
CODE_VERSION = "1"


@dataclass(frozen=True)
class PretrainSpec:
    """A pretraining recipe (part of the model's identity, recorded in ``pretrain.json``)."""

    #: optimisation steps (DDPM CIFAR-10: 800,000; the class defaults are DDPM's recipe)
    steps: int = 800_000
    #: images per step (DDPM: 128)
    batch_size: int = 128
    #: Adam learning rate after warm-up (DDPM CIFAR-10: 2e-4)
    lr: float = 2e-4
    #: linear warm-up steps (DDPM: 5,000)
    warmup: int = 5000
    #: EMA decay, with the usual warm-up min(decay, (1 + s) / (10 + s)) (DDPM: 0.9999)
    ema_decay: float = 0.9999
    #: probability of replacing the label by the null class (classifier-free guidance: 0.1)
    label_dropout: float = 0.1
    #: random horizontal flips (DDPM: yes on CIFAR-10)
    hflip: bool = True
    #: clip the gradient's global norm (DDPM: 1.0; 0 = off)
    grad_clip: float = 1.0
    #: seed of the generator behind every random draw
    seed: int = 0

    def check(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"--steps and --batch-size must be >= 1; got {self.steps}, "
                              f"{self.batch_size}")


@dataclass
class PretrainJob:
    """What a task hands ``ubench pretrain``: a fresh model, its data, a recipe and a target."""

    #: builds the freshly initialised model (its own seed)
    build_model: Callable[[], DiffusionModel]
    #: (N, H, W, C) uint8 training images and their (N,) int labels
    images: np.ndarray
    labels: np.ndarray
    spec: PretrainSpec
    #: identity of the result (data digest, architecture, recipe, excluded class, code version)
    key: dict[str, Any]
    #: the folder the finished model goes to
    out: Path
    #: one line describing it ("base model of cifar10-class", "oracle without class 3")
    what: str


@dataclass
class PretrainResult:
    out: Path
    skipped: bool
    info: dict[str, Any]


class Trainer:
    """One pretraining run's state and its step; ``bench/cifar10_gpu.py`` times :meth:`step`."""

    def __init__(self, model: DiffusionModel, images: np.ndarray, labels: np.ndarray,
                 spec: PretrainSpec, device: str) -> None:
        self.spec, self.device = spec, device
        self.model = model.to(device)
        self.model.mixed_precision = torch.device(device).type == "cuda"
        self.params = self.model.trainable_parameters("full")
        self.optimizer = torch.optim.Adam(self.params, lr=spec.lr)
        self.ema = self.model.clone_frozen()
        self.ema_params = list(self.ema.unet.parameters())
        # the data lives on the device as uint8 (CIFAR-10: 150 MB); batches are cast there
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2) \
            .contiguous().to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.gen = torch.Generator("cpu").manual_seed(spec.seed)
        self.n = int(self.labels.shape[0])
        if self.n == 0:
            raise ConfigError("there are no training images (all classes excluded?)")
        self.order = torch.randperm(self.n, generator=self.gen)
        self.pos = 0
        self.step_index = 0
        self.model.unet.train()

    def lr_at(self, step: int) -> float:
        warm = self.spec.warmup
        return self.spec.lr * (min(1.0, (step + 1) / warm) if warm > 0 else 1.0)

    def step(self) -> torch.Tensor:
        """One optimisation step; returns the (detached, on-device) loss."""
        spec, gen, model = self.spec, self.gen, self.model
        bs = min(spec.batch_size, self.n)
        if self.pos + bs > self.n:
            self.order, self.pos = torch.randperm(self.n, generator=gen), 0
        idx = self.order[self.pos:self.pos + bs]
        self.pos += bs
        x0 = self.images[idx.to(self.images.device)].float() / 127.5 - 1.0
        if spec.hflip:
            flip = (torch.rand(bs, generator=gen) < 0.5).to(x0.device)
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        y = self.labels[idx].clone()
        y[torch.rand(bs, generator=gen) < spec.label_dropout] = \
            model.conditioner.null_id  # type: ignore[union-attr]
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step_index)
        # the UNet's dropout draws from torch's global generators: give every step its own
        # seed, so a resumed run needs no global state and the caller's generators are untouched
        cuda = [x0.device] if x0.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(spec.seed * 1_000_003 + self.step_index)
            loss = model.denoising_loss(x0, model.encode(y), gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if spec.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, spec.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            d = min(spec.ema_decay, (1 + self.step_index) / (10 + self.step_index))
            torch._foreach_lerp_(self.ema_params, [p.detach() for p in self.params], 1 - d)
        self.step_index += 1
        return loss.detach()

    # ------------------------------------------------------------------ checkpoints
    def save(self, folder: Path, elapsed: float, key: dict[str, Any]) -> None:
        """Write the full state into ``folder/checkpoint`` (:class:`Checkpoint`, atomic)."""
        Checkpoint(folder).save(
            {"step": self.step_index, "pos": self.pos, "elapsed_seconds": elapsed, "key": key},
            tensors={"model": self.model.unet.state_dict(), "ema": self.ema.unet.state_dict(),
                     "order": {"order": self.order, "rng": self.gen.get_state()}},
            objects={"optimizer": self.optimizer.state_dict()})

    def load(self, folder: Path, key: dict[str, Any]) -> float:
        """Restore :meth:`save`'s state; returns the seconds spent before it."""
        ckpt = Checkpoint(folder)
        state = ckpt.state()
        if json.dumps(state["key"], sort_keys=True, default=str) != \
                json.dumps(key, sort_keys=True, default=str):
            raise StoreError(f"the checkpoint in {ckpt.folder} was made by another recipe or "
                             f"data set; delete {folder} to start over, or pass another --out")
        dev = self.device
        self.model.unet.load_state_dict(ckpt.tensors("model", dev))
        self.ema.unet.load_state_dict(ckpt.tensors("ema", dev))
        extra = ckpt.tensors("order")
        self.order = extra["order"]
        self.gen.set_state(extra["rng"])
        self.optimizer.load_state_dict(ckpt.object("optimizer", dev))
        self.step_index, self.pos = int(state["step"]), int(state["pos"])
        return float(state.get("elapsed_seconds", 0.0))


def work_folder(out: Path) -> Path:
    """Where an unfinished pretraining of ``out`` keeps its checkpoint (``<out>.partial``)."""
    return out.with_name(out.name + ".partial")


def _same_key(folder: Path, key: dict[str, Any]) -> bool:
    try:
        found = json.loads((folder / "key.json").read_text())
    except (OSError, ValueError):
        return False
    return json.dumps(found, sort_keys=True, default=str) == \
        json.dumps(key, sort_keys=True, default=str)


def pretrain(job: PretrainJob, *, device: str = "cpu", checkpoint_every: int = 2000,
             progress: Callable[[int, int, float, float], None] | None = None,
             say: Callable[[str], None] | None = None) -> PretrainResult:
    """Train ``job`` to completion (resuming its checkpoint if there is one) and write the model.

    ``progress(step, total, loss, images_per_second)`` is called after every step (the loss is
    read from the device every 50 steps and at the end, so a GPU is not synchronised per step).
    A finished model with the same key is not trained again.
    """
    from ubench.core.locks import hold

    say = say or (lambda _m: None)
    job.spec.check()
    out = job.out
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # an empty folder made for it beforehand
    if out.exists() and not _same_key(out, job.key):
        raise StoreError(f"{out} exists and is not this model (different key.json or not a "
                         "ubench pretrain output); pass another --out or delete it")
    work = work_folder(out)
    if (out / "key.json").is_file():
        say(f"finished already: {out}")
        shutil.rmtree(work, ignore_errors=True)  # left behind by a kill after the final rename
        return PretrainResult(out, True, json.loads((out / "pretrain.json").read_text()))
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create {work} ({e.strerror}); pass a writable --out") from None
    with hold(out.with_name(f".{out.name}.lock"), f"pretraining {job.what}", say):
        if (out / "key.json").is_file():  # another process finished it while we waited
            return PretrainResult(out, True, json.loads((out / "pretrain.json").read_text()))
        return _train(job, work, device, checkpoint_every, progress, say)


def _train(job: PretrainJob, work: Path, device: str, checkpoint_every: int,
           progress: Callable[[int, int, float, float], None] | None,
           say: Callable[[str], None]) -> PretrainResult:
    spec, out = job.spec, job.out
    trainer = Trainer(job.build_model(), job.images, job.labels, spec, device)
    before = 0.0
    if Checkpoint(work).exists():
        before = trainer.load(work, job.key)
        say(f"resuming {job.what} from the checkpoint at step {trainer.step_index} of "
            f"{spec.steps} ({Checkpoint(work).folder})")
    t0 = time.perf_counter()
    window_t, window_step = t0, trainer.step_index
    rate, loss_value = 0.0, float("nan")
    while trainer.step_index < spec.steps:
        loss = trainer.step()
        s = trainer.step_index
        if s % 50 == 0 or s == spec.steps or s == 1:
            loss_value = float(loss)
            if loss_value != loss_value or loss_value in (float("inf"), float("-inf")):
                raise DivergedError(f"the pretraining loss became {loss_value} at step {s}; "
                                    "lower --lr in the recipe or check the data")
            now = time.perf_counter()
            if now > window_t and s > window_step:
                rate = (s - window_step) * min(spec.batch_size, trainer.n) / (now - window_t)
            window_t, window_step = now, s
        if checkpoint_every and s % checkpoint_every == 0 and s < spec.steps:
            trainer.save(work, before + time.perf_counter() - t0, job.key)
        failpoint(f"pretrain-step:{s}")
        if progress is not None:
            progress(s, spec.steps, loss_value, rate)
    seconds = before + time.perf_counter() - t0
    info = {"what": job.what, "key": job.key, "recipe": asdict(spec), "device": device,
            "seconds": seconds, "final_loss": loss_value, "images": trainer.n,
            "images_per_second_last": rate, "gpu": _gpu_name(device),
            "parameters": sum(p.numel() for p in trainer.params)}
    tmp = fresh_folder(out)
    trainer.ema.save(tmp)
    (tmp / "pretrain.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=str))
    (tmp / "key.json").write_text(json.dumps(job.key, indent=2, sort_keys=True, default=str))
    swap_folder(tmp, out)
    shutil.rmtree(work, ignore_errors=True)
    say(f"wrote {job.what} to {out} ({spec.steps} steps, {seconds / 60:.1f} min)")
    return PretrainResult(out, False, info)


def _gpu_name(device: str) -> str | None:
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return None
