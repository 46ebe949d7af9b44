"""The record schema: written once (TypedDicts), generated JSON Schema, validated on read."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ubench.core.errors import CorruptRecordError
from ubench.store.reader import load_records
from ubench.store.record import SCHEMA_FILE, generate_schema
from ubench.store.records import validate_record

#: the committed records (packed), each as it was written
RECORDS = [{k: v for k, v in r.items() if not k.startswith("_")}
           for r in load_records(ROOT / "leaderboard" / "records")]


def test_committed_schema_is_generated_from_the_typeddicts() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == generate_schema(), \
        "ubench/store/record.schema.json is stale: run python scripts/check_schema.py --write"


def test_every_committed_record_validates() -> None:
    assert len(RECORDS) > 100  # (the reader validated each; once more, by hand)
    for rec in RECORDS:
        validate_record(rec, rec["run_id"])


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
    rec = copy.deepcopy(next(r for r in RECORDS if r["task"]["id"] == "digits-class"))
    change(rec)
    with pytest.raises(CorruptRecordError, match=rf"corrupt record r\.json: {re.escape(where)}"):
        validate_record(rec, "r.json")


def test_another_schema_version_says_so(tmp_path: Path) -> None:
    rec = copy.deepcopy(RECORDS[0])
    rec["schema_version"] = 9
    with pytest.raises(CorruptRecordError, match="schema_version 9, this ubench reads 1"):
        validate_record(rec, "r.json")
