"""Run a small hyper-parameter grid for one method through the normal runner and print a table.

Every cell is an ordinary run (record in the given store, skipped when finished), so a grid is
resumable and its records can be inspected or reported like any other.

    python bench/grid.py --method boostalign --task digits-class \
        --grid method.lr=1e-4,3e-4 --grid method.clip_alpha=0.1,1 --set method.steps=100
"""

from __future__ import annotations

import argparse
import itertools
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True)
    ap.add_argument("--task", default="digits-class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", action="append", default=[], help="KEY=V1,V2,...")
    ap.add_argument("--set", action="append", default=[], help="fixed override KEY=V")
    ap.add_argument("--store", default="results/grid")
    args = ap.parse_args()

    from ubench import runner

    axes = [(g.split("=", 1)[0], g.split("=", 1)[1].split(",")) for g in args.grid]
    print(f"{'cell':<60} {'UA':>6} {'RA':>6} {'FD':>7} {'unlearn s':>9}")
    for values in itertools.product(*[v for _, v in axes]):
        cell = [f"{k}={v}" for (k, _), v in zip(axes, values, strict=True)]
        spec = runner.resolve(args.method, args.task, args.seed, [*args.set, *cell])
        t0 = time.perf_counter()
        rec = runner.run(spec, store=args.store).record
        m = rec["metrics"]
        print(f"{' '.join(cell):<60} {m['ua']['value']:6.3f} {m['ra']['value']:6.3f} "
              f"{m['fd']['value']:7.2f} {rec['cost']['unlearn_seconds']:9.1f}"
              f"  ({time.perf_counter() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
