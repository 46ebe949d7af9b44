"""The packed dataset: a store's records and per-sample data as compact columnar files.

``ubench pack`` turns run folders into one folder per task under ``<store>/data/``::

    data/<task>/runs.parquet     one row per run record
    data/<task>/attacks.parquet  one row per attack record
    data/<task>/samples.parquet  one row per generated sample of a run (samples.jsonl)
    data/<task>/scores.parquet   one row per run and metric: its per-sample scores
    data/<task>/files.parquet    one row per other file of a run or an attack (the sample grid,
                                 generated features, an attack's learned embedding, ...)
    data/README.md               the dataset card (Hugging Face ``datasets`` reads its configs)

Every table is Parquet (zstd), readable by pandas (``pd.read_parquet``), pyarrow and Hugging
Face ``datasets`` (``load_dataset("parquet", data_files=...)`` or the card's configs).

**What is the source of truth.** ``runs`` and ``attacks`` carry the whole record as canonical
JSON in the column ``record``; the other columns (ids, status, the task and method configs as
``task.<key>`` / ``method.<key>``, each metric's value as ``metric.<name>``) are copies for
querying. ``samples`` stores each sample's fields as typed columns (nested fields flattened to
dotted names, e.g. ``scene.digit``); the column ``_keys`` lists, per row, the fields the sample
had in their order, so that absent and null stay apart and a sample decodes to exactly the JSON
object it was. A field whose values do not share one JSON type is stored as JSON text (named
in the table's metadata). ``scores`` keeps each metric's array with its dtype and shape;
``files`` keeps other files byte for byte. Packing verifies that everything decodes to what was
packed before it removes anything (:mod:`ubench.store.pack`); nothing is lost, and a run packed
and read back gives the same report and the same ``ubench compare`` as its run folder.

Rows are ordered as the run folders' record paths are (:func:`ubench.store.layout.record_sort_key`),
so that the same content always gives the same files and the same order of records.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ubench.core.errors import CorruptRecordError
from ubench.store.io import fresh_folder, swap_folder, write_text_atomic
from ubench.store.layout import DATA_DIR, attack_sort_key, record_sort_key

#: the tables of one task's folder, in the order they are written
TABLES = ("runs", "attacks", "samples", "scores", "files")
#: the metadata key of every table (format version, which columns hold JSON text)
META_KEY = b"ubench"
FORMAT = 1
#: columns of the samples table that are not a sample's fields
SAMPLE_RESERVED = ("run_id", "sample", "_keys")
#: the card that lists the tables as Hugging Face ``datasets`` configs
CARD = "README.md"


@dataclasses.dataclass
class TaskData:
    """What one task's tables hold, in memory: what ``ubench pack`` merges and writes."""

    #: run id -> the run's record (a JSON object)
    runs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: attack id -> the attack's record
    attacks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: run id -> its samples (``samples.jsonl``: one JSON object per line)
    samples: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    #: run id -> {metric: per-sample scores}
    scores: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    #: ("run" | "attack", id) -> {path inside its folder: bytes}
    files: dict[tuple[str, str], dict[str, bytes]] = dataclasses.field(default_factory=dict)

    def owners(self) -> set[tuple[str, str]]:
        return {("run", r) for r in self.runs} | {("attack", a) for a in self.attacks}


def task_dir(root: Path, task: str) -> Path:
    return root / DATA_DIR / task


def packed_tasks(root: Path) -> list[str]:
    """The tasks ``root``'s dataset holds (folders with a runs or attacks table)."""
    data = root / DATA_DIR
    if not data.is_dir():
        return []
    return sorted(p.name for p in data.iterdir()
                  if p.is_dir() and not p.name.startswith(".")
                  and any((p / f"{t}.parquet").is_file() for t in ("runs", "attacks")))


def dataset_roots(root: Path) -> list[Path]:
    """Every store under ``root`` (``root`` itself included) that holds a packed dataset."""
    found = {p.parent.parent.parent for p in root.glob(f"**/{DATA_DIR}/*/runs.parquet")}
    found |= {p.parent.parent.parent for p in root.glob(f"**/{DATA_DIR}/*/attacks.parquet")}
    return sorted(found)


# ----------------------------------------------------------------------------- reading
def _fail(path: Path, e: BaseException) -> CorruptRecordError:
    return CorruptRecordError(f"the packed table {path} is unreadable ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:200]}); restore it (git checkout "
                              "-- it, or repack its store)")


