"""What the fair protocol cost: worker time and wall time of its tuning and evaluation runs.

Expands every phase of the protocol into its run identities — the tuning runs `ubench tune`
makes (``tuning_items``) and the runs of the protocol plans (``ubench sweep``) — finds their
records in the store and prints, per phase, a Markdown table: runs found, worker time (the sum
of the runs' ``cost.total_seconds``: one thread each), wall time (the union of the runs'
intervals ``[created_at, created_at + total_seconds]``, so that runs two workers made side by
side count once and the hours between sittings do not count), the sittings (stretches of runs
with gaps under 15 minutes), and the dates and machines the records name.

    python scripts/protocol_cost.py --store leaderboard/records > /dev/stdout

Attacks count too: a plan with attacks (the robustness plans) holds its runs and each attack,
``<run id>/<attack id>``, costed by its attack record.

A run several phases share (a tuned point that is a method's default, a reference row another
plan made first) is counted in each phase that needs it and once in the total. The figures are
what the records say; records made on different machines of the same kind (the project's
2-core CPU VMs differ by up to 3x in speed) are added as they are.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ubench.store.reader import load_attack_records, load_records

ROOT = Path(__file__).resolve().parent.parent
#: the fair protocol v2's phases: each task tuned on its own cells, then these plans
TUNED_TASKS = ("digits-class", "t2i-attribute", "t2i-style", "t2i-object")
PROTOCOL_PLANS = ("protocol-digits", "protocol-t2i", "heldout-digits", "ablation-threshold-t2i",
                  "robustness-digits", "robustness-t2i")
#: gaps longer than this split the runs of a phase into sittings
SITTING_GAP_S = 15 * 60


def _phases(plans: Sequence[str], tuned_tasks: Sequence[str]) -> dict[str, set[str]]:
    """{phase name: costed ids}: ``ubench tune`` on each task of ``tuned_tasks``, then each plan.

    A tuning phase holds the tuning runs of the methods the plans evaluate on that task (with
    a tuning space; every such method when no plan names the task). A plan's phase holds its
    runs and, for a plan with attacks, each attack as ``<run id>/<attack id>``."""
    from ubench.catalog.registry import METHODS
    from ubench.run.identity import methods_for
    from ubench.sweep.plan import load_plan
    from ubench.sweep.tune import tuning_items

    items = {plan: load_plan(ROOT / "plans" / f"{plan}.toml").specs() for plan in plans}
    out: dict[str, set[str]] = {}
    for task in tuned_tasks:
        named = {i.method for specs in items.values() for i in specs if i.task == task}
        methods = [m for m in (sorted(named) or methods_for(task))
                   if METHODS.get(m).search_space]
        out[f"tuning: ubench tune --task {task} ({len(methods)} methods)"] = {
            i.run_id for i in tuning_items(methods, task)}
    for plan, specs in items.items():
        out[f"evaluation: ubench sweep plans/{plan}.toml"] = {
            i.run_id for i in specs} | {f"{i.run_id}/{a}" for i in specs for a in i.attacks}
    return out


def costed(records: Iterable[dict[str, Any]], attacks: Iterable[dict[str, Any]] = ()
           ) -> list[dict[str, Any]]:
    """Run records as they are, attack records keyed ``<run id>/<attack id>`` (the latest
    finished one of each), so that :func:`summarise` counts both."""
    latest: dict[str, dict[str, Any]] = {}
    for a in attacks:
        if a.get("status") != "ok":
            continue
        key = f"{a['run']['run_id']}/{a['attack']['id']}"
        if key not in latest or a["created_at"] > latest[key]["created_at"]:
            latest[key] = {**a, "run_id": key}
    return [*records, *latest.values()]


def _interval(rec: dict[str, Any]) -> tuple[float, float]:
    start = dt.datetime.fromisoformat(rec["created_at"]).timestamp()
    return start, start + float(rec["cost"].get("total_seconds") or 0.0)


def union_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """The length of the union of ``[start, end]`` intervals."""
    total, end = 0.0, -float("inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def sittings(intervals: Iterable[tuple[float, float]], gap: float = SITTING_GAP_S) -> int:
    """How many stretches the intervals form when gaps longer than ``gap`` split them."""
    count, end = 0, -float("inf")
    for a, b in sorted(intervals):
        if a > end + gap:
            count += 1
        end = max(end, b)
    return count


def _fmt(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"


def summarise(phases: dict[str, set[str]], records: list[dict[str, Any]]) -> list[str]:
    by_id = {r["run_id"]: r for r in records if r.get("status") == "ok"}
    lines = ["| phase | runs (found of planned) | worker time | wall time | sittings | dates | "
             "threads per run |", "|---|---|---|---|---|---|---|"]
    every: set[str] = set()
    for name, ids in phases.items():
        found = [by_id[i] for i in sorted(ids) if i in by_id]
        every |= {r["run_id"] for r in found}
        lines.append(_line(name, found, len(ids)))
    lines.append(_line("**total** (each run once)", [by_id[i] for i in sorted(every)],
                       sum(len(ids) for ids in phases.values()), planned_is_sum=True))
    machines = sorted({f"{r['env'].get('cpu') or 'CPU not recorded'} "
                       f"({r['env'].get('machine') or '?'})" for r in (by_id[i] for i in every)})
    lines += ["", "Machines the records name: " + "; ".join(machines) + "."]
    return lines


def _line(name: str, found: list[dict[str, Any]], planned: int,
          planned_is_sum: bool = False) -> str:
    spans = [_interval(r) for r in found]
    work = sum(b - a for a, b in spans)
    days = sorted({r["created_at"][:10] for r in found})
    threads = sorted({str(r["env"].get("torch_threads")) for r in found})
    counted = f"{len(found)}" + ("" if planned_is_sum else f" of {planned}")
    return (f"| {name} | {counted} | {_fmt(work)} | {_fmt(union_seconds(spans))} | "
            f"{sittings(spans)} | {days[0] if days else '—'} … {days[-1] if days else '—'} | "
            f"{', '.join(threads)} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=str(ROOT / "leaderboard" / "records"))
    parser.add_argument("--plans", nargs="*", default=list(PROTOCOL_PLANS))
    parser.add_argument("--tuned", nargs="*", default=list(TUNED_TASKS))
    args = parser.parse_args(argv)
    store = Path(args.store)
    records = costed(load_records(store), load_attack_records(store))
    print("\n".join(summarise(_phases(args.plans, args.tuned), records)))


if __name__ == "__main__":
    main()
