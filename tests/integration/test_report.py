"""Leaderboard generation from synthetic records (pure function of the records)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from ubench.core.errors import CorruptRecordError
from ubench.report.build import build_report
from ubench.report.table import leaderboard_rows
from ubench.store.record import SCHEMA_VERSION
from ubench.store.records import validate_record


def record(method: str, seed: int, ua: float, forget_class: int = 0, **task: Any) -> dict:
    from ubench.catalog.registry import METHODS

    metric = {"value": ua, "ci_low": ua - 0.01, "ci_high": ua + 0.01, "n": 500,
              "higher_is_better": True, "definition": {"n": 500}}
    rec = {
        "schema_version": SCHEMA_VERSION, "run_id": f"{method}{seed}{forget_class}",
        "status": "ok", "created_at": "2026-01-01T00:00:00+00:00",
        "task": {"id": "digits-class", "version": "1",
                 "config": {"forget_class": forget_class, "remain_policy": "balanced", **task}},
        "method": {"id": method, "version": "1", "config": METHODS.get(method).Config().to_dict(),
                   "reference": method in ("base", "retrain")},
        "seed": seed, "metrics": {"ua": metric}, "cost": {"unlearn_seconds": 1.0,
                                                          "peak_rss_mb": 100.0},
        "env": {}, "error": None,
    }
    return validate_record(rec, "synthetic")


def write(root: Path, recs: list[dict]) -> None:
    for r in recs:
        p = root / r["task"]["id"] / r["method"]["id"] / r["run_id"] / "record.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(r))


def test_aggregates_over_seeds_and_classes_with_t_interval() -> None:
    recs = [record("ga", s, v, c) for s, v, c in [(0, 0.9, 0), (1, 0.8, 0), (0, 1.0, 3)]]
    (title, rows), = leaderboard_rows(recs).items()
    assert "remain_policy=balanced" in title and "forget_class" not in title
    row = rows[0]
    assert row["runs"] == 3 and row["seeds"] == [0, 1] and row["forget"] == ["0", "3"]
    assert row["ua"] == pytest.approx(0.9)
    # t(0.975, 2) = 4.303, sd = 0.1 -> half width 0.2484
    assert row["ua"] - row["ua_lo"] == pytest.approx(4.3027 * 0.1 / 3 ** 0.5, rel=1e-3)
    assert row["ua_hi"] == 1.0  # clipped to the range of an accuracy


def test_aggregated_intervals_stay_inside_the_metric_range() -> None:
    recs = [record("ga", s, v) for s, v in [(0, 1.0), (1, 0.98)]]
    row = next(iter(leaderboard_rows(recs).values()))[0]
    assert row["ua_hi"] == 1.0 and row["ua_lo"] < row["ua"]


def test_grids_stack_the_first_run_of_every_row(tmp_path: Path) -> None:
    from PIL import Image

    recs = [record("ga", 1, 0.9), record("ga", 0, 0.8), record("base", 0, 0.0)]
    write(tmp_path / "s", recs)
    for r in recs:
        folder = tmp_path / "s" / "digits-class" / r["method"]["id"] / r["run_id"]
        Image.new("RGB", (40, 10), "red" if r["seed"] == 0 else "blue").save(
            folder / "samples.png")
    paths = build_report(tmp_path / "s", tmp_path / "lb")
    grid = next(p for p in paths if p.suffix == ".png")
    img = Image.open(grid).convert("RGB")
    assert img.size == (40, 2 * (10 + 14))
    assert img.getpixel((20, 14 + 5)) == (255, 0, 0)  # base row, seed 0
    assert img.getpixel((20, 2 * 14 + 10 + 5)) == (255, 0, 0)  # ga: seed 0, not seed 1
    assert f"grids/{grid.name}" in (tmp_path / "lb" / "README.md").read_text()


def test_settings_split_tables_and_reference_rows_first() -> None:
    recs = [record("graddiff", 0, 0.9), record("base", 0, 0.0),
            record("graddiff", 0, 0.7, remain_policy="two-class")]
    tables = leaderboard_rows(recs)
    assert len(tables) == 2
    balanced = next(rows for t, rows in tables.items() if "balanced" in t)
    assert [r["method"] for r in balanced] == ["base", "graddiff"]


def test_non_default_config_gets_its_own_row() -> None:
    a = record("graddiff", 0, 0.9)
    b = copy.deepcopy(a)
    b["run_id"] = "other"
    b["method"]["config"]["remain_weight"] = 1.0
    rows = next(iter(leaderboard_rows([a, b]).values()))
    assert sorted(r["method"] for r in rows) == ["graddiff", "graddiff (remain_weight=1.0)"]


def test_old_task_versions_and_failed_runs_are_left_out() -> None:
    old = record("ga", 0, 0.5)
    old["task"]["version"] = "0"
    failed = record("ga", 1, 0.5)
    failed["status"] = "failed"
    assert leaderboard_rows([old, failed]) == {}


def test_build_report_writes_files_and_refuses_corrupt(tmp_path: Path) -> None:
    write(tmp_path / "s", [record("ga", 0, 0.9), record("base", 0, 0.0)])
    paths = build_report(tmp_path / "s", tmp_path / "lb")
    assert [p.name for p in paths][:4] == ["README.md", "leaderboard.csv", "runs.csv",
                                           "index.html"]
    md = paths[0].read_text()
    assert "| base *(ref)* | 0.000 [-0.010, 0.010]" in md and "UA ↑" in md
    (tmp_path / "s" / "digits-class" / "ga" / "ga00" / "record.json").write_text("{")
    with pytest.raises(CorruptRecordError, match="ga00"):
        build_report(tmp_path / "s", tmp_path / "lb")
    assert paths[0].read_text() == md


def test_an_interrupt_right_after_the_staging_folder_is_made_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM handled just after the staging folder exists (a busy machine paused `ubench
    report` there, and `.ci/run`'s signal test found the folder left behind): the folder goes,
    the interrupt still propagates, and the previous report stays."""
    write(tmp_path / "s", [record("ga", 0, 0.9), record("base", 0, 0.0)])
    lb = tmp_path / "lb"
    first = build_report(tmp_path / "s", lb, formats=("md",))[0].read_text()
    made = Path.mkdir

    def mkdir_then_interrupt(self: Path, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        if ".report-" in self.name:
            raise KeyboardInterrupt  # what the SIGTERM handler raises (Terminated)

    monkeypatch.setattr(Path, "mkdir", mkdir_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_report(tmp_path / "s", lb, formats=("md",))
    monkeypatch.undo()
    assert not list(tmp_path.glob(".lb.report-*"))
    assert (lb / "README.md").read_text() == first


def _agreement(value: float, half: float = 0.02) -> dict:
    return {"value": value, "ci_low": value - half, "ci_high": value + half, "n": 100,
            "higher_is_better": True, "definition": {"n": 100}}


def test_judge_disagreement_flags_a_row_in_markdown_and_web_page(tmp_path: Path) -> None:
    """Remain generations are flagged per run (against the judges' agreement on real digits,
    decided at evaluation); forget generations per row, against the retrain oracle's."""
    flagged = [record("ga", seed, 0.9) for seed in (0, 1)]
    flagged[0]["details"] = {"judges_flagged": ["remain"], "judges_real_agreement": 0.978}
    flagged[1]["details"] = {"judges_flagged": [], "judges_real_agreement": 0.978}
    far = record("salun", 0, 0.95)  # its forget generations divide the judges, the oracle's not
    near = record("rl", 0, 0.95)
    oracle = record("retrain", 0, 0.99)
    # one seed of three whose judges split (graddiff on t2i-object): the row's mean is fine,
    # that run is not
    split = [record("esd-u", seed, 0.9) for seed in (0, 1, 2)]
    for rec, value in ((far, 0.50), (near, 0.66), (oracle, 0.70), *((f, 0.9) for f in flagged),
                       *zip(split, (0.50, 0.92, 0.95), strict=True)):
        rec["metrics"]["judge_agreement_forget"] = _agreement(value)
        rec.setdefault("details", {"judges_flagged": []})
    old = record("base", 0, 0.0)  # measured before the check: no flag, no claim
    recs = [*flagged, far, near, oracle, old, *split]
    write(tmp_path / "s", recs)
    rows = {r["method_id"]: r for r in next(iter(leaderboard_rows(recs).values()))}
    assert (rows["ga"]["judges_checked"], rows["ga"]["judges_flagged"]) == (2, 1)
    assert rows["salun"]["judges_forget_below"] == 0.70
    assert "judges_forget_below" not in rows["rl"]  # 0.68 is not wholly 0.05 below 0.70
    assert rows["esd-u"]["judge_agreement_forget_hi"] > 0.65  # the row's interval: no flag...
    assert rows["esd-u"]["judges_forget_runs"] == 1  # ...but its first run's is
    paths = build_report(tmp_path / "s", tmp_path / "lb")
    md = paths[0].read_text()
    (ga,) = [ln for ln in md.splitlines() if ln.startswith("| ga")]
    assert "⚑ judges disagree on the remain generations of 1 of 2 runs |" in ga
    (salun,) = [ln for ln in md.splitlines() if ln.startswith("| salun")]
    assert "⚑ judges agree on 0.50 of its forget generations, the retrain oracle's 0.70" in salun
    (esd,) = [ln for ln in md.splitlines() if ln.startswith("| esd-u")]
    assert "the retrain oracle's 0.70 \\(far below it in 1 of 3 runs\\)" in esd
    assert md.count("⚑ judges") == 3
    page = (tmp_path / "lb" / "index.html").read_text()
    assert page.count('class="flag"') == 3 and "the retrain oracle&#39;s 0.70" in page


def test_the_committed_summary_describes_the_committed_records() -> None:
    """leaderboard/ commits the packed records and the Markdown and CSV summary made from them
    (not the web page, its run pages, thumbnails or grids: build outputs). The summary must
    describe exactly the committed runs; its formatting is the report's, tested on fixture
    stores, so a change of the report's code does not force a data commit."""
    import csv

    from ubench.store.reader import load_records

    root = ROOT / "leaderboard"
    records = load_records(root / "records")
    assert records and all(r.get("_packed") for r in records), \
        "leaderboard/records holds run folders: pack them (`ubench pack leaderboard/records`)"
    with (root / "runs.csv").open(newline="") as fh:
        listed = {row["run_id"] for row in csv.DictReader(fh)}
    fix = "run `ubench report --store leaderboard/records --out leaderboard`"
    assert listed == {r["run_id"] for r in records}, f"leaderboard/runs.csv is stale: {fix}"
    manifest = json.loads((root / ".ubench-report.json").read_text())["files"]
    assert {"README.md", "leaderboard.csv", "runs.csv", "index.html"} <= set(manifest)
    assert (root / "README.md").read_text().startswith("<!-- GENERATED")


def test_evaluation_ranking_ranks_the_tuned_rows_by_the_fronts_scalar(tmp_path: Path) -> None:
    """The protocol's rows (at the committed tuned preset) are ranked on their own evaluation
    runs by keep-at-target with intervals; a row that misses the target ranks below every row
    that reaches it whatever it keeps; reference rows are listed, not ranked; a row whose runs
    saved no per-sample scores is named, not silently dropped; other configs are not ranked."""
    import numpy as np
    import pandas as pd
    from safetensors.numpy import save_file

    from ubench.catalog.presets import PRESET_DIR
    from ubench.catalog.registry import METHODS

    tuned = json.loads((PRESET_DIR / "tuned.json").read_text())["tasks"]["digits-class"]
    rng = np.random.default_rng(0)
    # method: (ua, ra, whether its runs saved scores, at the tuned point)
    rows = {"salun": (1.0, 0.99, True, True), "graddiff": (1.0, 0.90, True, True),
            "finetune": (0.2, 1.0, True, True), "ga": (1.0, 0.1, False, True),
            "rl": (1.0, 1.0, True, False), "retrain": (0.99, 1.0, True, False),
            "base": (0.0, 1.0, True, False)}
    recs, scores = [], {}
    for method, (ua, ra, saved, at_tuned) in rows.items():
        for seed in (0, 1):
            rec = record(method, seed, ua)
            rec["identity_version"] = 2  # made with asset digests in its identity: current
            if at_tuned:
                rec["method"]["config"].update(tuned["methods"][method]["values"])
            elif method == "rl":  # a config away from its tuned point: not a protocol row
                rec["method"]["config"]["lr"] = 0.123
            # (each seed a different model: its RA differs a little, so no run is a replicate)
            rec["metrics"]["ra"] = {**rec["metrics"]["ua"], "value": ra - 0.001 * seed}
            if saved:
                rec["artifacts"] = {"scores": "scores.safetensors"}
                scores[rec["run_id"]] = {"ua": (rng.random(200) < ua).astype(np.float64),
                                         "ra": (rng.random(300) < ra).astype(np.float64)}
            recs.append(validate_record(rec, "synthetic"))
    assert METHODS.get("rl").Config().to_dict()["lr"] != 0.123
    write(tmp_path / "s", recs)
    for rec in recs:
        if rec["run_id"] in scores:
            save_file(scores[rec["run_id"]], str(tmp_path / "s" / "digits-class" /
                                                 rec["method"]["id"] / rec["run_id"] /
                                                 "scores.safetensors"))
    build_report(tmp_path / "s", tmp_path / "lb", formats=("md", "csv", "html"))
    text = (tmp_path / "lb" / "README.md").read_text()
    # the ranking opens the task's section, before its table of every row
    section = text[text.index("## digits-class"):]
    assert section.index("### Ranking (") < section.index("### Every row")
    section = section[:section.index("### Every row")]
    lines = [ln for ln in section.splitlines() if (ln.startswith("| ") and "[tuned" in ln)
             or ln.startswith("| ref")]
    order = [ln.split("|")[3].strip() for ln in lines]
    assert order == ["salun \\[tuned\\]", "graddiff \\[tuned\\]", "finetune \\[tuned\\]",
                     "retrain", "base"]
    assert lines[0].startswith("| 1 [1, 1] | 1 |") and lines[2].startswith("| 3 [3, 3] | 3 |")
    assert "— (not reached)" in lines[2] and "0 of 2" in lines[2]
    assert "### Ranking (3 tiers)" in section
    assert "**3 tiers** over 3 ranked rows; first tier: salun \\[tuned\\]" in text
    # the ranking's own rule, not the tuning rule's tie margin
    assert "ranked by keep at target: the row's mean ra if its mean ua &gt;= 0.95" in section
    assert "ties within" not in section
    assert "Not ranked: ga \\[tuned\\] \\(a run saved no per-sample ua / ra scores\\)" in section
    assert "rl (lr=0.123)" not in section
    csv = pd.read_csv(tmp_path / "lb" / "ranking.csv")
    assert list(csv["method"]) == ["salun [tuned]", "graddiff [tuned]", "finetune [tuned]",
                                   "retrain", "base"]
    assert csv["rank"].iloc[:3].tolist() == [1, 2, 3] and csv["rank"].iloc[3:].isna().all()
    assert csv["tier"].iloc[:3].tolist() == [1, 2, 3] and csv["tier"].iloc[3:].isna().all()
    ok = csv[csv["reached"]]
    assert (ok["keep_at_target_lo"] <= ok["keep_at_target"]).all()
    assert (ok["keep_at_target"] <= ok["keep_at_target_hi"]).all()
    page = (tmp_path / "lb" / "index.html").read_text()
    ranking = page[page.index('<table class="others ranking">'):]
    ranking = ranking[:ranking.index("</table>")]
    assert ranking.index("salun [tuned]") < ranking.index("graddiff [tuned]") \
        < ranking.index("finetune [tuned]") < ranking.index("retrain")
    assert "<td>1 [1, 1]</td><td>1</td><td>salun [tuned]</td>" in ranking
    assert page.index('<details class="ranking"') < page.index('<table class="board">')
    assert "evaluation split: 3 tiers</summary>" in page
    assert "Not ranked: ga [tuned] (a run saved no per-sample ua / ra scores)." in page


def test_runs_of_one_model_count_once_in_the_interval() -> None:
    """A seed-independent model (a pinned oracle, base, UCE) evaluated under three run seeds is
    one model: the cell keeps that run's own bootstrap interval instead of collapsing to a
    zero-width t interval, and copies among distinct runs do not narrow the t interval."""
    same = [record("retrain", s, 0.95) for s in (0, 1, 2)]
    row = next(iter(leaderboard_rows(same).values()))[0]
    assert row["runs"] == 3 and row["distinct_runs"] == 1
    assert (row["ua"], row["ua_lo"], row["ua_hi"]) == pytest.approx((0.95, 0.94, 0.96))
    # a reference model re-measured on another machine (a metric drifted) is still one model:
    # its evaluations are averaged
    drift = [record("base", 0, 0.10), record("base", 1, 0.12)]
    row = next(iter(leaderboard_rows(drift).values()))[0]
    assert row["distinct_runs"] == 1 and row["ua"] == pytest.approx(0.11)
    # two instances, one of them evaluated twice: t over the two models (n = 2)
    mixed = [record("retrain", 0, 0.9, 0), record("retrain", 1, 0.9, 0),
             record("retrain", 0, 1.0, 3)]
    row = next(iter(leaderboard_rows(mixed).values()))[0]
    assert row["runs"] == 3 and row["distinct_runs"] == 2
    assert row["ua"] == pytest.approx(0.95)
    assert row["ua"] - row["ua_lo"] == pytest.approx(12.706 * 0.0707107 / 2 ** 0.5, rel=1e-3)
    # a method's runs are models of their own unless every metric is identical (UCE's closed
    # form under another seed)
    ga = [record("ga", 0, 0.9), record("ga", 1, 0.9), record("ga", 2, 0.8)]
    row = next(iter(leaderboard_rows(ga).values()))[0]
    assert row["distinct_runs"] == 2 and row["ua"] == pytest.approx(0.85)


def test_records_of_a_superseded_judge_get_tables_of_their_own() -> None:
    """A record whose headline judge has been replaced (the original digits judge) never shares a
    row with one read by the validated judge: its table is titled *(superseded judge)*, and the
    evaluation ranking ranks it only among its own kind."""
    from ubench.store.pinned import read_manifest

    digests = read_manifest()["assets"]
    old, new = [], []
    for seed in (0, 1):
        for judge, out in (("digits/judge", old), ("digits/judge-robust", new)):
            rec = record("graddiff", seed, 0.9 if judge == "digits/judge" else 0.5)
            rec["run_id"] += judge[-6:]
            rec["identity_version"] = 2
            rec["task"]["assets"] = {"judge": digests[judge]["digest"], "base": "b", "data": "d"}
            out.append(rec)
    tables = leaderboard_rows(old + new)
    titles = sorted(tables)
    assert len(titles) == 2 and titles[1].endswith(" (superseded judge)")
    assert not titles[0].endswith(")")  # the current table comes first, unmarked
    assert [r["ua"] for r in tables[titles[0]]] == [0.5]
    assert [r["ua"] for r in tables[titles[1]]] == [0.9]


def test_the_ranking_says_what_the_oracle_yardstick_draws() -> None:
    """The retrain oracle's own garbage rate, per forget instance, is printed under a ranking
    that reads oracle TV against it (issue 31: an oracle that draws garbage favours rows that
    do too)."""
    from ubench.report.build import oracle_yardsticks

    recs = []
    for cls, garbage in ((0, 0.0), (7, 0.54)):
        for seed in (0, 1):
            rec = record("retrain", seed, 0.99, forget_class=cls)
            rec["metrics"]["garbage_rate"] = {**rec["metrics"]["ua"], "value": garbage}
            recs.append(rec)
    tables = leaderboard_rows(recs)
    title = next(iter(tables))
    note = oracle_yardsticks(tables, {title: None})[title]  # type: ignore[dict-item]
    assert "forget_class 0: 0.000; forget_class 7: 0.540" in note
    assert oracle_yardsticks(tables, {}) == {}
