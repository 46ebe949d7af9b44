"""Step time and step memory of the unlearning methods, measured side by side in one run.

Prints, for each model:

* **step time** of ``boostalign`` and ``graddiff`` on identical configs and data (the same
  forget / remain batches, clip truncation so the forget term is always on), alternating the two
  methods round by round in this process, and their ratio (goal: <= 1.05);
* **step memory** of every method in its own fresh process: the peak memory during one step
  above what the same process held just before it, minus the same quantity for a *plain
  training step* (one forward/backward of a batch of the same size into preallocated ``.grad``,
  then Adam), in units of the trainable parameters' size (goal: graddiff <= 0.1, boostalign <=
  1.1). ``state`` is the memory a method holds across steps beyond weights, ``.grad`` and Adam
  (ESD's frozen teacher, SalUn's mask), and ``setup`` the peak from the start of ``unlearn``
  through its first step above the plain step's (SalUn's saliency pass, ESD's teacher copy),
  same units.

On CPU the peak is the process's resident-set high-water mark, reset before the step
(``/proc/self/clear_refs``) with glibc returning every allocation above 64 KiB to the system
(``MALLOC_MMAP_THRESHOLD_``), so freed tensors leave the count; on CUDA it is
``torch.cuda.max_memory_allocated``.

Models: ``digits`` (the digits-class UNet, 0.65M parameters, its real batch sizes: forget batch
64, the full 225-image remain set in chunks of 64), ``unet50m`` (a 50M-parameter text-conditioned
``UNet2DConditionModel``, 16x16x4 latents, batch 4 + 4), ``sd14`` (Stable Diffusion v1.4's UNet
config with random weights, 64x64x4 latents, batch 8 + 8, bf16 autocast and gradient
checkpointing as the sd tasks run it; for ``--device cuda``).

    python bench/step.py                                  # digits and unet50m on the CPU
    python bench/step.py --device cuda --models sd14      # the GPU check

Run it with the old code on the path (``PYTHONPATH=<old checkout>``) to compare implementations:
it only uses the method registry and the model layer.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import torch

from ubench.api import ConditionedSet, RunContext, UnlearnRequest
from ubench.config import build_config
from ubench.models.diffusion import DiffusionModel, class_conditional_model
from ubench.registry import METHODS

METHOD_IDS = ("boostalign", "graddiff", "ga", "finetune", "rl", "salun", "esd-u")
MMAP_THRESHOLD = 65536


# ----------------------------------------------------------------------------- models and data
class FixedEmbeddings:
    """A stand-in text conditioner: each prompt maps to a fixed random (length, dim) embedding
    (seeded by the prompt), the empty prompt to zeros. Speed and memory do not depend on what
    the embeddings mean."""

    kind = "text"

    def __init__(self, length: int, dim: int) -> None:
        self.length, self.dim = length, dim

    def _one(self, prompt: str) -> torch.Tensor:
        if not prompt:
            return torch.zeros(self.length, self.dim)
        g = torch.Generator().manual_seed(zlib.crc32(prompt.encode()))
        return torch.randn(self.length, self.dim, generator=g)

    def encode(self, conditions: Any, device: torch.device | str) -> torch.Tensor:
        prompts = [conditions] if isinstance(conditions, str) else list(conditions)
        return torch.stack([self._one(str(p)) for p in prompts]).to(device)

    def null(self, n: int, device: torch.device | str) -> torch.Tensor:
        return self.encode([""] * n, device)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind}


def text_unet(name: str) -> tuple[Any, int, int, int]:
    """(UNet2DConditionModel, latent size, embedding length, embedding dim) of a preset."""
    from diffusers import UNet2DConditionModel

    if name == "unet50m":
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, block_out_channels=(128, 256, 512),
            layers_per_block=1, cross_attention_dim=256, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
        return unet, 16, 16, 256
    if name == "sd14":  # CompVis/stable-diffusion-v1-4 unet/config.json, random weights
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
            attention_head_dim=8, norm_num_groups=32,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                              "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                            "CrossAttnUpBlock2D"))
        return unet, 64, 77, 768
    raise SystemExit(f"unknown model {name!r}; valid: digits, unet50m, sd14")


def build(name: str, device: str) -> tuple[DiffusionModel, UnlearnRequest, int]:
    """(model, request with random data of the model's shapes, batch size) for a preset."""
    g = torch.Generator().manual_seed(0)
    if name == "digits":
        model = class_conditional_model(resolution=8, channels=(32, 64), seed=0).to(device)
        forget = ConditionedSet(torch.rand(144, 1, 8, 8, generator=g) * 2 - 1,
                                torch.zeros(144, dtype=torch.long))
        remain = ConditionedSet(torch.rand(225, 1, 8, 8, generator=g) * 2 - 1,
                                torch.arange(1, 10).repeat_interleave(25))
        return model, UnlearnRequest(forget=forget, remain=remain), 64
    from diffusers import DDPMScheduler

    from ubench.models.sd import LatentDiffusionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet, size, length, dim = text_unet(name)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                          beta_schedule="scaled_linear")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        unet.enable_gradient_checkpointing()
    model = LatentDiffusionModel(unet.to(device), sched, FixedEmbeddings(length, dim),  # type: ignore[arg-type]
                                 None, Path("random-weights"), mixed_precision=cuda)
    batch = 8 if name == "sd14" else 4
    n = 4 * batch
    prompts = [f"a photo of thing {i}" for i in range(n)]
    forget = ConditionedSet(torch.randn(n, 4, size, size, generator=g), prompts,
                            anchors=[p + " in daylight" for p in prompts])
    remain = ConditionedSet(torch.randn(n, 4, size, size, generator=g),
                            [p + " in daylight" for p in prompts])
    return model, UnlearnRequest(forget=forget, remain=remain, concept=["thing"]), batch