@lru_cache(maxsize=64)
def _read(path: str, size: int, mtime_ns: int, columns: tuple[str, ...] | None = None) -> Any:
    import pyarrow.parquet as pq

    if columns is None:
        return pq.read_table(path)
    # a projection (a few columns of many rows, e.g. every sample's label): dictionary-encoded,
    # a few small integers per row instead of a string each (a fifth of the memory)
    return pq.read_table(path, columns=list(columns), read_dictionary=list(columns))


def read_table(path: Path) -> Any:
    """A packed table (a pyarrow Table; cached per file version), or None when absent."""
    if not path.is_file():
        return None
    st = path.stat()
    try:
        return _read(str(path), st.st_size, st.st_mtime_ns)
    except Exception as e:  # pyarrow's own errors: a truncated or foreign file
        raise _fail(path, e) from None


def _json_columns(table: Any) -> set[str]:
    meta = (table.schema.metadata or {}).get(META_KEY)
    return set(json.loads(meta).get("json_columns", [])) if meta else set()


def read_records(folder: Path, kind: str) -> list[dict[str, Any]]:
    """The records of a task folder's ``runs`` or ``attacks`` table, in the table's order."""
    import pyarrow.parquet as pq

    path = folder / f"{kind}.parquet"
    if not path.is_file():
        return []
    try:  # the record column alone, not cached: the records are decoded once by the caller
        texts = pq.read_table(path, columns=["record"]).column("record").to_pylist()
        return [json.loads(text) for text in texts]
    except Exception as e:  # pyarrow's own errors, a missing column, bad JSON
        raise _fail(path, e) from None


@dataclasses.dataclass
class _Index:
    """Where each owner's rows are in a table sorted by owner."""

    table: Any
    rows: dict[str, tuple[int, int]]


@lru_cache(maxsize=64)
def _index(path: str, size: int, mtime_ns: int, key: str,
           columns: tuple[str, ...] | None = None) -> _Index:
    table = _read(path, size, mtime_ns, None if columns is None else (key, *columns))
    # the table is sorted by owner: each owner's rows are one run of equal codes
    coded = table.column(key).combine_chunks()
    if not hasattr(coded, "indices"):
        coded = coded.dictionary_encode()
    codes = coded.indices.to_numpy(zero_copy_only=False)
    names = coded.dictionary.to_pylist()
    starts = np.flatnonzero(np.diff(codes, prepend=-1)) if len(codes) else np.zeros(0, int)
    ends = np.append(starts[1:], len(codes))
    rows = {names[codes[a]]: (int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)}
    return _Index(table, rows)


def _slice(path: Path, key: str, owner: str, columns: tuple[str, ...] | None = None) -> Any:
    if not path.is_file():
        return None
    st = path.stat()
    try:
        index = _index(str(path), st.st_size, st.st_mtime_ns, key, columns)
    except Exception as e:
        raise _fail(path, e) from None
    where = index.rows.get(owner)
    return None if where is None else index.table.slice(*where)


def read_samples(folder: Path, run_id: str) -> list[dict[str, Any]] | None:
    """A run's samples as the JSON objects they were, or None when none were packed."""
    part = _slice(folder / "samples.parquet", "run_id", run_id)
    if part is None:
        return None
    return decode_samples(part)


def read_sample_field(folder: Path, run_id: str, field: str) -> list[Any] | None:
    """One field of a run's samples — its value in each sample that has it, in sample order —
    reading only that field's column (the oracle gaps need the labels of hundreds of runs, not
    their whole samples); None when the run has no packed samples. The same values as
    :func:`read_samples` gives for that field."""
    path = folder / "samples.parquet"
    if not path.is_file():
        return None
    st = path.stat()
    try:
        schema = _schema(str(path), st.st_size, st.st_mtime_ns)
    except Exception as e:
        raise _fail(path, e) from None
    meta = json.loads((schema.metadata or {}).get(META_KEY, b"{}"))
    if meta.get("samples") == "json" or field not in schema.names:
        rows = read_samples(folder, run_id)
        return None if rows is None else [r[field] for r in rows if field in r]
    part = _slice(path, "run_id", run_id, ("_keys", field))
    if part is None:
        return None
    column = part.column(field)
    if column.null_count:  # a null is a sample without the field, or one whose value is null
        import pyarrow.compute as pc

        pattern = f"(^|,){re.escape(field)}(,|$)"
        keys = part.column("_keys").combine_chunks()
        if hasattr(keys, "indices"):  # dictionary-encoded: match each distinct key list once
            has = pc.take(pc.match_substring_regex(keys.dictionary, pattern), keys.indices)
        else:
            has = pc.match_substring_regex(keys, pattern)
        column = column.filter(has.fill_null(False))
    values = column.to_pylist()
    if field in set(meta.get("json_columns", [])):
        values = [None if v is None else json.loads(v) for v in values]
    return values


