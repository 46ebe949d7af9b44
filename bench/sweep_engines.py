"""Wall time of one set of runs on the sweep's executors, side by side in one run.

The same runs (a plan, or one suite of it) are made three times, each into a fresh store of its
own (the asset cache is shared and filled first, so every mode starts from the same cached
assets): one after another (the local executor with one worker: what running ``ubench run`` for
each would cost), on the local pool with ``--workers`` processes, and on a local Ray cluster with
as many CPUs. Prints each wall time, its ratio to the sequential one, and whether the three
stores hold the same records (identity, metrics, train log; not timings).

    OMP_NUM_THREADS=1 python bench/sweep_engines.py --plan plans/digits.toml \
        --suite bench-engines --workers 2

Timings are only comparable on an otherwise idle machine; say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def warm_assets(items: list[Any]) -> None:
    """Build (or find) every asset the runs need, here, before anything is timed."""
    from ubench.run import identity

    seen = set()
    for item in items:
        key = (item.task, tuple(o for o in item.overrides if o.startswith("task.")))
        if key in seen:
            continue
        seen.add(key)
        spec = identity.resolve("base", key[0], 0, list(key[1]))
        spec.task_cls(spec.task_config).prepare(lambda m: print("  " + m, file=sys.stderr))


def comparable(store: Path) -> dict[str, Any]:
    """The records of a store without what legitimately differs between two makings of a run
    (timings, creation time, the checkout's git state)."""
    out = {}
    for path in sorted(store.glob("**/record.json")):
        rec = json.loads(path.read_text())
        for key in ("created_at", "cost"):
            rec.pop(key, None)
        rec["env"].pop("git", None)  # a commit between the modes changes it
        out[rec["run_id"]] = rec
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", default="plans/digits.toml")
    ap.add_argument("--suite", default=None, help="a suite of the plan (default: all of it)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", default=None, help="folder for the three stores (default: temp)")
    args = ap.parse_args()

    from ubench.sweep import load_plan, run_items
    from ubench.sweep.executors import LocalExecutor, require_extra

    ray = require_extra("ray")
    items = load_plan(args.plan, args.suite).specs()
    work = Path(args.work or tempfile.mkdtemp(prefix="ubench-sweep-engines-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{len(items)} runs of {args.plan}" + (f" (suite {args.suite})" if args.suite else "")
          + f"; stores under {work}", flush=True)
    warm_assets(items)

    walls: dict[str, float] = {}
    stores: dict[str, Path] = {}

    def timed(mode: str, executor: Any, **kw: Any) -> None:
        store = work / mode
        if store.exists() and any(store.glob("**/record.json")):
            raise SystemExit(f"{store} already holds records; pass an empty --work folder")
        t0 = time.perf_counter()
        result = run_items(items, executor=executor, store=store, threads=1, **kw)
        walls[mode] = time.perf_counter() - t0
        stores[mode] = store
        for item, outcome in result.failures:
            print(f"FAILED ({mode}) {item.label()}: {outcome.error}", flush=True)
        if not result.ok:
            raise SystemExit(1)
        print(f"  {mode}: {walls[mode]:.1f} s", flush=True)

    timed("sequential", LocalExecutor(workers=1))
    timed("local", "local", workers=args.workers)
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False,
             log_to_driver=False, object_store_memory=256 * 2**20,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                       if k.startswith("UBENCH_")}})
    start = time.perf_counter() - t0
    try:
        timed("ray", "ray", workers=args.workers)
    finally:
        ray.shutdown()

    seq = walls["sequential"]
    print(f"\n{'mode':<28} {'wall s':>8} {'speed-up':>9}")
    print(f"{'one after another':<28} {seq:8.1f} {1.0:8.2f}x")
    print(f"{f'local, --workers {args.workers}':<28} {walls['local']:8.1f} "
          f"{seq / walls['local']:8.2f}x")
    print(f"{f'ray, {args.workers} CPUs':<28} {walls['ray']:8.1f} {seq / walls['ray']:8.2f}x"
          f"   (+ {start:.1f} s to start the local cluster, not included)")
    base = comparable(stores["sequential"])
    same = all(comparable(stores[m]) == base for m in ("local", "ray"))
    print(f"records identical across the three: {'yes' if same else 'NO'} ({len(base)} runs)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
