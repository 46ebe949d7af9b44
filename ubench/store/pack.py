"""``ubench pack``: turn a store's run folders into its packed dataset, losing nothing.

Packing reads every finished run folder (``record.json``, ``samples.jsonl``,
``scores.safetensors``, the other files it holds — the sample grid, generated features — and
each attack under it with its files), merges them into the store's dataset
(:mod:`ubench.store.dataset`; a run folder replaces a packed run of the same id, which is what a
remade run is) and writes each task's tables only after checking that they decode to exactly
what was read. Then, packing in place, it removes the files it packed from the run folders —
each under its run's lock, and only if the file still holds what was packed — so that a run
folder keeps only what is not data: its unlearned weights (``model/``), a checkpoint. With
``into`` it writes the dataset into another folder (created or merged into) and leaves the
source as it is; only then may ``without`` leave named files out of the copy (a published store
that keeps no generated features: ``without=("features.safetensors",)``; the source keeps
them). This is also the migration of a store written by an older ubench: the readers
take both forms, and packing is lossless — :func:`unpack` writes the run folders back, file for
file (``ubench pack --unpack``), for a tool that reads run folders.

Corrupt records, samples or score files are refused before anything is written, all of them in
one error line.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ubench.core.errors import CorruptRecordError, StoreError
from ubench.core.locks import hold
from ubench.core.paths import confined
from ubench.store import dataset
from ubench.store.dataset import TaskData
from ubench.store.io import json_text, remove_empty, write_bytes_atomic
from ubench.store.layout import (
    ATTACK_FILE,
    ATTACKS_DIR,
    CHECKPOINT_DIR,
    DATA_DIR,
    LOCKS_DIR,
    MODEL_DIR,
    REBUILD_DIR,
    RECORD_FILE,
    SAMPLES_FILE,
    SCORES_FILE,
    SWEEP_DIR,
    attack_dir,
    attack_lock,
    pack_lock,
    run_dir,
    run_lock,
)
from ubench.store.records import (
    iter_attack_record_paths,
    iter_record_paths,
    raise_together,
    read_attack_record,
    read_record,
    read_samples_file,
    read_tensor_file,
    validate_attack_record,
    validate_record,
)

#: what stays in a run folder: not data (weights, an unfinished checkpoint, attack folders,
#: a reference row's rebuilt model)
KEPT = (MODEL_DIR, CHECKPOINT_DIR, ATTACKS_DIR, REBUILD_DIR)


@dataclasses.dataclass
class Loose:
    """One run or attack folder as read for packing: its record and the files that go with it."""

    kind: str  # "run" | "attack"
    ident: str
    task: str
    folder: Path
    record: dict[str, Any]
    samples: list[dict[str, Any]] | None
    scores: dict[str, np.ndarray]
    files: dict[str, bytes]
    #: the record's file and every file above, as they were read (what packing in place
    #: removes)
    read_files: dict[Path, bytes]


@dataclasses.dataclass
class PackResult:
    runs: int
    attacks: int
    tasks: list[str]
    removed_files: int
    into: Path


def _packable(folder: Path, skip_top: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` that are data: all but the kept folders and temporaries."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if rel[0] in skip_top or any(part.startswith(".") and (".tmp-" in part or ".old-" in part)
                                     for part in rel):
            continue
        if p.is_file() and not p.is_symlink():
            out.append(p)
    return out


def read_loose_run(record_path: Path) -> Loose:
    """A run folder, read for packing (CorruptRecordError if any of its data is unreadable)."""
    folder = record_path.parent
    rec: dict[str, Any] = dict(read_record(record_path))
    read: dict[Path, bytes] = {record_path: record_path.read_bytes()}
    samples = None
    scores: dict[str, np.ndarray] = {}
    files: dict[str, bytes] = {}
    for p in _packable(folder, KEPT):
        rel = p.relative_to(folder).as_posix()
        if rel == RECORD_FILE:
            continue
        data = p.read_bytes()
        read[p] = data
        if rel == SAMPLES_FILE:
            samples = read_samples_file(p, f"delete {folder} and re-run that run (or restore "
                                        "the file)")
        elif rel == SCORES_FILE:
            scores = read_tensor_file(p)
        else:
            files[rel] = data
    return Loose("run", rec["run_id"], rec["task"]["id"], folder, rec, samples, scores, files,
                 read)


def read_loose_attack(record_path: Path) -> Loose:
    folder = record_path.parent
    rec: dict[str, Any] = dict(read_attack_record(record_path))
    read: dict[Path, bytes] = {record_path: record_path.read_bytes()}
    files: dict[str, bytes] = {}
    for p in _packable(folder, (CHECKPOINT_DIR, REBUILD_DIR)):
        rel = p.relative_to(folder).as_posix()
        if rel == ATTACK_FILE:
            continue
        data = p.read_bytes()
        read[p] = data
        files[rel] = data
    return Loose("attack", rec["attack_id"], rec["run"]["task"]["id"], folder, rec, None, {},
                 files, read)


def read_loose(root: Path) -> list[Loose]:
    """Every finished run and attack folder under ``root`` (corrupt ones: one error for all)."""
    out, bad = [], []
    for reader, paths in ((read_loose_run, iter_record_paths(root)),
                          (read_loose_attack, iter_attack_record_paths(root))):
        for path in paths:
            if any(part in (LOCKS_DIR, SWEEP_DIR) for part in path.relative_to(root).parts):
                continue
            try:
                out.append(reader(path))
            except CorruptRecordError as e:
                bad.append(str(e))
    raise_together(bad)
    return out


def _overlay(data: TaskData, item: Loose) -> None:
    if item.kind == "run":
        data.runs[item.ident] = item.record
        data.samples.pop(item.ident, None)
        data.scores.pop(item.ident, None)
        if item.samples is not None:
            data.samples[item.ident] = item.samples
        if item.scores:
            data.scores[item.ident] = item.scores
    else:
        data.attacks[item.ident] = item.record
    data.files.pop((item.kind, item.ident), None)
    if item.files:
        data.files[(item.kind, item.ident)] = item.files


def _merge(target: TaskData, other: TaskData) -> None:
    target.runs.update(other.runs)
    target.attacks.update(other.attacks)
    for rid in other.runs:  # a run brings its own per-sample data (or none)
        target.samples.pop(rid, None)
        target.scores.pop(rid, None)
        target.files.pop(("run", rid), None)
    for aid in other.attacks:
        target.files.pop(("attack", aid), None)
    target.samples.update(other.samples)
    target.scores.update(other.scores)
    target.files.update(other.files)


def _leave_out(data: TaskData, without: tuple[str, ...]) -> int:
    """Drop the files named in ``without`` (by file name) from a task's data; how many were."""
    dropped = 0
    for owner, files in list(data.files.items()):
        keep = {rel: b for rel, b in files.items() if rel.rsplit("/", 1)[-1] not in without}
        dropped += len(files) - len(keep)
        if keep:
            data.files[owner] = keep
        else:
            del data.files[owner]
    return dropped