def config(method: str, batch: int, steps: int, model_name: str) -> Any:
    """Equal budgets: clip truncation (the forget term always on), one batch size; on the digits
    model the remain gradient is the full D_r (its default), elsewhere one mini-batch."""
    cls = METHODS.get(method).Config
    fields = cls.field_names()
    over: dict[str, Any] = {"steps": steps, "batch_size": batch}
    if "truncation" in fields:
        over.update(truncation="clip", clip_alpha=0.1,
                    remain_gradient="full" if model_name == "digits" else "minibatch")
    if "ddim_steps" in fields:
        over["ddim_steps"] = 4
    return build_config(cls, over, f"method {method}")


# ----------------------------------------------------------------------------- memory probes
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class Probe:
    """Memory now, and the peak since the last reset, in bytes (CPU: RSS; CUDA: allocated)."""

    def __init__(self, device: str) -> None:
        self.cuda = torch.device(device).type == "cuda"

    def reset(self) -> int:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return int(torch.cuda.memory_allocated())
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kb("VmRSS") * 1024

    def peak(self) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated())
        return _status_kb("VmHWM") * 1024


def measure_memory(model_name: str, method: str, device: str) -> dict[str, float]:
    """In this (fresh) process: base and peak bytes of step 2 of ``method`` (``plain`` is the
    reference training step)."""
    model, request, batch = build(model_name, device)
    probe = Probe(device)
    params = [p for p in model.unet.parameters()]
    out: dict[str, float] = {"param_bytes": float(sum(p.numel() * 4 for p in params))}
    if method == "plain":
        params = model.trainable_parameters("full")
        assert request.remain is not None
        x0, y = request.remain.images[:batch].to(device), request.remain.conditions[:batch]
        gen = torch.Generator().manual_seed(0)
        out["start"] = probe.reset()
        opt = torch.optim.Adam(params, lr=1e-5)
        for p in params:
            p.grad = torch.zeros_like(p)
        for step in range(2):
            if step == 1:
                out["setup_peak"] = probe.peak()
                out["base"] = probe.reset()
            for p in params:
                assert p.grad is not None
                p.grad.zero_()
            model.denoising_loss(x0, model.encode(y), gen).backward()
            opt.step()
        out["peak"] = probe.peak()
        return out

    def on_step(step: int, total: int, scalars: dict[str, float]) -> None:
        if step == 1:
            out["setup_peak"] = probe.peak()
            out["base"] = probe.reset()
        elif step == 2:
            out["peak"] = probe.peak()

    out["start"] = probe.reset()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(seed=0, device=device, run_dir=Path(tmp), checkpoint_every=0,
                         on_step=on_step)
        METHODS.get(method)().unlearn(model, request, config(method, batch, 2, model_name), ctx)
    return out


