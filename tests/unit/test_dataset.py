"""The packed dataset's codec: every sample, score array, file and record decodes to exactly
what was packed, and the packing check refuses anything else."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ubench.core.errors import CorruptRecordError
from ubench.store import dataset
from ubench.store.dataset import TaskData

SAMPLES: list[dict[str, Any]] = [
    {"seed": 0, "split": "forget", "scene": {"digit": 6, "frame": True}, "label": "frame",
     "detected": {"colour": None, "pattern": "plain"}},
    {"seed": 1, "split": "remain", "scene": {"digit": 2, "frame": False},
     "detected": {"colour": "green", "pattern": None}},  # no label: absent, not null
    {"seed": 2, "split": "remain", "judged": 1.5, "scene": {}, "detected": None,
     "extra": [1, 2, {"a": None}], "big": 2**70, "nan": math.nan, "label": None},
    {"split": "forget", "seed": 3, "judged": 7},  # another key order; int beside a float
]


def _record(run_id: str, method: str = "ga", task: str = "t") -> dict[str, Any]:
    return {"run_id": run_id, "config_id": run_id, "seed": 0, "status": "ok",
            "task": {"id": task, "version": "1", "config": {"forget_class": 3, "k": [1, 2]}},
            "method": {"id": method, "version": "1", "config": {"lr": 1e-4}},
            "metrics": {"ua": {"value": 0.5}, "fd": {"value": math.inf}}, "created_at": "x"}


def _data() -> TaskData:
    data = TaskData()
    data.runs = {"b": _record("b", "rl"), "a": _record("a")}
    data.samples = {"a": copy.deepcopy(SAMPLES), "b": copy.deepcopy(SAMPLES[:1])}
    data.scores = {"a": {"ua": np.array([1.0, 0.0, np.nan]),
                         "x": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    data.attacks = {"z": {"attack_id": "z", "seed": 0, "status": "ok",
                          "run": {"run_id": "a", "task": {"id": "t"}, "method": {"id": "ga"}},
                          "attack": {"id": "relearn", "version": "1", "config": {"b": [0]}},
                          "metrics": {"relearn_ua@10": {"value": 0.1}}}}
    data.files = {("run", "a"): {"samples.png": b"\x89PNG", "sub/f.bin": bytes(range(256))},
                  ("attack", "z"): {"prompts.jsonl": b'{"p": 1}\n'}}
    return data


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, allow_nan=True) == json.dumps(b, allow_nan=True)


def test_a_task_round_trips_exactly(tmp_path: Path) -> None:
    data = _data()
    written = dataset.write_task(tmp_path, "t", data)
    assert written == ["runs", "attacks", "samples", "scores", "files"]
    back = dataset.read_task(dataset.task_dir(tmp_path, "t"))
    dataset.check_same(back, data, "here")  # raises on any difference
    for got, want in zip(back.samples["a"], SAMPLES, strict=True):
        assert _same_json(got, want)  # key order, absent vs null, nested, NaN, big ints
    assert "label" not in back.samples["a"][1] and back.samples["a"][2]["label"] is None
    assert back.scores["a"]["x"].dtype == np.float32 and back.scores["a"]["x"].shape == (2, 3)
    assert back.files[("run", "a")]["sub/f.bin"] == bytes(range(256))


def test_the_tables_are_ordinary_parquet(tmp_path: Path) -> None:
    import pandas as pd

    dataset.write_task(tmp_path, "t", _data())
    folder = dataset.task_dir(tmp_path, "t")
    runs = pd.read_parquet(folder / "runs.parquet")
    assert list(runs["run_id"]) == ["a", "b"]  # in record-path order: ga/a before rl/b
    assert list(runs["method"]) == ["ga", "rl"] and runs["task.forget_class"].tolist() == [3, 3]
    assert runs["metric.ua"].tolist() == [0.5, 0.5]
    assert json.loads(runs["record"][0])["run_id"] == "a"
    samples = pd.read_parquet(folder / "samples.parquet")
    assert len(samples) == len(SAMPLES) + 1
    assert samples["scene.digit"].tolist()[:2] == [6, 2]
    scores = pd.read_parquet(folder / "scores.parquet")
    assert set(scores["metric"]) == {"ua", "x"}


def test_keys_that_cannot_be_columns_are_kept_as_json(tmp_path: Path) -> None:
    data = TaskData(runs={"a": _record("a")},
                    samples={"a": [{"a.b": 1, "c,d": {"": 2}}, {"run_id": "clash"}]})
    dataset.write_task(tmp_path, "t", data)
    back = dataset.read_task(dataset.task_dir(tmp_path, "t"))
    assert back.samples["a"] == data.samples["a"]


def test_repacking_the_same_content_gives_the_same_bytes(tmp_path: Path) -> None:
    dataset.write_task(tmp_path / "one", "t", _data())
    dataset.write_task(tmp_path / "two", "t", _data())
    for name in dataset.TABLES:
        a = (dataset.task_dir(tmp_path / "one", "t") / f"{name}.parquet").read_bytes()
        b = (dataset.task_dir(tmp_path / "two", "t") / f"{name}.parquet").read_bytes()
        assert a == b, name


@pytest.mark.parametrize("change", ["record", "sample", "score dtype", "score value", "file"])
def test_the_packing_check_sees_every_change(change: str) -> None:
    a, b = _data(), _data()
    if change == "record":
        b.runs["a"]["seed"] = 1
    elif change == "sample":
        b.samples["a"][1]["label"] = None  # null where the key was absent
    elif change == "score dtype":
        b.scores["a"]["ua"] = b.scores["a"]["ua"].astype(np.float32)
    elif change == "score value":
        b.scores["a"]["ua"] = np.array([1.0, 0.0, 0.0])
    else:
        b.files[("run", "a")]["samples.png"] = b"\x89PNH"
    with pytest.raises(CorruptRecordError, match="packing here would change"):
        dataset.check_same(a, b, "here")


def test_a_damaged_table_is_one_line(tmp_path: Path) -> None:
    dataset.write_task(tmp_path, "t", _data())
    path = dataset.task_dir(tmp_path, "t") / "runs.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptRecordError, match=r"runs\.parquet is unreadable.*restore it"):
        dataset.read_records(dataset.task_dir(tmp_path, "t"), "runs")


def test_the_card_lists_every_table_as_a_config(tmp_path: Path) -> None:
    dataset.write_task(tmp_path, "t", _data())
    card = dataset.write_card(tmp_path).read_text()
    assert "config_name: t--runs" in card and "path: t/files.parquet" in card
    assert "| t | samples | 5 |" in card
