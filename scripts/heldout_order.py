"""Does the digits-class board's order travel? Its order against cells it never used.

The board (``plans/protocol-digits.toml``, methods block) ranks every method at its tuned preset
over the ten forget classes x seeds 0-2 by the fronts' scalar: *keep at target* (mean RA if the
mean UA reaches the tuned target, else 0), then the area (UA x RA). This script scores the same
rows on subsets of the board's cells and on cells nobody tuned or reported on, and compares the
orders by Spearman's rank correlation (ties: average ranks):

* **held-out cells** — ``plans/heldout-digits.toml`` (class 7 at seed 3, class 3 at seed 4):
  the order of each cell alone, and of the two averaged, against the board's;
* **nine classes** — the board without forget class 4, the class the presets were tuned on (with
  other run seeds and evaluation noise): does the tuning class carry the order?
* **split halves** — the board on classes 0-4 against classes 5-9: how reproducible the order is
  on disjoint halves of its own cells.

A cell's order is a noisy instrument (the v1 audit found Spearman 0.37 and -0.10 for two single
cells, 0.88 for their average): the point is how much of the board's order survives, and which
rows move. Prints Markdown.

    python scripts/heldout_order.py --store leaderboard/records
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: (forget class, seed) of a run
Cell = tuple[int, int]
#: method -> cell -> (UA, RA) of its run there
Scores = dict[str, dict[Cell, tuple[float, float]]]


def collect(records: Iterable[Mapping[str, Any]], run_ids: set[str]) -> Scores:
    """UA and RA of every finished record among ``run_ids``, by method and (class, seed)."""
    out: Scores = defaultdict(dict)
    for rec in records:
        if rec.get("status") != "ok" or rec["run_id"] not in run_ids:
            continue
        cell = (int(rec["task"]["config"]["forget_class"]), int(rec["seed"]))
        m = rec["metrics"]
        out[rec["method"]["id"]][cell] = (float(m["ua"]["value"]), float(m["ra"]["value"]))
    return dict(out)


def score(runs: Sequence[tuple[float, float]], target: float) -> tuple[float, float]:
    """(keep at target, area) of a row whose runs are ``runs``: the ranking's scalar."""
    ua = float(np.mean([u for u, _ in runs]))
    ra = float(np.mean([r for _, r in runs]))
    return (ra if ua >= target - 1e-12 else 0.0), ua * ra


def ranks(scores: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Average ranks (1 = best) by (keep at target, area); equal scores share the mean rank."""
    keys = sorted(scores, key=lambda k: (-scores[k][0], -scores[k][1]))
    out: dict[str, float] = {}
    i = 0
    while i < len(keys):
        j = i
        while j + 1 < len(keys) and scores[keys[j + 1]] == scores[keys[i]]:
            j += 1
        for k in keys[i:j + 1]:
            out[k] = (i + j) / 2 + 1
        i = j + 1
    return out


def order(data: Scores, keep: Callable[[Cell], bool], target: float
          ) -> dict[str, float] | None:
    """Ranks of the methods over the cells ``keep`` admits; None unless every method has the
    same, non-empty set of such cells (an order over unequal cells compares nothing)."""
    cells = {m: {c: v for c, v in per.items() if keep(c)} for m, per in data.items()}
    sets = {frozenset(c) for c in cells.values()}
    if len(sets) != 1 or not next(iter(sets)):
        return None
    return ranks({m: score(list(c.values()), target) for m, c in cells.items()})


def spearman(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Spearman's rho of two rankings over their common methods (scipy; ties: average ranks)."""
    common = sorted(set(a) & set(b))
    if len(common) < 3:
        raise ValueError("Spearman's rho needs at least three common methods")
    x = np.array([a[m] for m in common], dtype=float)
    y = np.array([b[m] for m in common], dtype=float)
    if x.std() == 0 or y.std() == 0:
        return float("nan")  # a constant order correlates with nothing
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def report(board: Scores, heldout: Scores, target: float) -> list[str]:
    """The Markdown report: every order next to the board's, and the correlations."""
    ten = order(board, lambda c: True, target)
    if ten is None:
        raise ValueError("the board's methods do not share their cells yet (runs missing)")
    columns: dict[str, dict[str, float]] = {"board (10 classes)": ten}
    nine = order(board, lambda c: c[0] != 4, target)
    low = order(board, lambda c: c[0] <= 4, target)
    high = order(board, lambda c: c[0] >= 5, target)
    for name, ranking in (("without class 4", nine), ("classes 0-4", low),
                          ("classes 5-9", high)):
        if ranking is not None:
            columns[name] = ranking
    held_cells = sorted({c for per in heldout.values() for c in per})
    for cell in held_cells:
        ranking = order(heldout, lambda c, cell=cell: c == cell, target)
        if ranking is not None:
            columns[f"held-out class {cell[0]} seed {cell[1]}"] = ranking
    both = order(heldout, lambda c: True, target) if heldout else None
    if both is not None and len(held_cells) > 1:
        columns["held-out cells averaged"] = both
    methods = sorted(ten, key=lambda m: (ten[m], m))
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(
            f"{c[m]:g}" if m in c else "—" for c in columns.values()) + " |")
    lines += ["", "| compared | Spearman's ρ |", "|---|---|"]
    pairs = [(name, "board (10 classes)") for name in columns if name != "board (10 classes)"]
    if low is not None and high is not None:
        pairs.append(("classes 0-4", "classes 5-9"))
    for a, b in pairs:
        rho = spearman(columns[a], columns[b])
        lines.append(f"| {a} vs {b} | {rho:+.2f} |")
    return lines


def build(store: Path) -> list[str]:
    """The report of the records in ``store`` (ValueError while runs are missing)."""
    from ubench.report.table import preset_targets
    from ubench.store.reader import load_records
    from ubench.sweep.plan import load_plan

    board = [i for i in load_plan(ROOT / "plans" / "protocol-digits.toml").specs()
             if i.block == "methods"]
    board_ids = {i.run_id for i in board}
    held_ids = {i.run_id for i in load_plan(ROOT / "plans" / "heldout-digits.toml").specs()}
    records = load_records(store)
    target = preset_targets().get("digits-class")
    if target is None:
        raise ValueError("the committed tuned preset has no digits-class target; run "
                         "`ubench tune --method all --task digits-class` first")
    scores = collect(records, board_ids)
    missing = sorted({i.method for i in board} - set(scores))
    if missing:
        raise ValueError(f"the board's methods do not share their cells yet (runs missing: no "
                         f"run of {', '.join(missing)} in {store})")
    return report(scores, collect(records, held_ids), target)


def main(argv: Sequence[str] | None = None) -> int:
    from ubench.cli.scripts import store_report

    return store_report(__doc__ or "", build, ROOT / "leaderboard" / "records", argv)


if __name__ == "__main__":
    raise SystemExit(main())
