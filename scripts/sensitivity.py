"""The paper's sensitivity study (its Figure 6) from the records of ``plans/sensitivity.toml``.

For boostalign and graddiff on digits-class (forget class 0, seeds 0-2) over the remain weight
lambda x the truncation alpha, prints a Markdown report: per cell the RA and FD of each method
(mean, and min-max over seeds), UA, and the paired difference boostalign - graddiff with a 95 %
interval. Runs of one seed share D_r, batches' seeds and every generation seed, so the two
methods' samples are paired: the interval is a bootstrap over seeds and over the paired samples
within each seed (RA from the per-sample scores, FD recomputed from the generated features
against the fixed reference; without features the FD difference gets no interval).

    python scripts/sensitivity.py --store leaderboard/sensitivity > leaderboard/sensitivity.md

The committed store keeps no generated features (like ``leaderboard/records``): the FD
intervals of the committed table were computed where the runs were made; regenerated from a
clone, the FD difference keeps its value and loses its interval.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ubench.core.bootstrap import BOOTSTRAP_SEED, paired_group_replicates
from ubench.metrics.frechet import frechet_from_stats, gaussian_stats
from ubench.report.formats import md
from ubench.store import reader
from ubench.store.reader import load_records

METHODS = ("boostalign", "graddiff")
AXES = ("remain_weight", "clip_alpha")


def _arrays(rec: dict[str, Any], kind: str) -> dict[str, np.ndarray]:
    return reader.scores(rec) if kind == "scores" else reader.features(rec)


def cells(records: list[dict[str, Any]], forget_class: int, reference: dict[str, Any]
          ) -> dict[tuple[float, float], dict[str, dict[int, dict[str, Any]]]]:
    """{(lambda, alpha): {method: {seed: record}}} of runs whose other values are the defaults
    (``reference``: a method config with the defaults of the shared fields)."""
    out: dict[tuple[float, float], dict[str, dict[int, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict))
    for r in records:
        if (r["status"] != "ok" or r["task"]["id"] != "digits-class"
                or r["method"]["id"] not in METHODS or r.get("protocol")
                or r["task"]["config"].get("forget_class") != forget_class
                or r["task"]["config"].get("remain_policy") != "balanced"
                or int(r.get("identity_version", 1)) < 2):
            continue
        cfg = r["method"]["config"]
        # a key the record lacks is a field added after it was made: its default is what ran
        if any(k in cfg and cfg[k] != v for k, v in reference.items() if k not in AXES):
            continue
        out[(float(cfg["remain_weight"]), float(cfg["clip_alpha"]))][r["method"]["id"]][
            r["seed"]] = r
    return out


def paired_difference(pairs: list[tuple[dict[str, Any], dict[str, Any]]], metric: str,
                      resamples: int = 300) -> tuple[float, float, float] | None:
    """Mean over seeds of metric(boostalign) - metric(graddiff), with a bootstrap over seeds and
    the paired samples within each seed (None if a run lacks its per-sample file)."""
    value = float(np.mean([b["metrics"][metric]["value"] - g["metrics"][metric]["value"]
                           for b, g in pairs]))
    if metric == "fd":
        data = [(_arrays(b, "features"), _arrays(g, "features")) for b, g in pairs]
        if not all("fd.features" in x and "fd.features" in y for x, y in data):
            return None

        def one(x: dict[str, np.ndarray], y: dict[str, np.ndarray], idx: np.ndarray) -> float:
            ref = (x["fd.ref_mean"], x["fd.ref_cov"])
            return (frechet_from_stats(*gaussian_stats(x["fd.features"][idx]), *ref)
                    - frechet_from_stats(*gaussian_stats(y["fd.features"][idx]), *ref))
        n = [len(x["fd.features"]) for x, _ in data]
    else:
        data = [(_arrays(b, "scores"), _arrays(g, "scores")) for b, g in pairs]
        if not all(metric in x and metric in y for x, y in data):
            return None

        def one(x: dict[str, np.ndarray], y: dict[str, np.ndarray], idx: np.ndarray) -> float:
            return float(x[metric][idx].mean() - y[metric][idx].mean())
        n = [len(x[metric]) for x, _ in data]
    stats = paired_group_replicates(data, n, lambda pair, idx: one(*pair, idx), resamples,
                                    BOOTSTRAP_SEED)
    q_lo, q_hi = np.quantile(stats, [0.025, 0.975])
    if metric == "fd":  # basic interval: resampling inflates FD on both sides
        return value, 2 * value - float(q_hi), 2 * value - float(q_lo)
    return value, float(q_lo), float(q_hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="leaderboard/sensitivity")
    ap.add_argument("--forget-class", type=int, default=0)
    args = ap.parse_args()
    from ubench.catalog.registry import METHODS as REG

    reference = REG.get("boostalign").Config().to_dict()
    found = cells(load_records(Path(args.store)), args.forget_class, reference)
    print("# Sensitivity: boostalign vs graddiff over λ × α (digits-class, forget class "
          f"{args.forget_class}, seeds 0–2)\n")
    print("Generated by `python scripts/sensitivity.py` from the records of "
          "`plans/sensitivity.toml`. Each cell: mean over the seeds [min, max]; Δ = "
          "boostalign − graddiff, mean over seeds with a 95 % bootstrap interval over seeds "
          "and the paired samples within them (both methods start from the same D_r, batch "
          "seeds and generation seeds). Every other value is the methods' shared default "
          f"(lr {reference['lr']}, {reference['steps']} steps, full remain gradient).\n")
    print("| λ | α | RA boostalign | RA graddiff | Δ RA | FD boostalign | FD graddiff | Δ FD | "
          "UA boostalign / graddiff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (lam, alpha) in sorted(found):
        runs = found[(lam, alpha)]
        seeds = sorted(set(runs.get("boostalign", {})) & set(runs.get("graddiff", {})))
        if not seeds:
            continue
        pairs = [(runs["boostalign"][s], runs["graddiff"][s]) for s in seeds]

        def spread(m: str, metric: str, rs: dict[str, dict[int, dict[str, Any]]] = runs,
                   seeds: list[int] = seeds) -> str:
            v = [rs[m][s]["metrics"][metric]["value"] for s in seeds]
            f = "{:.3f}" if metric != "fd" else "{:.1f}"
            return (f.format(np.mean(v)) + " [" + f.format(min(v)) + ", " + f.format(max(v))
                    + "]")

        def delta(metric: str, pairs: list[Any] = pairs) -> str:
            d = paired_difference(pairs, metric)
            if d is None:
                return "—"
            f = "{:+.3f}" if metric != "fd" else "{:+.1f}"
            text = f.format(d[0]) + " [" + f.format(d[1]) + ", " + f.format(d[2]) + "]"
            return f"**{text}**" if d[1] > 0 or d[2] < 0 else text

        print(f"| {lam:g} | {alpha:g} | {spread('boostalign', 'ra')} | "
              f"{spread('graddiff', 'ra')} | {delta('ra')} | {spread('boostalign', 'fd')} | "
              f"{spread('graddiff', 'fd')} | {delta('fd')} | "
              f"{spread('boostalign', 'ua')} / {spread('graddiff', 'ua')} |")
    print("\n**Bold**: the interval excludes 0. " + md("Seeds per cell: 0, 1, 2."))


if __name__ == "__main__":
    main()
