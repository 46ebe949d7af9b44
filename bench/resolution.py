"""Which resolution for digits-class: native 8x8 or 16x16 (bilinear upsampled)?

Trains the task's UNet recipe at both resolutions side by side (two single-thread processes, so
both see the same machine load) for the same wall-clock budget, then judges 500 guided samples
per model with the digits judge (16x16 samples are average-pooled to 8x8 for the judge) and
prints accuracy, FD and the ratio of training steps achieved.

    python bench/resolution.py --seconds 180
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time


def train_for(resolution: int, seconds: float, out: mp.Queue) -> None:
    import torch
    from torch.nn import functional as F

    torch.set_num_threads(1)
    from ubench.models.diffusion import class_conditional_model
    from ubench.tasks.digits.data import load_digits_splits
    from ubench.training.diffusion import TrainSpec, train_diffusion

    train, _ = load_digits_splits()
    x = train.images if resolution == 8 else F.interpolate(train.images, size=16,
                                                           mode="bilinear", align_corners=False)
    # measure the step time on a short run, then train the number of steps the budget allows
    probe = class_conditional_model(resolution=resolution)
    t0 = time.perf_counter()
    train_diffusion(probe, x, train.labels, TrainSpec(steps=20))
    steps = int(seconds / ((time.perf_counter() - t0) / 20))
    ema = train_diffusion(class_conditional_model(resolution=resolution), x, train.labels,
                          TrainSpec(steps=steps))
    labels = torch.arange(10).repeat_interleave(50)
    imgs = ema.sample(labels, steps=25, guidance=2.0, seeds=list(range(500)))
    if resolution == 16:
        imgs = F.avg_pool2d(imgs, 2)
    out.put((resolution, steps, imgs.numpy().tolist(), labels.tolist()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=180)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=train_for, args=(r, args.seconds, q)) for r in (8, 16)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()

    import numpy as np
    import torch

    from ubench.metrics.frechet import frechet_distance
    from ubench.tasks.digits.data import load_digits_splits
    from ubench.tasks.digits.judge import JudgeSpec, judge_predict, train_judge

    train, held = load_digits_splits()
    judge = train_judge(train.images, train.labels, JudgeSpec())
    _, real = judge_predict(judge, held.images)
    rows = {}
    for res, steps, imgs, labels in results:
        pred, feats = judge_predict(judge, torch.tensor(imgs))
        acc = float((pred == torch.tensor(labels)).float().mean())
        fd = frechet_distance(feats.double().numpy(), real.double().numpy())
        rows[res] = {"steps": steps, "accuracy": acc, "fd": fd}
    print(json.dumps({"seconds_each": args.seconds, **{f"{k}x{k}": v for k, v in rows.items()}},
                     indent=2))
    print(f"steps ratio 8x8/16x16: {rows[8]['steps'] / max(1, rows[16]['steps']):.2f}  "
          f"accuracy 8x8 {rows[8]['accuracy']:.3f} vs 16x16 {rows[16]['accuracy']:.3f}  "
          f"FD 8x8 {rows[8]['fd']:.2f} vs 16x16 {rows[16]['fd']:.2f}")
    _ = np


if __name__ == "__main__":
    main()
