"""Does ubench's CPU tier rank unlearning methods as published Stable Diffusion results do?

Reads ubench's ranking (``leaderboard/ranking.csv``) and the published SD numbers of the same
methods (``scripts/validity_sources.toml``: one table per source, SD task and metric, each
naming the ubench task that is its CPU analogue and whether it measures forgetting or what is
kept), and prints a Markdown section that ``docs/validity.md`` quotes verbatim between the
lines ``<!-- validity:begin -->`` and ``<!-- validity:end -->`` (``tests/unit/test_validity.py``
fails when the quote and this output differ; the fix is to rerun this script and paste).

Like with like. A source table measures one side of unlearning, so each is compared first with
ubench's own measurement of that side, then with ubench's overall rank:

* *like with like*: a "forget" table (UA, attack success rate, nudity rate) against ubench's
  ``forget`` column, oriented by the row's ``forget_metric`` (:data:`FORGET_HIGHER_IS_BETTER`:
  ``concept_rate`` and ``nudity_rate`` lower is better, ``ua`` higher; another metric is an
  error); a "keep" table (IRA, CRA, FID, CLIP) against ubench's ``keep`` column (higher is
  better);
* *vs the ranking*: against ubench's ``rank`` column (1 = best), which is a trade-off (keep at
  the forgetting target), not one side.

The statistic, per source table: Kendall's τ-b between ubench's side and the source's ordering
of the methods the two have in common (best first, by the table's ``higher_is_better``), so
τ = +1 means the same order and −1 the reverse. τ-b is computed from pair counts, as
``scipy.stats.kendalltau(variant="b")`` computes it: S = concordant − discordant pairs, divided
by sqrt(pairs untied in ubench × pairs untied in the source). Ties: methods with equal values on
one side form a tied pair, which counts neither for nor against, and leaves the denominator on
that side. ubench's rows tie often on the like-with-like side (several methods at concept rate
0.000); its values are compared rounded to :data:`TIE_DECIMALS` decimals, so that float noise
from averaging runs (0.9533333333333335) is no difference, and equal ranks (4 and 4) tie. When
every method ties on one side the table has no τ of its own ("ubench ties all"). The interval
is a 95 % percentile bootstrap over the methods (resampled with replacement, 2,000 replicates,
a fixed seed; a replicate with fewer than 3 distinct methods, or with one side all tied, has no
τ and is dropped; the count used is printed). The draws depend only on the number of methods,
so both columns of a table resample the same methods. A table with fewer than 3 methods in
common is reported as "too few methods", without τ.

Pooled τ, per ubench task, per kind (forget-side, keep-side tables) and over all tables, for
both columns: concordant minus discordant pairs summed over the tables with at least 3 methods
in common, divided as in τ-b by sqrt(untied pairs in ubench × untied pairs in the sources),
both summed over those tables. Pairs are never formed across tables (two sources' numbers are
not on one scale). One table pooled alone is its τ-b; a table whose ubench side ties all still
adds its pairs (as ties), so both columns pool the same tables and pairs. The interval
resamples the tables (with replacement) and, within each drawn table, its methods; a drawn
table with fewer than 3 distinct methods adds nothing and a replicate with no untied pair on a
side is dropped. Tables from one source share methods and runs, so they are not independent:
the pooled interval is narrower than the evidence warrants.

ubench's table per t2i task is the one whose name starts with the task id, does not contain
"superseded", and has the most ranked (non-reference) rows (the first in the file among equally
large ones); a method with several rows there (several presets) counts with its best-ranked row
(the first in the file among equally ranked ones), whose forget and keep values are used. The
script only reads the ranking it is given, so it reruns unchanged on a regenerated
``ranking.csv``:

    python scripts/validity.py [--ranking leaderboard/ranking.csv]
                               [--sources scripts/validity_sources.toml]

Errors (a missing or malformed file, a method id ubench does not have, a forget metric whose
direction is not known) are one line naming the fix, exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ubench.core.bootstrap import BOOTSTRAP_SEED

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RANKING = ROOT / "leaderboard" / "ranking.csv"
DEFAULT_SOURCES = ROOT / "scripts" / "validity_sources.toml"
REPLICATES = 2000
SEED = BOOTSTRAP_SEED  # 12345, the seed of every ubench bootstrap
MIN_METHODS = 3
#: ubench values are compared at this many decimals: closer values are the same measurement
TIE_DECIMALS = 9
REQUIRED = ("id", "source", "where", "sd_task", "ubench_task", "metric", "kind",
            "higher_is_better", "values")
SD_TASKS = ("nudity", "style", "object")
UBENCH_TASKS = ("t2i-attribute", "t2i-style", "t2i-object")
KINDS = ("forget", "keep")
REFERENCE_METHODS = ("base", "retrain")
#: the direction of each forget metric ranking.csv can name; ubench's keep metrics are all
#: higher-is-better
FORGET_HIGHER_IS_BETTER: dict[str, bool] = {"concept_rate": False, "ua": True,
                                            "nudity_rate": False}
RANKING_COLUMNS = ("table", "rank", "method", "reference", "forget_metric", "keep_metric",
                   "forget", "keep")
#: said of a table with exactly MIN_METHODS methods, whose interval cannot be informative
DEGENERATE = "no real interval"
MARK_BEGIN = "<!-- validity:begin -->"
MARK_END = "<!-- validity:end -->"


class ValidityError(Exception):
    """A problem with an input file, worded as one line that ends with its fix."""


@dataclass(frozen=True)
class SourceTable:
    """One published table: a metric of one SD task, the value of each ubench method in it."""

    id: str
    source: str
    where: str
    sd_task: str
    ubench_task: str
    metric: str
    kind: str
    higher_is_better: bool
    values: dict[str, float]
    note: str = ""


@dataclass(frozen=True)
class UbenchRow:
    """One method's row in ubench's table: its rank and its two measurements (means)."""

    rank: float
    forget: float
    keep: float


@dataclass(frozen=True)
class UbenchTable:
    """The ranking table ubench reports for one task: its name, metrics and each method's row."""

    task: str
    name: str
    forget_metric: str
    keep_metric: str
    rows: dict[str, UbenchRow]

    @property
    def ranks(self) -> dict[str, float]:
        return {m: r.rank for m, r in self.rows.items()}

    @property
    def forget_higher_is_better(self) -> bool:
        return FORGET_HIGHER_IS_BETTER[self.forget_metric]

    def measure(self, kind: str) -> str:
        """ubench's measurement of a source table's side, with its arrow: ``concept_rate ↓``."""
        if kind == "forget":
            return f"{self.forget_metric} {'↑' if self.forget_higher_is_better else '↓'}"
        return f"{self.keep_metric} ↑"

    def own(self, kind: str, methods: Sequence[str]) -> np.ndarray:
        """ubench's own measurement of ``kind`` for ``methods``, turned smaller-is-better."""
        if kind == "forget":
            v = [self.rows[m].forget for m in methods]
            return oriented(v, self.forget_higher_is_better)
        return oriented([self.rows[m].keep for m in methods], True)


