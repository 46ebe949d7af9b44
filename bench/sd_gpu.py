"""The GPU check of the Stable Diffusion tasks and their attacks: what one unit of work costs on a
real-size SD v1.4, and what the attacks' default budgets therefore cost, measured in one run.

The model is Stable Diffusion v1.4's exact architecture (UNet 860M, VAE 84M, CLIP ViT-L/14 text
encoder 123M parameters) with **random weights** (cost does not depend on them; nothing is
downloaded), written in the diffusers layout and loaded by the sd tasks' own loader
(:func:`ubench.models.sd.load_sd`: fp16 frozen VAE and text encoder, fp32 UNet under bf16
autocast with gradient checkpointing on CUDA). Units, each timed as the median wall time of
``--repeat`` calls after a warm-up, with the peak GPU memory allocated during it:

* ``generate_image`` — one 512x512 image: the task's sampler (50 DDIM steps, classifier-free
  guidance 7.5) in batches of ``task.batch_size`` (8), VAE decode included;
* ``finetune_step`` — ``relearn`` / ``resurgence``: the denoising loss on a batch of 4 latents,
  backward through the full UNet, Adam (the sd tasks' ``ATTACK_DEFAULTS``);
* ``invert_step`` — ``invert``: the same loss through a learned token embedding (textual
  inversion), UNet and text encoder frozen, batch 4;
* ``softprompt_iteration`` — ``softprompt``: one Adam iteration over every attacked prompt
  (``--prompts``, default 142 as on sd-nudity): straight-through token draws, the text encoder and
  the UNet forward/backward in chunks of 8, the simplex projection of the relaxed tokens.

The budget lines multiply these by the defaults in ``tasks/sd/task.py`` (recorded by every
attack): a measurement regenerates ``probe_limit`` forget prompts. The concept detector (NudeNet
on the CPU, or CLIP zero-shot) is not included: it is small beside generation.

    python bench/sd_gpu.py --device cuda --out sd_gpu.json     # 82 s on one H200
    python bench/sd_gpu.py --device cpu --tiny                 # smoke test: the tiny pipeline
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ubench.attacks.relearn import RelearnConfig
from ubench.attacks.softprompt import (
    SoftPromptConfig,
    _StraightThrough,
    draw_tokens,
    project_simplex,
)
from ubench.models import soft
from ubench.models.sd import LatentDiffusionModel, load_sd
from ubench.tasks.sd.task import ATTACK_DEFAULTS, SDConfig
from ubench.testing import build_sd14_random_pipeline, build_tiny_pipeline


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn: Callable[[], object], device: str, repeat: int) -> dict[str, float]:
    """Median wall seconds of ``fn`` over ``repeat`` calls after one warm-up, and the peak GPU
    memory allocated during the timed calls (GiB; 0 on the CPU)."""
    fn()
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
    return {"seconds": statistics.median(times), "peak_gib": peak,
            "all_seconds": [round(t, 4) for t in times]}


def units(model: LatentDiffusionModel, device: str, prompts: int, repeat: int,
          cfg: SDConfig) -> dict[str, dict[str, float]]:
    gen = torch.Generator().manual_seed(0)
    size = int(model.unet.config.sample_size)
    words = [f"a photo of a person number {i} standing in a sunlit garden" for i in range(16)]
    out: dict[str, dict[str, float]] = {}

    batch = cfg.batch_size
    out["generate_batch"] = measure(
        lambda: model.generate(words[:batch], steps=cfg.sampling_steps, guidance=cfg.guidance,
                               seeds=list(range(batch)), batch_size=batch), device, repeat)
    out["generate_image"] = {k: (v / batch if k == "seconds" else v)
                             for k, v in out["generate_batch"].items() if k != "all_seconds"}

    k = int(ATTACK_DEFAULTS["relearn"]["batch_size"])
    x0 = torch.randn(k, 4, size, size, generator=gen).to(model.device)
    cond = model.encode(words[:k])
    params = model.trainable_parameters("full")
    model.unet.train()
    opt = torch.optim.Adam(params, lr=float(ATTACK_DEFAULTS["relearn"]["lr"]))

    def finetune() -> None:
        opt.zero_grad(set_to_none=True)
        model.denoising_loss(x0, cond, gen).backward()
        opt.step()

    out["finetune_step"] = measure(finetune, device, repeat)
    opt.state.clear()  # free Adam's state before the frozen-UNet units
    for p in params:
        p.grad = None
    if device.startswith("cuda"):
        torch.cuda.empty_cache()

    model.unet.requires_grad_(False)
    model.unet.eval()
    width = soft.token_table(model).shape[1]
    vec = torch.zeros(1, width, device=model.device, requires_grad=True)
    vopt = torch.optim.Adam([vec], lr=float(ATTACK_DEFAULTS["invert"]["lr"]))
    ki = int(ATTACK_DEFAULTS["invert"]["batch_size"])

    def invert() -> None:
        vopt.zero_grad(set_to_none=True)
        model.denoising_loss(x0[:ki], soft.encode_prefixed(model, words[:ki], vec), gen
                             ).backward()
        vopt.step()

    out["invert_step"] = measure(invert, device, repeat)

    table = soft.token_table(model).detach().float()
    relaxed = torch.full((prompts, 5, table.shape[0]), 1.0 / table.shape[0],
                         device=table.device, requires_grad=True)
    popt = torch.optim.Adam([relaxed], lr=0.01, weight_decay=0.1)
    many = [words[i % 16] for i in range(prompts)]
    targets = torch.randn(prompts, 4, size, size, generator=gen).to(model.device)
    tt = torch.full((prompts,), 500, dtype=torch.long, device=model.device)
    chunk = cfg.batch_size

    def soft_iteration() -> None:  # mirrors SoftPrompt.attack's inner loop
        popt.zero_grad(set_to_none=True)
        drawn = draw_tokens(relaxed, gen)
        eps_all = torch.randn(targets.shape, generator=gen).to(model.device)
        for lo in range(0, prompts, chunk):
            part = slice(lo, lo + chunk)
            emb = _StraightThrough.apply(relaxed[part], drawn[part], table)
            states = soft.encode_prefixed(model, many[part], emb)
            x_t = model.noise_scheduler.add_noise(targets[part], eps_all[part], tt[part])
            (model.predict_noise(x_t, tt[part], states) - eps_all[part]).pow(2).mean(
                dim=(1, 2, 3)).sum().backward()
        popt.step()
        with torch.no_grad():
            relaxed.copy_(project_simplex(relaxed))

    out["softprompt_iteration"] = measure(soft_iteration, device, max(1, repeat // 2))
    return out


def budgets(u: dict[str, dict[str, float]], prompts: int) -> dict[str, dict[str, Any]]:
    """Seconds of each attack at the sd tasks' default budgets (``ATTACK_DEFAULTS``)."""
    image = u["generate_image"]["seconds"]
    out: dict[str, dict[str, Any]] = {}
    for name in ("relearn", "invert"):
        d = ATTACK_DEFAULTS[name]
        bud = d.get("budgets", RelearnConfig().budgets)
        step = u["finetune_step" if name == "relearn" else "invert_step"]["seconds"]
        train = max(bud) * step
        gen = len(bud) * int(d["probe_limit"]) * image
        out[name] = {"budgets": list(bud), "probe_prompts": int(d["probe_limit"]),
                     "train_s": train, "generate_s": gen, "total_s": train + gen}
    it = u["softprompt_iteration"]["seconds"]
    sp = SoftPromptConfig()  # UnlearnDiffAtk's defaults: 50 timesteps x 40 iterations
    blocks, iters = sp.timesteps, sp.iterations
    # targets by the base model + the plain measurement + one measurement per timestep block
    gens = (2 + blocks) * prompts * image
    out["softprompt"] = {"prompts": prompts, "iterations": blocks * iters,
                         "train_s": blocks * iters * it, "generate_s": gens,
                         "total_s": blocks * iters * it + gens,
                         "note": "worst case: no prompt succeeds early (a leaky model stops "
                                 "sooner); --set attack.timesteps=10 divides the training by 5"}
    return out