@lru_cache(maxsize=64)
def _schema(path: str, size: int, mtime_ns: int) -> Any:
    import pyarrow.parquet as pq

    return pq.read_schema(path)


def count_samples(folder: Path, run_id: str) -> int:
    """How many samples of the run the samples table holds (reading only its run ids)."""
    part = _slice(folder / "samples.parquet", "run_id", run_id, ())
    return 0 if part is None else int(part.num_rows)


def read_scores(folder: Path, run_id: str) -> dict[str, np.ndarray]:
    """A run's per-sample scores (``{metric: array}``; empty when none were packed)."""
    part = _slice(folder / "scores.parquet", "run_id", run_id)
    if part is None:
        return {}
    cols = part.to_pydict()
    return {m: np.asarray(v, dtype=np.dtype(d)).reshape(s)
            for m, d, s, v in zip(cols["metric"], cols["dtype"], cols["shape"], cols["values"],
                                  strict=True)}


def read_files(folder: Path, kind: str, owner: str) -> dict[str, bytes]:
    """The other files of a run or an attack (``{path in its folder: bytes}``)."""
    part = _slice(folder / "files.parquet", "owner", f"{kind}:{owner}")
    if part is None:
        return {}
    cols = part.to_pydict()
    return dict(zip(cols["path"], cols["bytes"], strict=True))


def read_task(folder: Path) -> TaskData:
    """Everything a task folder holds, decoded (what a repack starts from)."""
    data = TaskData()
    for rec in read_records(folder, "runs"):
        data.runs[rec["run_id"]] = rec
    for rec in read_records(folder, "attacks"):
        data.attacks[rec["attack_id"]] = rec
    if (folder / "samples.parquet").is_file():
        for run_id in _index_of(folder / "samples.parquet", "run_id").rows:
            data.samples[run_id] = read_samples(folder, run_id) or []
    if (folder / "scores.parquet").is_file():
        for run_id in _index_of(folder / "scores.parquet", "run_id").rows:
            data.scores[run_id] = read_scores(folder, run_id)
    if (folder / "files.parquet").is_file():
        for owner in _index_of(folder / "files.parquet", "owner").rows:
            kind, _, ident = owner.partition(":")
            data.files[(kind, ident)] = read_files(folder, kind, ident)
    return data


def _index_of(path: Path, key: str) -> _Index:
    st = path.stat()
    try:
        return _index(str(path), st.st_size, st.st_mtime_ns, key)
    except Exception as e:
        raise _fail(path, e) from None


# ----------------------------------------------------------------------------- the samples codec
_SCALARS = (bool, int, float, str)


