"""Reading records: a run's ``record.json`` and an attack's ``attack.json``, validated.

A record is validated against its JSON Schema on every read (``record.schema.json``,
``attack_record.schema.json``, generated from :mod:`ubench.store.record`); a corrupt one is a
:class:`~ubench.core.errors.CorruptRecordError` naming the file and the fix. Where records live —
run folders, or the packed dataset — is :mod:`ubench.store.reader`'s business.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ubench.core.errors import CorruptRecordError
from ubench.store.layout import ATTACK_FILE, ATTACKS_DIR, DATA_DIR, RECORD_FILE
from ubench.store.record import (
    SCHEMA_VERSION,
    AttackRecord,
    Record,
    attack_schema_errors,
    schema_errors,
)


def _validate(rec: Any, what: str, where: str, fix: str, errors: Callable[[Any], list[str]]
              ) -> Any:
    if isinstance(rec, dict) and isinstance(rec.get("schema_version"), int) \
            and rec["schema_version"] != SCHEMA_VERSION:
        raise CorruptRecordError(f"{what} {where} has schema_version {rec['schema_version']}, "
                                 f"this ubench reads {SCHEMA_VERSION}; {fix}")
    problems = errors(rec)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CorruptRecordError(f"corrupt {what} {where}: {problems[0]}{more}; {fix}")
    return rec


def validate_record(rec: Any, where: str, fix: str | None = None) -> Record:
    """Check a run record against its schema; raise :class:`CorruptRecordError` naming the first
    problem and ``fix`` (default: delete the record or re-run that run)."""
    fix = fix or f"delete {where} or re-run that run with --force"
    return _validate(rec, "record", where, fix, schema_errors)  # type: ignore[no-any-return]


def validate_attack_record(rec: Any, where: str, fix: str | None = None) -> AttackRecord:
    """Check an attack record against its schema; CorruptRecordError naming the problem."""
    fix = fix or f"delete {Path(where).parent} or rerun that attack with --force"
    return _validate(rec, "attack record", where, fix,  # type: ignore[no-any-return]
                     attack_schema_errors)


def _read_json(path: Path, what: str, fix: str) -> Any:
    try:
        if not path.is_file():
            raise OSError(f"{path} is not a regular file")
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptRecordError(f"corrupt {what} {path}: {type(e).__name__}: {e}; {fix}"
                                 ) from None


def read_record(path: Path) -> Record:
    """Read and validate one ``record.json``."""
    rec = _read_json(path, "record", f"delete {path.parent} or re-run that run with --force")
    return validate_record(rec, str(path))


def read_attack_record(path: Path) -> AttackRecord:
    """Read and validate one ``attack.json``."""
    rec = _read_json(path, "attack record",
                     f"delete {path.parent} or rerun that attack with --force")
    return validate_attack_record(rec, str(path))


def read_samples_file(path: Path, fix: str) -> list[dict[str, Any]]:
    """A ``samples.jsonl``, checked whole: unreadable, truncated (an incomplete last line) or
    a line that is not a JSON object is a CorruptRecordError naming the line and ``fix``."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CorruptRecordError(f"cannot read {path} ({type(e).__name__}); {fix}") from None
    if text and not text.endswith("\n"):
        raise CorruptRecordError(f"{path} is truncated (its last line is incomplete); {fix}")
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line)
        except ValueError:
            raise CorruptRecordError(f"{path} line {i} is not JSON (truncated or corrupt); "
                                     f"{fix}") from None
        if not isinstance(row, dict):
            raise CorruptRecordError(f"{path} line {i} is not a JSON object; {fix}")
        rows.append(row)
    return rows


def read_tensor_file(path: Path) -> dict[str, Any]:
    """A run's per-sample scores or features file (safetensors) as numpy arrays; a truncated or
    foreign file is a CorruptRecordError with the fix."""
    from safetensors.numpy import load_file

    try:
        return dict(load_file(str(path)))
    except Exception as e:  # safetensors' own errors
        raise CorruptRecordError(f"cannot read {path} ({type(e).__name__}: {e}); delete "
                                 f"{path.parent} and re-run that run") from None


def _outside_datasets(root: Path, paths: Iterable[Path]) -> Iterator[Path]:
    for p in paths:
        if DATA_DIR not in p.relative_to(root).parts[:-1]:
            yield p


def iter_record_paths(root: Path) -> Iterator[Path]:
    """The ``record.json`` of every run folder under ``root``, in path order."""
    yield from _outside_datasets(root, sorted(root.glob(f"**/{RECORD_FILE}")))


def iter_attack_record_paths(root: Path) -> Iterator[Path]:
    yield from _outside_datasets(root, sorted(root.glob(f"**/{ATTACKS_DIR}/*/*/{ATTACK_FILE}")))


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
    raise_together(bad)
    return records


def raise_together(problems: list[str]) -> None:
    """One :class:`CorruptRecordError` for several problems: the first, and how many more."""
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CorruptRecordError(problems[0] + more)
