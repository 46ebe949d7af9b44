"""scripts/validity.py: Kendall τ of ubench's t2i measurements and ranking against published SD
tables (like with like: a forget-side table against ubench's forget column, a keep-side table
against its keep column; and against the rank), its handling of ties, its bootstrap, the table it
picks from ranking.csv, its errors; the sources file it reads; and docs/validity.md, which must
quote the script's output on the committed files exactly."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy.stats import kendalltau

from tests.conftest import ROOT, load_script

SOURCES = ROOT / "scripts" / "validity_sources.toml"
RANKING = ROOT / "leaderboard" / "ranking.csv"
DOC = ROOT / "docs" / "validity.md"


def _script() -> ModuleType:
    return load_script("validity")


V = _script()


def _table(values: dict[str, float], higher: bool = True, task: str = "t2i-style",
           kind: str = "forget", tid: str = "t") -> object:
    return V.SourceTable(id=tid, source="A. Author: A Paper, Venue 2024, arXiv 0000.00000",
                         where="Table 1", sd_task="style", ubench_task=task, metric="m",
                         kind=kind, higher_is_better=higher, values=values)


def _ub(ranks: dict[str, float], forget: dict[str, float] | None = None,
        keep: dict[str, float] | None = None, forget_metric: str = "concept_rate") -> object:
    """A ubench table; forget and keep default to values that order the methods as ``ranks``."""
    forget = forget or {m: r / 100 for m, r in ranks.items()}
    keep = keep or {m: 1 - r / 100 for m, r in ranks.items()}
    rows = {m: V.UbenchRow(r, forget[m], keep[m]) for m, r in ranks.items()}
    return V.UbenchTable("t2i-style", "t2i-style — x", forget_metric, "alignment_test", rows)


# ------------------------------------------------------------------------------- τ itself
def test_identical_and_reversed_orderings() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert V.kendall(x, x) == pytest.approx(1.0)
    assert V.kendall(x, -x) == pytest.approx(-1.0)
    assert math.isnan(V.kendall(x, np.ones(5)))  # a constant side has no τ


def test_higher_is_better_orients_the_source() -> None:
    ub = _ub({"salun": 1.0, "uce": 2.0, "ca": 3.0})
    # the best unlearner (salun) has the largest UA: same order as ubench
    up = V.compare(_table({"salun": 99.0, "uce": 80.0, "ca": 50.0}, higher=True), ub, 200)
    assert up.rank.tau == pytest.approx(1.0) and up.source_rank == [1, 2, 3]
    # the same numbers read as an attack success rate (lower is better): the reverse order
    down = V.compare(_table({"salun": 99.0, "uce": 80.0, "ca": 50.0}, higher=False), ub, 200)
    assert down.rank.tau == pytest.approx(-1.0) and down.source_rank == [3, 2, 1]
    assert V.source_ranks([5.0, 5.0, 1.0], higher_is_better=True) == [1, 1, 3]


def test_ties_use_tau_b_like_scipy() -> None:
    x = np.array([1.0, 2.0, 2.0, 4.0, 5.0, 6.0])
    y = np.array([2.0, 1.0, 3.0, 3.0, 6.0, 5.0])
    expected = kendalltau(x, y, variant="b").statistic
    assert V.kendall(x, y) == pytest.approx(expected)
    # pooling one table alone is that table's τ-b
    assert V.pooled_tau([(x, y)]) == pytest.approx(expected)
    rng = np.random.default_rng(0)
    for _ in range(200):  # heavily tied small samples, as the tables are
        n = int(rng.integers(3, 8))
        a, b = rng.integers(0, 3, n).astype(float), rng.integers(0, 4, n).astype(float)
        want = kendalltau(a, b, variant="b").statistic
        got = V.kendall(a, b)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


def test_pooled_counts_pairs_within_tables_only() -> None:
    a = (np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))  # 3 concordant pairs
    b = (np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0]))  # 6 discordant
    assert V.pooled_tau([a, b]) == pytest.approx((3 - 6) / 9)
    assert V.pooled_tau([a, a]) == pytest.approx(1.0)
    # a table tied on ubench's side adds its pairs to the source's side of the denominator
    tied = (np.zeros(3), np.array([1.0, 2.0, 3.0]))
    assert V.pooled_tau([a, tied]) == pytest.approx(3 / math.sqrt(3 * 6))


# ------------------------------------------------------------------------------- like with like
def test_forget_tables_use_ubench_forget_column_with_its_direction() -> None:
    ranks = {"salun": 1.0, "uce": 2.0, "ca": 3.0, "esd-x": 4.0}
    # ubench's rank is the reverse of its forgetting: the two columns must differ
    forget = {"salun": 0.4, "uce": 0.3, "ca": 0.2, "esd-x": 0.1}  # concept rate: lower forgets
    ua = {"salun": 60.0, "uce": 70.0, "ca": 80.0, "esd-x": 90.0}  # source UA: higher forgets
    c = V.compare(_table(ua, higher=True, kind="forget"), _ub(ranks, forget=forget), 200)
    assert c.like.tau == pytest.approx(1.0) and c.rank.tau == pytest.approx(-1.0)
    # the same numbers read as UA (higher is better) on ubench's side reverse the like column
    as_ua = V.compare(_table(ua, higher=True, kind="forget"),
                      _ub(ranks, forget=forget, forget_metric="ua"), 200)
    assert as_ua.like.tau == pytest.approx(-1.0) and as_ua.rank.tau == pytest.approx(-1.0)


def test_keep_tables_use_ubench_keep_column_higher_is_better() -> None:
    ranks = {"salun": 1.0, "uce": 2.0, "ca": 3.0, "esd-x": 4.0}
    keep = {"salun": 0.7, "uce": 0.8, "ca": 0.9, "esd-x": 0.95}  # the reverse of the rank
    ira = {"salun": 50.0, "uce": 60.0, "ca": 70.0, "esd-x": 80.0}
    c = V.compare(_table(ira, higher=True, kind="keep"), _ub(ranks, keep=keep), 200)
    assert c.like.tau == pytest.approx(1.0) and c.rank.tau == pytest.approx(-1.0)
    fid = {"salun": 50.0, "uce": 40.0, "ca": 30.0, "esd-x": 20.0}  # lower is better
    c = V.compare(_table(fid, higher=False, kind="keep"), _ub(ranks, keep=keep), 200)
    assert c.like.tau == pytest.approx(1.0)


def test_ubench_ties_count_as_tau_b_ties() -> None:
    ranks = {"erasediff": 1.0, "salun": 2.0, "esd-x": 3.0, "uce": 4.0}
    # three rows at concept rate 0.000: their pairs are ties, neither for nor against
    forget = {"erasediff": 0.0, "salun": 0.0, "esd-x": 0.113, "uce": 0.0}
    asr = {"erasediff": 0.0, "salun": 1.41, "esd-x": 20.42, "uce": 21.83}
    c = V.compare(_table(asr, higher=False), _ub(ranks, forget=forget), 300)
    x = [forget[m] for m in c.methods]
    y = [asr[m] for m in c.methods]
    assert c.like.tau == pytest.approx(kendalltau(x, y, variant="b").statistic)
    assert c.like.tau == pytest.approx(1 / math.sqrt(3 * 6))  # S = 2 − 1 over 3 and 6 untied
    # every replicate without esd-x is all tied on ubench's side and has no τ
    assert 0 < c.like.used < c.rank.used


def test_all_tied_on_ubench_side_has_no_tau_but_pools(tmp_path: Path) -> None:
    ranks = {"salun": 1.0, "uce": 2.0, "ca": 3.0}
    tied = _ub(ranks, forget={"salun": 0.0, "uce": 0.0, "ca": 0.0})
    c = V.compare(_table({"salun": 90.0, "uce": 80.0, "ca": 70.0}), tied, 200)
    assert c.enough and math.isnan(c.like.tau) and c.rank.tau == pytest.approx(1.0)
    text = V.render([c], {"t2i-style": tied}, "r.csv", "s.toml", 200, 1)
    assert "| ubench ties all | +1.00 [" in text
    pooled = V.pooled_rows([c], 200, 1)
    assert all(p.tables == 1 and p.pairs == 3 for p in pooled if p.tables)


def test_float_noise_is_no_difference(tmp_path: Path) -> None:
    path = tmp_path / "ranking.csv"
    _write_ranking(path, [(STYLE, "1.0", "salun [tuned]", "False", "0.0", "0.9533333333333335"),
                          (STYLE, "1.0", "uce [tuned]", "False", "0.0", "0.9533333333333333")])
    rows = V.load_ranking(path)["t2i-style"].rows
    assert rows["salun"].keep == rows["uce"].keep


# ------------------------------------------------------------------------------- bootstrap
def test_bootstrap_interval_contains_the_point_and_repeats_with_the_seed() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(8, dtype=np.float64)
    y = x + rng.normal(0, 2.0, size=8)
    tau = V.kendall(x, y)
    lo, hi, used = V.bootstrap_tau(x, y, replicates=2000, seed=7)
    assert lo <= tau <= hi and 0 < used <= 2000
    assert V.bootstrap_tau(x, y, replicates=2000, seed=7) == (lo, hi, used)
    tables = [(x, y), (x[:5], -y[:5])]
    p = V.pooled_tau(tables)
    plo, phi, pused = V.bootstrap_pooled(tables, replicates=500, seed=7)
    assert plo <= p <= phi and pused > 0
    assert V.bootstrap_pooled(tables, replicates=500, seed=7) == (plo, phi, pused)


def test_bootstrap_drops_replicates_with_too_few_methods() -> None:
    x = np.array([1.0, 2.0, 3.0])
    lo, hi, used = V.bootstrap_tau(x, x, replicates=2700, seed=1)
    # only permutations of the 3 methods are kept (6 of 27 draws), and they repeat the point
    assert (lo, hi) == (1.0, 1.0)
    assert 450 < used < 750
    # pooled over one 3-method table: the same rule
    plo, phi, pused = V.bootstrap_pooled([(x, x)], replicates=2700, seed=1)
    assert (plo, phi) == (1.0, 1.0) and 450 < pused < 750


def test_a_table_with_too_few_methods_gets_no_tau() -> None:
    ub = _ub({"salun": 1.0, "uce": 2.0})
    c = V.compare(_table({"salun": 1.0, "uce": 2.0, "ca": 3.0}), ub, 100)
    assert not c.enough and math.isnan(c.like.tau) and math.isnan(c.rank.tau)
    assert c.missing == ["ca"]
    text = V.render([c], {"t2i-style": ub}, "r.csv", "s.toml", 100, 1)
    assert "too few methods" in text and "| ca | not ranked | – | – | 3 |" in text
    # and no ubench table for the task at all
    none = V.compare(_table({"salun": 1.0, "uce": 2.0, "ca": 3.0}), None, 100)
    assert not none.enough and none.methods == []


# ------------------------------------------------------------------------------- the files
def _write_ranking(path: Path, rows: list[tuple[str, ...]],
                   forget_metric: str = "concept_rate") -> None:
    """A ranking.csv with the columns the script reads; a row is (table, rank, method,
    reference[, forget, keep]), forget and keep defaulting to values ordered as the rank."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["table", "rank", "rank_lo", "rank_hi", "method", "reference", "runs",
                    "forget_metric", "keep_metric", "forget", "keep"])
        for table, rank, method, reference, *measures in rows:
            r = float(rank) if rank else 0.0
            forget, keep = measures or (str(r / 100), str(1 - r / 100))
            w.writerow([table, rank, rank, rank, method, reference, 3, forget_metric,
                        "alignment_test", forget, keep])


