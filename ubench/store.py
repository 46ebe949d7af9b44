"""The results store: one folder per run, named by the run's identity hash.

Layout: ``<store>/<task>/<method>/<run_id>/`` holding ``record.json`` (validated on read),
``samples.png`` (the sample grid), ``samples.jsonl`` (per-sample judgements) and, while a run is in
progress, ``checkpoint/``. Records are written to a temporary file and renamed, so a crash never
leaves a half-written record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ubench.errors import CorruptRecordError

SCHEMA_VERSION = 1
DEFAULT_STORE = "results"

#: required top-level fields and their JSON types
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int, "run_id": str, "status": str, "created_at": str, "task": dict,
    "method": dict, "seed": int, "metrics": dict, "cost": dict, "env": dict,
}
_METRIC_FIELDS = ("value", "ci_low", "ci_high", "n", "higher_is_better", "definition")


def store_root(path: str | Path | None = None) -> Path:
    """The store folder: the argument, ``$UBENCH_STORE`` or ``./results``."""
    return Path(path or os.environ.get("UBENCH_STORE") or DEFAULT_STORE)


def run_dir(root: Path, task: str, method: str, run_id: str) -> Path:
    return root / task / method / run_id


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")
    os.replace(tmp, path)


def validate_record(rec: Any, where: str) -> dict[str, Any]:
    """Check a record's structure; raise CorruptRecordError naming the problem and the fix."""
    fix = f"delete {where} or re-run that run with --force"
    if not isinstance(rec, dict):
        raise CorruptRecordError(f"corrupt record {where}: not a JSON object; {fix}")
    for key, tp in _REQUIRED.items():
        if key not in rec or not isinstance(rec[key], tp):
            raise CorruptRecordError(f"corrupt record {where}: missing or invalid {key!r}; {fix}")
    if rec["schema_version"] != SCHEMA_VERSION:
        raise CorruptRecordError(
            f"record {where} has schema_version {rec['schema_version']}, this ubench reads "
            f"{SCHEMA_VERSION}; {fix}")
    for name, m in rec["metrics"].items():
        if not isinstance(m, dict) or any(f not in m for f in _METRIC_FIELDS):
            raise CorruptRecordError(f"corrupt record {where}: metric {name!r} incomplete; {fix}")
    for k in ("id", "version", "config"):
        if k not in rec["task"] or k not in rec["method"]:
            raise CorruptRecordError(f"corrupt record {where}: task/method lacks {k!r}; {fix}")
    return rec


def read_record(path: Path) -> dict[str, Any]:
    """Read and validate one record.json."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptRecordError(
            f"corrupt record {path}: {type(e).__name__}: {e}; delete {path.parent} "
            "or re-run that run with --force") from None
    return validate_record(rec, str(path))


def iter_record_paths(root: Path) -> Iterator[Path]:
    yield from sorted(root.glob("**/record.json"))
