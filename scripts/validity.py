"""Does ubench's CPU tier rank unlearning methods as published Stable Diffusion results do?

Reads ubench's ranking (``leaderboard/ranking.csv``) and the published SD numbers of the same
methods (``scripts/validity_sources.toml``: one table per source, SD task and metric, each
naming the ubench task that is its CPU analogue), and prints a Markdown section for
``docs/validity.md``:

* per source table, Kendall's τ-b (``scipy.stats.kendalltau``) between ubench's rank of the
  methods the two have in common (its ``rank`` column, 1 = best) and the source's ordering of
  them (best first, by the table's ``higher_is_better``), so τ = +1 means the same order and
  −1 the reverse; with a 95 % percentile bootstrap interval over the methods (resampled with
  replacement, 2,000 replicates, a fixed seed; a replicate with fewer than 3 distinct methods,
  or with every rank equal on one side, has no τ and is dropped; the count used is printed).
  A table with fewer than 3 methods in common is reported as "too few methods", without τ.
* pooled τ per ubench task, over all tables, and over the forget-side and the keep-side tables
  separately. Pooling counts, within each table, its pairs of methods: concordant minus
  discordant pairs over all tables, divided as in τ-b by the pairs not tied on each side
  (sqrt((P - T_ubench) * (P - T_source)), summed over tables). Pairs are never formed across
  tables (two sources' numbers are not on one scale). One table pooled alone is its τ-b. Its
  interval resamples the tables (with replacement) and, within each drawn table, its methods;
  a drawn table with fewer than 3 distinct methods adds nothing and a replicate with no untied
  pair is dropped. Tables from one source share methods and runs, so they are not independent:
  the pooled interval is narrower than the evidence warrants.

ubench's table per task is the one whose name starts with the task id, does not contain
"superseded", and has the most ranked (non-reference) rows; a method with several rows there
(several presets) counts with its best rank. The script only reads the ranking it is given, so
it reruns unchanged on a regenerated ``ranking.csv``:

    python scripts/validity.py [--ranking leaderboard/ranking.csv]
                               [--sources scripts/validity_sources.toml]

Errors (a missing or malformed file, a method id ubench does not have) are one line naming the
fix, exit status 2.
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
from scipy.stats import kendalltau

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
REQUIRED = ("id", "source", "where", "sd_task", "ubench_task", "metric", "kind",
            "higher_is_better", "values")
SD_TASKS = ("nudity", "style", "object")
UBENCH_TASKS = ("t2i-attribute", "t2i-style", "t2i-object")
KINDS = ("forget", "keep")
REFERENCE_METHODS = ("base", "retrain")
#: said of a table with exactly MIN_METHODS methods, whose interval cannot be informative
DEGENERATE = (" With 3 methods, the only replicates kept draw each method once, so the interval "
              "is the point itself: it says nothing about uncertainty.")


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
class UbenchTable:
    """The ranking table ubench reports for one task: its name and each method's rank."""

    task: str
    name: str
    ranks: dict[str, float]


@dataclass
class Comparison:
    """One source table against ubench's ranking of the same methods."""

    table: SourceTable
    methods: list[str]  # in common, in ubench's rank order
    ubench_rank: list[float]
    source_rank: list[int]  # competition rank in the source, 1 = best
    missing: list[str]  # the source's methods ubench's table does not rank
    tau: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    used: int = 0
    # kept for pooling: ubench's ranks and the source's values turned smaller-is-better
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
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