STYLE = "t2i-style — diversity=diverse, eval_prompts=100"


def _synthetic_ranking(path: Path, forget_metric: str = "concept_rate") -> None:
    _write_ranking(path, [
        (STYLE, "1.0", "salun [tuned]", "False"),
        (STYLE, "2.0", "uce [tuned]", "False"),
        (STYLE, "3.0", "ca [tuned]", "False"),
        (STYLE, "4.0", "esd-x [tuned]", "False"),
        (STYLE, "5.0", "salun [default]", "False", "0.9", "0.1"),  # the best-ranked row counts
        (STYLE, "", "base", "True"),
        # a superseded table with more rows and the reverse order is ignored
        *[(STYLE + " (superseded judge)", str(float(i + 1)), f"{m} [tuned]", "False")
          for i, m in enumerate(["esd-x", "ca", "uce", "salun", "rl"])],
        # a smaller table of the same task loses to the larger one
        ("t2i-style — diversity=uniform", "1.0", "esd-x [tuned]", "False"),
    ], forget_metric)


def test_load_ranking_picks_the_largest_current_table(tmp_path: Path) -> None:
    path = tmp_path / "ranking.csv"
    _synthetic_ranking(path)
    tables = V.load_ranking(path)
    assert set(tables) == {"t2i-style"}
    t = tables["t2i-style"]
    assert t.name == STYLE and t.forget_metric == "concept_rate"
    assert t.ranks == {"salun": 1.0, "uce": 2.0, "ca": 3.0, "esd-x": 4.0}
    assert t.rows["salun"] == V.UbenchRow(1.0, 0.01, 0.99)  # its [tuned] row, not [default]


