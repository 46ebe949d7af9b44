"""A run folder's life: where a run goes, how a finished one is found, what it saves.

The runner writes a run into ``<store>/<task>/<method>/<run id>/`` (:mod:`ubench.store.layout`):
its record last, atomically, after its per-sample files (:func:`write_metric_samples`), its
grid and, for a method's run, its unlearned weights (``model/``). A finished run is found by its
identity, in its folder or packed (:func:`ubench.store.reader.finished_run`), or by a reference a
user typed — a run folder, or a run id or unique prefix (:func:`locate`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ubench.core.errors import AttackTargetError, CorruptRecordError, StoreError
from ubench.core.paths import store_root
from ubench.store.io import replacing
from ubench.store.layout import (
    FEATURES_FILE,
    MODEL_DIR,
    RECORD_FILE,
    SCORES_FILE,
    run_dir,
    store_of,
)
from ubench.store.reader import packed_run_ids
from ubench.store.records import read_record


def usable_store(root: Path) -> Path:
    """``root``, created if needed; StoreError (one line, with the fix) when it cannot hold runs."""
    if root.exists() and not root.is_dir():
        raise StoreError(f"the results store {root} is a file; pass --store <folder> or set "
                         "UBENCH_STORE to a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the results store {root} ({e.strerror}); pass --store "
                         "<writable folder>") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise StoreError(f"the results store {root} is not writable; pass --store <writable "
                         "folder>")
    return root


def model_missing(record: Mapping[str, Any], folder: Path) -> bool:
    """Whether the finished run ``record`` in ``folder`` is a method's run (not a reference row
    or a training-free method's, which save nothing) without its unlearned model on disk: made
    before runs saved their weights, or its ``model/`` folder is gone (a clone of a store
    committed without weights)."""
    saved = record.get("artifacts", {}).get("model")
    method = record.get("method", {})
    return (not (method.get("reference") or method.get("training_free"))
            and not (saved and (folder / MODEL_DIR).is_dir()))


def model_folder(folder: Path) -> Path:
    """Where a run folder keeps its unlearned model."""
    return folder / MODEL_DIR


def write_metric_samples(folder: Path, metrics: Mapping[str, Any]) -> dict[str, str]:
    """Save the metrics' per-sample data (``MetricValue.samples``) next to the record:
    ``scores.safetensors`` (``<metric>``: per-sample scores) and ``features.safetensors``
    (``<metric>.features`` / ``.ref_mean`` / ``.ref_cov``). Returns the artifacts written."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    scores: dict[str, torch.Tensor] = {}
    features: dict[str, torch.Tensor] = {}
    for name, mv in metrics.items():
        for key, arr in (mv.samples or {}).items():
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
            if key == "scores":
                scores[name] = t
            else:  # features in float32 (their FD is recomputed in float64), stats in float64
                features[f"{name}.{key}"] = t.float() if key == "features" else t
    out = {}
    for fname, tensors, art in ((SCORES_FILE, scores, "scores"),
                                (FEATURES_FILE, features, "features")):
        if tensors:
            with replacing(folder / fname) as tmp:
                save_file(tensors, str(tmp))
            out[art] = fname
    return out


@dataclasses.dataclass
class Located:
    """A finished run found from what a user typed: its folder (which may hold only its model,
    or nothing, when the run is packed), its store and its record (with ``_path``)."""

    folder: Path
    store: Path
    record: dict[str, Any]


def locate(ref: str | Path, store: str | Path | None = None) -> Located:
    """The run ``ref`` names: a run folder (or its ``record.json``), or a run id (a unique
    prefix of at least 6 characters) in the store, in a run folder or packed."""
    from ubench.store.reader import finished_run

    path = Path(ref)
    if path.name == RECORD_FILE:
        path = path.parent
    if (path / RECORD_FILE).is_file():
        return Located(path, store_of(path), _read(path / RECORD_FILE))
    text = str(ref)
    if path.exists() or "/" in text:
        raise AttackTargetError(f"{text} is not a run folder (it has no {RECORD_FILE}); pass a "
                                "run id or the folder that holds its record")
    root = store_root(store)
    if not root.is_dir():
        raise AttackTargetError(f"no run {text!r}: the store {root} does not exist; pass "
                                "--store <folder with runs>")
    if len(text) < 6 or not all(c in "0123456789abcdef" for c in text):
        raise AttackTargetError(f"{text!r} is neither a run folder nor a run id (16 hex digits, "
                                "or a unique prefix of at least 6); see runs.csv of `ubench "
                                "report` or the store's folders")
    hits = {p.parent.name: (p.parent.parent.parent.name, p.parent.parent.name)
            for p in root.glob(f"*/*/{text}*/{RECORD_FILE}")}
    try:
        packed = packed_run_ids(root)
    except CorruptRecordError as e:
        raise AttackTargetError(f"cannot look up runs: {e}") from None
    hits.update({k: v for k, v in packed.items() if k.startswith(text) and k not in hits})
    if not hits:
        raise AttackTargetError(f"no run {text!r} in the store {root}; pass --store <folder> or "
                                "the run's folder")
    if len(hits) > 1:
        raise AttackTargetError(f"run id prefix {text!r} matches {len(hits)} runs in {root}; "
                                "give more digits")
    (run_id, (task, method)), = hits.items()
    try:
        rec = finished_run(root, task, method, run_id)
    except CorruptRecordError as e:
        raise AttackTargetError(f"cannot use run {run_id}: {e}") from None
    assert rec is not None
    return Located(run_dir(root, task, method, run_id), root, rec)


def _read(path: Path) -> dict[str, Any]:
    try:
        return {**read_record(path), "_path": str(path)}
    except CorruptRecordError as e:
        raise AttackTargetError(f"cannot use this run: {e}") from None
