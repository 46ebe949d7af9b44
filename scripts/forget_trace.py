"""What digits-class runs draw for the forgotten class, read by every judge, and whether their
noise still carries the class.

The check docs/results.md reports for EraseDiff under the validated judge: for each run folder
given (``ubench run`` and ``ubench sweep`` keep the unlearned weights in ``<run>/model``), it
regenerates the run's forget-class generations exactly as its evaluation did (the record's task
config: same count, seeds, sampler) and prints, per judge, the share read as the forgotten class
and as *not a digit*; then the **trace**: the correlation of the mean generation with the
forgotten class's mean real digit (held-out split), and the largest correlation with any other
class's. A model that forgets by drawing noise has a trace near the other classes'; one that
hides the class under noise has a mean image that is the class (EraseDiff on digits: 0.77-0.85
against at most 0.40-0.61).

Example:
  python scripts/forget_trace.py results/digits-class/erasediff/712d4944594e1225 --json t.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def trace(images: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor, cls: int
          ) -> tuple[float, float]:
    """Correlation of the mean of ``images`` with the mean real digit of ``cls``, and the largest
    with the mean real digit of any other class (pixels standardised, Pearson)."""
    def z(t: torch.Tensor) -> torch.Tensor:
        return (t - t.mean()) / t.std(correction=0).clamp_min(1e-8)

    mean = z(images.mean(0))
    corr = {k: float((mean * z(real[real_labels == k].mean(0))).mean())
            for k in sorted(set(real_labels.tolist()))}
    return corr[cls], max(v for k, v in corr.items() if k != cls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="digits-class run folders (each with model/)")
    parser.add_argument("--base", type=int, metavar="CLASS",
                        help="also read the pinned base model's generations of this class")
    parser.add_argument("--json", dest="json_out", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from ubench.api import generation_seeds
    from ubench.models.diffusion import DiffusionModel
    from ubench.store.records import read_record
    from ubench.tasks.digits.data import load_digits_splits
    from ubench.tasks.digits.judge import NOT_A_DIGIT, VALIDATED_JUDGES, judge_predict
    from ubench.tasks.digits.task import DigitsClass, DigitsConfig

    rows: list[tuple[str, DigitsConfig, Path | None]] = []
    for run in args.runs:
        folder = Path(run)
        if not (folder / "model").is_dir() or not (folder / "record.json").is_file():
            print(f"error: {folder} has no model/ folder and record.json; pass a digits-class "
                  "run folder that `ubench run` wrote", file=sys.stderr)
            return 1
        rec = read_record(folder / "record.json")
        if rec["task"]["id"] != "digits-class":
            print(f"error: {folder} is a {rec['task']['id']} run; this check reads "
                  "digits-class runs", file=sys.stderr)
            return 1
        config = {k: v for k, v in rec["task"]["config"].items()
                  if k in DigitsConfig.field_names()}
        rows.append((f"{folder.parent.name}/{folder.name}", DigitsConfig(**config), folder))
    if args.base is not None:
        rows.insert(0, ("base", DigitsConfig(forget_class=args.base), None))
    _, held = load_digits_splits()
    figures: dict[str, dict[str, object]] = {}
    for name, config, folder in rows:
        task = DigitsClass(config)
        c = task.config
        cls = c.forget_class
        model = (DiffusionModel.load(folder / "model") if folder is not None
                 else task.base_model("cpu"))
        seeds = generation_seeds(c.eval_seed, c.eval_forget + 9 * c.eval_per_class)
        images = model.sample(torch.full((c.eval_forget,), cls), steps=c.sampling_steps,
                              guidance=c.guidance, seeds=seeds[:c.eval_forget])
        judges = {"judge": task.original_judge,
                  **{r: task.validated_judge(r) for r in VALIDATED_JUDGES}}
        row: dict[str, object] = {"forget_class": cls}
        for j, net in judges.items():
            p = judge_predict(net, images)[0]
            row[j] = {"concept": float((p == cls).float().mean()),
                      "not_a_digit": float((p == NOT_A_DIGIT).float().mean())}
        own, other = trace(images, held.images, held.labels, cls)
        row["trace"] = {"forget_class": own, "best_other_class": other}
        figures[name] = row
        print(f"{name} (class {cls}): " + "; ".join(
            f"{j} concept {row[j]['concept']:.3f} not a digit "  # type: ignore[index]
            f"{row[j]['not_a_digit']:.3f}" for j in judges)  # type: ignore[index]
            + f"; trace {own:.2f} (best other class {other:.2f})")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
