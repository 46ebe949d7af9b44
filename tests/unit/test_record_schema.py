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


def _mutations(rec: dict) -> list[dict]:
    """Ways to break a record: every top-level key removed, each value replaced by values of
    other JSON types, nested metric fields broken, unknown keys added."""
    out = []
    odd = [None, "x", 1, 1.5, True, [], {}, float("nan"), -1, 2**70]
    for key in rec:
        gone = copy.deepcopy(rec)
        del gone[key]
        out.append(gone)
        for v in odd:
            changed = copy.deepcopy(rec)
            changed[key] = v
            out.append(changed)
    name = next(iter(rec["metrics"]))
    for field in ("value", "ci_low", "n", "higher_is_better"):
        for v in odd:
            changed = copy.deepcopy(rec)
            changed["metrics"][name][field] = v
            out.append(changed)
    for part in ("task", "method"):
        for field in ("id", "version", "config"):
            for v in odd:
                changed = copy.deepcopy(rec)
                changed[part][field] = v
                out.append(changed)
    extra = copy.deepcopy(rec)
    extra["unexpected"] = 1
    out.append(extra)
    return out


def test_the_fast_validator_passes_nothing_jsonschema_rejects() -> None:
    """Reads ask jsonschema-rs first and jsonschema only for a record it rejects: that is the
    same check only if every record jsonschema-rs passes, jsonschema passes too."""
    from ubench.store import record

    fast = record.fast_validator("run")
    slow = record.validator()
    assert fast is not None
    cases = [m for rec in RECORDS[:: max(1, len(RECORDS) // 12)] for m in _mutations(rec)]
    assert len(cases) > 1000
    both = [(fast.is_valid(c), slow.is_valid(c)) for c in cases]
    assert not [c for c, (f, s) in zip(cases, both, strict=True) if f and not s]
    assert sum(not s for _, s in both) > 500  # the corpus does break records
