"""The GPU check of ``cifar10-class``: pretraining throughput and unlearning step cost, measured.

Two parts, on random CIFAR-shaped data (nothing to download), printed as one table and written
as JSON with ``--out``:

1. **pretraining** — the real-size UNet (DDPM's CIFAR-10 network, 35.75M parameters) trained by
   ``ubench pretrain``'s own :class:`ubench.training.pretrain.Trainer` (bf16 autocast on CUDA, fp32
   master weights, EMA, flips, label dropout) at batch 128 for ``--pretrain-seconds`` (default
   120) after a warm-up: images per second and peak GPU memory;
2. **unlearning** — ``--unlearn-steps`` (default 20) steps of ``boostalign`` and ``graddiff``
   with the paper's CIFAR-10 recipe (Adam 1e-5, batch 64, lambda 5, per-element clip 0.1, the
   *full* remain gradient over a 450-image D_r) on the same network: seconds per step (median
   of the steps after the first) and peak GPU memory of each, side by side.

    python bench/cifar10_gpu.py --device cuda --out cifar10_gpu.json     # about 5 min on one GPU
    python bench/cifar10_gpu.py --device cpu --tiny                      # smoke test, seconds

``--tiny`` swaps in the tiny preset's network and small sizes (what the test suite runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _task(tiny: bool) -> Any:
    from ubench.tasks.cifar10.task import Cifar10Class, Cifar10ClassTiny

    cls = Cifar10ClassTiny if tiny else Cifar10Class
    return cls(cls.Config())


def pretrain_throughput(task: Any, device: str, seconds: float, batch: int, n_images: int,
                        warmup: int) -> dict[str, Any]:
    """Images per second of ``ubench pretrain``'s step on random data (after ``warmup`` steps)."""
    from dataclasses import replace

    from ubench.training.pretrain import Trainer

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_images)
    spec = replace(task.pretrain_spec, batch_size=batch)
    _reset_peak(device)
    trainer = Trainer(task.build_model(), images, labels, spec, device)
    for _ in range(warmup):
        trainer.step()
    _sync(device)
    t0, steps = time.perf_counter(), 0
    while True:
        loss = trainer.step()
        steps += 1
        if steps % 10 == 0 or not device.startswith("cuda"):  # sync rarely on a GPU
            _sync(device)
            if time.perf_counter() - t0 >= seconds:
                break
    float(loss)
    _sync(device)
    elapsed = time.perf_counter() - t0
    return {"batch_size": batch, "steps_timed": steps, "seconds": elapsed,
            "images_per_second": steps * batch / elapsed,
            "step_seconds": elapsed / steps, "peak_gpu_mb": _peak_mb(device),
            "parameters": sum(p.numel() for p in trainer.params),
            "precision": "bf16 autocast, fp32 master weights" if device.startswith("cuda")
            else "fp32"}


def unlearning_steps(task: Any, method: str, device: str, steps: int, batch: int,
                     n_forget: int, n_remain: int) -> dict[str, Any]:
    """Seconds per step and peak memory of ``method`` with the paper's CIFAR-10 recipe."""
    from ubench.api import ConditionedSet, RunContext, UnlearnRequest
    from ubench.catalog.registry import METHODS
    from ubench.core.config import build_config
    from ubench.tasks.cifar10.recipes import CIFAR_METHOD_DEFAULTS

    gen = torch.Generator().manual_seed(1)
    forget = ConditionedSet(torch.rand(n_forget, 3, 32, 32, generator=gen) * 2 - 1,
                            torch.zeros(n_forget, dtype=torch.long))
    remain = ConditionedSet(torch.rand(n_remain, 3, 32, 32, generator=gen) * 2 - 1,
                            torch.arange(n_remain) % 9 + 1)
    cls = METHODS.get(method)
    recipe = {**CIFAR_METHOD_DEFAULTS[method], "steps": steps, "batch_size": batch,
              "remain_gradient": "full"}
    cfg = build_config(cls.Config, recipe, f"method {method}")
    model = task.build_model().to(device)
    model.mixed_precision = device.startswith("cuda")
    times: list[float] = []

    def on_step(step: int, total: int, scalars: dict[str, float]) -> None:
        _sync(device)
        times.append(time.perf_counter())

    _reset_peak(device)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(seed=0, device=device, run_dir=Path(tmp), checkpoint_every=0,
                         on_step=on_step)
        _sync(device)
        t0 = time.perf_counter()
        cls().unlearn(model, UnlearnRequest(forget=forget, remain=remain), cfg, ctx)
    per_step = np.diff([t0, *times])
    later = per_step[1:] if len(per_step) > 1 else per_step
    return {"method": method, "steps": steps, "batch_size": batch, "remain_images": n_remain,
            "remain_gradient": "full", "first_step_seconds": float(per_step[0]),
            "median_step_seconds": float(statistics.median(later)),
            "peak_gpu_mb": _peak_mb(device)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny network and sizes (smoke test)")
    ap.add_argument("--pretrain-seconds", type=float, default=None)
    ap.add_argument("--unlearn-steps", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda but no CUDA device is available; use --device cpu --tiny")
    tiny = args.tiny
    seconds = args.pretrain_seconds if args.pretrain_seconds is not None else (
        2.0 if tiny else 120.0)
    steps = args.unlearn_steps or (3 if tiny else 20)
    task = _task(tiny)
    result: dict[str, Any] = {
        "device": args.device, "tiny": tiny, "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(torch.device(args.device))
        if args.device.startswith("cuda") else None}
    t0 = time.perf_counter()
    result["pretrain"] = pretrain_throughput(
        task, args.device, seconds, batch=16 if tiny else 128, n_images=200 if tiny else 50_000,
        warmup=2 if tiny else 20)
    result["unlearn"] = [unlearning_steps(task, m, args.device, steps, batch=8 if tiny else 64,
                                          n_forget=40 if tiny else 5000,
                                          n_remain=18 if tiny else 450)
                         for m in ("boostalign", "graddiff")]
    result["total_seconds"] = time.perf_counter() - t0
    p = result["pretrain"]
    print(f"device: {result['gpu'] or args.device}   torch {result['torch']}"
          + ("   (tiny smoke test: numbers meaningless)" if tiny else ""))
    mem = f", peak {p['peak_gpu_mb']:.0f} MB" if p["peak_gpu_mb"] is not None else ""
    print(f"pretrain ({p['parameters'] / 1e6:.2f}M parameters, batch {p['batch_size']}, "
          f"{p['precision']}): {p['images_per_second']:.0f} images/s over {p['steps_timed']} "
          f"steps{mem}")
    print(f"{'method':<11} {'s/step (median)':>16} {'first step s':>13} {'peak GPU MB':>12}")
    for u in result["unlearn"]:
        peak = f"{u['peak_gpu_mb']:.0f}" if u["peak_gpu_mb"] is not None else "-"
        print(f"{u['method']:<11} {u['median_step_seconds']:>16.4f} "
              f"{u['first_step_seconds']:>13.4f} {peak:>12}")
    b, g = result["unlearn"]
    ratio = b["median_step_seconds"] / g["median_step_seconds"]
    print(f"boostalign / graddiff step time: {ratio:.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
