"""Runner and store: identity, skip, resume, determinism, failures, every method end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAST, TINY
from ubench.catalog.registry import METHODS
from ubench.core.errors import (
    ConfigError,
    CorruptRecordError,
    DivergedError,
    IncompatibleError,
    InterruptedRun,
)
from ubench.run import identity, runner
from ubench.store.records import read_record


def _run(method: str, store: Path, extra: list[str] | None = None, seed: int = 0, **kw):
    extra = extra or []
    keys = {e.split("=")[0] for e in extra}
    fields = METHODS.get(method).Config.field_names()
    fast = [f for f in FAST if f.split("=")[0] not in keys and f.split("=")[0][7:] in fields]
    spec = identity.resolve(method, TINY, seed, [*fast, *extra])
    return runner.run(spec, store=store, **kw)


def test_identity_is_stable_and_sensitive() -> None:
    a = identity.resolve("boostalign", TINY, 0, FAST)
    b = identity.resolve("boostalign", TINY, 0, list(reversed(FAST)))
    assert a.run_id == b.run_id
    assert identity.resolve("boostalign", TINY, 1, FAST).run_id != a.run_id
    assert identity.resolve("graddiff", TINY, 0, FAST).run_id != a.run_id
    assert identity.resolve("boostalign", TINY, 0,
                            [*FAST, "task.forget_class=3"]).run_id != a.run_id


def test_finished_run_is_skipped_and_force_redoes(store: Path) -> None:
    first = _run("ga", store)
    assert not first.skipped and first.record["status"] == "ok"
    again = _run("ga", store)
    assert again.skipped and again.record["run_id"] == first.record["run_id"]
    forced = _run("ga", store, force=True)
    assert not forced.skipped


def test_same_seed_same_metrics(store: Path, tmp_path: Path) -> None:
    a = _run("boostalign", store).record
    b = _run("boostalign", tmp_path / "other").record
    assert {k: v["value"] for k, v in a["metrics"].items()} == \
        {k: v["value"] for k, v in b["metrics"].items()}


def test_interrupted_run_resumes_bit_for_bit(store: Path, tmp_path: Path) -> None:
    extra = ["method.steps=6"]

    def stop_at_5(step: int, total: int, scalars: dict[str, float]) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun, match="rerun the same command to resume from step 4") \
            as err:
        _run("boostalign", store, extra, checkpoint_every=2, on_step=stop_at_5)
    assert err.value.exit_code == 130
    ckpt = next(store.glob("**/checkpoint/state.json"))
    assert json.loads(ckpt.read_text())["step"] == 4
    notes: list[str] = []
    resumed = _run("boostalign", store, extra, checkpoint_every=2, say=notes.append).record
    assert resumed["train_log"]["resumed_from"] == 4
    assert "resuming from the checkpoint at step 4 of 6" in notes
    assert resumed["cost"]["unlearn_seconds"] >= resumed["train_log"]["seconds_before_resume"]
    assert not list(store.glob("**/checkpoint"))  # cleaned up after success
    straight = _run("boostalign", tmp_path / "straight", extra, checkpoint_every=0).record
    assert {k: v["value"] for k, v in resumed["metrics"].items()} == \
        {k: v["value"] for k, v in straight["metrics"].items()}


def test_nan_loss_writes_failed_record(store: Path) -> None:
    with pytest.raises(DivergedError, match=r"lower method\.lr"):
        _run("ga", store, ["method.lr=1e30", "method.truncation=none"])
    rec = read_record(next(store.glob("**/record.json")))
    assert rec["status"] == "failed" and "became" in rec["error"]


def test_corrupt_record_is_reported_with_fix(store: Path) -> None:
    res = _run("finetune", store)
    res.path.write_text("{ not json")
    with pytest.raises(CorruptRecordError, match="--force"):
        _run("finetune", store)
    assert not _run("finetune", store, force=True).skipped


def test_incompatible_scope_refused_before_loading(store: Path) -> None:
    with pytest.raises(IncompatibleError, match="cross-attention"):
        identity.resolve("boostalign", TINY, 0, ["method.scope=xattn"])
    assert not store.exists()


def test_two_class_policy_recorded(store: Path) -> None:
    rec = _run("graddiff", store, ["task.remain_policy=two-class"]).record
    assert rec["request"]["remain"]["classes"] == [6, 8]
    assert sum(rec["request"]["remain"]["per_class"]) == rec["request"]["remain"]["size"]


def test_methods_for_lists_every_fitting_method() -> None:
    # esd-u and esd-x train (around) cross-attention, which the class-conditional UNet lacks
    # uce edits cross-attention projections: refused on class-conditional tasks too
    assert set(identity.methods_for(TINY)) == {"base", "boostalign", "finetune", "ga", "graddiff",
                                              "retrain", "rl", "salun", "esd-u",
                                              "esd-full", "ca", "sa", "erasediff"}


def test_shared_overrides_apply_where_they_exist() -> None:
    specs = identity.resolve_many(["base", "ga"], TINY, 0, ["method.steps=3"])
    assert specs[1].method_config.steps == 3
    with pytest.raises(ConfigError, match="Did you mean 'steps'"):
        identity.resolve_many(["base", "ga"], TINY, 0, ["method.stepz=3"])
    with pytest.raises(ConfigError, match="unknown key 'steps'"):
        identity.resolve("base", TINY, 0, ["method.steps=3"])


def test_threads_asking_for_one_asset_build_it_once(ubench_home: Path) -> None:
    import threading
    import time

    from ubench.store.cache import cached

    builds = []

    def build(d: Path) -> None:
        builds.append(d)
        time.sleep(0.2)
        (d / "x").write_text("done")

    key = {"test": "lock", "nonce": time.time()}
    out: list[Path] = []
    threads = [threading.Thread(target=lambda: out.append(cached("test/lock", key, build)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(set(out)) == 1 and (out[0] / "x").read_text() == "done"


def test_evaluation_reports_its_progress_per_generation_set(store: Path) -> None:
    seen: dict[str, tuple[int, int]] = {}

    def progress(label: str, done: int, total: int, scalars: dict[str, float]) -> None:
        seen[label] = (done, total)

    runner.run(identity.resolve("ga", TINY, 0, FAST), store=store, progress=progress)
    sets = {k: v for k, v in seen.items() if k.startswith("evaluating: generation set")}
    assert sets and all(done == total > 0 for done, total in sets.values())
