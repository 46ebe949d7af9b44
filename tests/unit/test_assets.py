"""Pinned reference assets: manifest checks, clear errors, asset-aware run identities, and the
judge's reject class."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from ubench.core.errors import MissingAssetError
from ubench.run import identity
from ubench.store.pinned import (
    MANIFEST,
    pinned_digest,
    pinned_folder,
    pinned_root,
    read_manifest,
    verify,
    write_entry,
)


@pytest.fixture()
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "pinned"
    (root / "x/thing").mkdir(parents=True)
    (root / "x/thing/w.bin").write_bytes(b"weights")
    write_entry(root, "x/thing", {"recipe": 1}, {"accuracy": 0.5}, "ubench assets build t")
    monkeypatch.setenv("UBENCH_ASSETS", str(root))
    return root


def test_a_pinned_asset_is_checked_file_by_file(fake_root: Path) -> None:
    assert pinned_folder("x/thing", {"recipe": 1}, "t") == fake_root / "x/thing"
    digest = pinned_digest("x/thing", {"recipe": 1}, "t")
    assert len(digest) == 16 and read_manifest(fake_root)["assets"]["x/thing"]["digest"] == digest
    with pytest.raises(MissingAssetError, match=r"another recipe.*ubench assets build t"):
        pinned_digest("x/thing", {"recipe": 2}, "t")
    with pytest.raises(MissingAssetError, match=r"not in .*manifest\.json"):
        pinned_folder("x/other", {}, "t")


@pytest.mark.parametrize("damage", ["edit", "delete"])
def test_a_damaged_pinned_file_is_one_line_naming_the_build_command(
        fake_root: Path, damage: str) -> None:
    from ubench.store import pinned as assets

    assets._VERIFIED.clear()
    f = fake_root / "x/thing/w.bin"
    if damage == "edit":
        f.write_bytes(b"weightz")
    else:
        f.unlink()
    with pytest.raises(MissingAssetError, match="ubench assets build t") as err:
        pinned_folder("x/thing", {"recipe": 1}, "t")
    assert "\n" not in str(err.value)
    assert [r[2] != "ok" for r in verify(fake_root)] == [True]


def test_the_shipped_assets_verify_and_are_small() -> None:
    root = pinned_root()
    results = verify(root)
    names = {r[0] for r in results}
    assert {"digits/judge", "digits/base", "t2i/base",
            *(f"digits/oracle-{k}" for k in range(10)),
            *(f"t2i/oracle-{t}" for t in ("t2i-attribute", "t2i-style", "t2i-object"))} <= names
    assert all(r[2] == "ok" for r in results), [r for r in results if r[2] != "ok"]
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 60e6
    quality = read_manifest(root)["assets"]
    assert quality["digits/judge"]["quality"]["heldout_accuracy"] >= 0.98
    assert quality["digits/judge"]["quality"]["garbage_reject_rate"] >= 0.98
    assert quality["digits/base"]["quality"]["judged_accuracy"] >= 0.95
    for t in ("t2i/base", "t2i/oracle-t2i-attribute", "t2i/oracle-t2i-style",
              "t2i/oracle-t2i-object"):  # oracles: on scenes without their concept
        assert quality[t]["quality"]["exact_alignment"] >= 0.95, t


def test_run_identity_carries_the_assets_it_uses() -> None:
    a = identity.resolve("boostalign", "digits-class")
    assert {"judge", "base", "data"} <= set(a.assets) and "oracle" not in a.assets
    assert a.identity["task"]["assets"] == a.assets
    r = identity.resolve("retrain", "digits-class", 0, ["task.forget_class=3"])
    assert r.assets["oracle"] == read_manifest()["assets"]["digits/oracle-3"]["digest"]
    t = identity.resolve("esd-u", "t2i-attribute")
    assert t.assets["base"] == read_manifest()["assets"]["t2i/base"]["digest"]
    assert t.assets["judge"] == a.assets["judge"]

@pytest.mark.parametrize("task", ["t2i-attribute", "t2i-style", "t2i-object"])
def test_t2i_retrain_rows_use_the_pinned_oracle_of_their_concept(task: str) -> None:
    """The shipped oracle is the default concept's: its digest is in the run identity, so the
    retrain row reproduces on any machine; another concept's oracle is trained into the cache
    and named by its recipe."""
    manifest = read_manifest()["assets"]
    r = identity.resolve("retrain", task)
    assert r.assets["oracle"] == manifest[f"t2i/oracle-{task}"]["digest"]
    assert r.assets["base"] == manifest["t2i/base"]["digest"]
    if task == "t2i-style":
        other = identity.resolve("retrain", task, 0, ["task.forget_style=checkered"])
        assert other.assets["oracle"].startswith("recipe:")
        assert other.run_id != r.run_id


@pytest.mark.parametrize(("asset", "moves"), [("digits/judge-robust", True),
                                               ("digits/judge", False)])
def test_another_pinned_judge_is_another_run(asset: str, moves: bool, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The headline judge (judge-robust) is part of the run id; the original judge, kept pinned
    only for the judges' table, is not."""
    from ubench.tasks.digits.judge import HEADLINE_JUDGE

    assert asset.endswith(HEADLINE_JUDGE) == moves
    before = identity.resolve("boostalign", "digits-class")
    copy = tmp_path / "pinned"
    shutil.copytree(pinned_root(), copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["assets"][asset]["files"]["judge.safetensors"] = "0" * 64
    (copy / MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setenv("UBENCH_ASSETS", str(copy))
    after = identity.resolve("boostalign", "digits-class")
    assert (after.run_id != before.run_id) == moves and after.config_id == before.config_id


def test_missing_pinned_assets_fail_fast_with_the_build_command(tmp_path: Path) -> None:
    env = {"UBENCH_ASSETS": str(tmp_path / "none"), "UBENCH_HOME": str(tmp_path / "home"),
           "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "run", "--method", "boostalign",
                           "--task", "digits-class", "--store", str(tmp_path / "s")],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "ubench assets build digits-class" in lines[0]
    assert not (tmp_path / "home").exists() and not (tmp_path / "s").exists()
    assert time.perf_counter() - t0 < 60


def test_the_judge_rejects_garbage_and_keeps_digits() -> None:
    from ubench.tasks.digits.data import load_digits_splits
    from ubench.tasks.digits.judge import NOT_A_DIGIT, garbage_images, judge_predict
    from ubench.tasks.digits.task import DigitsClass

    judge = DigitsClass(DigitsClass.Config()).judge
    _, held = load_digits_splits()
    pred, _ = judge_predict(judge, held.images)
    assert float((pred == held.labels).float().mean()) >= 0.98
    white, black = torch.ones(5, 1, 8, 8), -torch.ones(5, 1, 8, 8)
    assert judge_predict(judge, torch.cat([white, black]))[0].tolist() == [NOT_A_DIGIT] * 10
    junk = garbage_images(200, torch.Generator().manual_seed(5), held.images)
    assert junk.min() >= -1 and junk.max() <= 1
    assert float((judge_predict(judge, junk)[0] == NOT_A_DIGIT).float().mean()) > 0.95
    again = garbage_images(200, torch.Generator().manual_seed(5), held.images)
    assert torch.equal(junk, again)


def test_t2i_build_keeps_intact_pinned_assets_and_redoes_changed_ones(tmp_path: Path) -> None:
    """`ubench assets build t2i-*` must not retrain an asset already pinned from the same recipe
    (a retrained model differs across CPUs, and with it every record's identity); a damaged
    file or another recipe is rebuilt."""
    from ubench.catalog.registry import TASKS

    copy = tmp_path / "pinned"
    shutil.copytree(pinned_root(), copy)
    task_cls = TASKS.get("t2i-object")
    task = task_cls(task_cls.Config())
    key = task._key("oracle")
    assert task._intact(copy, "t2i/oracle-t2i-object", key)
    assert not task._intact(copy, "t2i/oracle-t2i-object", {**key, "threads": 99})
    assert not task._intact(copy, "t2i/oracle-t2i-nothing", key)
    (copy / "t2i/oracle-t2i-object/unet/config.json").write_text("{}")
    assert not task._intact(copy, "t2i/oracle-t2i-object", key)
    assert task._intact(copy, "t2i/base", task._key("base"))
