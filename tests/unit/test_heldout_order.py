"""scripts/heldout_order.py: the board's order against subsets of its cells and held-out cells."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_script


def _script() -> ModuleType:
    return load_script("heldout_order")


def _rec(run_id: str, method: str, cls: int, seed: int, ua: float, ra: float) -> dict[str, Any]:
    return {"run_id": run_id, "status": "ok", "seed": seed,
            "method": {"id": method}, "task": {"config": {"forget_class": cls}},
            "metrics": {"ua": {"value": ua}, "ra": {"value": ra}}}


def test_ranks_share_ties_and_put_the_target_first() -> None:
    s = _script()
    scores = {"a": s.score([(1.0, 0.99)], 0.95), "b": s.score([(1.0, 0.99)], 0.95),
              "c": s.score([(0.5, 1.0)], 0.95), "d": s.score([(1.0, 0.90)], 0.95)}
    assert scores["c"] == (0.0, 0.5)  # misses the target: keep at target 0, whatever its RA
    assert s.ranks(scores) == {"a": 1.5, "b": 1.5, "d": 3.0, "c": 4.0}


def test_spearman_and_its_limits() -> None:
    s = _script()
    a = {"x": 1.0, "y": 2.0, "z": 3.0}
    assert s.spearman(a, a) == pytest.approx(1.0)
    assert s.spearman(a, {"x": 3.0, "y": 2.0, "z": 1.0}) == pytest.approx(-1.0)
    assert math.isnan(s.spearman(a, {"x": 1.0, "y": 1.0, "z": 1.0}))
    with pytest.raises(ValueError, match="three"):
        s.spearman({"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.0})


def test_report_compares_every_order_with_the_board() -> None:
    """Three methods whose order holds on classes 0-4 and flips on 5-9; one held-out cell."""
    s = _script()
    recs, n = [], 0
    ra = {"good": 0.99, "mid": 0.98, "bad": 0.97}
    for m in ra:
        for cls in range(10):
            for seed in range(3):
                # on classes 5-9 the order flips, by less than it holds on 0-4
                r = ra[m] if cls < 5 else 0.98 + (0.98 - ra[m]) * 0.5
                recs.append(_rec(f"r{n}", m, cls, seed, 1.0, r))
                n += 1
        recs.append(_rec(f"h{m}", m, 7, 3, 1.0, ra[m]))
    board = s.collect(recs, {r["run_id"] for r in recs if r["run_id"].startswith("r")})
    held = s.collect(recs, {r["run_id"] for r in recs if r["run_id"].startswith("h")})
    lines = s.report(board, held, 0.95)
    text = "\n".join(lines)
    assert lines[0].startswith("| method | board (10 classes) | without class 4 | classes 0-4 |")
    assert "| good | 1 |" in text
    assert "| classes 0-4 vs classes 5-9 | -1.00 |" in text
    assert "| held-out class 7 seed 3 vs board (10 classes) | +1.00 |" in text
    assert "held-out cells averaged" not in text  # one held-out cell: no average


def test_a_board_with_missing_runs_is_refused() -> None:
    s = _script()
    recs = [_rec("a", "x", 0, 0, 1.0, 1.0), _rec("b", "y", 1, 0, 1.0, 1.0)]
    with pytest.raises(ValueError, match="runs missing"):
        s.report(s.collect(recs, {"a", "b"}), {}, 0.95)


def test_the_command_line_says_what_is_missing_in_one_line(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty store: exit status 2 and one line naming the missing runs, no traceback."""
    assert _script().main(["--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "runs missing" in err[0]