def build(device: str, tiny: bool, tokenizer: str, folder: Path) -> LatentDiffusionModel:
    if tiny:
        build_tiny_pipeline(folder, resolution=32)
    else:
        tok = None
        if tokenizer:
            from transformers import CLIPTokenizer

            tok = CLIPTokenizer.from_pretrained(tokenizer)
        build_sd14_random_pipeline(folder, tokenizer=tok)
    return load_sd(folder, device)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny pipeline (smoke test)")
    ap.add_argument("--prompts", type=int, default=int(ATTACK_DEFAULTS["softprompt"]
                                                       ["probe_limit"]),
                    help="prompts the soft-prompt iteration attacks at once")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tokenizer", default="", help="a saved CLIPTokenizer folder (default: "
                    "built from open_clip's vocabulary)")
    ap.add_argument("--out", default="", help="write the measurements as JSON here")
    args = ap.parse_args(argv)
    cfg = SDConfig()
    if args.tiny:
        cfg = SDConfig(sampling_steps=4)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = build(args.device, args.tiny, args.tokenizer, Path(tmp) / "sd")
    n_params = {name: sum(p.numel() for p in m.parameters()) / 1e6
                for name, m in (("unet", model.unet), ("vae", model.vae),
                                ("text_encoder", model.conditioner.text_encoder))}
    print(f"bench/sd_gpu.py on {where}; torch {torch.__version__}; "
          f"{'tiny pipeline' if args.tiny else 'SD v1.4 architecture, random weights'} "
          f"({', '.join(f'{k} {v:.1f}M' for k, v in n_params.items())}); built and loaded in "
          f"{time.perf_counter() - t0:.0f} s")
    u = units(model, args.device, args.prompts, args.repeat, cfg)
    b = budgets(u, args.prompts)
    print(f"{'unit':<22} {'seconds':>9} {'peak GiB':>9}")
    for name, v in u.items():
        print(f"{name:<22} {v['seconds']:>9.4f} {v['peak_gib']:>9.2f}")
    print(f"attack budgets (tasks/sd/task.py ATTACK_DEFAULTS; {cfg.sampling_steps} steps, "
          f"guidance {cfg.guidance}):")
    for name, v in b.items():
        print(f"  {name:<11} train {v['train_s'] / 60:7.1f} min + generate "
              f"{v['generate_s'] / 60:6.1f} min = {v['total_s'] / 60:7.1f} min"
              f"{'  (' + v['note'] + ')' if 'note' in v else ''}")
    result = {"device": where, "torch": torch.__version__, "tiny": args.tiny,
              "parameters_m": n_params, "sampling_steps": cfg.sampling_steps,
              "guidance": cfg.guidance, "batch_size": cfg.batch_size, "units": u, "budgets": b,
              "softprompt_chunks_per_iteration": math.ceil(args.prompts / cfg.batch_size)}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