def _flatten(row: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in row.items():
        path = prefix + k
        if isinstance(v, dict) and v:
            out += _flatten(v, path + ".")
        else:
            out.append((path, v))
    return out


def _encodable_keys(rows: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every key can be a dotted column name (no dot, comma or empty key anywhere)."""
    def ok(d: Mapping[str, Any]) -> bool:
        return all(isinstance(k, str) and k and "." not in k and "," not in k
                   and k not in SAMPLE_RESERVED and (not isinstance(v, dict) or ok(v))
                   for k, v in d.items())
    return all(ok(r) for r in rows)


def _kind(values: Iterable[Any]) -> str:
    """The one JSON type of ``values`` (None ignored): bool, int, float, str, or json."""
    kinds = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int" if -2**63 <= v < 2**63 else "json")
        elif isinstance(v, float):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("str")
        else:
            kinds.add("json")
    return kinds.pop() if len(kinds) == 1 else ("json" if kinds else "str")


def encode_samples(per_run: Mapping[str, list[dict[str, Any]]], order: list[str]) -> Any:
    """The samples table of the runs in ``order`` (a pyarrow Table)."""
    import pyarrow as pa

    run_col = [rid for rid in order for _ in per_run.get(rid, [])]
    index_col = [i for rid in order for i in range(len(per_run.get(rid, [])))]
    all_rows = [row for rid in order for row in per_run.get(rid, [])]
    if not _encodable_keys(all_rows):  # keys that cannot be column names: whole rows as JSON
        table = pa.table({"run_id": pa.array(run_col, pa.string()),
                          "sample": pa.array(index_col, pa.int32()),
                          "_json": pa.array([json.dumps(r) for r in all_rows], pa.string())})
        return _with_meta(table, {"samples": "json"})
    flat = [_flatten(row) for row in all_rows]
    names: list[str] = []
    seen: set[str] = set()
    for pairs in flat:
        for k, _ in pairs:
            if k not in seen:
                seen.add(k)
                names.append(k)
    columns: dict[str, list[Any]] = {n: [None] * len(flat) for n in names}
    keys = []
    for i, pairs in enumerate(flat):
        for k, v in pairs:
            columns[k][i] = v
        keys.append(",".join(k for k, _ in pairs))
    arrays: dict[str, Any] = {"run_id": pa.array(run_col, pa.string()),
                              "sample": pa.array(index_col, pa.int32())}
    json_cols = []
    types = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    for n in names:
        kind = _kind(columns[n])
        if kind == "json":
            json_cols.append(n)
            arrays[n] = pa.array([None if v is None else json.dumps(v) for v in columns[n]],
                                 pa.string())
        else:
            arrays[n] = pa.array(columns[n], types[kind])
    arrays["_keys"] = pa.array(keys, pa.string())
    return _with_meta(pa.table(arrays), {"json_columns": json_cols})


def decode_samples(table: Any) -> list[dict[str, Any]]:
    """The samples of (a slice of) a samples table, as the JSON objects they were."""
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    if meta.get("samples") == "json":
        return [json.loads(t) for t in table.column("_json").to_pylist()]
    cols = table.to_pydict()
    json_cols = set(meta.get("json_columns", []))
    out = []
    for i, keys in enumerate(cols["_keys"]):
        row: dict[str, Any] = {}
        for k in keys.split(",") if keys else []:
            v = cols[k][i]
            if k in json_cols and v is not None:
                v = json.loads(v)
            *parents, leaf = k.split(".")
            here = row
            for p in parents:
                here = here.setdefault(p, {})
            here[leaf] = v
        out.append(row)
    return out


# ----------------------------------------------------------------------------- writing
def _with_meta(table: Any, meta: Mapping[str, Any]) -> Any:
    return table.replace_schema_metadata({META_KEY: json.dumps(
        {"format": FORMAT, **meta}, sort_keys=True).encode()})


def _column(values: list[Any]) -> Any:
    """A typed column for query copies (JSON text where the values share no arrow type)."""
    import pyarrow as pa

    kind = _kind(values)
    if kind == "json":
        return pa.array([None if v is None else json.dumps(v, sort_keys=True) for v in values],
                        pa.string())
    return pa.array(values, {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(),
                             "str": pa.string()}[kind])


def _canonical(rec: Mapping[str, Any]) -> str:
    return json.dumps(rec, sort_keys=True, allow_nan=True)


def _metric_values(rec: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, m in (rec.get("metrics") or {}).items():
        v = m.get("value") if isinstance(m, dict) else None
        out[k] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return out


def _record_table(records: list[dict[str, Any]], fixed: dict[str, list[Any]],
                  configs: Mapping[str, list[dict[str, Any]]]) -> Any:
    import pyarrow as pa

    cols: dict[str, Any] = {k: _column(v) for k, v in fixed.items()}
    for prefix, dicts in configs.items():
        for key in sorted({k for d in dicts for k in d}):
            cols[f"{prefix}.{key}"] = _column([d.get(key) for d in dicts])
    metrics = [_metric_values(r) for r in records]
    for name in sorted({k for m in metrics for k in m}):
        cols[f"metric.{name}"] = pa.array([m.get(name) for m in metrics], pa.float64())
    cols["record"] = pa.array([_canonical(r) for r in records], pa.string())
    return _with_meta(pa.table(cols), {})


def encode_runs(runs: Mapping[str, dict[str, Any]]) -> Any:
    recs = sorted(runs.values(), key=lambda r: record_sort_key(
        r["task"]["id"], r["method"]["id"], r["run_id"]))
    fixed = {
        "run_id": [r["run_id"] for r in recs], "config_id": [r.get("config_id") for r in recs],
        "task": [r["task"]["id"] for r in recs],
        "task_version": [str(r["task"].get("version")) for r in recs],
        "method": [r["method"]["id"] for r in recs],
        "method_version": [str(r["method"].get("version")) for r in recs],
        "seed": [r["seed"] for r in recs], "status": [r["status"] for r in recs],
        "reference": [bool(r["method"].get("reference", False)) for r in recs],
        "created_at": [r.get("created_at") for r in recs]}
    return _record_table(recs, fixed, {"task": [r["task"].get("config", {}) for r in recs],
                                       "method": [r["method"].get("config", {}) for r in recs]})


def _attack_key(a: Mapping[str, Any]) -> str:
    run = a["run"]
    return attack_sort_key(run["task"]["id"], run["method"]["id"], run["run_id"],
                           a["attack"]["id"], a["attack_id"])


def encode_attacks(attacks: Mapping[str, dict[str, Any]]) -> Any:
    recs = sorted(attacks.values(), key=_attack_key)
    fixed = {
        "attack_id": [a["attack_id"] for a in recs], "run_id": [a["run"]["run_id"] for a in recs],
        "attack": [a["attack"]["id"] for a in recs],
        "attack_version": [str(a["attack"].get("version")) for a in recs],
        "method": [a["run"]["method"]["id"] for a in recs], "seed": [a["seed"] for a in recs],
        "status": [a["status"] for a in recs], "created_at": [a.get("created_at") for a in recs]}
    return _record_table(recs, fixed, {"attack": [a["attack"].get("config", {}) for a in recs]})


def encode_scores(scores: Mapping[str, Mapping[str, np.ndarray]], order: list[str]) -> Any:
    import pyarrow as pa

    rows: dict[str, list[Any]] = {"run_id": [], "metric": [], "dtype": [], "shape": [],
                                  "values": []}
    for rid in order:
        for metric in sorted(scores.get(rid, {})):
            arr = np.asarray(scores[rid][metric])
            rows["run_id"].append(rid)
            rows["metric"].append(metric)
            rows["dtype"].append(arr.dtype.str)
            rows["shape"].append(list(arr.shape))
            rows["values"].append(arr.astype(np.float64).reshape(-1).tolist())
    return _with_meta(pa.table({
        "run_id": pa.array(rows["run_id"], pa.string()),
        "metric": pa.array(rows["metric"], pa.string()),
        "dtype": pa.array(rows["dtype"], pa.string()),
        "shape": pa.array(rows["shape"], pa.list_(pa.int64())),
        "values": pa.array(rows["values"], pa.list_(pa.float64()))}), {})


def encode_files(files: Mapping[tuple[str, str], Mapping[str, bytes]],
                 order: list[tuple[str, str]]) -> Any:
    import pyarrow as pa

    owner, path, blob = [], [], []
    for kind, ident in order:
        for p in sorted(files.get((kind, ident), {})):
            owner.append(f"{kind}:{ident}")
            path.append(p)
            blob.append(files[(kind, ident)][p])
    return _with_meta(pa.table({"owner": pa.array(owner, pa.string()),
                                "path": pa.array(path, pa.string()),
                                "bytes": pa.array(blob, pa.binary())}), {})


def _owner_order(data: TaskData) -> tuple[list[str], list[tuple[str, str]]]:
    runs = sorted(data.runs, key=lambda rid: record_sort_key(
        data.runs[rid]["task"]["id"], data.runs[rid]["method"]["id"], rid))
    attacks = sorted(data.attacks, key=lambda aid: _attack_key(data.attacks[aid]))
    owners = [("run", r) for r in runs] + [("attack", a) for a in attacks]
    return runs, [o for o in owners if o in data.files]


def write_task(root: Path, task: str, data: TaskData) -> list[str]:
    """Write ``data`` as the task's tables (replacing the folder atomically) after checking that
    every table decodes to exactly ``data``; returns the table names written."""
    import pyarrow.parquet as pq

    final = task_dir(root, task)
    final.parent.mkdir(parents=True, exist_ok=True)
    runs, owners = _owner_order(data)
    tables = {}
    if data.runs:
        tables["runs"] = encode_runs(data.runs)
    if data.attacks:
        tables["attacks"] = encode_attacks(data.attacks)
    if data.samples:
        tables["samples"] = encode_samples(data.samples, [r for r in runs if r in data.samples])
    if data.scores:
        tables["scores"] = encode_scores(data.scores, [r for r in runs if r in data.scores])
    if owners:
        tables["files"] = encode_files(data.files, owners)
    tmp = fresh_folder(final)
    try:
        for name, table in tables.items():
            pq.write_table(table, tmp / f"{name}.parquet", compression="zstd",
                           compression_level=9)
        check_same(read_task(tmp), data, str(final))
        swap_folder(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return list(tables)


def check_same(got: TaskData, want: TaskData, where: str) -> None:
    """Raise CorruptRecordError unless ``got`` holds exactly ``want`` (the packing check)."""
    problems = []
    if {k: _canonical(v) for k, v in got.runs.items()} != \
            {k: _canonical(v) for k, v in want.runs.items()}:
        problems.append("run records")
    if {k: _canonical(v) for k, v in got.attacks.items()} != \
            {k: _canonical(v) for k, v in want.attacks.items()}:
        problems.append("attack records")
    if {k: [json.dumps(r, allow_nan=True) for r in v] for k, v in got.samples.items()} != \
            {k: [json.dumps(r, allow_nan=True) for r in v] for k, v in want.samples.items()}:
        problems.append("samples")
    if not _same_scores(got.scores, want.scores):
        problems.append("per-sample scores")
    if got.files != want.files:
        problems.append("files")
    if problems:
        raise CorruptRecordError(f"packing {where} would change its {', '.join(problems)}; "
                                 "nothing was written (a bug in ubench: please report it)")


def _same_scores(a: Mapping[str, Mapping[str, np.ndarray]],
                 b: Mapping[str, Mapping[str, np.ndarray]]) -> bool:
    if set(a) != set(b):
        return False
    for rid in a:
        if set(a[rid]) != set(b[rid]):
            return False
        for m in a[rid]:
            x, y = np.asarray(a[rid][m]), np.asarray(b[rid][m])
            if x.dtype != y.dtype or x.shape != y.shape:
                return False
            if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                return False
    return True


# ----------------------------------------------------------------------------- the card
def write_card(root: Path) -> Path:
    """``data/README.md``: the dataset card, its Hugging Face configs and row counts."""
    tasks = packed_tasks(root)
    lines = ["---", "configs:"]
    counts = []
    for task in tasks:
        for name in TABLES:
            path = task_dir(root, task) / f"{name}.parquet"
            if path.is_file():
                lines += [f"- config_name: {task}--{name}", "  data_files:",
                          "  - split: train", f"    path: {task}/{name}.parquet"]
                counts.append((task, name, read_table(path).num_rows))
    lines += ["---", "", "<!-- GENERATED by `ubench pack`; do not edit. -->", "",
              "# ubench results", "",
              "Records and per-sample data of ubench runs, one folder per task. `runs` and "
              "`attacks` hold one record per row (the whole record as JSON in `record`; ids, "
              "configs and metric values as columns); `samples` one generated sample per row; "
              "`scores` the per-sample scores of each run's metrics; `files` the other files "
              "of a run or an attack (its sample grid, an attack's learned embedding). Read "
              "them with `pandas.read_parquet`, or with Hugging Face `datasets` through the "
              "configs above; `ubench report --store <this folder's parent>` rebuilds the "
              "leaderboard from them.", "", "| task | table | rows |", "|---|---|---|"]
    lines += [f"| {t} | {n} | {c} |" for t, n, c in counts]
    kinds = []  # which files the `files` table holds, per task (a copy packed --without shows)
    for task in tasks:
        table = read_table(task_dir(root, task) / "files.parquet")
        if table is not None:
            names = [p.rsplit("/", 1)[-1] for p in table.column("path").to_pylist()]
            kinds += [(task, n, names.count(n)) for n in sorted(set(names))]
    if kinds:
        lines += ["", "The `files` tables hold:", "", "| task | file | rows |", "|---|---|---|"]
        lines += [f"| {t} | `{n}` | {c} |" for t, n, c in kinds]
    card = root / DATA_DIR / CARD
    write_text_atomic(card, "\n".join(lines) + "\n")
    return card

