"""The fair protocol: equal tuning budgets, declared selection rules, trade-off fronts, and how a
method forgets (its distance from the retrain oracle).

**Tuning.** Every method declares a tuning space (``Method.search_space``) of exactly
``TUNING_BUDGET`` points per model family. ``ubench tune`` runs the space on the task's
*tuning cells* (``Task.tuning_cells`` with run seed ``Task.tuning_seed``: other forget instances
or held-out prompts than the leaderboard evaluates), averages each point over the cells and
picks one point by the task's :class:`~ubench.api.TuningRule`; the choice is written to a
versioned preset file (``ubench/catalog/preset_files/tuned.json``) that evaluation runs apply
with ``--preset tuned``.

**Fronts.** Each method's tuning points, as (forgetting, keep) pairs, form a trade-off; its
Pareto front is the set of points no other point of the method beats on both. Two scalars rank
methods (:func:`front_scalars`): the best keep-metric among points that reach the forgetting
target, and the area under the front — ``∫_0^1 K(φ) dφ`` with ``φ`` the forgetting score
(``UA``, or ``1 - concept rate``) and ``K(φ)`` the best keep-metric of a point forgetting at
least ``φ`` (0 where none does). Their intervals come from a bootstrap over the tuning runs
and the samples within them.

**How it forgets.** Against the retrain oracle of the same task instance (:func:`oracle_gap`):
the difference of the forgetting metric from the oracle's, and the total-variation distance
between the *labels* of forget-condition generations (the judged class, ``not a digit``, the
detected pattern, frame or no frame — ``samples.jsonl``'s ``label``) of the method and the
oracle, with a basic bootstrap interval. A method that forgets by drawing garbage has UA 1 and
a large distance; the oracle draws other digits.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ubench.api import TuningRule
from ubench.catalog.facts import garbage_limit
from ubench.core.bootstrap import BOOTSTRAP_SEED
from ubench.report.rank_bootstrap import hierarchical_means, hierarchical_means_loop
from ubench.store import reader


# ---------------------------------------------------------------------- points
@dataclass
class Point:
    """One point of a method's tuning space, averaged over the tuning cells."""

    method: str
    values: dict[str, Any]
    #: metric -> mean over the cells
    metrics: dict[str, float]
    #: the run folders it was measured in (one per cell)
    runs: list[str] = field(default_factory=list)


def destroys(point: Point, garbage_limit: float | None) -> bool:
    """Whether a point forgets by destroying the prompt: its mean garbage rate exceeds the
    task's garbage limit (the garbage policy, applied to tuning as to the ranking)."""
    return garbage_limit is not None and point.metrics.get("garbage_rate", 0.0) > garbage_limit


def point_reaches(rule: TuningRule, point: Point, target: float,
                  garbage_limit: float | None = None) -> bool:
    """The point's forgetting reaches ``target`` and is not garbage over the task's limit."""
    return (rule.reaches(point.metrics[rule.forget], target)
            and not destroys(point, garbage_limit))


def choose_target(rule: TuningRule, points: Mapping[str, Sequence[Point]],
                  families: Mapping[str, str], garbage_limit: float | None = None
                  ) -> tuple[float, bool]:
    """The rule's target: fixed, or the smallest ladder value that every family reaches (a
    point over the task's garbage limit reaches nothing). Returns (target, whether every
    family reaches it)."""
    if rule.target is not None:
        return rule.target, True
    fams: dict[str, list[Point]] = {}
    for m, ps in points.items():
        fams.setdefault(families.get(m, m), []).extend(ps)
    for t in sorted(rule.ladder, reverse=bool(rule.forget_higher_is_better)):  # strictest first
        if all(any(point_reaches(rule, p, t, garbage_limit) for p in ps)
               for ps in fams.values()):
            return t, True
    worst = max(rule.ladder) if not rule.forget_higher_is_better else min(rule.ladder)
    return worst, False


def select(rule: TuningRule, points: Sequence[Point], target: float,
           garbage_limit: float | None = None) -> tuple[Point, bool]:
    """The point the rule picks, and whether it reached the target.

    With the task's ``garbage_limit``, a point whose garbage rate exceeds it does not reach the
    target, and the fallback for a method that reaches it nowhere — the point that forgets most
    — looks first among the points that do not destroy the prompt (protocol v1 fell back on a
    point that forgot by destroying every forget prompt, and the evaluation then ranked the
    destruction)."""
    if not points:
        raise ValueError("no tuning points")
    ok = [p for p in points if point_reaches(rule, p, target, garbage_limit)]
    if ok:
        best = max(p.metrics[rule.keep] for p in ok)
        tied = [p for p in ok if p.metrics[rule.keep] >= best - rule.tie_margin]
        brk = rule.tie_break
        return min(tied, key=lambda p: (
            -rule.score(p.metrics[rule.forget]) if rule.prefer_forgetting else 0.0,
            p.metrics.get(brk, math.inf) if brk else 0.0,
            -p.metrics[rule.keep])), True
    intact = [p for p in points if not destroys(p, garbage_limit)] or list(points)
    return max(intact, key=lambda p: (rule.score(p.metrics[rule.forget]),
                                      p.metrics[rule.keep])), False