def test_cli_on_a_synthetic_ranking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ranking = tmp_path / "ranking.csv"
    _synthetic_ranking(ranking)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[table]]\nid = "same"\nsource = "S"\nwhere = "Table 1"\nsd_task = "style"\n'
        'ubench_task = "t2i-style"\nmetric = "UA"\nkind = "forget"\nhigher_is_better = true\n'
        '[table.values]\nsalun = 90\nuce = 80\nca = 70\nesd-x = 60\n'
        '[[table]]\nid = "asr"\nsource = "S"\nwhere = "Table 2"\nsd_task = "style"\n'
        'ubench_task = "t2i-style"\nmetric = "ASR"\nkind = "forget"\nhigher_is_better = false\n'
        '[table.values]\nsalun = 90\nuce = 80\nca = 70\nesd-x = 60\n'
        '[[table]]\nid = "small"\nsource = "S"\nwhere = "Fig. 1"\nsd_task = "nudity"\n'
        'ubench_task = "t2i-attribute"\nmetric = "CLIP"\nkind = "keep"\nhigher_is_better = true\n'
        '[table.values]\nsalun = 0.3\nboostalign = 0.35\n', encoding="utf-8")
    rc = V.main(["--ranking", str(ranking), "--sources", str(sources), "--replicates", "300"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| same | style → t2i-style | UA | forget | concept_rate ↓ | 4 | +1.00 [" in out
    assert "| asr | style → t2i-style | ASR | forget | concept_rate ↓ | 4 | −1.00 [" in out
    assert ("| small | nudity → t2i-attribute | CLIP | keep | – | 0 | too few methods "
            "| too few methods | – |") in out
    # 6 concordant and 6 discordant pairs, in both columns
    assert "| all tables | 2 | 12 | +0.00 [" in out
    assert "| salun | 1 | 0.010 | 0.990 | 90 | 90 |" in out
    assert "| esd-x | 4 | 0.040 | 0.960 | 60 | 60 |" in out
    # the output is deterministic
    V.main(["--ranking", str(ranking), "--sources", str(sources), "--replicates", "300"])
    assert capsys.readouterr().out == out


@pytest.mark.parametrize("problem", ["no ranking", "no sources", "unknown method", "bad kind",
                                     "no where", "unknown forget metric", "no forget column"])
def test_errors_are_one_line_with_a_fix(tmp_path: Path, problem: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ranking = tmp_path / "ranking.csv"
    _synthetic_ranking(ranking, "erasure_score" if problem == "unknown forget metric"
                       else "concept_rate")
    if problem == "no forget column":
        lines = ranking.read_text(encoding="utf-8").splitlines()
        ranking.write_text("\n".join(["table,rank,method,reference,forget_metric,keep_metric,keep",
                                      *lines[1:]]) + "\n", encoding="utf-8")
    sources = tmp_path / "sources.toml"
    body = {"id": "t", "source": "S", "where": "Table 1", "sd_task": "style",
            "ubench_task": "t2i-style", "metric": "UA", "kind": "forget"}
    values = "salun = 1\nuce = 2\nca = 3\n"
    if problem == "unknown method":
        values += "ediff = 4\n"
    if problem == "bad kind":
        body["kind"] = "both"
    if problem == "no where":
        del body["where"]
    sources.write_text("[[table]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in body.items())
                       + "higher_is_better = true\n[table.values]\n" + values, encoding="utf-8")
    args = ["--ranking", str(ranking), "--sources", str(sources)]
    if problem == "no ranking":
        args[1] = str(tmp_path / "missing.csv")
    if problem == "no sources":
        args[3] = str(tmp_path / "missing.toml")
    assert V.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "fix:" in err and "\n" not in err
    if problem == "unknown method":
        assert "'ediff'" in err
    if problem == "unknown forget metric":
        assert "'erasure_score'" in err and "FORGET_HIGHER_IS_BETTER" in err
    if problem == "no forget column":
        assert "forget" in err.split("(fix")[0]


# ------------------------------------------------------------------------------- the sources
def test_sources_file_parses_and_names_real_methods() -> None:
    from ubench.catalog.registry import METHODS

    tables = V.load_sources(SOURCES)
    assert len(tables) >= 3
    for t in tables:
        assert t.source.strip() and t.where.strip(), t.id
        assert "arXiv" in t.source, t.id
        assert t.values, t.id
        for method in t.values:
            METHODS.get(method)  # raises for an id ubench does not have
            assert method not in ("base", "retrain")
    # the script reads the committed file against the real registry without error
    assert {t.ubench_task for t in tables} <= set(V.UBENCH_TASKS)


# ------------------------------------------------------------------------------- the doc
def test_the_doc_quotes_the_scripts_output_on_the_committed_files() -> None:
    """docs/validity.md's figures are the script's, on the committed ranking and sources: the
    text between its two marker lines is the output, byte for byte."""
    fix = (f"fix: run `python scripts/validity.py` and paste its whole output between the lines "
           f"{V.MARK_BEGIN} and {V.MARK_END} in docs/validity.md, then reread the prose that "
           "quotes its figures")
    doc = DOC.read_text(encoding="utf-8")
    assert doc.count(V.MARK_BEGIN + "\n") == 1 and doc.count("\n" + V.MARK_END + "\n") == 1, (
        f"docs/validity.md needs one line {V.MARK_BEGIN} and one line {V.MARK_END}; {fix}")
    quoted = doc.split(V.MARK_BEGIN + "\n", 1)[1].split(V.MARK_END + "\n", 1)[0]
    expected = V.run(RANKING, SOURCES)
    assert quoted == expected, (
        "docs/validity.md is stale: its quoted output differs from what scripts/validity.py "
        f"prints for leaderboard/ranking.csv and scripts/validity_sources.toml; {fix}")
