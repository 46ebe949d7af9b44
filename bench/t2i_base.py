"""How well and how fast the t2i world's base model learns: train, then score exact alignment.

Trains the text-conditioned UNet of the ``t2i-*`` tasks on the world's caption corpus for
``--steps`` steps (the task's recipe otherwise), then generates one image per held-out prompt
(random scenes, test colours, any wording) and prints per-attribute accuracy and exact alignment
(every named attribute present), with seconds per step. Used to choose the step count and
resolution of the world; numbers go in docs/tasks/t2i.md.

    python bench/t2i_base.py --steps 3000 --threads 2 --prompts 300
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace

import torch

from ubench.models.diffusion import text_conditional_model
from ubench.tasks.digits.judge import judge_predict
from ubench.tasks.t2i import world
from ubench.tasks.t2i.concepts import TEST_COLOURS
from ubench.tasks.t2i.corpus import build_corpus
from ubench.tasks.t2i.task import T2IAttribute, _attribute_accuracy
from ubench.training.diffusion import train_diffusion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=T2IAttribute.train_spec.steps)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=300)
    ap.add_argument("--guidance", type=float, nargs="+", default=[3.0])
    ap.add_argument("--lr", type=float, default=T2IAttribute.train_spec.lr)
    ap.add_argument("--corpus", type=int, default=T2IAttribute.corpus_spec.size)
    ap.add_argument("--ema", type=float, default=T2IAttribute.train_spec.ema_decay)
    ap.add_argument("--cross-attention", default=T2IAttribute.model_spec.cross_attention,
                    choices=["low", "all"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = T2IAttribute(T2IAttribute.Config())
    spec = replace(T2IAttribute.train_spec, steps=args.steps, lr=args.lr, ema_decay=args.ema)
    t0 = time.time()
    images, captions, _ = build_corpus(replace(T2IAttribute.corpus_spec, size=args.corpus))
    s = T2IAttribute.model_spec
    model = text_conditional_model(resolution=world.SIZE, channels=s.channels,
                                   layers_per_block=s.layers_per_block, max_length=s.max_length,
                                   cross_attention=args.cross_attention)
    model.conditioner.precompute([*captions, ""])  # type: ignore[union-attr]
    t_corpus = time.time() - t0
    t0 = time.time()

    def report(step: int, total: int, loss: float) -> None:
        if step % 250 == 0:
            print(f"step {step}/{total} loss {loss:.4f} ({(time.time() - t0) / step:.3f} s/step)",
                  flush=True)

    ema = train_diffusion(model, images, captions, spec, report)
    t_train = time.time() - t0
    rng = random.Random(123)
    scenes = [world.random_scene(rng, colours=TEST_COLOURS) for _ in range(args.prompts)]
    prompts = [world.caption(sc, rng, "any") for sc in scenes]
    judge = task.judge
    print(f"corpus+encoding {t_corpus:.0f} s, training {t_train:.0f} s "
          f"({t_train / args.steps:.3f} s/step, {args.threads} threads)")
    for g in args.guidance:
        out = ema.sample(prompts, steps=25, guidance=g, seeds=list(range(len(prompts))))
        dets, maps = world.detect(out)
        digits = judge_predict(judge, maps)[0].tolist()
        named = [world.named_attributes(sc) for sc in scenes]
        acc = _attribute_accuracy(named, dets, digits)
        exact = sum(world.alignment(a, d, k) for a, d, k in zip(named, dets, digits, strict=True))
        print(f"guidance {g}: exact alignment {exact / len(prompts):.3f}; "
              + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))


if __name__ == "__main__":
    main()
