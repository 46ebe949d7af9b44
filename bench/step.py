"""Step time and step memory of the unlearning methods, measured side by side in one run.

Prints, for each model:

* **step time** of ``boostalign`` and ``graddiff`` on identical configs and data (the same
  forget / remain batches, clip truncation so the forget term is always on), alternating the two
  methods round by round; the ratio of their fastest steps (other load on the machine only adds
  time), with the per-round ratios beside it (goal: <= 1.05);
* **step memory** of every method: the peak of tensor memory allocated during one step (the
  second; the first creates Adam's state), minus the same peak of a *plain step* that
  backpropagates as many batches of the same size into ``.grad`` and steps Adam (one batch for
  ``ga``, ``finetune``, ESD; two for the two-term methods), in units of the trainable
  parameters' size (goal: graddiff <= 0.1, boostalign <= 1.1). ``state`` is what a method holds
  across steps beyond the plain step's weights, ``.grad`` and Adam (ESD's frozen teacher,
  SalUn's mask); ``setup`` how far the peak from the start of ``unlearn`` through step 1 exceeds
  the method's own later step peak, beyond the plain step's (which creates Adam's state there):
  SalUn's saliency pass, ESD's teacher copy; same units.

On the CPU the peak is sampled after every tensor operation (a ``TorchDispatchMode`` reads glibc's
``mallinfo2``: bytes handed out and not yet freed, no page or arena noise), so it is exact at the
granularity of operations; on CUDA it is ``torch.cuda.max_memory_allocated``. Linux only.

Models: ``digits`` (the digits-class UNet, 0.65M parameters, its real batch sizes: forget batch
64, the full 225-image remain set in chunks of 64), ``unet50m`` (a 50M-parameter text-conditioned
``UNet2DConditionModel``, 32x32x4 latents, batch 4 + 4), ``sd14`` (Stable Diffusion v1.4's UNet
config with random weights, 64x64x4 latents, batch 8 + 8, bf16 autocast and gradient
checkpointing as the sd tasks run it; for ``--device cuda``).

    python bench/step.py                                  # digits and unet50m on the CPU
    python bench/step.py --device cuda --models sd14      # the GPU check

Run it with an older checkout on the path (``PYTHONPATH=<old package>``) to compare
implementations: it only uses the method registry and the model layer.
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import statistics
import tempfile
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ubench.api import ConditionedSet, RunContext, UnlearnRequest
from ubench.catalog.registry import METHODS
from ubench.core.config import build_config
from ubench.models.diffusion import DiffusionModel, class_conditional_model

METHOD_IDS = ("boostalign", "graddiff", "ga", "finetune", "rl", "salun", "esd-u")
#: how many batches a method backpropagates into .grad per step (its plain reference step); a
#: full remain gradient backpropagates every chunk of D_r, so finetune is a two-batch step there
TERMS = {"boostalign": 2, "graddiff": 2, "rl": 2, "salun": 2, "ga": 1, "finetune": 1, "esd-u": 1}


def terms(method: str, model_name: str) -> int:
    full_remain = model_name == "digits" and method == "finetune"
    return 2 if full_remain else TERMS[method]


def live_tensor_bytes() -> float:
    """Bytes of every tensor storage reachable from Python, and of every parameter's ``.grad``
    (each storage once)."""
    storages: dict[int, int] = {}
    with warnings.catch_warnings():  # isinstance() on some libraries' lazy modules warns
        warnings.simplefilter("ignore")
        objects = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    for obj in objects:
        tensors = [obj]
        if isinstance(obj, torch.nn.Parameter) and obj.grad is not None:
            tensors.append(obj.grad)
        for t in tensors:
            if t.device.type != "meta" and t.numel():
                st = t.untyped_storage()
                storages[st.data_ptr()] = st.nbytes()
    return float(sum(storages.values()))


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
    """(UNet2DConditionModel, latent size, embedding length, embedding dim) of a preset: a fresh
    copy of one random initialisation per preset (initialising SD's 860M parameters on the CPU
    takes longer than a measured step, and every measurement builds the model anew)."""
    import copy

    unet, size, length, dim = _text_unet(name)
    return copy.deepcopy(unet), size, length, dim


@functools.cache
def _text_unet(name: str) -> tuple[Any, int, int, int]:
    from diffusers import UNet2DConditionModel

    if name == "unet50m":
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=4, out_channels=4, block_out_channels=(128, 256, 512),
            layers_per_block=1, cross_attention_dim=256, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
        return unet, 32, 16, 256
    if name == "sd14":  # CompVis/stable-diffusion-v1-4 unet/config.json, random weights
        from ubench.testing import sd14_unet

        return sd14_unet(), 64, 77, 768
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
def _malloc_in_use() -> int:
    """Bytes the C allocator has handed out and not taken back (glibc's ``mallinfo2``)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


class _PeakAfterEachOp(TorchDispatchMode):
    """Samples the C allocator after every tensor operation (forward, backward, optimiser)."""

    def __init__(self, base: int) -> None:
        super().__init__()
        self.base, self.peak = base, 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, _malloc_in_use() - self.base)
        return out