def pack(source: str | Path, into: str | Path | None = None,
         say: Callable[[str], None] | None = None,
         without: tuple[str, ...] = ()) -> PackResult:
    """Pack the run folders of ``source`` into its dataset (in place) or into ``into``.

    ``without``: file names (``features.safetensors``) left out of the dataset written into
    ``into``; refused in place, where leaving a file out would delete it."""
    say = say or (lambda _m: None)
    src = Path(source)
    if not src.is_dir():
        raise StoreError(f"the store {src} does not exist or is not a folder; pass the folder "
                         "that holds the run folders (e.g. results or leaderboard/records)")
    dest = Path(into) if into is not None else src
    in_place = dest.resolve() == src.resolve()
    if without and in_place:
        raise StoreError(f"--without {','.join(without)} packing {src} in place would delete "
                         "those files; pass --into <folder> to write a copy without them")
    if without and (bad := [w for w in without if "/" in w or w in (RECORD_FILE, SAMPLES_FILE,
                                                                   SCORES_FILE)]):
        raise StoreError(f"--without {bad[0]!r}: name a file of a run folder other than "
                         f"{RECORD_FILE}, {SAMPLES_FILE} and {SCORES_FILE} (e.g. "
                         "features.safetensors, samples.png)")
    if not in_place and dest.resolve().is_relative_to(src.resolve()):
        raise StoreError(f"--into {dest} is inside the store {src}; choose a folder outside it "
                         "(or drop --into to pack in place)")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create {dest} ({e.strerror}); pass a writable --into") \
            from None
    with hold(pack_lock(dest), f"packing {dest}", say):
        loose = read_loose(src)
        left_out = 0
        by_task: dict[str, list[Loose]] = {}
        for item in loose:
            by_task.setdefault(item.task, []).append(item)
        source_packed = [] if in_place else dataset.packed_tasks(src)
        tasks = sorted(set(by_task) | set(source_packed))
        for task in tasks:
            data = dataset.read_task(dataset.task_dir(dest, task))
            if task in source_packed:
                _merge(data, dataset.read_task(dataset.task_dir(src, task)))
            for item in by_task.get(task, []):
                _overlay(data, item)
            left_out += _leave_out(data, without)
            dataset.write_task(dest, task, data)
            n_runs = sum(i.kind == "run" for i in by_task.get(task, []))
            say(f"packed {task}: {n_runs} run folders and "
                f"{len(by_task.get(task, [])) - n_runs} attack folders "
                f"({len(data.runs)} runs, {len(data.attacks)} attacks in "
                f"{dataset.task_dir(dest, task)})")
        if without:
            say(f"left out {left_out} files named {', '.join(without)}")
        if tasks:
            dataset.write_card(dest)
        removed = _remove_packed(src, loose) if in_place else 0
    return PackResult(sum(i.kind == "run" for i in loose), sum(i.kind == "attack" for i in loose),
                      tasks, removed, dest)


