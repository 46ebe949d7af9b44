"""What one unit of each attack costs on the offline tasks' real model sizes, and what the default
budgets therefore cost, measured side by side in one process (CPU time, so a shared machine
inflates it less than wall time).

Units: a fine-tuning step (``relearn`` / ``resurgence``: full-UNet denoising loss, backward,
Adam, batch 16), an inversion step (``invert``: the same through a learned class vector or a
prefixed token embedding, UNet frozen), a soft-prompt iteration (``softprompt``: every prompt's
straight-through token draw, text encoder and UNet forward/backward, simplex projection), and one
measurement of the forget probe (its generations at the task's sampler, judged). Weights are
random (cost does not depend on them); sizes are those of ``digits-class`` (the class-conditional
UNet, 500 forget generations) and ``t2i-*`` (the text-conditioned UNet on MiniLM, 100 forget
prompts).

    python bench/attack_cost.py                      # both families, 1 thread
    python bench/attack_cost.py --family t2i --prompts 100 --threads 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from ubench.attacks.softprompt import _StraightThrough, draw_tokens, project_simplex
from ubench.models import soft
from ubench.models.diffusion import (
    DiffusionModel,
    class_conditional_model,
    text_conditional_model,
)


def cpu_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds of ``fn`` over ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return sorted(times)[len(times) // 2]


def units(model: DiffusionModel, text: bool, prompts: int, probe: int, steps: int,
          guidance: float, repeat: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    shape = model.sample_shape
    x0 = torch.rand(16, *shape, generator=gen) * 2 - 1
    words = [f"a red {i % 10} on blue with stripes inside a frame" for i in range(16)]
    cond = model.encode(words if text else torch.arange(16) % 10)
    params = model.trainable_parameters("full")
    opt = torch.optim.Adam(params, lr=1e-4)

    def finetune() -> None:
        opt.zero_grad()
        model.denoising_loss(x0, cond, gen).backward()
        opt.step()

    vec = (torch.zeros(1, 384) if text else torch.zeros(model.unet.class_embedding.weight.shape[1]))
    vec.requires_grad_(True)
    vopt = torch.optim.Adam([vec], lr=1e-2)

    def invert() -> None:
        model.unet.requires_grad_(False)
        vopt.zero_grad()
        if text:
            loss = model.denoising_loss(x0, soft.encode_prefixed(model, words, vec), gen)
        else:
            with soft.learned_class(model, vec):
                loss = model.denoising_loss(x0, soft.learned_labels(16, "cpu"), gen)
        loss.backward()
        vopt.step()

    out = {"finetune_step": cpu_seconds(finetune, repeat), "invert_step": cpu_seconds(invert,
                                                                                       repeat)}
    if text:
        table = soft.token_table(model).detach().float()
        relaxed = torch.full((prompts, 5, table.shape[0]), 1.0 / table.shape[0],
                             requires_grad=True)
        popt = torch.optim.Adam([relaxed], lr=0.01, weight_decay=0.1)
        many = [words[i % 16] for i in range(prompts)]
        targets = torch.rand(prompts, *shape, generator=gen) * 2 - 1
        tt = torch.full((prompts,), 500, dtype=torch.long)

        def soft_iteration() -> None:
            popt.zero_grad()
            emb = _StraightThrough.apply(relaxed, draw_tokens(relaxed, gen), table)
            states = soft.encode_prefixed(model, many, emb)
            eps = torch.randn(targets.shape, generator=gen)
            x_t = model.noise_scheduler.add_noise(targets, eps, tt)
            (model.predict_noise(x_t, tt, states) - eps).pow(2).mean(dim=(1, 2, 3)).sum(
            ).backward()
            popt.step()
            with torch.no_grad():
                relaxed.copy_(project_simplex(relaxed))

        out["softprompt_iteration"] = cpu_seconds(soft_iteration, max(1, repeat // 2))
        probe_cond = many[:probe] if probe <= prompts else [words[i % 16] for i in range(probe)]
    else:
        probe_cond = torch.zeros(probe, dtype=torch.long)
    seeds = list(range(probe))
    out["probe_measurement"] = cpu_seconds(
        lambda: model.sample(probe_cond, steps=steps, guidance=guidance, seeds=seeds), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=["digits", "t2i", "both"], default="both")
    ap.add_argument("--prompts", type=int, default=100, help="soft-prompt prompts attacked")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    families = ["digits", "t2i"] if args.family == "both" else [args.family]
    for fam in families:
        if fam == "digits":
            model = class_conditional_model(resolution=8)
            u = units(model, False, 0, 500, 25, 2.0, args.repeat)
        else:
            model = text_conditional_model(resolution=12)
            u = units(model, True, args.prompts, 100, 25, 3.0, args.repeat)
        print(f"== {fam} ({sum(p.numel() for p in model.unet.parameters()) / 1e6:.2f}M UNet "
              f"parameters), CPU seconds at {args.threads} thread(s)")
        for k, v in u.items():
            print(f"   {k:<22} {v:8.3f}")
        m = u["probe_measurement"]
        relearn = 200 * u["finetune_step"] + 4 * m
        invert = 200 * u["invert_step"] + 3 * m
        print(f"   relearn / resurgence at 0,10,50,200 steps: ~{relearn:.0f} s "
              f"({200 * u['finetune_step']:.0f} s steps + 4 measurements)")
        print(f"   invert at 0,50,200 steps: ~{invert:.0f} s")
        if "softprompt_iteration" in u:
            it = u["softprompt_iteration"]
            for blocks, iters in ((50, 40), (10, 20), (5, 20)):
                worst = blocks * iters * it + (blocks + 1) * m * args.prompts / 100
                print(f"   softprompt {args.prompts} prompts, {blocks} timesteps x {iters} "
                      f"iterations: worst case (no early success) ~{worst:.0f} s")


if __name__ == "__main__":
    main()