def load_ranking(path: Path) -> dict[str, UbenchTable]:
    """Per task id, ubench's table (see the module docstring for which one) and its ranks."""
    if not path.is_file():
        raise ValidityError(f"{path}: no such file (fix: pass --ranking PATH, the leaderboard's "
                            "ranking.csv, which `ubench report` writes)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        needed = {"table", "rank", "method", "reference"}
        if not needed <= set(reader.fieldnames or ()):
            raise ValidityError(f"{path}: missing column(s) "
                                + ", ".join(sorted(needed - set(reader.fieldnames or ())))
                                + " (fix: pass the ranking.csv `ubench report` writes)")
        tables: dict[str, dict[str, float]] = {}
        for row in reader:
            name = row["table"]
            if "superseded" in name or row["reference"].strip().lower() == "true":
                continue
            if not row["rank"].strip():
                continue
            ranks = tables.setdefault(name, {})
            m = method_id(row["method"])
            try:
                r = float(row["rank"])
            except ValueError as e:
                raise ValidityError(f"{path}: table {name!r}: rank {row['rank']!r} is not a "
                                    "number (fix: regenerate the ranking)") from e
            ranks[m] = min(r, ranks.get(m, math.inf))
    chosen: dict[str, UbenchTable] = {}
    for name, ranks in tables.items():  # file order: the first of equally large tables wins
        task = name.split()[0] if name.split() else ""
        if task not in chosen or len(ranks) > len(chosen[task].ranks):
            chosen[task] = UbenchTable(task, name, ranks)
    return chosen


# ------------------------------------------------------------------------------- statistics
def source_ranks(values: Sequence[float], higher_is_better: bool) -> list[int]:
    """Competition ranks of ``values`` as the source orders them: 1 = best, ties share."""
    good = [v if higher_is_better else -v for v in values]
    return [1 + sum(o > g for o in good) for g in good]


def oriented(values: Sequence[float], higher_is_better: bool) -> np.ndarray:
    """The source's values turned so that smaller is better, like ubench's ranks."""
    v = np.asarray(values, dtype=np.float64)
    return -v if higher_is_better else v


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's τ-b of two equally long sequences (nan when one side is constant)."""
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(kendalltau(x, y, variant="b").statistic)


def bootstrap_tau(x: np.ndarray, y: np.ndarray, replicates: int = REPLICATES,
                  seed: int = SEED) -> tuple[float, float, int]:
    """(low, high, replicates used) of the 95 % percentile bootstrap of τ-b over methods.

    Each replicate draws len(x) methods with replacement; one with fewer than MIN_METHODS
    distinct methods, or a constant side, has no τ and is dropped."""
    rng = np.random.default_rng(seed)
    n = len(x)
    taus: list[float] = []
    for _ in range(replicates):
        idx = rng.integers(0, n, size=n)
        if len(np.unique(idx)) < MIN_METHODS:
            continue
        t = kendall(x[idx], y[idx])
        if not math.isnan(t):
            taus.append(t)
    if not taus:
        return math.nan, math.nan, 0
    lo, hi = np.quantile(taus, [0.025, 0.975])
    return float(lo), float(hi), len(taus)


def pair_counts(x: np.ndarray, y: np.ndarray) -> tuple[int, int, int, int]:
    """(pairs, concordant minus discordant, pairs tied on x, pairs tied on y) over i < j."""
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), k=1)
    sx, sy = sx[upper], sy[upper]
    return len(sx), int(np.sum(sx * sy)), int(np.sum(sx == 0)), int(np.sum(sy == 0))


