"""boostalign vs graddiff on the t2i tasks at their own tuned points, and with the SD threshold.

For each t2i task, four rows: boostalign and graddiff at their protocol-v2 tuned presets
(``plans/protocol-t2i.toml``: the threshold relative to the base model's forget loss) and at the
same points with the SD script's absolute m = 1.1 (``plans/ablation-threshold-t2i.toml``). Per
row: concept rate, held-out alignment, forget-prompt fidelity and garbage rate (mean over seeds
0-2 [min, max]), and how often the threshold switched the forget term off (steps of 100, from
the train log). Then the paired difference boostalign - graddiff under each threshold, with a
95 % bootstrap interval over seeds and the paired samples within them: both rows of a seed are
scored on the same prompts with the same generation seeds. The *verdict* is the sign of that
difference where its interval excludes 0; the last column says whether the relative threshold
changed it.

    python scripts/gradient_verdict.py --store leaderboard/records
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("t2i-attribute", "t2i-style", "t2i-object")
METRICS = ("concept_rate", "alignment_test", "forget_fidelity", "garbage_rate")
#: the better direction of each metric, for the verdict's wording
HIGHER = {"concept_rate": False, "alignment_test": True, "forget_fidelity": True,
          "garbage_rate": False}
RESAMPLES = 1000
SEED = 20_261_207

#: (task, method, variant) -> seed -> record
Rows = dict[tuple[str, str, str], dict[int, dict[str, Any]]]


def collect(records: Sequence[Mapping[str, Any]], ids: Mapping[str, str]) -> Rows:
    """Records whose run id is in ``ids`` (run id -> variant), by (task, method, variant)."""
    out: Rows = {}
    for rec in records:
        variant = ids.get(rec["run_id"])
        if variant is None or rec.get("status") != "ok":
            continue
        key = (rec["task"]["id"], rec["method"]["id"], variant)
        out.setdefault(key, {})[int(rec["seed"])] = dict(rec)
    return out


def paired(a: Sequence[np.ndarray], b: Sequence[np.ndarray], resamples: int = RESAMPLES,
           seed: int = SEED) -> tuple[float, float, float]:
    """Mean over seeds of mean(a_s) - mean(b_s), with a 95 % percentile interval from the
    project's paired hierarchical bootstrap (seeds, then the paired samples within each)."""
    from ubench.core.bootstrap import paired_group_replicates

    if len(a) != len(b) or not a or any(len(x) != len(y) for x, y in zip(a, b, strict=True)):
        raise ValueError("paired samples need the same seeds and the same sample count")
    value = float(np.mean([x.mean() - y.mean() for x, y in zip(a, b, strict=True)]))
    stats = paired_group_replicates(list(zip(a, b, strict=True)), [len(x) for x in a],
                                    lambda pair, idx: float((pair[0][idx] - pair[1][idx]).mean()),
                                    resamples, seed)
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return value, min(float(lo), value), max(float(hi), value)


def verdict(metric: str, diff: tuple[float, float, float]) -> str:
    """Which method the difference favours, or 'tied' when its interval holds 0."""
    value, lo, hi = diff
    if lo <= 0 <= hi:
        return "tied"
    better_a = (value > 0) == HIGHER[metric]
    return "boostalign" if better_a else "graddiff"


def _cell(recs: Mapping[int, Mapping[str, Any]], metric: str) -> str:
    vals = [r["metrics"][metric]["value"] for r in recs.values() if metric in r["metrics"]]
    if not vals:
        return "—"
    return f"{np.mean(vals):.3f} [{min(vals):.3f}, {max(vals):.3f}]"


def report(rows: Rows, scores: Any) -> list[str]:
    """The Markdown report; ``scores(record)`` gives a record's per-sample arrays."""
    lines: list[str] = []
    for task in TASKS:
        have = {k: v for k, v in rows.items() if k[0] == task}
        if not have:
            continue
        lines += [f"### {task}", "", "| method | threshold | " + " | ".join(METRICS)
                  + " | forget term off (steps) |", "|---|---|" + "---|" * (len(METRICS) + 1)]
        for (_, method, variant), recs in sorted(have.items()):
            off = [r.get("train_log", {}).get("forget_off") for r in recs.values()]
            shown = [o for o in off if o is not None]
            brake = f"{np.mean(shown):.0f}" if shown else "—"
            lines.append(f"| {method} | {variant} | "
                         + " | ".join(_cell(recs, m) for m in METRICS) + f" | {brake} |")
        lines += ["", "| Δ boostalign − graddiff | " + " | ".join(METRICS) + " |",
                  "|---|" + "---|" * len(METRICS)]
        verdicts: dict[str, dict[str, str]] = {}
        for variant in ("relative (tuned)", "absolute m 1.1"):
            a, b = have.get((task, "boostalign", variant)), have.get((task, "graddiff", variant))
            if not a or not b:
                continue
            common = sorted(set(a) & set(b))
            cells = []
            for m in METRICS:
                xs = [scores(a[s]).get(m) for s in common]
                ys = [scores(b[s]).get(m) for s in common]
                if any(x is None for x in xs) or any(y is None for y in ys):
                    cells.append("—")
                    continue
                diff = paired(xs, ys)
                verdicts.setdefault(m, {})[variant] = verdict(m, diff)
                cells.append(f"{diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}] "
                             f"({verdicts[m][variant]})")
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        changed = [m for m, v in verdicts.items() if len(set(v.values())) > 1 and len(v) == 2]
        lines += ["", "Did the relative threshold change the verdict? "
                  + (f"yes, on {', '.join(changed)}." if changed else
                     "no: every metric favours the same method (or neither) under both."), ""]
    return lines


def build(store: Path) -> list[str]:
    """The report of the records in ``store`` (ValueError when it holds none of the plans')."""
    from ubench.store import reader
    from ubench.sweep.plan import load_plan

    ids = {i.run_id: "relative (tuned)"
           for i in load_plan(ROOT / "plans" / "protocol-t2i.toml").specs()
           if i.method in ("boostalign", "graddiff")}
    ids.update({i.run_id: "absolute m 1.1" for i in load_plan(
        ROOT / "plans" / "ablation-threshold-t2i.toml").specs()})
    rows = collect(reader.load_records(store), ids)
    if not rows:
        raise ValueError(f"no boostalign or graddiff run of the t2i plans in {store}")
    return report(rows, reader.scores)


def main(argv: Sequence[str] | None = None) -> int:
    from ubench.cli.scripts import store_report

    return store_report(__doc__ or "", build, ROOT / "leaderboard" / "records", argv)


if __name__ == "__main__":
    raise SystemExit(main())