def _remove_packed(root: Path, loose: list[Loose]) -> int:
    """Delete the files :func:`pack` packed from their folders (attacks first), each folder
    under its lock and only where every file still holds what was packed; then the folders
    left empty. Returns the number of files removed."""
    removed = 0
    for item in sorted(loose, key=lambda i: i.kind != "attack"):
        lock = attack_lock(root, item.ident) if item.kind == "attack" else \
            run_lock(root, item.ident)
        with hold(lock, f"{item.kind} {item.ident}"):
            if any(not p.is_file() or p.read_bytes() != data
                   for p, data in item.read_files.items()):
                continue  # remade meanwhile: its new files are packed next time
            for p in item.read_files:
                p.unlink()
                removed += 1
            for p in sorted({q.parent for q in item.read_files}, key=lambda q: -len(q.parts)):
                remove_empty(p, root)
    return removed


def unpack(source: str | Path, into: str | Path,
           say: Callable[[str], None] | None = None) -> PackResult:
    """Write the packed dataset of ``source`` back into run folders under ``into`` (records,
    samples, scores, grids, attack records and their files, each as it was packed). ``into``
    must not hold any of those runs or attacks already."""
    say = say or (lambda _m: None)
    src, dest = Path(source), Path(into)
    tasks = dataset.packed_tasks(src)
    if not tasks:
        raise StoreError(f"{src} holds no packed dataset ({src / DATA_DIR} has no tables); pass "
                         "a store that `ubench pack` packed")
    out: list[tuple[Path, bytes]] = []
    for task in tasks:
        data = dataset.read_task(dataset.task_dir(src, task))
        where = f"{dataset.task_dir(src, task)} (packed)"
        fix = "the dataset is damaged or not ubench's: repack it from its run folders"
        for rid, rec in data.runs.items():
            validate_record(rec, where, fix)  # its ids name the folders written below
            if rec["run_id"] != rid:
                raise CorruptRecordError(f"{where}: a row of run {rid!r} holds the record of "
                                         f"{rec['run_id']!r}; {fix}")
            folder = run_dir(dest, task, rec["method"]["id"], rid)
            out.append((folder / RECORD_FILE, json_text(rec).encode()))
            if rid in data.samples:
                out.append((folder / SAMPLES_FILE, "".join(
                    json.dumps(s) + "\n" for s in data.samples[rid]).encode()))
            if data.scores.get(rid):
                from safetensors.numpy import save

                out.append((folder / SCORES_FILE, save(data.scores[rid])))
            out += _files(folder, data.files.get(("run", rid), {}))
        for aid, rec in data.attacks.items():
            validate_attack_record(rec, where, fix)
            if rec["attack_id"] != aid:
                raise CorruptRecordError(f"{where}: a row of attack {aid!r} holds the record "
                                         f"of {rec['attack_id']!r}; {fix}")
            run = rec["run"]
            folder = attack_dir(run_dir(dest, task, run["method"]["id"], run["run_id"]),
                                rec["attack"]["id"], aid)
            out.append((folder / ATTACK_FILE, json_text(rec).encode()))
            out += _files(folder, data.files.get(("attack", aid), {}))
    clash = [p for p, _ in out if p.exists()]
    if clash:
        raise StoreError(f"{clash[0]} exists already ({len(clash)} files would be overwritten); "
                         "unpack into an empty folder")
    for path, blob in out:
        write_bytes_atomic(path, blob)
    runs = sum(p.name == RECORD_FILE for p, _ in out)
    attacks = sum(p.name == ATTACK_FILE for p, _ in out)
    say(f"unpacked {runs} runs and {attacks} attacks of {src} into {dest}")
    return PackResult(runs, attacks, tasks, 0, dest)


def _files(folder: Path, files: dict[str, bytes]) -> list[tuple[Path, bytes]]:
    """A run's or an attack's packed files, at their paths inside ``folder`` (a path that would
    leave the folder is refused: the dataset is someone else's file)."""
    out = []
    for rel, blob in files.items():
        path = confined(folder, rel)
        if path is None:
            raise CorruptRecordError(f"a packed file of {folder} is named {rel!r}, which is not a "
                                     "path inside its folder; the dataset is damaged: repack it")
        out.append((path, blob))
    return out
