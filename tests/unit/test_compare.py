"""``ubench compare``: pairing, paired bootstrap intervals, the regression rule and bad inputs,
on synthetic records with per-sample files (no model is run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ubench.api import MetricValue
from ubench.core.env import cpu_name, environment, numerics_fingerprint
from ubench.core.errors import ConfigError
from ubench.metrics.classification import RemainingAccuracy, UnlearningAccuracy
from ubench.metrics.frechet import FrechetDistance
from ubench.report.compare import (
    CompareError,
    compare,
    paired_frechet_delta,
    paired_mean_delta,
    parse_tolerances,
    to_markdown,
)
from ubench.store.record import IDENTITY_VERSION, SCHEMA_VERSION
from ubench.store.records import validate_record
from ubench.store.runs import write_metric_samples

REF = np.random.default_rng(0).normal(size=(300, 4))


def _metrics(ra: np.ndarray, ua: np.ndarray, feats: np.ndarray) -> dict[str, MetricValue]:
    return {"ra": RemainingAccuracy.from_scores(ra, {}),
            "ua": UnlearningAccuracy.from_scores(ua, {}),
            "fd": FrechetDistance.from_features(feats, REF, {})}


def make_run(root: Path, *, seed: int = 0, forget: int = 0, ra_flip: int = 0, fd_shift: float = 0.0,
             assets: dict[str, str] | None = None, version: str = "1", legacy: bool = False,
             method: str = "boostalign", env: dict[str, Any] | None = None) -> Path:
    """A run folder with a valid record and per-sample files; ``ra_flip`` remain samples
    (of 400, 392 correct in the baseline) turn wrong, ``fd_shift`` moves the features."""
    rng = np.random.default_rng(100 + seed + 10 * forget)
    ra = np.ones(400)
    ra[:8] = 0
    ra[8:8 + ra_flip] = 0
    ua = np.ones(200)
    feats = rng.normal(size=(400, 4)) + fd_shift
    metrics = _metrics(ra, ua, feats)
    cid = f"cfg{method}{seed}{forget}{version}"
    run_id = cid if legacy else f"run{cid}{json.dumps(assets, sort_keys=True).__hash__() % 997}"
    rec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "status": "ok",
        "created_at": "2026-01-01T00:00:00+00:00",
        "task": {"id": "digits-class", "version": version,
                 "config": {"forget_class": forget, "remain_policy": "balanced"}},
        "method": {"id": method, "version": "1", "config": {"lr": 1e-4}},
        "seed": seed, "metrics": {k: v.to_dict() for k, v in metrics.items()},
        "cost": {}, "env": env or {}, "artifacts": {}, "details": {"n_samples": 600},
    }
    if not legacy:
        rec.update(identity_version=IDENTITY_VERSION, config_id=cid)
        rec["task"]["assets"] = assets if assets is not None else {"judge": "j1", "base": "b1"}
    folder = root / "digits-class" / method / run_id
    folder.mkdir(parents=True)
    rec["artifacts"].update(write_metric_samples(folder, metrics))
    (folder / "samples.jsonl").write_text("".join(json.dumps({"i": i}) + "\n"
                                                  for i in range(600)))
    rec["artifacts"]["samples"] = "samples.jsonl"
    (folder / "record.json").write_text(json.dumps(validate_record(rec, "test")))
    return folder


def test_identical_sets_pair_every_run_with_zero_deltas(tmp_path: Path) -> None:
    for s in (0, 1):
        make_run(tmp_path / "a", seed=s)
    c = compare(tmp_path / "a", tmp_path / "a")
    assert len(c.pairs) == 2 and not c.regressions and not c.only_current
    for p in c.pairs:
        for m in p.metrics:
            assert m.delta == 0 and m.low == 0 and m.high == 0 and m.interval == "paired"
    assert len(c.aggregates) == 1  # the two seeds of one method and setting


def test_compare_says_whether_the_two_sides_ran_on_the_same_float_kernels(tmp_path: Path
                                                                         ) -> None:
    here = {"numerics": numerics_fingerprint(), "cpu": cpu_name(), "torch_threads": 1}
    other = {**here, "numerics": "0123456789abcdef", "cpu": "Other CPU"}
    make_run(tmp_path / "a", env=here)
    make_run(tmp_path / "same", env=here)
    make_run(tmp_path / "other", env=other)
    make_run(tmp_path / "old")
    same = compare(tmp_path / "a", tmp_path / "same")
    assert same.numerics["match"] is True and "float kernels" not in to_markdown(same)
    diff = compare(tmp_path / "a", tmp_path / "other")
    assert diff.numerics["match"] is False and diff.to_json()["numerics"]["match"] is False
    text = to_markdown(diff)
    assert "different float kernels" in text and "Other CPU" in text
    assert "not regressions" in text and here["numerics"] in text
    unknown = compare(tmp_path / "old", tmp_path / "a")
    assert unknown.numerics["match"] is None and "unknown" in to_markdown(unknown)


def test_the_numerics_fingerprint_is_stable_and_recorded() -> None:
    fp = numerics_fingerprint()
    assert fp == numerics_fingerprint() and len(fp) == 16
    env = environment("cpu")
    assert env["numerics"] == fp and env["cpu"] == cpu_name() and env["cpu"]


def test_a_real_drop_is_a_regression_and_is_listed_first(tmp_path: Path) -> None:
    make_run(tmp_path / "a")
    make_run(tmp_path / "b", ra_flip=40, fd_shift=0.8)
    c = compare(tmp_path / "a", tmp_path / "b")
    regressed = {m.metric for _, m in c.regressions}
    assert regressed == {"ra", "fd"}
    ra = next(m for m in c.pairs[0].metrics if m.metric == "ra")
    assert ra.delta == pytest.approx(-0.1) and ra.high < 0 and ra.interval == "paired"
    text = to_markdown(c)
    assert text.index("### Regressions") < text.index("### Every paired run")
    assert "**2 regressions**" in text


def test_small_or_insignificant_changes_are_not_regressions(tmp_path: Path) -> None:
    make_run(tmp_path / "a")
    make_run(tmp_path / "b", ra_flip=2)  # -0.005: its paired interval reaches 0
    ra = next(m for m in compare(tmp_path / "a", tmp_path / "b").pairs[0].metrics
              if m.metric == "ra")
    assert ra.high == 0 and not ra.regression
    make_run(tmp_path / "c", ra_flip=8)  # -0.02: significant, and beyond the 0.01 tolerance
    assert [m.metric for _, m in compare(tmp_path / "a", tmp_path / "c").regressions] == ["ra"]
    # ... but within a looser one
    assert not compare(tmp_path / "a", tmp_path / "c",
                       tolerances=parse_tolerances(["ra=0.05"])).regressions


def test_paired_interval_is_narrower_than_unpaired() -> None:
    rng = np.random.default_rng(1)
    a = (rng.random(500) < 0.7).astype(float)
    b = a.copy()
    b[:10] = 0  # the same samples, 10 flipped
    d, lo, hi = paired_mean_delta(a, b)
    assert d == pytest.approx(b.mean() - a.mean()) and lo <= d <= hi
    assert hi - lo < 0.03  # unpaired intervals of each side alone are ~0.08 wide


def test_frechet_delta_is_zero_for_identical_features_and_positive_for_worse() -> None:
    rng = np.random.default_rng(2)
    f = rng.normal(size=(300, 4))
    mean, cov = REF.mean(0), np.cov(REF, rowvar=False)
    assert paired_frechet_delta(f, f, mean, cov) == (0.0, 0.0, 0.0)
    d, lo, hi = paired_frechet_delta(f, f + 1.0, mean, cov, resamples=50)
    assert d > 0 and lo > 0 and lo <= d <= hi


def test_asset_change_is_refused_unless_allowed(tmp_path: Path) -> None:
    make_run(tmp_path / "a", assets={"judge": "j1", "base": "b1"})
    make_run(tmp_path / "b", assets={"judge": "j2", "base": "b1"})
    with pytest.raises(CompareError, match=r"judge j1 -> j2.*--allow-asset-change"):
        compare(tmp_path / "a", tmp_path / "b")
    assert len(compare(tmp_path / "a", tmp_path / "b", allow_asset_change=True).pairs) == 1


def test_a_store_with_legacy_records_and_their_reruns_pairs_each_with_its_own(
        tmp_path: Path) -> None:
    """leaderboard/records holds legacy runs and their reruns on the pinned assets (one config
    id, two sets of assets): compared with itself, every record pairs with itself; compared
    with a store of the reruns only, the reruns pair and the legacy run is listed alone."""
    make_run(tmp_path / "lb", legacy=True)
    make_run(tmp_path / "lb", assets={"judge": "j1", "base": "b1"})
    make_run(tmp_path / "new", assets={"judge": "j1", "base": "b1"})
    c = compare(tmp_path / "lb", tmp_path / "lb")
    assert len(c.pairs) == 2 and not c.only_baseline and not c.regressions
    c = compare(tmp_path / "lb", tmp_path / "new")
    assert len(c.pairs) == 1 and len(c.only_baseline) == 1


def test_legacy_records_pair_by_run_id_but_need_the_flag(tmp_path: Path) -> None:
    make_run(tmp_path / "a", legacy=True)
    make_run(tmp_path / "b", legacy=True)
    with pytest.raises(CompareError, match="legacy"):
        compare(tmp_path / "a", tmp_path / "b")
    assert compare(tmp_path / "a", tmp_path / "b", allow_asset_change=True).pairs


@pytest.mark.parametrize("case", ["missing", "empty", "disjoint", "version", "truncated",
                                  "duplicate"])
def test_bad_inputs_are_one_line_errors(tmp_path: Path, case: str) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_run(a)
    needle = {"missing": "does not exist", "empty": "holds no records",
              "disjoint": "no paired runs", "version": "different task versions",
              "truncated": "truncated",
              "duplicate": "two records of one run configuration measured with the same"}[case]
    if case == "empty":
        b.mkdir()
    elif case == "disjoint":
        make_run(b, seed=5)
    elif case == "version":
        make_run(b, version="2")
    elif case == "truncated":
        folder = make_run(b)
        p = folder / "samples.jsonl"
        p.write_text(p.read_text()[:-7])
    elif case == "duplicate":  # one configuration, one set of assets, two run folders
        folder = make_run(b)
        twin = folder.parent / "twin"
        shutil.copytree(folder, twin)
        rec = json.loads((twin / "record.json").read_text())
        (twin / "record.json").write_text(json.dumps({**rec, "run_id": "twin"}))
    with pytest.raises(CompareError, match=needle) as err:
        compare(a, b)
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_bad_tolerances_are_refused() -> None:
    assert parse_tolerances(["fd=5%"])["fd"].relative == pytest.approx(0.05)
    for bad in ("ra", "ra=-1", "ra=x", "=1"):
        with pytest.raises(ConfigError, match="--tolerance"):
            parse_tolerances([bad])


def test_runs_without_per_sample_files_get_an_unpaired_interval(tmp_path: Path) -> None:
    for side in ("a", "b"):
        folder = make_run(tmp_path / side, ra_flip=0 if side == "a" else 40)
        (folder / "scores.safetensors").unlink()
        (folder / "features.safetensors").unlink()
    c = compare(tmp_path / "a", tmp_path / "b")
    ra = next(m for m in c.pairs[0].metrics if m.metric == "ra")
    assert ra.interval == "unpaired" and ra.low < ra.delta < ra.high
    shutil.rmtree(tmp_path / "a")