# ---------------------------------------------------------------------- fronts
def pareto_front(xy: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (forgetting score, keep), both higher-is-better, that no other
    point beats on both (ties kept), sorted by forgetting score."""
    idx = []
    for i, (x, y) in enumerate(xy):
        dominated = any((x2 >= x and y2 >= y) and (x2 > x or y2 > y)
                        for j, (x2, y2) in enumerate(xy) if j != i)
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: (xy[i][0], -xy[i][1]))


def best_keep_at(xy: Sequence[tuple[float, float]], phi: float) -> float:
    """K(phi): the best keep of a point whose forgetting score is at least ``phi`` (0 if none)."""
    keeps = [y for x, y in xy if x >= phi - 1e-12]
    return max(keeps) if keeps else 0.0


def front_area(xy: Sequence[tuple[float, float]]) -> float:
    """Area under the front, ∫_0^1 K(φ) dφ (forgetting scores clipped to [0, 1])."""
    pts = sorted(((min(1.0, max(0.0, x)), y) for x, y in xy), key=lambda t: t[0])
    area, prev = 0.0, 0.0
    for x, _ in pts:
        if x > prev:
            area += (x - prev) * best_keep_at(pts, x)
            prev = x
    return area


@dataclass
class FrontSummary:
    method: str
    #: (forgetting score, keep) of every point, and which are on the front
    points: list[dict[str, Any]]
    front: list[int]
    best_keep: float
    best_keep_ci: tuple[float, float]
    area: float
    area_ci: tuple[float, float]
    reached: bool


def front_scalars(rule: TuningRule, target: float, method: str,
                  runs_per_point: Sequence[Sequence[Mapping[str, np.ndarray]]],
                  values: Sequence[Mapping[str, Any]], resamples: int = 500,
                  seed: int = BOOTSTRAP_SEED,
                  destroyed: Sequence[bool] | None = None) -> FrontSummary:
    """The front and its two scalars for one method, with bootstrap intervals.

    ``runs_per_point[i]`` holds, for point ``i``, one mapping per tuning run of the per-sample
    scores of the rule's forget and keep metrics (``scores.safetensors``). A point's metric is
    the mean over its runs of the run's mean. Each bootstrap replicate resamples the runs of
    every point and the samples within each run (a hierarchical bootstrap). ``destroyed[i]``:
    point ``i`` forgets by destroying the prompt (the task's garbage policy), so it reaches no
    target — it is left out of *best keep at target*, as :func:`select` leaves it out; it stays
    on the front and in the area.
    """
    gone = list(destroyed) if destroyed is not None else [False] * len(runs_per_point)

    def best_at(sample: Sequence[tuple[float, float]], phi: float) -> float:
        return best_keep_at([xy for xy, g in zip(sample, gone, strict=True) if not g], phi)

    phi_t = rule.score(target)

    def xy_of(runs: Sequence[Mapping[str, np.ndarray]]) -> tuple[float, float]:
        f = float(np.mean([r[rule.forget].mean() for r in runs]))
        k = float(np.mean([r[rule.keep].mean() for r in runs]))
        return rule.score(f), k

    xy = [xy_of(runs) for runs in runs_per_point]
    f_rep, k_rep = _replicates(rule, runs_per_point, resamples, seed)
    areas, bests = [], []
    for fs, ks in zip(f_rep, k_rep, strict=True):
        sample = [(rule.score(f), k) for f, k in zip(fs, ks, strict=True)]
        areas.append(front_area(sample))
        bests.append(best_at(sample, phi_t))
    front = pareto_front(xy)
    points = [{"values": dict(v), "forget_score": x, "keep": y, "on_front": i in front}
              for i, ((x, y), v) in enumerate(zip(xy, values, strict=True))]
    best = best_at(xy, phi_t)
    return FrontSummary(method, points, front, best,
                        (float(np.quantile(bests, 0.025)), float(np.quantile(bests, 0.975))),
                        front_area(xy),
                        (float(np.quantile(areas, 0.025)), float(np.quantile(areas, 0.975))),
                        any(x >= phi_t - 1e-12 and not g for (x, _), g in zip(xy, gone,
                                                                               strict=True)))


def _replicates(rule: TuningRule, groups: Sequence[Sequence[Mapping[str, np.ndarray]]],
                resamples: int, seed: int) -> tuple[list[list[float]], list[list[float]]]:
    """Per bootstrap replicate, per group of runs (a tuning point, an evaluation row): the mean
    over the resampled runs of each run's mean of the rule's forget / keep metric, after
    resampling the samples within each run — a hierarchical bootstrap, replicate by replicate
    from ``default_rng(seed)`` (vectorised with the same draws:
    :mod:`ubench.report.rank_bootstrap`)."""
    keys = (rule.forget, rule.keep)
    got = hierarchical_means(seed, groups, keys, resamples)
    if got is None:  # ragged or unusual scores: the loop, with the same draws
        got = hierarchical_means_loop(np.random.default_rng(seed), groups, keys, resamples)
    return got[rule.forget].tolist(), got[rule.keep].tolist()


# ---------------------------------------------------------------------- evaluation ranking
@dataclass
class Standing:
    """One row of an evaluation table scored by the fronts' scalars: the row's runs (forget
    instances x seeds) are one point of the trade-off, measured on the evaluation split."""

    label: str
    method: str
    reference: bool
    runs: int
    #: the forgetting metric as the tables give it (UA, concept rate), with its interval
    forget: float
    forget_ci: tuple[float, float]
    keep: float
    keep_ci: tuple[float, float]
    #: the keep metric if the row reaches the target, else 0 (the fronts' *best keep at target*
    #: of a one-point front)
    keep_at_target: float
    keep_at_target_ci: tuple[float, float]
    #: forgetting score x keep: the area under a one-point front
    area: float
    area_ci: tuple[float, float]
    reached: bool
    #: how many of the row's runs reach the target on their own
    runs_reaching: int
    #: (keep at target, area) of every bootstrap replicate, for the rank interval
    replicates: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)
    #: competition rank among the ranked rows (None for reference rows) and its 95 % interval
    rank: int | None = None
    rank_ci: tuple[int, int] | None = None
    #: the row's mean garbage rate when the task's garbage policy exceeds it (the row forgets by
    #: destroying the prompt and does not reach the target), else None
    destroys: float | None = None
    #: the row's tier (:func:`assign_tiers`; None for reference rows)
    tier: int | None = None


def standing(rule: TuningRule, target: float, label: str, method: str,
             runs: Sequence[Mapping[str, np.ndarray]], *, reference: bool = False,
             resamples: int = 1000, seed: int = BOOTSTRAP_SEED,
             garbage: Sequence[np.ndarray] | None = None,
             garbage_limit: float | None = None) -> Standing:
    """Score one evaluation row: ``runs`` holds, per run, the per-sample scores of the rule's
    forget and keep metrics. The row's metric is the mean over runs of each run's mean (the
    tables' mean); intervals are 95 % hierarchical bootstrap intervals (runs, then the samples
    within each run), the same resampling as :func:`front_scalars`.

    The task's garbage policy: with ``garbage_limit`` set and the runs' per-sample garbage
    scores given, a row whose mean garbage rate (mean over runs of each run's mean) exceeds the
    limit does not reach the target, on its mean and on every replicate (its keep at target is
    0; its area stands)."""
    if not runs:
        raise ValueError("a standing needs at least one run")
    phi_t = rule.score(target)
    destroys = None
    if garbage_limit is not None and garbage:
        rate = float(np.mean([np.asarray(g, dtype=float).mean() for g in garbage]))
        destroys = rate if rate > garbage_limit else None
    if destroys is not None:
        phi_t = math.inf

    def means(picked: Sequence[Mapping[str, np.ndarray]]) -> tuple[float, float]:
        return (float(np.mean([r[rule.forget].mean() for r in picked])),
                float(np.mean([r[rule.keep].mean() for r in picked])))

    def scalars(f: float, k: float) -> tuple[float, float]:
        phi = min(1.0, max(0.0, rule.score(f)))
        return (k if phi >= phi_t - 1e-12 else 0.0), phi * k

    f, k = means(runs)
    at, area = scalars(f, k)
    f_rep, k_rep = _replicates(rule, [runs], resamples, seed)
    reps = [(rf, rk, *scalars(rf, rk)) for (rf,), (rk,) in zip(f_rep, k_rep, strict=True)]
    arr = np.asarray(reps)

    def ci(col: int, value: float) -> tuple[float, float]:
        lo, hi = np.quantile(arr[:, col], [0.025, 0.975])
        return min(float(lo), value), max(float(hi), value)

    reaching = sum(rule.reaches(float(r[rule.forget].mean()), target) for r in runs)
    if destroys is not None:
        reaching = 0
    return Standing(label, method, reference, len(runs), f, ci(0, f), k, ci(1, k), at,
                    ci(2, at), area, ci(3, area), rule.score(f) >= phi_t - 1e-12, reaching,
                    arr[:, 2:4], destroys=destroys)


def _competition_ranks(scores: Sequence[tuple[float, float]]) -> list[int]:
    """1 + how many entries beat each one on (keep at target, area): equal scores share a rank."""
    def beats(x: tuple[float, float], y: tuple[float, float]) -> bool:
        return x[0] > y[0] + 1e-12 or (abs(x[0] - y[0]) <= 1e-12 and x[1] > y[1] + 1e-12)

    return [1 + sum(beats(other, mine) for other in scores) for mine in scores]


def _replicate_ranks(scores: np.ndarray) -> np.ndarray:
    """:func:`_competition_ranks` of every replicate at once: ``scores`` is ``(replicates,
    rows, 2)`` (keep at target, area); the same comparisons, element by element."""
    x0, x1 = scores[:, :, None, 0], scores[:, :, None, 1]  # the other row, on axis 1
    y0, y1 = scores[:, None, :, 0], scores[:, None, :, 1]  # the row ranked, on axis 2
    beats = (x0 > y0 + 1e-12) | ((np.abs(x0 - y0) <= 1e-12) & (x1 > y1 + 1e-12))
    return 1 + beats.sum(axis=1)


def rank_standings(standings: Sequence[Standing]) -> list[Standing]:
    """Ranked rows first, by keep at target, then the larger one-point area (equal scores share
    a rank), reference rows after them (yardsticks, never ranked). Each ranked row gets the 95 %
    interval of its rank over the bootstrap replicates: :func:`standing` resamples every row
    with the same indices (the same seed), which pairs the rows — they share forget instances,
    seeds, prompts and evaluation noise — when their runs are in the same order."""
    ranked = [s for s in standings if not s.reference]
    for s, r in zip(ranked, _competition_ranks([(s.keep_at_target, s.area) for s in ranked]),
                    strict=True):
        s.rank = r
    n_rep = min((len(s.replicates) for s in ranked), default=0)
    if n_rep and len(ranked) > 1:
        reps = _replicate_ranks(np.stack([np.asarray(s.replicates[:n_rep, :2], dtype=np.float64)
                                          for s in ranked], axis=1))
        for j, s in enumerate(ranked):
            lo, hi = np.quantile(reps[:, j], [0.025, 0.975], method="inverted_cdf")
            s.rank_ci = (min(int(lo), s.rank or 1), max(int(hi), s.rank or 1))
    elif ranked:
        ranked[0].rank_ci = (1, 1)
    out = sorted(standings, key=lambda s: (s.reference, s.rank or 0, -s.keep_at_target,
                                           -s.area, s.label))
    assign_tiers(out)
    return out


def assign_tiers(standings: Sequence[Standing]) -> int:
    """Group the ranked rows (in rank order) into tiers; return how many there are.

    A tier opens with the best row not yet placed (its *leader*) and takes every following row
    whose rank interval overlaps the leader's (the row's best plausible rank is no worse than
    the leader's worst). Rows of one tier cannot be told apart from its leader on this
    evaluation; rows of different tiers can. Leader-anchored rather than chained: with chaining,
    overlapping neighbours would merge a long board into one tier even when its first and last
    rows are far apart. A board whose rows all overlap the first is one tier: it does not
    separate its rows, and says so.
    """
    ranked = [s for s in standings if not s.reference and s.rank is not None]
    tier, leader_hi = 0, -1
    for s in ranked:
        lo, hi = s.rank_ci or (s.rank or 1, s.rank or 1)
        if tier == 0 or lo > leader_hi:
            tier, leader_hi = tier + 1, hi
        s.tier = tier
    for s in standings:
        if s.reference:
            s.tier = None
    return tier


def ranking_rule(rule: TuningRule, target: float) -> str:
    """The ranking's own rule, in words (not the tuning rule: no tie margin, no FD tie-break)."""
    op = ">=" if rule.forget_higher_is_better else "<="
    return (f"ranked by keep at target: the row's mean {rule.keep} if its mean {rule.forget} "
            f"{op} {target:g} (the tuned preset's target), else 0; then the larger area "
            f"(forgetting score x {rule.keep}); exact ties share a rank, with no tie margin: "
            "the rank intervals and tiers say which differences the evaluation can resolve "
            "(a tier: its best row and every row whose rank interval overlaps that row's)")


#: (rule, target, standings in rank order, rows left out and why) per evaluation table
Ranking = tuple[TuningRule, float, list[Standing], list[str]]


def _interval(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def standing_cells(s: Standing) -> dict[str, str]:
    """A ranked row's cells as text (unescaped), for the Markdown section and the web page."""
    if s.reached:
        at = _interval(s.keep_at_target, s.keep_at_target_ci)
    elif s.destroys is not None:
        at = (f"— (forgets by destroying the prompt: garbage rate {s.destroys:.3f} over the "
              "task's limit)")
    elif s.keep_at_target_ci[1] > 0:
        at = (f"— (not reached; reaches it in some replicates: "
              f"[{s.keep_at_target_ci[0]:.3f}, {s.keep_at_target_ci[1]:.3f}])")
    else:
        at = "— (not reached)"
    rank = ("ref" if s.reference or s.rank is None else
            f"{s.rank}" + (f" [{s.rank_ci[0]}, {s.rank_ci[1]}]" if s.rank_ci else ""))
    return {"rank": rank, "tier": "—" if s.tier is None else str(s.tier),
            "forget": _interval(s.forget, s.forget_ci),
            "keep": _interval(s.keep, s.keep_ci), "at": at,
            "area": _interval(s.area, s.area_ci), "reaching": f"{s.runs_reaching} of {s.runs}"}


RANKING_INTRO = (
    "Each task's section opens with its ranking: the rows at the tuned preset (the fair "
    "protocol's rows), scored on the evaluation split by the fronts' scalar — *keep at target* "
    "is the row's keep-metric if its mean forgetting reaches the task's target (the tuned "
    "preset's), else 0; ties go to the larger *area* (forgetting score x keep: the area under "
    "a one-point front); equal scores share a rank. Reference rows are yardsticks, not ranked. "
    "Intervals: 95 % bootstrap over the row's runs (forget instances x seeds; runs of one "
    "model, as the tables count them, once) and the samples within them, every row resampled "
    "with the same indices (the rows share instances, seeds, prompts and evaluation noise), "
    "so the rank has an interval too; a keep-at-target interval reaching 0 means the row "
    "reaches the target only on some resamples. *Tiers* group what the evaluation cannot tell "
    "apart: a tier is its best row and every row whose rank interval overlaps that row's. The "
    "last columns say *how* it forgets: a row can reach the target by drawing garbage. On "
    "text-to-image tasks that is over-erasure, not forgetting: a row whose mean garbage rate "
    "exceeds the task's garbage limit does not reach the target (its garbage policy, "
    "docs/protocol.md); on class-forgetting tasks garbage counts as forgetting, as the "
    "paper's CIFAR metric counts random noise, and is reported beside the ranking.")


def tier_count(ranking: Ranking) -> int:
    """How many tiers a ranking has (0 when it ranks no row)."""
    return max((s.tier or 0 for s in ranking[2]), default=0)


def tiers_summary(found: Mapping[str, Ranking], md: Any) -> list[str]:
    """One bullet per ranking: how many tiers over how many ranked rows, and the first tier."""
    if not found:
        return []
    lines = ["**How many tiers each ranking has** (rows whose rank intervals overlap the "
             "tier's best row's share a tier; one tier means the board does not separate "
             "its rows):", ""]
    for title, ranking in found.items():
        ranked = [s for s in ranking[2] if not s.reference]
        first = [md(s.label) for s in ranked if s.tier == 1]
        n = tier_count(ranking)
        lines.append(f"* {md(title)}: **{n} tier{'s' if n != 1 else ''}** over {len(ranked)} "
                     f"ranked rows; first tier: {', '.join(first)}")
    return [*lines, ""]


def ranking_block(title: str, ranking: Ranking, cells: Mapping[str, Mapping[str, str]],
                  md: Any, note: str | None = None, heading: str = "###") -> list[str]:
    """One table's ranking as Markdown: a heading, the tier count, the ranking's rule, the rows.
    ``cells[label]`` holds preformatted *how it forgets* cells (garbage rate, oracle TV);
    ``note`` a sentence printed under the table (the oracle yardstick); ``md`` escapes."""
    rule, target, standings, left_out = ranking
    heads = sorted({k for v in cells.values() for k in v})
    head = ["rank", "tier", "method", "runs", md(rule.forget), md(rule.keep),
            "keep at target ↑", "area ↑", "runs reaching", *(md(h) for h in heads)]
    n = tier_count(ranking)
    lines = [f"{heading} Ranking ({n} tier{'s' if n != 1 else ''})", "",
             f"Rule: {md(ranking_rule(rule, target))}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in standings:
        c = standing_cells(s)
        row = [c["rank"], c["tier"], md(s.label), str(s.runs), c["forget"], c["keep"],
               c["at"], c["area"], c["reaching"],
               *(md(cells.get(s.label, {}).get(h, "—")) for h in heads)]
        lines.append("| " + " | ".join(row) + " |")
    if left_out:
        lines += ["", "Not ranked: " + "; ".join(md(x) for x in left_out) + "."]
    if note:
        lines += ["", md(note)]
    return [*lines, ""]


def rankings_table(found: Mapping[str, Ranking]) -> list[dict[str, Any]]:
    """Every ranked and reference row as a flat row (for ``ranking.csv``)."""
    rows = []
    for title, (rule, target, standings, _left) in found.items():
        for s in standings:
            rows.append({"table": title, "rank": s.rank, "tier": s.tier,
                         "rank_lo": s.rank_ci[0] if s.rank_ci else None,
                         "rank_hi": s.rank_ci[1] if s.rank_ci else None,
                         "method": s.label, "reference": s.reference, "runs": s.runs,
                         "forget_metric": rule.forget, "keep_metric": rule.keep,
                         "target": target, "forget": s.forget, "forget_lo": s.forget_ci[0],
                         "forget_hi": s.forget_ci[1], "keep": s.keep, "keep_lo": s.keep_ci[0],
                         "keep_hi": s.keep_ci[1], "reached": s.reached,
                         "keep_at_target": s.keep_at_target,
                         "keep_at_target_lo": s.keep_at_target_ci[0],
                         "keep_at_target_hi": s.keep_at_target_ci[1], "area": s.area,
                         "area_lo": s.area_ci[0], "area_hi": s.area_ci[1],
                         "runs_reaching": s.runs_reaching})
    return rows


# ---------------------------------------------------------------------- oracle gap
def forget_labels(record: Mapping[str, Any]) -> list[str]:
    """The labels of a run's forget-condition generations (its samples' ``label``)."""
    return [str(label) for label in reader.sample_field(record, "label") or []]


def total_variation(a: Sequence[str], b: Sequence[str]) -> float:
    """Total-variation distance between the empirical distributions of two label lists."""
    ca, cb = Counter(a), Counter(b)
    na, nb = len(a), len(b)
    # in a fixed order: a set of strings iterates in an order set by the process's hash seed,
    # and a float sum depends on its order (the committed report must be the same every time)
    return 0.5 * sum(abs(ca[k] / na - cb[k] / nb) for k in sorted(set(ca) | set(cb), key=str))


def tv_with_ci(a: Sequence[str], b: Sequence[str], resamples: int = 1000,
               seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """TV distance with a basic bootstrap interval (both sides resampled; the plug-in TV is
    biased upwards, and the basic interval corrects that to first order), clipped to [0, 1]."""
    value = total_variation(a, b)
    labels = sorted(set(a) | set(b))
    code = {k: i for i, k in enumerate(labels)}
    xa = np.array([code[x] for x in a])
    xb = np.array([code[x] for x in b])
    k = len(labels)
    # each replicate's share of every label, as (resampled codes == label).mean(1) gives it
    # (a whole count over the length), from the times each sample is picked
    ca, cb = _picks(len(xa), len(xb), resamples, seed)
    pa, pb = _shares(ca, xa, k), _shares(cb, xb, k)
    stats = 0.5 * np.abs(pa - pb).sum(1)
    q_lo, q_hi = np.quantile(stats, [0.025, 0.975])
    lo, hi = max(0.0, 2 * value - float(q_hi)), min(1.0, 2 * value - float(q_lo))
    return value, min(lo, value), max(hi, value)


def _shares(picks: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """``(resamples, k)``, C-ordered: each replicate's share of each label code — the number of
    picks of samples with that label (whole numbers: exact in any order) over the length."""
    onehot = (codes[None, :] == np.arange(k)[:, None]).astype(picks.dtype)
    # sums of whole numbers below 2**24 (float32's exact integers): exact in any order
    out = (onehot @ picks).astype(np.float64)
    return np.ascontiguousarray(out.T) / len(codes)


@lru_cache(maxsize=8)
def _picks(na: int, nb: int, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """How many times each sample of either side is picked in each replicate of
    :func:`tv_with_ci`, ``(n, resamples)`` (whole numbers as float32: exact below 2**24). The
    draws depend on the sizes alone, so every run of an instance size shares them."""
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, na, size=(resamples, na))
    ib = rng.integers(0, nb, size=(resamples, nb))

    def counts(idx: np.ndarray, n: int) -> np.ndarray:
        flat = (idx + n * np.arange(resamples)[:, None]).ravel()
        out = np.ascontiguousarray(
            np.bincount(flat, minlength=resamples * n).reshape(resamples, n).T,
            dtype=np.float32 if n < 1 << 24 else np.float64)
        out.flags.writeable = False
        return out

    return counts(ia, na), counts(ib, nb)


def oracle_gap(record: Mapping[str, Any], oracle: Mapping[str, Any],
               forget_metrics: Sequence[str],
               label_cache: dict[Any, list[str]] | None = None) -> dict[str, dict[str, Any]]:
    """Derived metrics of ``record`` against the retrain ``oracle`` run of the same instance:
    ``oracle_gap_<m>`` (the absolute difference of each forgetting metric from the oracle's,
    with the run's own interval shifted) and ``oracle_tv`` (TV distance of the forget labels);
    lower is better for both. ``label_cache``: the oracles' :func:`forget_labels` (by run id
    and path), kept across calls (an oracle serves every run of its instance)."""
    out: dict[str, dict[str, Any]] = {}
    for m in forget_metrics:
        if m in record["metrics"] and m in oracle["metrics"]:
            mine, theirs = record["metrics"][m], oracle["metrics"][m]
            d = abs(mine["value"] - theirs["value"])
            lo, hi = mine["ci_low"] - theirs["value"], mine["ci_high"] - theirs["value"]
            low = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
            out[f"oracle_gap_{m}"] = {
                "value": d, "ci_low": min(low, d), "ci_high": max(abs(lo), abs(hi), d),
                "n": mine["n"], "higher_is_better": False, "derived": True,
                "definition": {"formula": f"|{m} - {m} of the retrain oracle (run "
                                          f"{oracle['run_id']})|; the run's own interval, "
                                          "shifted by the oracle's value",
                               "oracle_run": oracle["run_id"]}}
    a = forget_labels(record)
    if label_cache is None:
        b = forget_labels(oracle)
    else:
        key = (oracle["run_id"], str(oracle.get("_path", "")))
        if key not in label_cache:
            label_cache[key] = forget_labels(oracle)
        b = label_cache[key]
    if a and b:
        v, lo, hi = tv_with_ci(a, b)
        out["oracle_tv"] = {
            "value": v, "ci_low": lo, "ci_high": hi, "n": len(a), "higher_is_better": False,
            "derived": True,
            "definition": {"formula": "total variation distance between the label "
                                      "distributions of forget-condition generations of the "
                                      "run and of the retrain oracle",
                           "labels": sorted(set(a) | set(b)), "oracle_run": oracle["run_id"],
                           "interval": "basic bootstrap, both sides resampled, 1000 times"}}
    return out


# ---------------------------------------------------------------------- records -> analysis
def is_tuning(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` is a tuning run of the fair protocol (made by ``ubench tune``)."""
    return (record.get("protocol") or {}).get("role") == "tuning"


def metric_split(name: str) -> str | None:
    """``forget`` / ``remain`` for a registered metric (None for unknown ones)."""
    from ubench.catalog.facts import metric_class

    cls = metric_class(name)
    return str(cls.split) if cls is not None else None


def derive_oracle_gaps(records: list[dict[str, Any]]) -> int:
    """Add ``oracle_gap_<m>`` / ``oracle_tv`` to the metrics (in memory) of every evaluation
    record that has a retrain-oracle record of the same task instance and assets. Returns how
    many records got them."""
    groups: dict[str, list[dict[str, Any]]] = {}
    label_cache: dict[Any, list[str]] = {}  # each oracle's labels, read once
    for rec in records:
        if rec.get("status") != "ok" or is_tuning(rec):
            continue
        assets = {k: v for k, v in (rec["task"].get("assets") or {}).items() if k != "oracle"}
        key = json.dumps([rec["task"]["id"], rec["task"]["version"], rec["task"]["config"],
                          rec["task"].get("inputs"), assets], sort_keys=True, default=str)
        groups.setdefault(key, []).append(rec)
    done = 0
    for recs in groups.values():
        oracles = sorted((r for r in recs if r["method"]["id"] == "retrain"),
                         key=lambda r: r["seed"])
        if not oracles:
            continue
        for rec in recs:
            if rec["method"]["id"] == "retrain":
                continue
            forget = [m for m in rec["metrics"] if metric_split(m) == "forget"]
            rec["metrics"].update(oracle_gap(rec, oracles[0], forget, label_cache))
            done += 1
    return done


def task_rule(task: str) -> TuningRule | None:
    """The task's tuning rule as declared now (None for a task without one or not installed);
    read without importing the task class (:func:`ubench.catalog.facts.tuning_rule_spec`)."""
    from ubench.catalog.facts import tuning_rule_spec

    spec = tuning_rule_spec(task)
    return TuningRule.from_dict(spec) if spec is not None else None


def fronts(records: list[dict[str, Any]], targets: Mapping[str, float] | None = None,
           families: Mapping[str, str] | None = None
           ) -> dict[str, tuple[TuningRule, float, list[FrontSummary]]]:
    """Per task: (its rule, the target, every method's front) from the tuning records.

    The target is the preset's (``targets``), or the rule's own / ladder choice on these
    points. A point is one method config; its runs are its tuning cells.
    """
    targets = targets or {}
    by_task: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for rec in records:
        if rec.get("status") != "ok" or not is_tuning(rec):
            continue
        point = json.dumps(rec["method"]["config"], sort_keys=True, default=str)
        by_task.setdefault(rec["task"]["id"], {}).setdefault(
            rec["method"]["id"], {}).setdefault(point, []).append(rec)
    out: dict[str, tuple[TuningRule, float, list[FrontSummary]]] = {}
    for task, methods in sorted(by_task.items()):
        carried = next(((r.get("protocol") or {}).get("rule") for pts in methods.values()
                        for recs in pts.values() for r in recs), None)
        # the task's rule as declared now (what `ubench tune` applies to these runs' metrics);
        # the carried one for a task no longer registered
        rule = task_rule(task) or (TuningRule.from_dict(carried) if isinstance(carried, dict)
                                   else None)
        if rule is None:
            continue
        points: dict[str, list[Point]] = {}
        runs: dict[str, list[list[dict[str, np.ndarray]]]] = {}
        for m, pts in methods.items():
            for recs in pts.values():
                scores = [reader.scores(r) for r in recs]
                if not all(rule.forget in s and rule.keep in s for s in scores):
                    continue
                space = (recs[0].get("protocol") or {}).get("point", {})
                metrics = {k: float(np.mean([r["metrics"][k]["value"] for r in recs]))
                           for k in recs[0]["metrics"]
                           if all(k in r["metrics"] for r in recs)}
                points.setdefault(m, []).append(Point(m, dict(space), metrics,
                                                      [str(r.get("_path", "")) for r in recs]))
                runs.setdefault(m, []).append([{rule.forget: s[rule.forget],
                                                rule.keep: s[rule.keep]} for s in scores])
        if not points:
            continue
        if task in targets:
            target = targets[task]
        else:
            carried_fams = {m: str((recs[0].get("protocol") or {}).get("family") or m)
                            for m, pts in methods.items() for recs in pts.values()}
            target, _ = choose_target(rule, points, families or carried_fams,
                                      garbage_limit(task))
        summaries = [front_scalars(rule, target, m, runs[m], [p.values for p in points[m]],
                                   destroyed=[destroys(p, garbage_limit(task))
                                              for p in points[m]])
                     for m in sorted(points)]
        out[task] = (rule, target, summaries)
    return out


def fronts_markdown(found: Mapping[str, tuple[TuningRule, float, list[FrontSummary]]],
                    md: Any) -> list[str]:
    """Markdown section: per task, each method's scalars and its front (``md`` escapes)."""
    if not found:
        return []
    lines = ["## Trade-off fronts (tuning split)", "",
             "Each method's tuning points (its declared space, the same budget for every "
             "method) measured on the task's tuning cells, which the tables above never "
             "evaluate. *Best keep at target*: the best keep-metric among points that reach "
             "the forgetting target. *Area*: the area under the method's front, "
             "∫₀¹ K(φ) dφ with φ the forgetting score (UA, or 1 − concept rate) and K(φ) the "
             "best keep-metric of a point forgetting at least φ. Intervals: 95 % bootstrap "
             "over the tuning runs and the samples within them.", ""]
    for task, (rule, target, summaries) in found.items():
        lines += [f"### {md(task)}: {md(rule.describe(target))}", "",
                  f"| method | points reaching the target | best {md(rule.keep)} at target "
                  "| area under the front | front (forgetting score, keep: values) |",
                  "|---|---|---|---|---|"]
        ranked = sorted(summaries, key=lambda s: (-s.best_keep, -s.area))
        for s in ranked:
            n_ok = sum(p["forget_score"] >= rule.score(target) - 1e-12 for p in s.points)
            front = "; ".join(
                f"({p['forget_score']:.2f}, {p['keep']:.2f}: "
                + ", ".join(f"{k}={v}" for k, v in sorted(p["values"].items())) + ")"
                for p in s.points if p["on_front"])
            best = (f"{s.best_keep:.3f} [{s.best_keep_ci[0]:.3f}, {s.best_keep_ci[1]:.3f}]"
                    if s.reached else "— (no point reached it)")
            lines.append(f"| {md(s.method)} | {n_ok} of {len(s.points)} | {best} | "
                         f"{s.area:.3f} [{s.area_ci[0]:.3f}, {s.area_ci[1]:.3f}] | "
                         f"{md(front)} |")
        lines.append("")
    return lines


def fronts_table(found: Mapping[str, tuple[TuningRule, float, list[FrontSummary]]]
                 ) -> list[dict[str, Any]]:
    """Every tuning point as a flat row (for ``fronts.csv`` and the web page)."""
    rows = []
    for task, (rule, target, summaries) in found.items():
        for s in summaries:
            for p in s.points:
                rows.append({"task": task, "method": s.method,
                             "values": json.dumps(p["values"], sort_keys=True),
                             "forget_metric": rule.forget, "keep_metric": rule.keep,
                             "target": target, "forget_score": p["forget_score"],
                             "keep": p["keep"], "on_front": p["on_front"],
                             "best_keep_at_target": s.best_keep if s.reached else None,
                             "area": s.area})
    return rows