def pooled_tau(tables: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """τ-b of the pairs pooled over tables (pairs only within a table; see the docstring)."""
    pairs = s = tx = ty = 0
    for x, y in tables:
        p, d, a, b = pair_counts(x, y)
        pairs, s, tx, ty = pairs + p, s + d, tx + a, ty + b
    denom = math.sqrt((pairs - tx) * (pairs - ty)) if pairs > max(tx, ty) else 0.0
    return s / denom if denom > 0 else math.nan


def bootstrap_pooled(tables: Sequence[tuple[np.ndarray, np.ndarray]],
                     replicates: int = REPLICATES, seed: int = SEED
                     ) -> tuple[float, float, int]:
    """(low, high, replicates used) of the pooled τ: tables drawn with replacement, then each
    drawn table's methods with replacement; a drawn table with fewer than MIN_METHODS distinct
    methods adds no pairs, a replicate with no untied pair is dropped."""
    rng = np.random.default_rng(seed)
    k = len(tables)
    taus: list[float] = []
    for _ in range(replicates):
        drawn: list[tuple[np.ndarray, np.ndarray]] = []
        for t in rng.integers(0, k, size=k):
            x, y = tables[t]
            idx = rng.integers(0, len(x), size=len(x))
            if len(np.unique(idx)) >= MIN_METHODS:
                drawn.append((x[idx], y[idx]))
        tau = pooled_tau(drawn) if drawn else math.nan
        if not math.isnan(tau):
            taus.append(tau)
    if not taus:
        return math.nan, math.nan, 0
    lo, hi = np.quantile(taus, [0.025, 0.975])
    return float(lo), float(hi), len(taus)


# ------------------------------------------------------------------------------- comparing
def compare(table: SourceTable, ubench: UbenchTable | None, replicates: int = REPLICATES,
            seed: int = SEED) -> Comparison:
    """The methods ``table`` and ubench's table share, both rankings, τ and its interval."""
    ranks = ubench.ranks if ubench else {}
    common = sorted((m for m in table.values if m in ranks), key=lambda m: (ranks[m], m))
    missing = sorted(m for m in table.values if m not in ranks)
    vals = [table.values[m] for m in common]
    c = Comparison(table, common, [ranks[m] for m in common],
                   source_ranks(vals, table.higher_is_better), missing)
    c.x = np.asarray(c.ubench_rank, dtype=np.float64)
    c.y = oriented(vals, table.higher_is_better)
    if c.enough:
        c.tau = kendall(c.x, c.y)
        c.lo, c.hi, c.used = bootstrap_tau(c.x, c.y, replicates, seed)
    return c


def _f(v: float) -> str:
    """τ and interval ends with a true minus sign; nan as a dash."""
    return "–" if math.isnan(v) else f"{v:+.2f}".replace("-", "−")


def _value(v: float) -> str:
    return f"{v:g}"


def pooled_rows(comps: Sequence[Comparison], replicates: int, seed: int
                ) -> list[tuple[str, int, int, float, float, float, int]]:
    """(label, tables, pairs, τ, low, high, used) per ubench task, overall and per kind."""
    groups: list[tuple[str, list[Comparison]]] = []
    usable = [c for c in comps if c.enough and not math.isnan(c.tau)]
    for task in UBENCH_TASKS:
        groups.append((f"{task}, all its tables",
                       [c for c in usable if c.table.ubench_task == task]))
    groups.append(("all tables", usable))
    for kind in KINDS:
        groups.append((f"all {kind}-side tables", [c for c in usable if c.table.kind == kind]))
    rows = []
    for label, cs in groups:
        data = [(c.x, c.y) for c in cs]
        if not data:
            rows.append((label, 0, 0, math.nan, math.nan, math.nan, 0))
            continue
        lo, hi, used = bootstrap_pooled(data, replicates, seed)
        pairs = sum(pair_counts(x, y)[0] for x, y in data)
        rows.append((label, len(cs), pairs, pooled_tau(data), lo, hi, used))
    return rows


def render(comps: Sequence[Comparison], ubench: dict[str, UbenchTable], ranking: str,
           sources: str, replicates: int, seed: int) -> str:
    """The Markdown section: the ubench tables used, a summary, pooled τ, then each table."""
    out = [f"Ranking `{ranking}`, sources `{sources}`. τ is Kendall's τ-b between ubench's "
           "rank and the source's order of the methods both have (+1: the same order, −1: the "
           f"reverse). Intervals: 95 % percentile bootstrap, {replicates:,} replicates, "
           f"seed {seed}.", "", "ubench tables used:", ""]
    for task in UBENCH_TASKS:
        ut = ubench.get(task)
        out.append(f"* `{task}`: " + (f"{ut.name} ({len(ut.ranks)} ranked methods)" if ut
                                      else "no table in this ranking"))
    out += ["", "| source table | SD task → ubench task | metric | kind | n | τ | 95 % interval "
            "| replicates used |", "|---|---|---|---|---|---|---|---|"]
    for c in comps:
        t = c.table
        head = f"| {t.id} | {t.sd_task} → {t.ubench_task} | {t.metric.split(' (')[0]} | {t.kind}"
        if c.enough:
            flag = " (n = 3: no real interval)" if len(c.methods) == MIN_METHODS else ""
            out.append(f"{head} | {len(c.methods)} | {_f(c.tau)} | [{_f(c.lo)}, {_f(c.hi)}]"
                       f"{flag} | {c.used:,} |")
        else:
            out.append(f"{head} | {len(c.methods)} | too few methods | – | – |")
    out += ["", "Pooled (pairs counted within each table, τ-b over all of them):", "",
            "| pooled over | tables | pairs | τ | 95 % interval | replicates used |",
            "|---|---|---|---|---|---|"]
    for label, k, pairs, tau, lo, hi, used in pooled_rows(comps, replicates, seed):
        if k == 0:
            out.append(f"| {label} | 0 | 0 | – | – | – |")
        else:
            out.append(f"| {label} | {k} | {pairs} | {_f(tau)} | [{_f(lo)}, {_f(hi)}] "
                       f"| {used:,} |")
    for c in comps:
        t = c.table
        arrow = "↑" if t.higher_is_better else "↓"
        out += ["", f"#### {t.id}: {t.metric} {arrow}", "",
                f"{t.source.rstrip('.')}. {t.where.rstrip('.')}.", ""]
        if t.note:
            out += [f"Mapping: {t.note}", ""]
        if c.enough:
            out.append(f"n = {len(c.methods)}, τ = {_f(c.tau)} [{_f(c.lo)}, {_f(c.hi)}] "
                       f"({c.used:,} of {replicates:,} replicates used)."
                       + (DEGENERATE if len(c.methods) == MIN_METHODS else ""))
        else:
            out.append(f"n = {len(c.methods)}: too few methods in common for τ "
                       f"(at least {MIN_METHODS} needed).")
        if c.missing:
            out.append("Not ranked in ubench's table: " + ", ".join(c.missing) + ".")
        if c.methods:
            out += ["", f"| method | ubench rank ({t.ubench_task}) | source value | source rank |",
                    "|---|---|---|---|"]
            for m, ur, sr in zip(c.methods, c.ubench_rank, c.source_rank, strict=True):
                out.append(f"| {m} | {ur:g} | {_value(t.values[m])} | {sr} |")
    return "\n".join(out) + "\n"


def run(ranking: Path, sources: Path, replicates: int = REPLICATES, seed: int = SEED,
        known: set[str] | None = None) -> str:
    """Read both files, compare every source table, return the Markdown."""
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
