"""Reading a store, packed or not: its records, and each run's per-sample data and files.

A store may hold run folders (what ``ubench run`` and ``ubench sweep`` write), a packed dataset
(what ``ubench pack`` makes of them, :mod:`ubench.store.dataset`), or both; folders nested in it
that are stores of their own are read too (a folder of records is a store). Every reader
of ubench — the report, ``compare``, the protocol's fronts, ``attack``, a sweep's skip of
finished runs — goes through here, so it never needs to know which form a run is in:

* :func:`load_records` / :func:`load_attack_records`: every valid record, each with ``_path``
  (where it is, or would be as a folder: ``<store>/<task>/<method>/<run id>/record.json``) and,
  for a packed one, ``_packed`` (its dataset's store). A run folder takes precedence over a
  packed record of the same id (a run remade since it was packed); records are listed in the
  order of their paths either way.
* :func:`scores`, :func:`features`, :func:`samples`, :func:`grid`: a record's per-sample data
  and sample grid.
* :func:`finished_run` / :func:`finished_attack`: one record by identity (a sweep's question
  "is this done?").

A record's artifact names come from the record, i.e. from a file anyone can edit: each is read
only if it is a plain file name inside the record's own folder; anything else (``../x``, an
absolute path, a device) counts as corrupt, with the fix, and nothing outside the folder is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ubench.core.errors import CorruptRecordError
from ubench.store import dataset
from ubench.store.layout import (
    ATTACK_FILE,
    GRID_FILE,
    RECORD_FILE,
    attack_dir,
    run_dir,
)
from ubench.store.records import (
    iter_attack_record_paths,
    iter_record_paths,
    load_valid,
    raise_together,
    read_attack_record,
    read_record,
    read_samples_file,
    read_tensor_file,
    validate_attack_record,
    validate_record,
)

#: the most bytes a per-sample file of a run may have (a bound on what a record can make us read)
MAX_ARTIFACT_BYTES = 1 << 30


# ----------------------------------------------------------------------------- records
@dataclasses.dataclass(frozen=True)
class _Kind:
    """What differs between reading run records and attack records."""

    table: str  # the packed table
    key: str  # the id field
    loose: Callable[[Path], Iterator[Path]]
    read: Callable[[Path], Mapping[str, Any]]
    validate: Callable[[Any, str, str], Any]
    place: Callable[[Path, Mapping[str, Any]], Path]  # its record's path as a folder


def _run_place(store: Path, rec: Mapping[str, Any]) -> Path:
    return run_dir(store, rec["task"]["id"], rec["method"]["id"], rec["run_id"]) / RECORD_FILE


def _attack_place(store: Path, rec: Mapping[str, Any]) -> Path:
    run = rec["run"]
    return attack_dir(run_dir(store, run["task"]["id"], run["method"]["id"], run["run_id"]),
                      rec["attack"]["id"], rec["attack_id"]) / ATTACK_FILE


RUNS = _Kind("runs", "run_id", iter_record_paths, read_record, validate_record, _run_place)
ATTACKS = _Kind("attacks", "attack_id", iter_attack_record_paths, read_attack_record,
                validate_attack_record, _attack_place)


def _packed(store: Path, kind: _Kind) -> list[dict[str, Any]]:
    out, bad = [], []
    for task in dataset.packed_tasks(store):
        folder = dataset.task_dir(store, task)
        for rec in dataset.read_records(folder, kind.table):
            where = f"{folder / f'{kind.table}.parquet'} ({kind.key} {rec.get(kind.key)})"
            try:
                kind.validate(rec, where, f"repack the store or restore {folder}")
            except CorruptRecordError as e:
                bad.append(str(e))
                continue
            out.append({**rec, "_path": str(kind.place(store, rec)), "_packed": str(store)})
    raise_together(bad)
    return out


def _load(root: str | Path, kind: _Kind) -> list[dict[str, Any]]:
    """Run folders' records, and the packed ones no folder's record of the same id supersedes,
    in the order of their paths; every corrupt one reported together."""
    root = Path(root)
    loose: list[dict[str, Any]] = []
    packed: list[dict[str, Any]] = []
    bad = []
    try:
        loose = load_valid(kind.loose(root), kind.read)
    except CorruptRecordError as e:
        bad.append(str(e))
    for store in dataset.dataset_roots(root):
        try:
            packed += _packed(store, kind)
        except CorruptRecordError as e:
            bad.append(str(e))
    raise_together(bad)
    have = {r[kind.key] for r in loose}
    return sorted(loose + [r for r in packed if r[kind.key] not in have],
                  key=lambda r: r["_path"])


def load_records(root: str | Path) -> list[dict[str, Any]]:
    """Every valid run record of the store ``root`` (see the module docstring); all corrupt
    ones are reported together in one CorruptRecordError."""
    return _load(root, RUNS)


def load_attack_records(root: str | Path) -> list[dict[str, Any]]:
    """Every valid attack record of the store ``root`` (with ``_path``; ``_packed`` when
    packed); corrupt ones are reported together."""
    return _load(root, ATTACKS)


def _finished(root: Path, task: str, kind: _Kind, path: Path, ident: str
              ) -> dict[str, Any] | None:
    """The record whose folder's record file is ``path`` (read there, else from ``root``'s
    dataset of ``task``), validated, with ``_path``; None when there is none."""
    if path.exists():
        return {**kind.read(path), "_path": str(path)}
    folder = dataset.task_dir(root, task)
    for rec in dataset.read_records(folder, kind.table):
        if rec.get(kind.key) == ident:
            kind.validate(rec, f"{folder / f'{kind.table}.parquet'} ({kind.key} {ident})",
                          f"repack the store or restore {folder}")
            return {**rec, "_path": str(path), "_packed": str(root)}
    return None


def finished_run(root: Path, task: str, method: str, run_id: str) -> dict[str, Any] | None:
    """The record of run ``run_id`` in the store ``root`` (its folder's, else the packed one),
    validated, with ``_path``; None when there is none. A corrupt record raises."""
    return _finished(root, task, RUNS, run_dir(root, task, method, run_id) / RECORD_FILE, run_id)


def finished_attack(root: Path, run_folder: Path, task: str, attack: str, attack_id: str
                    ) -> dict[str, Any] | None:
    """The record of attack ``attack_id`` on the run in ``run_folder``; None when there is none."""
    return _finished(root, task, ATTACKS,
                     attack_dir(run_folder, attack, attack_id) / ATTACK_FILE, attack_id)


def packed_run_ids(root: Path) -> dict[str, tuple[str, str]]:
    """``{run id: (task, method)}`` of every packed run of the store ``root``."""
    out = {}
    for task in dataset.packed_tasks(root):
        for rec in dataset.read_records(dataset.task_dir(root, task), "runs"):
            out[rec["run_id"]] = (rec["task"]["id"], rec["method"]["id"])
    return out


# ----------------------------------------------------------------------------- per-run data
def where(rec: Mapping[str, Any]) -> str:
    """Where a record's data lives, for messages: its folder, or its store's dataset."""
    if rec.get("_packed"):
        task = rec["run"]["task"]["id"] if "attack_id" in rec else rec["task"]["id"]
        return f"{dataset.task_dir(Path(rec['_packed']), task)} (packed)"
    return str(Path(str(rec.get("_path", ""))).parent)


def _artifact(rec: Mapping[str, Any], kind: str, default: str | None = None) -> Path | None:
    """The file of artifact ``kind`` in a run folder (``default`` when the record names none),
    confined to that folder; None when there is none or it does not exist."""
    name = (rec.get("artifacts") or {}).get(kind) or default
    if not name or not rec.get("_path"):
        return None
    folder = Path(str(rec["_path"])).parent
    rel = PurePosixPath(str(name))
    if rel.is_absolute() or ".." in rel.parts or len(rel.parts) != 1:
        raise CorruptRecordError(
            f"record {rec['_path']} names its {kind} file {str(name)!r}, which is not a file "
            f"in its own folder; fix the record's artifacts.{kind} or delete {folder}")
    path = folder / rel.name
    if not path.is_file():  # missing, a folder, a device: nothing to read
        return None
    if path.stat().st_size > MAX_ARTIFACT_BYTES:
        raise CorruptRecordError(f"{path} is {path.stat().st_size} bytes, more than a run's "
                                 f"{kind} file can be; delete {folder} and re-run that run")
    return path


def _packed_folder(rec: Mapping[str, Any]) -> Path:
    return dataset.task_dir(Path(str(rec["_packed"])), rec["task"]["id"])


def scores(rec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A run's per-sample scores (``{metric: one value per sample}``; empty when it saved
    none)."""
    if rec.get("_packed"):
        return dataset.read_scores(_packed_folder(rec), rec["run_id"])
    return _tensors(rec, "scores")


def features(rec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A run's Fréchet features (``<metric>.features`` / ``.ref_mean`` / ``.ref_cov``; empty
    when it saved none)."""
    if rec.get("_packed"):
        name = (rec.get("artifacts") or {}).get("features")
        blob = dataset.read_files(_packed_folder(rec), "run", rec["run_id"]).get(str(name))
        if not name or blob is None:
            return {}
        from safetensors.numpy import load

        try:
            return dict(load(blob))
        except Exception as e:
            raise CorruptRecordError(f"the packed features of run {rec['run_id']} in "
                                     f"{where(rec)} are unreadable ({type(e).__name__}); "
                                     "repack the store") from None
    return _tensors(rec, "features")


def _tensors(rec: Mapping[str, Any], kind: str) -> dict[str, np.ndarray]:
    path = _artifact(rec, kind)
    return {} if path is None else read_tensor_file(path)


def samples(rec: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A run's samples (``samples.jsonl``: one JSON object per generated sample), checked
    whole: a truncated or corrupt file, or one with another number of samples than the record's
    metrics were computed on, is a CorruptRecordError with the fix. None when it saved none."""
    expected = (rec.get("details") or {}).get("n_samples")
    if rec.get("_packed"):
        rows = dataset.read_samples(_packed_folder(rec), rec["run_id"])
        where_ = where(rec)
        fix = "repack the store from its run folders"
    else:
        path = _artifact(rec, "samples")
        if path is None:
            return None
        where_ = str(path)
        fix = f"delete {path.parent} and re-run that run (or pass a store where it is whole)"
        rows = read_samples_file(path, fix)
    if rows is None:
        return None
    if isinstance(expected, int) and len(rows) != expected:
        raise CorruptRecordError(f"{where_} has {len(rows)} samples where the record's metrics "
                                 f"were computed on {expected}; {fix}")
    return rows


def sample_field(rec: Mapping[str, Any], field: str) -> list[Any] | None:
    """One field of a run's samples (its value in each sample that has it, in order), checked
    like :func:`samples`; from a packed store only that column is read. None when the run saved
    no samples."""
    if not rec.get("_packed"):
        rows = samples(rec)
        return None if rows is None else [r[field] for r in rows if field in r]
    values = dataset.read_sample_field(_packed_folder(rec), rec["run_id"], field)
    if values is None:
        return None
    expected = (rec.get("details") or {}).get("n_samples")
    count = dataset.count_samples(_packed_folder(rec), rec["run_id"])
    if isinstance(expected, int) and count != expected:
        raise CorruptRecordError(f"{where(rec)} has {count} samples where the record's metrics "
                                 f"were computed on {expected}; repack the store from its run "
                                 "folders")
    return values


def grid(rec: Mapping[str, Any]) -> bytes | None:
    """The PNG bytes of a run's (or an attack's) sample grid; None when it has none."""
    if rec.get("_packed"):
        if "attack_id" in rec:
            folder = dataset.task_dir(Path(str(rec["_packed"])), rec["run"]["task"]["id"])
            files = dataset.read_files(folder, "attack", rec["attack_id"])
        else:
            files = dataset.read_files(_packed_folder(rec), "run", rec["run_id"])
        name = (rec.get("artifacts") or {}).get("grid") or GRID_FILE
        return files.get(str(name))
    path = _artifact(rec, "grid", GRID_FILE)
    return path.read_bytes() if path is not None else None
