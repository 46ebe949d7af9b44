"""The record schema: written once (TypedDicts), generated JSON Schema, validated on read."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ubench.core.errors import CorruptRecordError
from ubench.store.record import SCHEMA_FILE, generate_schema
from ubench.store.records import read_record, validate_record

RECORDS = sorted((ROOT / "leaderboard" / "records").glob("**/record.json"))


def test_committed_schema_is_generated_from_the_typeddicts() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == generate_schema(), \
        "ubench/store/record.schema.json is stale: run python scripts/check_schema.py --write"


def test_every_committed_record_validates() -> None:
    assert len(RECORDS) > 100
    for path in RECORDS:
        read_record(path)


@pytest.mark.parametrize(("change", "where"), [
    (lambda r: r["metrics"]["ua"].__setitem__("value", "abc"), "metrics.ua.value"),
    (lambda r: r["metrics"]["ua"].__setitem__("value", None), "metrics.ua.value"),
    (lambda r: r["metrics"]["ua"].pop("n"), "metrics.ua"),
    (lambda r: r["task"].__setitem__("config", "x"), "task.config"),
    (lambda r: r.__setitem__("seed", True), "seed"),
    (lambda r: r.__setitem__("status", "done"), "status"),
    (lambda r: r.pop("run_id"), "(top level)"),
    (lambda r: r["cost"].__setitem__("unlearn_seconds", "fast"), "cost.unlearn_seconds"),
])
def test_hostile_records_are_refused_with_the_path(change, where: str) -> None:
    rec = copy.deepcopy(json.loads(next(p for p in RECORDS if "digits-class" in str(p))
                                   .read_text()))
    change(rec)
    with pytest.raises(CorruptRecordError, match=rf"corrupt record r\.json: {re.escape(where)}"):
        validate_record(rec, "r.json")


def test_another_schema_version_says_so(tmp_path: Path) -> None:
    rec = json.loads(RECORDS[0].read_text())
    rec["schema_version"] = 9
    with pytest.raises(CorruptRecordError, match="schema_version 9, this ubench reads 1"):
        validate_record(rec, "r.json")