@dataclass(frozen=True)
class Tau:
    """τ-b of one comparison, its bootstrap interval and the replicates that had a τ."""

    tau: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    used: int = 0


@dataclass
class Comparison:
    """One source table against ubench's own measurement of its side and ubench's rank."""

    table: SourceTable
    methods: list[str]  # in common, in ubench's rank order
    source_rank: list[int]  # competition rank in the source, 1 = best
    missing: list[str]  # the source's methods ubench's table does not rank
    like: Tau = field(default_factory=Tau)  # vs ubench's forget or keep column
    rank: Tau = field(default_factory=Tau)  # vs ubench's overall rank
    # kept for pooling, all smaller-is-better: ubench's own side, ubench's rank, the source
    x_like: np.ndarray = field(default_factory=lambda: np.zeros(0))
    x_rank: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def enough(self) -> bool:
        return len(self.methods) >= MIN_METHODS


# ------------------------------------------------------------------------------- reading files
def _known_methods() -> set[str]:
    """ubench's method ids that can be ranked (the registry, without the reference rows)."""
    from ubench.catalog.registry import METHODS

    return set(METHODS.names()) - set(REFERENCE_METHODS)


def load_sources(path: Path, known: set[str] | None = None) -> list[SourceTable]:
    """The ``[[table]]`` entries of the sources file, checked: every field present, tasks and
    kinds from their lists, every method id one ubench has (``known``, default: the registry)."""
    if not path.is_file():
        raise ValidityError(f"{path}: no such file (fix: pass --sources PATH, the published "
                            "numbers, e.g. scripts/validity_sources.toml)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValidityError(f"{path}: not valid TOML: {e} (fix: correct the file)") from e
    known = _known_methods() if known is None else known
    tables: list[SourceTable] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("table", [])):
        label = raw.get("id", f"#{i + 1}")
        absent = [k for k in REQUIRED if k not in raw or raw[k] in ("", None)]
        if absent:
            raise ValidityError(f"{path}: table {label} lacks {', '.join(absent)} "
                                "(fix: add the field; every table needs " + ", ".join(REQUIRED)
                                + ")")
        if label in seen:
            raise ValidityError(f"{path}: two tables are named {label} (fix: rename one)")
        seen.add(label)
        for key, allowed in (("sd_task", SD_TASKS), ("ubench_task", UBENCH_TASKS),
                             ("kind", KINDS)):
            if raw[key] not in allowed:
                raise ValidityError(f"{path}: table {label}: {key} = {raw[key]!r} (fix: one of "
                                    + ", ".join(allowed) + ")")
        if not isinstance(raw["higher_is_better"], bool):
            raise ValidityError(f"{path}: table {label}: higher_is_better must be true or false "
                                "(fix: write it without quotes)")
        values: dict[str, float] = {}
        for method, value in raw["values"].items():
            if method not in known:
                raise ValidityError(
                    f"{path}: table {label} names method {method!r}, which ubench does not rank "
                    f"(fix: use one of {', '.join(sorted(known))}, or drop the row)")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidityError(f"{path}: table {label}: {method} = {value!r} is not a "
                                    "number (fix: write the source's number)")
            values[method] = float(value)
        tables.append(SourceTable(
            id=label, source=raw["source"], where=raw["where"], sd_task=raw["sd_task"],
            ubench_task=raw["ubench_task"], metric=raw["metric"], kind=raw["kind"],
            higher_is_better=raw["higher_is_better"], values=values, note=raw.get("note", "")))
    if not tables:
        raise ValidityError(f"{path}: no [[table]] entries (fix: add the published tables)")
    return tables