def memory_table(model_name: str, device: str) -> dict[str, dict[str, float]]:
    """Each method's memory probe in its own subprocess (fresh allocator, fresh peak)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
           "MALLOC_TRIM_THRESHOLD_": "0"}
    rows = {}
    methods = ["plain", *METHOD_IDS]
    for m in methods:
        proc = subprocess.run([sys.executable, __file__, "--probe", model_name, m, "--device",
                               device, "--threads", str(torch.get_num_threads())],
                              capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"memory probe {model_name}/{m} failed:\n{proc.stderr[-2000:]}")
        rows[m] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rows


# ----------------------------------------------------------------------------- step time
def step_times(model_name: str, method: str, device: str, steps: int) -> list[float]:
    """Wall time of steps 2..steps of one run (step 1 warms Adam and the allocator)."""
    model, request, batch = build(model_name, device)
    stamps: list[float] = []

    def on_step(step: int, total: int, scalars: dict[str, float]) -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(seed=0, device=device, run_dir=Path(tmp), checkpoint_every=0,
                         on_step=on_step)
        METHODS.get(method)().unlearn(model, request, config(method, batch, steps, model_name),
                                      ctx)
    return [b - a for a, b in itertools.pairwise(stamps)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits,unet50m", help="comma-separated presets")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    ap.add_argument("--steps", type=int, default=4, help="steps per timed run (first is warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--probe", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(measure_memory(args.probe[0], args.probe[1], args.device)))
        return
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"CPU, {args.threads} thread(s)"
    print(f"bench/step.py on {where}; torch {torch.__version__}")
    for name in args.models.split(","):
        model, _, batch = build(name, args.device)
        n_params = sum(p.numel() for p in model.unet.parameters())
        del model
        print(f"\n## {name}: {n_params / 1e6:.2f}M parameters, batch {batch}")
        times: dict[str, list[float]] = {"boostalign": [], "graddiff": []}
        ratios = []
        for _ in range(args.rounds):
            for m in times:
                t = statistics.median(step_times(name, m, args.device, args.steps))
                times[m].append(t)
            ratios.append(times["boostalign"][-1] / times["graddiff"][-1])
        for m, ts in times.items():
            print(f"step time {m:<10} median {statistics.median(ts):.4f} s  "
                  f"(rounds: {', '.join(f'{t:.4f}' for t in ts)})")
        print(f"ratio boostalign / graddiff: {statistics.median(ratios):.3f} "
              f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)}; goal <= 1.05)")
        if args.skip_memory:
            continue
        rows = memory_table(name, args.device)
        ref = rows["plain"]
        unit = ref["param_bytes"]
        print(f"step memory, in units of the parameters' size ({unit / 2**20:.1f} MiB); plain "
              f"step peak above its base: {(ref['peak'] - ref['base']) / unit:.2f}")
        print(f"{'method':<11} {'extra':>7} {'state':>7} {'setup':>7}")
        for m in METHOD_IDS:
            r = rows[m]
            extra = ((r["peak"] - r["base"]) - (ref["peak"] - ref["base"])) / unit
            state = (r["base"] - ref["base"]) / unit
            setup = ((r["setup_peak"] - r["start"]) - (ref["setup_peak"] - ref["start"])) / unit
            goal = {"graddiff": "  (goal <= 0.1)", "boostalign": "  (goal <= 1.1)"}.get(m, "")
            print(f"{m:<11} {extra:>7.2f} {state:>7.2f} {setup:>7.2f}{goal}")


if __name__ == "__main__":
    main()
