"""Property-based fault tests (Hypothesis): arbitrary input is refused cleanly, never crashes.

* the override parser and the type coercion return a value or raise ConfigError — nothing else;
* integers are read exactly (no silent rounding above 2^53);
* a report built from records full of hostile strings (HTML, Markdown table syntax, newlines,
  spreadsheet formulas) never raises, never emits raw HTML and never writes a formula cell.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ubench.core.config import coerce_spec, parse_overrides
from ubench.core.errors import ConfigError, CorruptRecordError
from ubench.report.build import build_report
from ubench.report.formats import csv_safe, md
from ubench.store.record import NAME, SCHEMA_VERSION

SPECS = [{"type": "int"}, {"type": "float"}, {"type": "bool"}, {"type": "str"},
         {"type": "choice", "choices": ["clip", "threshold", "none"]},
         {"type": "tuple", "of": {"type": "int"}},
         {"type": "union", "of": [{"type": "int"}, {"type": "str"}], "nullable": True}]

HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["<script>alert(1)</script>", "a|b", "x\ny", "=cmd|' /C calc'!A0",
                     "+1", "-1+1", "@SUM(A1)", "[x](javascript:alert(1))", "<img src=x "
                     "onerror=alert(1)>", "## heading", "\t=1", "a\r\nb", "`code`", "*bold*"]))


@given(st.lists(st.text(max_size=30), max_size=6))
def test_the_override_parser_parses_or_refuses(items: list[str]) -> None:
    try:
        out = parse_overrides(items)
    except ConfigError:
        return
    assert set(out) == {"method", "task"}
    assert all(isinstance(v, str) for scope in out.values() for v in scope.values())


@given(st.text(max_size=30), st.sampled_from(SPECS))
def test_coercion_returns_a_value_or_refuses(raw: str, spec: dict) -> None:
    try:
        coerce_spec(raw, spec, "method.x")
    except ConfigError as e:
        assert "\n" not in str(e)


@given(st.integers(min_value=-(2**63), max_value=2**63))
def test_integers_are_read_exactly(n: int) -> None:
    assert coerce_spec(str(n), {"type": "int"}, "x") == n


def test_a_float_literal_too_large_to_be_exact_is_refused() -> None:
    try:
        coerce_spec("1e17", {"type": "int"}, "x")
    except ConfigError as e:
        assert "too large" in str(e)
    else:
        raise AssertionError("1e17 was accepted")
    assert coerce_spec("1e3", {"type": "int"}, "x") == 1000


def _record(i: int, method_value: str, task_value: str, metric_name: str, error: str) -> dict:
    metric = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 10, "higher_is_better": True,
              "definition": {"note": error}}
    return {
        "schema_version": SCHEMA_VERSION, "run_id": f"r{i}", "status": "ok",
        "created_at": "2026-01-01T00:00:00+00:00",
        "task": {"id": task_value or "t", "version": "1",
                 "config": {"forget_class": 0, "label": task_value}},
        "method": {"id": "ga", "version": "1", "config": {"note": method_value, "lr": 0.1}},
        "seed": i, "metrics": {metric_name or "m": metric}, "cost": {"unlearn_seconds": 1.0},
        "env": {}, "error": error,
    }


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(HOSTILE, HOSTILE, HOSTILE, HOSTILE)
def test_hostile_records_render_as_text(tmp_path: Path, method_value: str, task_value: str,
                                        metric_name: str, error: str) -> None:
    store = tmp_path / "s" / method_value.encode().hex()[:40] / "store"
    out = store.parent / "out"
    rec = _record(0, method_value, task_value, metric_name, error)
    path = store / "x" / "ga" / "r0" / "record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    if task_value and not (NAME.fullmatch(task_value) and ".." not in task_value):
        # an id names folders and report pages: one that is not a plain name is corrupt
        with pytest.raises(CorruptRecordError, match="is not a name"):
            build_report(store, out)
        return
    build_report(store, out)
    text = (out / "README.md").read_text()
    body = text.split("\n", 1)[1]  # the first line is the generated-file banner comment
    assert "<" not in body and ">" not in body.replace("->", "")
    for line in body.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            assert len(cells) == 7, line  # method, the metric, runs, seeds, forgotten, s, MB
    for name in ("leaderboard.csv", "runs.csv"):
        rows = list(csv.reader(io.StringIO((out / name).read_text())))
        for row in rows:
            for cell in row:
                assert cell[:1] not in ("=", "+", "@", "\t", "\r") or cell.startswith("'")
                if cell[:1] == "-":
                    float(cell)  # only numbers may start with a minus


def test_md_and_csv_helpers() -> None:
    assert md("<b>|x\ny") == "&lt;b&gt;\\|x y"
    assert csv_safe("=1") == "'=1" and csv_safe(-1.5) == -1.5 and csv_safe("ok") == "ok"
