"""Run many ubench runs in parallel single-thread worker processes (resumable).

On small models two 1-thread processes side by side give more throughput than one 2-thread
process (see README). Every job is an ordinary run in the given store: finished runs are skipped,
interrupted ones resume, so a sweep can be stopped and restarted at will.

A plan is a text file, one run per line: ``METHOD TASK SEED [--set KEY=VALUE ...]``; ``#`` starts
a comment. Example (the digits leaderboard plan): ``bench/plans/digits.txt``.

    python bench/sweep.py bench/plans/digits.txt --store leaderboard/records --workers 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed


def parse_plan(path: str) -> list[tuple[str, str, int, list[str]]]:
    jobs = []
    with open(path) as f:
        lines = f.readlines()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = shlex.split(line)
        method, task, seed, rest = parts[0], parts[1], int(parts[2]), parts[3:]
        sets = [rest[i + 1] for i in range(len(rest)) if rest[i] == "--set"]
        jobs.append((method, task, seed, sets))
    return jobs


def run_one(job: tuple[str, str, int, list[str]], store: str, force: bool = False) -> str:
    import torch

    torch.set_num_threads(1)
    from ubench import runner

    method, task, seed, sets = job
    spec = runner.resolve(method, task, seed, sets)
    t0 = time.perf_counter()
    rec = runner.run(spec, store=store, checkpoint_every=25, force=force).record
    shown = " ".join(f"{k.upper()} {v['value']:.3f}" if abs(v["value"]) < 100
                     else f"{k.upper()} {v['value']:.1f}" for k, v in rec["metrics"].items())
    return (f"{method:<10} seed {seed} {' '.join(sets):<60} {shown} "
            f"({time.perf_counter() - t0:.0f}s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("plan")
    ap.add_argument("--store", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="redo runs that already finished")
    args = ap.parse_args()
    jobs = parse_plan(args.plan)
    # prepare shared assets once, in this process, before fanning out
    from ubench import runner

    keys = sorted({(task, tuple(s for s in sets if s.startswith("task.forget_class")))
                   for _method, task, _seed, sets in jobs})

    def prepare(key: tuple[str, tuple[str, ...]]) -> None:
        """Base/judge/oracle of one (task, forget class); several build side by side."""
        spec = runner.resolve("base", key[0], 0, list(key[1]))
        spec.task_cls(spec.task_config).prepare(lambda m: print(m, file=sys.stderr))

    # one after another: transformers/diffusers load models under process-wide meta-device and
    # init patches, which corrupt a model being built or run in another thread
    for key in keys:
        prepare(key)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(run_one, j, args.store, args.force): j for j in jobs}
        for f in as_completed(futures):
            try:
                print(f.result(), flush=True)
            except Exception as e:  # report and go on: one failed run must not stop a sweep
                print(f"FAILED {futures[f]}: {type(e).__name__}: {e}", flush=True)
    print(f"{len(jobs)} runs in {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
