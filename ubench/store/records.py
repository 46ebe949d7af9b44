"""The results store: one folder per run, named by the run's identity hash.

Layout: ``<store>/<task>/<method>/<run_id>/`` holding ``record.json`` (validated on read),
``samples.png`` (the sample grid), ``samples.jsonl`` (per-sample judgements) and, while a run is in
progress, ``checkpoint/``. Records are written to a temporary file and renamed, so a crash never
leaves a half-written record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ubench.core.errors import CorruptRecordError
from ubench.store.record import IDENTITY_VERSION, SCHEMA_VERSION, Record, schema_errors

__all__ = ["DEFAULT_STORE", "IDENTITY_VERSION", "SCHEMA_VERSION", "iter_record_paths",
           "read_record", "remove_stale_temporaries", "run_dir", "store_root", "validate_record",
           "write_json_atomic", "write_text_atomic"]

DEFAULT_STORE = "results"


def store_root(path: str | Path | None = None) -> Path:
    """The store folder: the argument, ``$UBENCH_STORE`` or ``./results``."""
    return Path(path or os.environ.get("UBENCH_STORE") or DEFAULT_STORE)


def run_dir(root: Path, task: str, method: str, run_id: str) -> Path:
    return root / task / method / run_id


def write_text_atomic(path: Path, text: str, failpoint_name: str | None = None) -> None:
    """Write ``text`` to a temporary file named after this process, then rename it into place:
    a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    if failpoint_name:
        from ubench.core.faults import failpoint

        failpoint(failpoint_name)
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any, failpoint_name: str | None = None) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n",
                      failpoint_name)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed writer left in ``folder`` (``.<name>.tmp-<pid>``)."""
    for tmp in folder.glob(".*.tmp-*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def model_missing(record: Mapping[str, Any], folder: Path) -> bool:
    """Whether the finished run ``record`` in ``folder`` is a method's run (not a reference row,
    which saves nothing) without its unlearned model on disk: made before runs saved their
    weights, or its ``model/`` folder is gone (a clone of a store committed without weights)."""
    saved = record.get("artifacts", {}).get("model")
    return (not record.get("method", {}).get("reference")
            and not (saved and (folder / saved).is_dir()))


def validate_record(rec: Any, where: str) -> Record:
    """Check a record against the JSON Schema (``ubench/store/record.schema.json``); raise
    :class:`CorruptRecordError` naming the first problem and the fix."""
    fix = f"delete {where} or re-run that run with --force"
    if isinstance(rec, dict) and rec.get("schema_version") not in (None, SCHEMA_VERSION) \
            and isinstance(rec.get("schema_version"), int):
        raise CorruptRecordError(
            f"record {where} has schema_version {rec['schema_version']}, this ubench reads "
            f"{SCHEMA_VERSION}; {fix}")
    problems = schema_errors(rec)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CorruptRecordError(f"corrupt record {where}: {problems[0]}{more}; {fix}")
    return rec  # type: ignore[no-any-return]


def read_record(path: Path) -> Record:
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


def load_valid(paths: Iterable[Path], read: Callable[[Path], Mapping[str, Any]]
               ) -> list[dict[str, Any]]:
    """Every record ``read`` accepts, each with its ``_path``; the corrupt ones are reported
    together in one :class:`CorruptRecordError` (the first, and how many more)."""
    records, bad = [], []
    for p in paths:
        try:
            rec = read(p)
        except CorruptRecordError as e:
            bad.append(str(e))
            continue
        records.append({**rec, "_path": str(p)})
    if bad:
        raise CorruptRecordError(bad[0] + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    return records
