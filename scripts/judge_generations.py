"""Judge what unlearned t2i models actually draw for the forget prompts: with every digits judge
(t2i-object), or with the pattern rule and the graded pattern strength (t2i-style).

The check docs/judges.md reports under "On what unlearned models draw": for each run folder given
(``ubench run`` keeps the unlearned weights in ``<run>/model``), plus the task's base model and
retrain oracle, it regenerates the forget test prompts exactly as the task's evaluation does (same
prompts, seeds, sampler), reads the digit maps with ``world.detect`` and prints, per judge, the
concept rate and what the generations were read as, and how often the validated judge and its
partner agree. On t2i-style it prints, per row, the share the pattern rule reads as the forgotten
style (the concept rate) and the graded strength of that pattern (``world.pattern_strength``: 1 as
rendered, 0 none): its mean and the shares of images at 0.25 or more (faint stripes a person
sees) and at 0.5 or more. ``--grid FILE`` writes the first 20 forget generations of every row as
a PNG.

Example:
  python scripts/judge_generations.py --task t2i-object \\
      results/t2i-object/graddiff/8b0df4199e11c98c --grid forget.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run folders (each with a model/ folder)")
    parser.add_argument("--task", default="t2i-object", choices=["t2i-object", "t2i-style"],
                        help="t2i-object: the digits judges read the digit; t2i-style: the "
                             "pattern rule and the pattern's graded strength")
    parser.add_argument("--grid", help="write the forget generations of every row here (PNG)")
    parser.add_argument("--json", dest="json_out", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from ubench.api import generation_seeds
    from ubench.catalog.registry import TASKS
    from ubench.models.diffusion import DiffusionModel
    from ubench.tasks.digits.judge import NOT_A_DIGIT, VALIDATED_JUDGES, judge_predict
    from ubench.tasks.digits.task import DigitsClass, DigitsConfig
    from ubench.tasks.t2i import world

    task_cls = TASKS.get(args.task)
    task = task_cls(task_cls.Config())
    digits = DigitsClass(DigitsConfig())
    judges = {"judge": digits.original_judge,
              **{r: digits.validated_judge(r) for r in VALIDATED_JUDGES}}
    sets = task.eval_sets()
    prompts = sets["forget_test"][0]
    c = task.config
    seeds = generation_seeds(c.eval_seed, sum(len(p) for p, _ in sets.values()))[:len(prompts)]
    rows: dict[str, DiffusionModel] = {}
    for run in args.runs:
        folder = Path(run)
        if not (folder / "model").is_dir():
            print(f"error: {folder} has no model/ folder; pass a run folder that `ubench run` "
                  "wrote", file=sys.stderr)
            return 1
        rows[folder.parent.name + "/" + folder.name] = DiffusionModel.load(folder / "model")
    rows = {"base": task.base_model("cpu"), "retrain oracle": task.oracle_model("cpu"), **rows}
    figures: dict[str, dict[str, object]] = {}
    grids = []
    for name, model in rows.items():
        images = model.sample(prompts, steps=c.sampling_steps, guidance=c.guidance, seeds=seeds)
        grids.append(torch.cat(list(images[:20]), dim=2))
        if args.task == "t2i-style":
            figures[name] = _style_row(name, images, c.forget_style)
            continue
        _, maps = world.detect(images)
        preds = {j: judge_predict(net, maps)[0] for j, net in judges.items()}
        row: dict[str, object] = {}
        for j, p in preds.items():
            counts = torch.bincount(p, minlength=NOT_A_DIGIT + 1).tolist()
            row[j] = {"concept_rate": float((p == c.forget_digit).float().mean()),
                      "read_as": {("not a digit" if k == NOT_A_DIGIT else str(k)): v
                                  for k, v in enumerate(counts) if v}}
        row["agreement robust/partner"] = float(
            (preds["judge-robust"] == preds["judge-partner"]).float().mean())
        figures[name] = row
        print(f"{name}: " + "; ".join(
            f"{j} concept {float((p == c.forget_digit).float().mean()):.2f}, reads "
            f"{row[j]['read_as']}" for j, p in preds.items())  # type: ignore[index]
            + f"; robust/partner agree {row['agreement robust/partner']:.2f}")
    if args.grid:
        from PIL import Image

        g = torch.cat(grids, dim=1).permute(1, 2, 0)
        pixels = ((g + 1) / 2 * 255).clamp(0, 255).byte().numpy()
        Image.fromarray(pixels).resize((pixels.shape[1] * 4, pixels.shape[0] * 4),
                                       Image.NEAREST).save(args.grid)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


def _style_row(name: str, images: torch.Tensor, style: str) -> dict[str, object]:
    """The pattern rule's verdict and the graded strength of ``style`` on one row's images."""
    from ubench.tasks.t2i import world

    dets, _ = world.detect(images)
    strength = world.pattern_strength(images, style)
    row: dict[str, object] = {
        "concept_rate": sum(d.pattern == style for d in dets) / len(dets),
        "strength_mean": float(strength.mean()),
        "strength_at_least_0.25": float((strength >= 0.25).float().mean()),
        "strength_at_least_0.5": float((strength >= 0.5).float().mean())}
    print(f"{name}: rule reads {style} {row['concept_rate']:.2f}; strength mean "
          f"{row['strength_mean']:.2f}, >= 0.25: {row['strength_at_least_0.25']:.2f}, "
          f">= 0.5: {row['strength_at_least_0.5']:.2f}")
    return row


if __name__ == "__main__":
    sys.exit(main())