class Window:
    """Memory over a window of code: every live tensor at its start (``base``) and the peak,
    above the start, of what the C allocator holds after each tensor operation inside it
    (``peak``: frees count, so a freed ``.grad`` that is allocated again adds nothing), in
    bytes. CUDA: the caching allocator's counters."""

    def __init__(self, device: str) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.base = self.peak = 0.0
        self._mode: _PeakAfterEachOp | None = None

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = float(torch.cuda.memory_allocated())
            self._start = self.base
            return
        self.base = live_tensor_bytes()
        self._mode = _PeakAfterEachOp(_malloc_in_use())
        self._mode.__enter__()

    def stop(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = float(torch.cuda.max_memory_allocated()) - self._start
            return
        assert self._mode is not None
        self._mode.__exit__(None, None, None)
        self.peak = float(self._mode.peak)


def measure_memory(model_name: str, method: str, device: str) -> dict[str, float]:
    """Windows over setup + step 1 and over step 2 of ``method`` (``plain1`` / ``plain2``: the
    reference steps with one or two batches backpropagated into ``.grad``)."""
    model, request, batch = build(model_name, device)
    params = list(model.unet.parameters())
    out: dict[str, float] = {"param_bytes": float(sum(p.numel() * 4 for p in params))}
    setup, step2 = Window(device), Window(device)
    if method.startswith("plain"):
        n_terms = int(method[-1])
        assert request.remain is not None
        x0 = request.remain.images[:batch].to(device)
        y = request.remain.conditions[:batch]
        gen = torch.Generator().manual_seed(0)
        setup.start()
        params = model.trainable_parameters("full")
        opt = torch.optim.Adam(params, lr=1e-5)
        for step in range(2):
            if step == 1:
                setup.stop()
                step2.start()
            opt.zero_grad(set_to_none=True)
            for _ in range(n_terms):
                model.denoising_loss(x0, model.encode(y), gen).backward()
            opt.step()
        step2.stop()
    else:
        def on_step(step: int, total: int, scalars: dict[str, float]) -> None:
            if step == 1:
                setup.stop()
                step2.start()
            elif step == 2:
                step2.stop()

        with tempfile.TemporaryDirectory() as tmp:
            ctx = RunContext(seed=0, device=device, run_dir=Path(tmp), checkpoint_every=0,
                             on_step=on_step)
            setup.start()
            METHODS.get(method)().unlearn(model, request, config(method, batch, 2, model_name),
                                          ctx)
    out.update(setup_base=setup.base, setup_peak=setup.peak, base=step2.base, peak=step2.peak)
    return out


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
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"CPU, {args.threads} thread(s)"
    print(f"bench/step.py on {where}; torch {torch.__version__}")
    for name in args.models.split(","):
        model, _, batch = build(name, args.device)
        n_params = sum(p.numel() for p in model.unet.parameters())
        del model
        print(f"\n## {name}: {n_params / 1e6:.2f}M parameters, batch {batch}")
        times: dict[str, list[float]] = {"boostalign": [], "graddiff": []}
        for r in range(0 if args.skip_timing else args.rounds):
            order = list(times) if r % 2 == 0 else list(reversed(times))  # no drift bias
            for m in order:
                times[m].append(min(step_times(name, m, args.device, args.steps)))
        if times["graddiff"]:
            # the fastest step of each method: other load on the machine only ever adds time
            for m, ts in times.items():
                print(f"step time {m:<10} {min(ts):.4f} s (fastest step; per round: "
                      f"{', '.join(f'{t:.4f}' for t in ts)})")
            ratios = [b / g for b, g in zip(times["boostalign"], times["graddiff"], strict=True)]
            best = min(times["boostalign"]) / min(times["graddiff"])
            print(f"ratio boostalign / graddiff: {best:.3f}"
                  f" (per round: {', '.join(f'{x:.3f}' for x in ratios)}; median "
                  f"{statistics.median(ratios):.3f}; goal <= 1.05)")
        if args.skip_memory:
            continue
        measure_memory(name, "plain1", args.device)  # warm-up: one-time library allocations
        rows = {m: measure_memory(name, m, args.device)
                for m in ("plain1", "plain2", *METHOD_IDS)}
        unit = rows["plain1"]["param_bytes"]
        print(f"step memory, in units of the parameters' size ({unit / 2**20:.1f} MiB); plain "
              f"steps' peaks: one batch {rows['plain1']['peak'] / unit:.2f}, two batches "
              f"{rows['plain2']['peak'] / unit:.2f}")
        print(f"{'method':<11} {'extra':>7} {'state':>7} {'setup':>7}")
        for m in METHOD_IDS:
            r, ref = rows[m], rows[f"plain{terms(m, name)}"]
            extra = (r["peak"] - ref["peak"]) / unit
            state = (r["base"] - ref["base"]) / unit
            setup = ((r["setup_peak"] - r["peak"]) - (ref["setup_peak"] - ref["peak"])) / unit
            goal = {"graddiff": "  (goal <= 0.1)", "boostalign": "  (goal <= 1.1)"}.get(m, "")
            print(f"{m:<11} {extra:>7.2f} {state:>7.2f} {setup:>7.2f}{goal}")

if __name__ == "__main__":
    main()
