"""``ubench pack`` on real (tiny) runs and attacks: a packed store answers every reader exactly as
its run folders did — the report, ``compare`` (every delta 0, every run paired, per-sample
intervals), a run or a sweep finding it finished, an attack finding it — and packing loses
nothing, keeps the weights, refuses corrupt input before writing, and can be repeated."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST, TINY
from ubench.core.errors import CorruptRecordError
from ubench.report.build import build_report
from ubench.report.compare import compare
from ubench.run import identity
from ubench.run.job import attack_one, run_job
from ubench.store import reader
from ubench.store.layout import DATA_DIR, MODEL_DIR, RECORD_FILE
from ubench.store.pack import pack

T2I = "t2i-attribute-tiny"
RELEARN = ["attack.budgets=0,2", "attack.samples=8", "attack.batch_size=4"]


def _spec(method: str, task: str = TINY, seed: int = 0):
    from ubench.catalog.registry import METHODS

    fields = METHODS.get(method).Config.field_names()
    sets = [f for f in FAST if f.split("=")[0][7:] in fields]
    if task == T2I and "batch_size" in fields:
        sets = [s for s in sets if not s.startswith("method.batch_size")] + \
            ["method.batch_size=8"]
    return identity.resolve(method, task, seed, sets)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, ubench_home: Path) -> Path:
    """A store of run folders: digits ga (seeds 0, 1, one attacked), base, a t2i run."""
    store = tmp_path_factory.mktemp("pack") / "store"
    run_job(_spec("ga"), ["relearn"], RELEARN, store=store)
    for spec in (_spec("ga", seed=1), _spec("base"), _spec("graddiff", T2I)):
        run_job(spec, store=store)
    return store


def _copy(store: Path, to: Path) -> Path:
    shutil.copytree(store, to)
    return to


def _report(store: Path, out: Path) -> dict[str, str]:
    build_report(store, out, formats=("md", "csv"))
    return {p.name: p.read_text() for p in sorted(out.iterdir()) if p.is_file()}


def test_packing_in_place_loses_nothing_and_keeps_the_weights(made: Path, tmp_path: Path
                                                               ) -> None:
    before = reader.load_records(made)
    attacks = reader.load_attack_records(made)
    store = _copy(made, tmp_path / "store")
    res = pack(store)
    assert (res.runs, res.attacks) == (4, 1) and res.removed_files > 0
    assert not list(store.glob(f"*/*/*/{RECORD_FILE}"))  # the records left their folders
    assert not list(store.glob("**/samples.jsonl")) and not list(store.glob("**/*.png"))
    assert len(list(store.glob(f"*/*/*/{MODEL_DIR}"))) == 3  # method runs keep their weights
    after = reader.load_records(store)
    strip = [{k: v for k, v in r.items() if not k.startswith("_")} for r in before]
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in after] == strip
    assert [r["_path"] for r in after] == [r["_path"].replace(str(made), str(store))
                                           for r in before]  # same order, same places
    for old, new in zip(before, after, strict=True):
        assert reader.samples(new) == reader.samples(old)
        assert reader.grid(new) == reader.grid(old)
        a, b = reader.scores(old), reader.scores(new)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert [a["attack_id"] for a in reader.load_attack_records(store)] == \
        [a["attack_id"] for a in attacks]
    assert _report(store, tmp_path / "after") == _report(made, tmp_path / "before")


def test_compare_of_a_store_and_its_packed_copy_is_all_zero(made: Path, tmp_path: Path) -> None:
    pack(made, tmp_path / "packed")
    assert not list((tmp_path / "packed").glob(f"*/*/*/{RECORD_FILE}"))
    assert list(made.glob(f"*/*/*/{RECORD_FILE}"))  # --into leaves the source as it was
    result = compare(made, tmp_path / "packed")
    assert result.regressions == [] and not result.only_baseline and not result.only_current
    assert len(result.pairs) == 4
    deltas = [m for p in result.pairs for m in p.metrics]
    assert deltas and all(m.delta == 0 for m in deltas)
    # per-sample scores were read from the dataset: paired intervals, not the unpaired fallback
    assert {m.interval for m in deltas if m.metric == "ua"} == {"paired"}


def test_every_reader_finds_a_packed_run(made: Path, tmp_path: Path) -> None:
    store = _copy(made, tmp_path / "store")
    pack(store)
    notes: list[str] = []
    from ubench.run.job import Watch

    job = run_job(_spec("ga"), ["relearn"], RELEARN, store=store, watch=Watch(say=notes.append))
    assert job.run.skipped and job.attacks["relearn"].skipped
    assert any("finished already" in n and "(packed)" in n for n in notes)
    # an attack by id prefix on a packed run: its model is still in the run folder
    rec = job.run.record
    att = attack_one("relearn", rec["run_id"][:8], sets=[*RELEARN[:1], "attack.samples=4",
                                                          RELEARN[2]], store=store)
    assert not att.skipped and att.record["run"]["run_id"] == rec["run_id"]
    # a sweep finds it finished, and its attack too
    from ubench.sweep import item_state
    from ubench.sweep.plan import RunItem

    item = RunItem("ga", TINY, 0, tuple(FAST), rec["run_id"], attacks=("relearn",),
                   attack_sets=tuple(RELEARN))
    state = item_state(item, store)
    assert state.kind == "done" and state.metrics["ua"] == rec["metrics"]["ua"]["value"]


def test_a_remade_run_supersedes_its_packed_record(made: Path, tmp_path: Path) -> None:
    store = _copy(made, tmp_path / "store")
    pack(store)
    spec = _spec("ga", seed=1)
    res = run_job(spec, store=store, force=True).run
    assert not res.skipped and res.path.is_file()
    recs = [r for r in reader.load_records(store) if r["run_id"] == spec.run_id]
    assert len(recs) == 1 and "_packed" not in recs[0]  # the folder's record wins
    assert pack(store).runs == 1  # and the next pack replaces the packed one
    recs = [r for r in reader.load_records(store) if r["run_id"] == spec.run_id]
    assert len(recs) == 1 and recs[0]["_packed"]
    assert len(reader.load_records(store)) == 4


def test_packing_twice_changes_nothing(made: Path, tmp_path: Path) -> None:
    store = _copy(made, tmp_path / "store")
    pack(store)
    tables = {p: p.read_bytes() for p in sorted((store / DATA_DIR).rglob("*.parquet"))}
    res = pack(store)
    assert (res.runs, res.attacks, res.removed_files) == (0, 0, 0)
    assert {p: p.read_bytes() for p in sorted((store / DATA_DIR).rglob("*.parquet"))} == tables


def test_corrupt_input_is_refused_before_anything_is_written(made: Path, tmp_path: Path
                                                             ) -> None:
    store = _copy(made, tmp_path / "store")
    samples = next(store.glob("*/ga/*/samples.jsonl"))
    samples.write_text(samples.read_text()[:-5])  # truncated
    record = next(store.glob("*/base/*/record.json"))
    record.write_text("{")
    with pytest.raises(CorruptRecordError, match=r"truncated.*\(and 1 more\)|record.*\(and 1 "
                                                 r"more\)"):
        pack(store)
    assert not (store / DATA_DIR).exists()
    assert samples.is_file() and record.is_file()


def test_a_hostile_artifact_name_reads_nothing_outside_its_folder(made: Path, tmp_path: Path
                                                                   ) -> None:
    store = _copy(made, tmp_path / "store")
    path = next(store.glob("*/ga/*/record.json"))
    rec = json.loads(path.read_text())
    for name in ("../../../../../../etc/passwd", "/dev/zero"):
        rec["artifacts"]["samples"] = name
        path.write_text(json.dumps(rec))
        loaded = next(r for r in reader.load_records(store) if r["run_id"] == rec["run_id"])
        with pytest.raises(CorruptRecordError, match="not a file in its own folder"):
            reader.samples(loaded)


def test_the_cli_packs_and_says_so(made: Path, tmp_path: Path) -> None:
    store = _copy(made, tmp_path / "store")
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "pack", str(store)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "packed 4 runs and 1 attacks" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "pack",
                           str(tmp_path / "nowhere")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "does not exist" in proc.stderr.strip().splitlines()[-1]
    import pandas as pd

    runs = pd.concat(pd.read_parquet(p) for p in (store / DATA_DIR).glob("*/runs.parquet"))
    assert sorted(runs["method"]) == ["base", "ga", "ga", "graddiff"]
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "pack", str(made), "--into",
                           str(tmp_path / "lean"), "--without", "features.safetensors"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "left out" in proc.stderr, proc.stderr
    files = pd.concat(pd.read_parquet(p) for p in (tmp_path / "lean" / DATA_DIR).glob(
        "*/files.parquet"))
    assert len(files) and not files["path"].str.endswith("features.safetensors").any()
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "pack", str(store),
                           "--without", "features.safetensors"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--into" in proc.stderr.strip().splitlines()[-1]


def test_hugging_face_datasets_reads_the_tables(made: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the `datasets` library is not installed")
    pack(made, tmp_path / "packed")
    data = tmp_path / "packed" / DATA_DIR
    runs = datasets.load_dataset("parquet", data_files=str(data / TINY / "runs.parquet"),
                                 split="train", cache_dir=str(tmp_path / "hf"))
    assert sorted(runs["method"]) == ["base", "ga", "ga"]
    by_card = datasets.load_dataset(str(data), f"{TINY}--samples", split="train",
                                    cache_dir=str(tmp_path / "hf"))
    assert by_card.num_rows > 0 and "run_id" in by_card.column_names


def test_unpacking_gives_back_the_run_folders_file_for_file(made: Path, tmp_path: Path) -> None:
    """pack, then ``ubench pack --unpack``: every data file of every run and attack folder comes
    back with the same bytes (per-sample scores: the same arrays), so nothing was lost."""
    import numpy as np
    from safetensors.numpy import load_file

    from ubench.store.layout import SCORES_FILE
    from ubench.store.pack import KEPT, unpack

    pack(made, tmp_path / "packed")
    res = unpack(tmp_path / "packed", tmp_path / "back")
    assert (res.runs, res.attacks) == (4, 1)

    def data_files(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file()
                and not set(p.relative_to(root).parts) & {*KEPT[:2], ".locks", ".sweep"}}

    files = data_files(made)
    assert files == data_files(tmp_path / "back") and len(files) > 10
    for rel in files:
        a, b = made / rel, tmp_path / "back" / rel
        if rel.name == SCORES_FILE:
            x, y = load_file(str(a)), load_file(str(b))
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
        else:
            assert a.read_bytes() == b.read_bytes(), rel
    with pytest.raises(Exception, match="exists already"):
        unpack(tmp_path / "packed", tmp_path / "back")


def test_a_copy_packed_without_features_keeps_the_rest_and_compares_unpaired(
        made: Path, tmp_path: Path) -> None:
    from ubench.core.errors import StoreError

    with pytest.raises(StoreError, match="would delete"):
        pack(_copy(made, tmp_path / "inplace"), without=("features.safetensors",))
    with pytest.raises(StoreError, match="other than"):
        pack(made, tmp_path / "x", without=("record.json",))
    said: list[str] = []
    pack(made, tmp_path / "full")
    pack(made, tmp_path / "lean", say=said.append, without=("features.safetensors",))
    assert list(made.glob("**/features.safetensors"))  # the source keeps them
    n_features = len(list(made.glob("**/features.safetensors")))
    assert n_features > 0 and f"left out {n_features} files named features.safetensors" in said
    full = {r["run_id"]: r for r in reader.load_records(tmp_path / "full")}
    for rec in reader.load_records(tmp_path / "lean"):
        assert reader.features(rec) == {} and reader.scores(rec)  # scores stay
        assert reader.grid(rec) == reader.grid(full[rec["run_id"]])  # the grids stay
    assert any(reader.features(r) for r in full.values())
    card = (tmp_path / "lean" / DATA_DIR / "README.md").read_text()
    assert "`samples.png`" in card and "features.safetensors" not in card
    assert "features.safetensors" in (tmp_path / "full" / DATA_DIR / "README.md").read_text()
    result = compare(tmp_path / "full", tmp_path / "lean")
    fd = [m for p in result.pairs for m in p.metrics if m.metric == "fd"]
    assert fd and all(m.delta == 0 for m in fd)
    assert {m.interval for m in fd} != {"paired"}  # no features: the unpaired interval
    assert {m.interval for p in result.pairs for m in p.metrics if m.metric == "ua"} == \
        {"paired"}
