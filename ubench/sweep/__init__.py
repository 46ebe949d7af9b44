"""Sweeps: a TOML plan expanded to runs, run on a local pool, Ray or Slurm (``ubench sweep``).

The library API (what ``ubench sweep`` is built from)::

    from ubench.sweep import load_plan, run_items

    plan = load_plan("plans/digits.toml", suite="bench-engines")
    items = plan.specs()                  # RunItem: method, task, seed, overrides, run_id
    result = run_items(items, executor="local", workers=2, store="results")
    for item, outcome in result.failures:
        print(item.command(), outcome.error)

Importing this package is cheap (no torch): a bad plan is refused before anything heavy loads.
"""

from ubench.sweep.plan import Plan, RunItem, load_plan, make_item, parse_plan
from ubench.sweep.run import ItemState, SweepResult, item_state, run_items, unique
from ubench.sweep.worker import Job, Outcome, run_one

__all__ = ["ItemState", "Job", "Outcome", "Plan", "RunItem", "SweepResult", "item_state",
           "load_plan", "make_item", "parse_plan", "run_items", "run_one", "unique"]
