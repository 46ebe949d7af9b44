"""What a training-free method costs per generation against the plain model, side by side in one
process: the t2i task's pinned base model sampling the same prompts at the task's own sampler
settings, with classifier-free guidance (2 UNet evaluations a step), negative prompting as
SD-NEGP (``scale=auto``: 2), negative prompting with its weight apart (3) and SLD (3). CPU time
per generation, median of ``--repeat`` batches; the ratio is to the plain model's.

    python bench/sampling_rules.py                    # t2i-attribute, 32 prompts, 1 thread
    python bench/sampling_rules.py --task t2i-style --prompts 64 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from ubench.catalog.registry import TASKS
from ubench.methods.negprompt import NegativeRule
from ubench.methods.sld import SafetyRule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="t2i-attribute")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = TASKS.get(args.task)(TASKS.get(args.task).Config())
    task.prepare()
    model = task.base_model("cpu")
    c = task.config
    request = task.request(0)
    concept = ", ".join(request.concept or ["concept"])
    prompts = [str(p) for p in request.forget.conditions][: args.prompts]
    seeds = list(range(len(prompts)))
    rules = {"plain guidance": None, "negprompt (auto)": NegativeRule(concept, None),
             "negprompt (scale 4)": NegativeRule(concept, 4.0),
             "sld (medium)": SafetyRule(concept, "medium", "paper")}
    print(f"{args.task}: {len(prompts)} prompts, {c.sampling_steps} steps, guidance "
          f"{c.guidance}, {args.threads} thread(s); CPU ms per generation, median of "
          f"{args.repeat}\n")
    print("| sampling | ms / generation | ratio to plain |\n|---|---|---|")
    base = None
    for name, rule in rules.items():
        model.sampling_rule = rule
        model.sample(prompts[:2], steps=c.sampling_steps, guidance=c.guidance, seeds=seeds[:2])
        times = []
        for _ in range(args.repeat):
            t0 = time.process_time()
            model.sample(prompts, steps=c.sampling_steps, guidance=c.guidance, seeds=seeds)
            times.append((time.process_time() - t0) / len(prompts))
        ms = 1000 * sorted(times)[len(times) // 2]
        base = base or ms
        print(f"| {name} | {ms:.1f} | {ms / base:.2f} |")


if __name__ == "__main__":
    main()
