"""scripts/validity.py: Kendall τ of ubench's t2i ranking against published SD tables, its
bootstrap, the table it picks from ranking.csv, its errors; and the sources file it reads."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy.stats import kendalltau

from tests.conftest import ROOT

SOURCES = ROOT / "scripts" / "validity_sources.toml"


def _script() -> ModuleType:
    if "validity_script" in sys.modules:
        return sys.modules["validity_script"]
    spec = importlib.util.spec_from_file_location("validity_script",
                                                  ROOT / "scripts" / "validity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["validity_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


V = _script()


def _table(values: dict[str, float], higher: bool = True, task: str = "t2i-style",
           kind: str = "forget", tid: str = "t") -> object:
    return V.SourceTable(id=tid, source="A. Author: A Paper, Venue 2024, arXiv 0000.00000",
                         where="Table 1", sd_task="style", ubench_task=task, metric="m",
                         kind=kind, higher_is_better=higher, values=values)


# ------------------------------------------------------------------------------- τ itself
def test_identical_and_reversed_orderings() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert V.kendall(x, x) == pytest.approx(1.0)
    assert V.kendall(x, -x) == pytest.approx(-1.0)
    assert math.isnan(V.kendall(x, np.ones(5)))  # a constant side has no τ


def test_higher_is_better_orients_the_source() -> None:
    ub = V.UbenchTable("t2i-style", "t2i-style — x", {"salun": 1.0, "uce": 2.0, "ca": 3.0})
    # the best unlearner (salun) has the largest UA: same order as ubench
    up = V.compare(_table({"salun": 99.0, "uce": 80.0, "ca": 50.0}, higher=True), ub, 200)
    assert up.tau == pytest.approx(1.0) and up.source_rank == [1, 2, 3]
    # the same numbers read as an attack success rate (lower is better): the reverse order
    down = V.compare(_table({"salun": 99.0, "uce": 80.0, "ca": 50.0}, higher=False), ub, 200)
    assert down.tau == pytest.approx(-1.0) and down.source_rank == [3, 2, 1]
    assert V.source_ranks([5.0, 5.0, 1.0], higher_is_better=True) == [1, 1, 3]


def test_ties_use_tau_b_like_scipy() -> None:
    x = np.array([1.0, 2.0, 2.0, 4.0, 5.0, 6.0])
    y = np.array([2.0, 1.0, 3.0, 3.0, 6.0, 5.0])
    expected = kendalltau(x, y, variant="b").statistic
    assert V.kendall(x, y) == pytest.approx(expected)
    # pooling one table alone is that table's τ-b
    assert V.pooled_tau([(x, y)]) == pytest.approx(expected)


def test_pooled_counts_pairs_within_tables_only() -> None:
    a = (np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))  # 3 concordant pairs
    b = (np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0]))  # 6 discordant
    assert V.pooled_tau([a, b]) == pytest.approx((3 - 6) / 9)
    assert V.pooled_tau([a, a]) == pytest.approx(1.0)


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


def test_a_table_with_too_few_methods_gets_no_tau() -> None:
    ub = V.UbenchTable("t2i-style", "t2i-style — x", {"salun": 1.0, "uce": 2.0})
    c = V.compare(_table({"salun": 1.0, "uce": 2.0, "ca": 3.0}), ub, 100)
    assert not c.enough and math.isnan(c.tau) and c.missing == ["ca"]
    text = V.render([c], {"t2i-style": ub}, "r.csv", "s.toml", 100, 1)
    assert "too few methods" in text
    # and no ubench table for the task at all
    none = V.compare(_table({"salun": 1.0, "uce": 2.0, "ca": 3.0}), None, 100)
    assert not none.enough and none.methods == []


# ------------------------------------------------------------------------------- the files
def _write_ranking(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["table", "rank", "rank_lo", "rank_hi", "method", "reference", "runs"])
        for table, rank, method, reference in rows:
            w.writerow([table, rank, rank, rank, method, reference, 3])


STYLE = "t2i-style — diversity=diverse, eval_prompts=100"


def _synthetic_ranking(path: Path) -> None:
    _write_ranking(path, [
        (STYLE, "1.0", "salun [tuned]", "False"),
        (STYLE, "2.0", "uce [tuned]", "False"),
        (STYLE, "3.0", "ca [tuned]", "False"),
        (STYLE, "4.0", "esd-x [tuned]", "False"),
        (STYLE, "5.0", "salun [default]", "False"),  # a second row: the best rank counts
        (STYLE, "", "base", "True"),
        # a superseded table with more rows and the reverse order is ignored
        *[(STYLE + " (superseded judge)", str(float(i + 1)), f"{m} [tuned]", "False")
          for i, m in enumerate(["esd-x", "ca", "uce", "salun", "rl"])],
        # a smaller table of the same task loses to the larger one
        ("t2i-style — diversity=uniform", "1.0", "esd-x [tuned]", "False"),
    ])


def test_load_ranking_picks_the_largest_current_table(tmp_path: Path) -> None:
    path = tmp_path / "ranking.csv"
    _synthetic_ranking(path)
    tables = V.load_ranking(path)
    assert set(tables) == {"t2i-style"}
    assert tables["t2i-style"].name == STYLE
    assert tables["t2i-style"].ranks == {"salun": 1.0, "uce": 2.0, "ca": 3.0, "esd-x": 4.0}


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
    assert "| same | style → t2i-style | UA | forget | 4 | +1.00 |" in out
    assert "| asr | style → t2i-style | ASR | forget | 4 | −1.00 |" in out
    assert "| small | nudity → t2i-attribute | CLIP | keep | 0 | too few methods |" in out
    assert "| all tables | 2 | 12 | +0.00 |" in out  # 6 concordant and 6 discordant pairs
    assert "| salun | 1 | 90 | 1 |" in out and "| esd-x | 4 | 60 | 4 |" in out
    # the output is deterministic
    V.main(["--ranking", str(ranking), "--sources", str(sources), "--replicates", "300"])
    assert capsys.readouterr().out == out


@pytest.mark.parametrize("problem", ["no ranking", "no sources", "unknown method", "bad kind",
                                     "no where"])
def test_errors_are_one_line_with_a_fix(tmp_path: Path, problem: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ranking = tmp_path / "ranking.csv"
    _synthetic_ranking(ranking)
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


def test_the_committed_ranking_runs(capsys: pytest.CaptureFixture[str]) -> None:
    ranking = ROOT / "leaderboard" / "ranking.csv"
    if not ranking.is_file():
        pytest.skip("no committed leaderboard/ranking.csv")
    assert V.main(["--ranking", str(ranking), "--replicates", "50"]) == 0
    assert "Pooled" in capsys.readouterr().out