def method_id(label: str) -> str:
    """The method id of a ranking row's label: ``"salun [tuned]"`` -> ``"salun"``."""
    return label.split(" [", 1)[0].strip()


def _number(path: Path, table: str, column: str, text: str) -> float:
    """A ranking.csv cell as a float, rounded to TIE_DECIMALS; a one-line error if it is not."""
    try:
        return round(float(text), TIE_DECIMALS)
    except ValueError as e:
        raise ValidityError(f"{path}: table {table!r}: {column} {text!r} is not a number "
                            "(fix: regenerate the ranking)") from e


def load_ranking(path: Path) -> dict[str, UbenchTable]:
    """Per t2i task id (:data:`UBENCH_TASKS`), ubench's table (see the module docstring for
    which one) with each method's rank, forget and keep values; other tasks are skipped."""
    if not path.is_file():
        raise ValidityError(f"{path}: no such file (fix: pass --ranking PATH, the leaderboard's "
                            "ranking.csv, which `ubench report` writes)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        absent = [c for c in RANKING_COLUMNS if c not in (reader.fieldnames or ())]
        if absent:
            raise ValidityError(f"{path}: missing column(s) " + ", ".join(absent)
                                + " (fix: pass the ranking.csv `ubench report` writes)")
        rows: dict[str, dict[str, UbenchRow]] = {}
        metrics: dict[str, tuple[str, str]] = {}
        for row in reader:
            name = row["table"]
            task = name.split()[0] if name.split() else ""
            if (task not in UBENCH_TASKS or "superseded" in name
                    or row["reference"].strip().lower() == "true" or not row["rank"].strip()):
                continue
            pair = (row["forget_metric"].strip(), row["keep_metric"].strip())
            if metrics.setdefault(name, pair) != pair:
                raise ValidityError(f"{path}: table {name!r} mixes metrics {metrics[name]} and "
                                    f"{pair} (fix: regenerate the ranking)")
            if pair[0] not in FORGET_HIGHER_IS_BETTER:
                raise ValidityError(
                    f"{path}: table {name!r}: forget metric {pair[0]!r} has no known direction "
                    "(fix: add it to FORGET_HIGHER_IS_BETTER in scripts/validity.py)")
            new = UbenchRow(_number(path, name, "rank", row["rank"]),
                            _number(path, name, "forget", row["forget"]),
                            _number(path, name, "keep", row["keep"]))
            table = rows.setdefault(name, {})
            m = method_id(row["method"])
            if m not in table or new.rank < table[m].rank:
                table[m] = new
    chosen: dict[str, UbenchTable] = {}
    for name, methods in rows.items():  # file order: the first of equally large tables wins
        task = name.split()[0]
        if task not in chosen or len(methods) > len(chosen[task].rows):
            forget_metric, keep_metric = metrics[name]
            chosen[task] = UbenchTable(task, name, forget_metric, keep_metric, methods)
    return chosen


# ------------------------------------------------------------------------------- statistics
def source_ranks(values: Sequence[float], higher_is_better: bool) -> list[int]:
    """Competition ranks of ``values`` as the source orders them: 1 = best, ties share."""
    good = [v if higher_is_better else -v for v in values]
    return [1 + sum(o > g for o in good) for g in good]


def oriented(values: Sequence[float], higher_is_better: bool) -> np.ndarray:
    """``values`` turned so that smaller is better, like ubench's ranks."""
    v = np.asarray(values, dtype=np.float64)
    return -v if higher_is_better else v


def pair_stats(xs: np.ndarray, ys: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of two (R, n) arrays, over its pairs i < j: (pairs, concordant minus discordant,
    pairs untied on x, pairs untied on y). A pair tied on a side adds to neither S nor that
    side's untied count: τ-b's handling of ties."""
    i, j = np.triu_indices(xs.shape[1], k=1)
    sx = np.sign(xs[:, i] - xs[:, j])
    sy = np.sign(ys[:, i] - ys[:, j])
    pairs = np.full(xs.shape[0], len(i))
    return (pairs, np.sum(sx * sy, axis=1).astype(np.int64), np.sum(sx != 0, axis=1),
            np.sum(sy != 0, axis=1))


def _tau_b(s: np.ndarray, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """S / sqrt(untied on x × untied on y), nan where a side has no untied pair."""
    denom = np.sqrt(ux.astype(np.float64) * uy)
    out = np.full(denom.shape, math.nan)
    np.divide(s, denom, out=out, where=denom > 0)
    return out


def pair_counts(x: np.ndarray, y: np.ndarray) -> tuple[int, int, int, int]:
    """(pairs, concordant minus discordant, pairs tied on x, pairs tied on y) over i < j."""
    p, s, ux, uy = pair_stats(np.asarray(x, dtype=np.float64)[None],
                              np.asarray(y, dtype=np.float64)[None])
    return int(p[0]), int(s[0]), int(p[0] - ux[0]), int(p[0] - uy[0])


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's τ-b of two equally long sequences (nan when one side is constant)."""
    if len(x) < 2:
        return math.nan
    _, s, ux, uy = pair_stats(np.asarray(x, dtype=np.float64)[None],
                              np.asarray(y, dtype=np.float64)[None])
    return float(_tau_b(s, ux, uy)[0])


def _interval(taus: np.ndarray) -> tuple[float, float, int]:
    """(2.5 % quantile, 97.5 % quantile, count) of the replicates that have a τ."""
    taus = taus[~np.isnan(taus)]
    if not len(taus):
        return math.nan, math.nan, 0
    lo, hi = np.quantile(taus, [0.025, 0.975])
    return float(lo), float(hi), len(taus)


def bootstrap_tau(x: np.ndarray, y: np.ndarray, replicates: int = REPLICATES,
                  seed: int = SEED) -> tuple[float, float, int]:
    """(low, high, replicates used) of the 95 % percentile bootstrap of τ-b over methods.

    Each replicate draws len(x) methods with replacement; one with fewer than MIN_METHODS
    distinct methods, or a constant side, has no τ and is dropped. The draws depend only on
    len(x) and the seed."""
    rng = np.random.default_rng(seed)
    n = len(x)
    idx = rng.integers(0, n, size=(replicates, n))
    distinct = np.sum(np.diff(np.sort(idx, axis=1), axis=1) != 0, axis=1) + 1
    _, s, ux, uy = pair_stats(np.asarray(x, dtype=np.float64)[idx],
                              np.asarray(y, dtype=np.float64)[idx])
    taus = _tau_b(s, ux, uy)
    taus[distinct < MIN_METHODS] = math.nan
    return _interval(taus)


def pooled_tau(tables: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """τ-b of the pairs pooled over tables (pairs only within a table; see the docstring)."""
    s = ux = uy = 0
    for x, y in tables:
        p, d, a, b = pair_counts(x, y)
        s, ux, uy = s + d, ux + p - a, uy + p - b
    return float(_tau_b(np.array([s]), np.array([ux]), np.array([uy]))[0])


def bootstrap_pooled(tables: Sequence[tuple[np.ndarray, np.ndarray]],
                     replicates: int = REPLICATES, seed: int = SEED
                     ) -> tuple[float, float, int]:
    """(low, high, replicates used) of the pooled τ: tables drawn with replacement, then each
    drawn table's methods with replacement; a drawn table with fewer than MIN_METHODS distinct
    methods adds no pairs, a replicate with no untied pair on a side is dropped. The draws
    depend only on the tables' lengths and the seed."""
    rng = np.random.default_rng(seed)
    k = len(tables)
    sizes = np.array([len(x) for x, _ in tables])
    drawn = rng.integers(0, k, size=(replicates, k))
    # every slot draws max(sizes) indices below its table's size; a table uses its first ones
    idx = rng.integers(0, sizes[drawn][..., None], size=(replicates, k, int(sizes.max())))
    s = np.zeros(replicates, dtype=np.int64)
    ux = np.zeros(replicates, dtype=np.int64)
    uy = np.zeros(replicates, dtype=np.int64)
    for t, (x, y) in enumerate(tables):
        rep, slot = np.nonzero(drawn == t)
        if not len(rep):
            continue
        sub = idx[rep, slot, :len(x)]
        distinct = np.sum(np.diff(np.sort(sub, axis=1), axis=1) != 0, axis=1) + 1
        ok = distinct >= MIN_METHODS
        _, d, a, b = pair_stats(np.asarray(x, dtype=np.float64)[sub],
                                np.asarray(y, dtype=np.float64)[sub])
        np.add.at(s, rep[ok], d[ok])
        np.add.at(ux, rep[ok], a[ok])
        np.add.at(uy, rep[ok], b[ok])
    return _interval(_tau_b(s, ux, uy))


# ------------------------------------------------------------------------------- comparing
def _tau(x: np.ndarray, y: np.ndarray, replicates: int, seed: int) -> Tau:
    return Tau(kendall(x, y), *bootstrap_tau(x, y, replicates, seed))


def compare(table: SourceTable, ubench: UbenchTable | None, replicates: int = REPLICATES,
            seed: int = SEED) -> Comparison:
    """The methods ``table`` and ubench's table share, and τ against ubench's own measurement
    of the table's side (forget or keep) and against ubench's rank, with intervals."""
    ranks = ubench.ranks if ubench else {}
    common = sorted((m for m in table.values if m in ranks), key=lambda m: (ranks[m], m))
    missing = sorted(m for m in table.values if m not in ranks)
    vals = [table.values[m] for m in common]
    c = Comparison(table, common, source_ranks(vals, table.higher_is_better), missing)
    c.x_rank = np.asarray([ranks[m] for m in common], dtype=np.float64)
    c.x_like = ubench.own(table.kind, common) if ubench else np.zeros(0)
    c.y = oriented(vals, table.higher_is_better)
    if c.enough:
        c.like = _tau(c.x_like, c.y, replicates, seed)
        c.rank = _tau(c.x_rank, c.y, replicates, seed)
    return c


def _f(v: float) -> str:
    """τ and interval ends with a true minus sign; nan as a dash."""
    return "–" if math.isnan(v) else f"{v:+.2f}".replace("-", "−")


def _tau_cell(t: Tau, x: np.ndarray, y: np.ndarray) -> str:
    """``+0.33 [−0.60, +1.00]``, or why there is no τ."""
    if math.isnan(t.tau):
        return ("ubench ties all" if len(x) and np.all(x == x[0])
                else "the source ties all" if len(y) and np.all(y == y[0]) else "–")
    return f"{_f(t.tau)} [{_f(t.lo)}, {_f(t.hi)}]"


@dataclass(frozen=True)
class Pooled:
    """One pooled row: its label, tables, pairs, and τ in both columns."""

    label: str
    tables: int
    pairs: int
    like: Tau
    rank: Tau


def pooled_rows(comps: Sequence[Comparison], replicates: int, seed: int) -> list[Pooled]:
    """Per ubench task, per kind and over all tables with enough methods, both columns."""
    usable = [c for c in comps if c.enough]
    groups: list[tuple[str, list[Comparison]]] = []
    for task in UBENCH_TASKS:
        groups.append((f"`{task}`, all its tables",
                       [c for c in usable if c.table.ubench_task == task]))
    for kind in KINDS:
        groups.append((f"all {kind}-side tables", [c for c in usable if c.table.kind == kind]))
    groups.append(("all tables", usable))
    rows = []
    for label, cs in groups:
        if not cs:
            rows.append(Pooled(label, 0, 0, Tau(), Tau()))
            continue
        taus = []
        for data in ([(c.x_like, c.y) for c in cs], [(c.x_rank, c.y) for c in cs]):
            taus.append(Tau(pooled_tau(data), *bootstrap_pooled(data, replicates, seed)))
        pairs = sum(pair_counts(c.x_rank, c.y)[0] for c in cs)
        rows.append(Pooled(label, len(cs), pairs, taus[0], taus[1]))
    return rows


def _value(v: float) -> str:
    return f"{v:g}"


def _task_values(task: str, comps: Sequence[Comparison], ut: UbenchTable | None) -> list[str]:
    """One Markdown table per ubench task: every method a source table of the task names, with
    ubench's rank and two measurements and each source's value."""
    cs = [c for c in comps if c.table.ubench_task == task]
    methods = sorted({m for c in cs for m in c.table.values},
                     key=lambda m: (ut.rows[m].rank if ut and m in ut.rows else math.inf, m))
    fm = ut.measure("forget") if ut else "forget"
    km = ut.measure("keep") if ut else "keep"
    head = ["method", "ubench rank", f"ubench {fm}", f"ubench {km}",
            *[f"{c.table.id} {'↑' if c.table.higher_is_better else '↓'}" for c in cs]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        row = ut.rows.get(m) if ut else None
        cells = ([f"{row.rank:g}", f"{row.forget:.3f}", f"{row.keep:.3f}"] if row
                 else ["not ranked", "–", "–"])
        cells += [_value(c.table.values[m]) if m in c.table.values else "" for c in cs]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return out


def render(comps: Sequence[Comparison], ubench: dict[str, UbenchTable], ranking: str,
           sources: str, replicates: int, seed: int) -> str:
    """The Markdown section: the ubench tables used, τ per table (both columns), pooled τ,
    then per ubench task every method's numbers side by side."""
    out = [f"Ranking `{ranking}`, sources `{sources}`. τ is Kendall's τ-b between a source "
           "table's order of the methods both have and ubench's order of them: *like with "
           "like*, by ubench's own measurement of the table's side (its forget column for a "
           "forget-side table, its keep column for a keep-side one), and *vs the ranking*, by "
           "ubench's overall rank. +1: the same order, −1: the reverse. Methods that tie on a "
           "side count neither way (τ-b). Intervals: 95 % percentile bootstrap over the "
           f"methods, {replicates:,} replicates, seed {seed}, the same draws for both columns.",
           "", "ubench tables used:", ""]
    for task in UBENCH_TASKS:
        ut = ubench.get(task)
        out.append(f"* `{task}`: " + (f"{ut.name} ({len(ut.rows)} ranked methods; forget: "
                                      f"{ut.measure('forget')}, keep: {ut.measure('keep')})"
                                      if ut else "no table in this ranking"))
    out += ["", "| source table | SD task → ubench task | metric | kind | ubench measure | n "
            "| τ like with like [95 %] | τ vs the ranking [95 %] | replicates used |",
            "|---|---|---|---|---|---|---|---|---|"]
    for c in comps:
        t = c.table
        ut = ubench.get(t.ubench_task)
        measure = ut.measure(t.kind) if ut else "–"
        head = (f"| {t.id} | {t.sd_task} → {t.ubench_task} | {t.metric.split(' (')[0]} "
                f"| {t.kind} | {measure}")
        if c.enough:
            n = f"{len(c.methods)}" + (f" ({DEGENERATE})" if len(c.methods) == MIN_METHODS
                                       else "")
            out.append(f"{head} | {n} | {_tau_cell(c.like, c.x_like, c.y)} "
                       f"| {_tau_cell(c.rank, c.x_rank, c.y)} "
                       f"| {c.like.used:,} / {c.rank.used:,} |")
        else:
            out.append(f"{head} | {len(c.methods)} | too few methods | too few methods | – |")
    out += ["", "Pooled (pairs counted within each table, τ-b over all of them):", "",
            "| pooled over | tables | pairs | τ like with like [95 %] | τ vs the ranking [95 %] "
            "| replicates used |", "|---|---|---|---|---|---|"]
    for p in pooled_rows(comps, replicates, seed):
        if p.tables == 0:
            out.append(f"| {p.label} | 0 | 0 | – | – | – |")
        else:
            out.append(f"| {p.label} | {p.tables} | {p.pairs} "
                       f"| {_f(p.like.tau)} [{_f(p.like.lo)}, {_f(p.like.hi)}] "
                       f"| {_f(p.rank.tau)} [{_f(p.rank.lo)}, {_f(p.rank.hi)}] "
                       f"| {p.like.used:,} / {p.rank.used:,} |")
    out += ["", "Replicates used: like with like / vs the ranking. n: methods in common "
            f"(at least {MIN_METHODS} for a τ; with exactly {MIN_METHODS} the only replicates "
            "kept draw each method once, so the interval is the point). Every number behind a "
            "τ, by ubench task (a source's blank cell: the source does not report the method):"]
    for task in UBENCH_TASKS:
        if any(c.table.ubench_task == task for c in comps):
            out += ["", f"`{task}`:", "", *_task_values(task, comps, ubench.get(task))]
    return "\n".join(out) + "\n"


def run(ranking: Path, sources: Path, replicates: int = REPLICATES, seed: int = SEED,
        known: set[str] | None = None) -> str:
    """Read both files, compare every source table, return the Markdown (what the doc
    quotes)."""
    tables = load_sources(sources, known)
    ubench = load_ranking(ranking)
    comps = [compare(t, ubench.get(t.ubench_task), replicates, seed) for t in tables]
    return render(comps, ubench, _display(ranking), _display(sources), replicates, seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--ranking", type=Path, default=DEFAULT_RANKING,
                        help="ubench's ranking.csv (default: leaderboard/ranking.csv)")
    parser.add_argument("--sources", type=Path, default=DEFAULT_SOURCES,
                        help="the published numbers (default: scripts/validity_sources.toml)")
    parser.add_argument("--replicates", type=int, default=REPLICATES,
                        help=f"bootstrap replicates (default {REPLICATES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED})")
    args = parser.parse_args(argv)
    if args.replicates < 1:
        print("error: --replicates must be at least 1 (fix: e.g. --replicates 2000)",
              file=sys.stderr)
        return 2
    try:
        text = run(args.ranking, args.sources, args.replicates, args.seed)
    except ValidityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def _display(path: Path) -> str:
    """``path`` as printed: relative to the repository when it lies inside it, else as is."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
