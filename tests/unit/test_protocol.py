"""The fair protocol's pure parts: selection rules, targets, fronts, and the oracle gap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ubench.api import TuningRule
from ubench.report.protocol import (
    Point,
    best_keep_at,
    choose_target,
    front_area,
    front_scalars,
    oracle_gap,
    pareto_front,
    select,
    total_variation,
    tv_with_ci,
)

DIGITS = TuningRule("ua", "ra", target=0.95, tie_margin=0.005, tie_break="fd")
T2I = TuningRule("concept_rate", "alignment_test", ladder=(0.05, 0.1, 0.3, 0.9),
                 tie_margin=0.01)


def test_a_rule_takes_its_direction_from_the_registered_metric() -> None:
    assert DIGITS.forget_higher_is_better is True  # UA: more is more forgetting
    assert T2I.forget_higher_is_better is False  # concept rate: less is more forgetting
    assert TuningRule.from_dict(T2I.to_dict()) == T2I


def pt(method: str, forget: float, keep: float, fd: float = 0.0, **values: Any) -> Point:
    return Point(method, values, {DIGITS.forget: forget, DIGITS.keep: keep, "fd": fd,
                                  T2I.forget: forget, T2I.keep: keep})


def test_selection_reaches_the_target_then_keeps_most_then_breaks_ties() -> None:
    pts = [pt("m", 0.90, 0.999, lr=1), pt("m", 0.99, 0.990, fd=30, lr=2),
           pt("m", 1.00, 0.993, fd=40, lr=3), pt("m", 0.97, 0.80, lr=4)]
    chosen, reached = select(DIGITS, pts, 0.95)
    # 0.993 and 0.990 are tied (within 0.005): the lower FD wins
    assert reached and chosen.values == {"lr": 2}
    chosen, reached = select(DIGITS, [pts[0]], 0.95)
    assert not reached and chosen.values == {"lr": 1}


def test_a_loose_ladder_target_breaks_keep_ties_toward_more_forgetting() -> None:
    """Measured on t2i-attribute's tuning: at target 0.9 (set by the gradient family) CA had
    (concept 0.86, alignment 1.0, FD 33.5) and (0.00, 1.0, FD 58.4); by FD alone the point that
    barely forgets would be its tuned one."""
    pts = [pt("ca", 0.86, 1.0, fd=33.5, lr=1), pt("ca", 0.0, 1.0, fd=58.4, lr=2),
           pt("ca", 0.0, 0.34, fd=10.0, lr=3), pt("ca", 1.0, 1.0, fd=1.0, lr=4)]
    by_fd = TuningRule("concept_rate", "alignment_test", ladder=(0.9,), tie_margin=0.01,
                       tie_break="fd")
    loose = TuningRule("concept_rate", "alignment_test", ladder=(0.9,), tie_margin=0.01,
                       tie_break="fd", prefer_forgetting=True)
    assert select(by_fd, pts, 0.9)[0].values == {"lr": 1}
    assert select(loose, pts, 0.9)[0].values == {"lr": 2}
    # equal forgetting: the FD tie-break still decides
    pts.append(pt("ca", 0.0, 0.995, fd=40.0, lr=5))
    assert select(loose, pts, 0.9)[0].values == {"lr": 5}
    assert "the most forgetting, then the lowest fd" in loose.describe(0.9)
    assert TuningRule.from_dict(loose.to_dict()) == loose
    # a rule carried by an older record (no such key) reads back as before
    old = {k: v for k, v in by_fd.to_dict().items() if k != "prefer_forgetting"}
    assert TuningRule.from_dict(old) == by_fd


def test_no_point_reaching_the_target_picks_the_one_that_forgets_most() -> None:
    pts = [pt("m", 0.98, 0.9, lr=1), pt("m", 0.6, 0.1, lr=2), pt("m", 0.6, 0.5, lr=3)]
    chosen, reached = select(T2I, pts, 0.05)
    assert not reached and chosen.values == {"lr": 3}


def test_ladder_target_is_the_smallest_every_family_reaches() -> None:
    points = {"salun": [pt("salun", 0.0, 1.0)], "esd-u": [pt("esd-u", 0.08, 0.9)],
              "boostalign": [pt("boostalign", 0.95, 1.0), pt("boostalign", 0.25, 0.3)],
              "graddiff": [pt("graddiff", 0.99, 1.0)]}
    fam = {"salun": "random-label", "esd-u": "esd", "boostalign": "gradient",
           "graddiff": "gradient"}
    assert choose_target(T2I, points, fam) == (0.3, True)
    points["boostalign"] = [pt("boostalign", 0.95, 1.0)]
    assert choose_target(T2I, points, fam) == (0.9, False)
    assert choose_target(DIGITS, points, fam) == (0.95, True)  # a fixed target


def test_tuning_applies_the_garbage_policy() -> None:
    """On a task with a garbage limit (t2i: 0.5) a point that forgets by destroying the prompt
    reaches no target — not in the ladder, not in the selection — and the fallback for a
    method that reaches the target nowhere picks the most-forgetting *intact* point (v1 picked
    boostalign's lr 3e-4, which destroyed every forget prompt)."""
    def g(method: str, forget: float, keep: float, garbage: float, **values: Any) -> Point:
        p = pt(method, forget, keep, **values)
        p.metrics["garbage_rate"] = garbage
        return p

    pts = [g("b", 0.00, 0.60, 1.0, lr=3), g("b", 0.95, 1.0, 0.0, lr=1),
           g("b", 0.80, 0.9, 0.1, lr=2)]
    assert select(T2I, pts, 0.3) == (pts[0], True)  # without the policy: the destruction
    chosen, reached = select(T2I, pts, 0.3, garbage_limit=0.5)
    assert not reached and chosen.values == {"lr": 2}
    only = [g("b", 0.0, 0.5, 0.9, lr=3)]
    assert select(T2I, only, 0.3, garbage_limit=0.5)[0].values == {"lr": 3}  # nothing intact
    points = {"b": pts, "s": [g("s", 0.2, 1.0, 0.0)]}
    fam = {"b": "gradient", "s": "random-label"}
    assert choose_target(T2I, points, fam) == (0.3, True)
    assert choose_target(T2I, points, fam, garbage_limit=0.5) == (0.9, True)


def test_pareto_front_and_area() -> None:
    xy = [(0.0, 1.0), (0.5, 0.9), (0.4, 0.5), (1.0, 0.2), (1.0, 0.1)]
    assert pareto_front(xy) == [0, 1, 3]
    assert best_keep_at(xy, 0.6) == 0.2 and best_keep_at(xy, 0.0) == 1.0
    # K = 0.9 on (0, 0.5], 0.2 on (0.5, 1]
    assert front_area(xy) == pytest.approx(0.5 * 0.9 + 0.5 * 0.2)
    assert front_area([(1.0, 1.0)]) == pytest.approx(1.0)  # forgets fully, keeps everything


def test_front_scalars_have_intervals_that_contain_the_estimate() -> None:
    rng = np.random.default_rng(0)
    runs = []
    for ua, ra in [(0.99, 0.95), (0.5, 1.0)]:
        runs.append([{"ua": (rng.random(200) < ua).astype(float),
                      "ra": (rng.random(300) < ra).astype(float)} for _ in range(2)])
    s = front_scalars(DIGITS, 0.95, "m", runs, [{"lr": 1}, {"lr": 2}], resamples=200)
    assert s.reached and s.best_keep_ci[0] <= s.best_keep <= s.best_keep_ci[1]
    assert s.area_ci[0] <= s.area <= s.area_ci[1] and len(s.points) == 2


def test_total_variation() -> None:
    assert total_variation(["a"] * 10, ["a"] * 10) == 0
    assert total_variation(["a"] * 10, ["b"] * 10) == 1
    v, lo, hi = tv_with_ci(["a"] * 50 + ["b"] * 50, ["a"] * 100)
    assert v == pytest.approx(0.5) and lo <= v <= hi and lo >= 0 and hi <= 1


def _record(tmp: Path, name: str, labels: list[str], ua: float) -> dict[str, Any]:
    folder = tmp / name
    folder.mkdir()
    (folder / "samples.jsonl").write_text("".join(
        json.dumps({"split": "forget", "label": lab}) + "\n" for lab in labels))
    return {"run_id": name, "_path": str(folder / "record.json"),
            "artifacts": {"samples": "samples.jsonl"},
            "metrics": {"ua": {"value": ua, "ci_low": ua - 0.01, "ci_high": min(1, ua + 0.01),
                               "n": len(labels), "higher_is_better": True}}}


def test_a_model_that_draws_blank_images_is_far_from_the_oracle(tmp_path: Path) -> None:
    """The issue's check: blank generations score UA 1.0 and garbage rate ~1 with the pinned
    judge, and a large oracle gap (the oracle draws other digits)."""
    from ubench.tasks.digits.judge import NOT_A_DIGIT, judge_predict
    from ubench.tasks.digits.task import DigitsClass

    task = DigitsClass(DigitsClass.Config())
    blank = torch.ones(100, 1, 8, 8)  # white squares: what the collapsed model drew
    pred = judge_predict(task.judge, blank)[0].numpy()
    ua = float((pred != 0).mean())
    garbage = float((pred == NOT_A_DIGIT).mean())
    assert ua == 1.0 and garbage > 0.99
    oracle_labels = [str(k) for k in (1, 2, 3, 6, 8)] * 20  # other digits, no garbage
    rec = _record(tmp_path, "blank", ["not a digit" if p == NOT_A_DIGIT else str(p)
                                      for p in pred], ua)
    oracle = _record(tmp_path, "oracle", oracle_labels, 0.99)
    gap = oracle_gap(rec, oracle, ["ua"])
    assert gap["oracle_gap_ua"]["value"] == pytest.approx(0.01)
    assert gap["oracle_tv"]["value"] > 0.99 and gap["oracle_tv"]["ci_low"] > 0.9


def test_a_run_whose_config_is_the_tuned_choice_is_the_tuned_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The identity is the config: a run made before the tuning whose values are the tuned
    choice is the same run as the `--preset tuned` one, and the report labels it so."""
    from ubench.catalog import presets
    from ubench.report.table import row_label as _label
    from ubench.report.table import tuned_choices

    (tmp_path / "tuned.json").write_text(json.dumps({"tasks": {
        "t2i-attribute": {"methods": {"ga": {"values": {"lr": 1e-4}}}},
        "digits-class": {"methods": {"ga": {"values": {"lr": 3e-4}}}}}}))
    monkeypatch.setattr(presets, "PRESET_DIR", tmp_path)

    def rec(task: str, lr: float, protocol: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"task": {"id": task}, "method": {"id": "ga", "config": {"lr": lr, "steps": 5}},
                "protocol": protocol}

    made = rec("t2i-style", 1e-4, {"preset": "tuned", "tuned_on": "t2i-attribute",
                                   "values": {"lr": 1e-4}})
    records = [rec("digits-class", 3e-4), rec("digits-class", 1e-3), made,
               rec("t2i-style", 1e-4)]
    tuned = tuned_choices(records)
    assert tuned == {("digits-class", "ga"): {"lr": 3e-4}, ("t2i-style", "ga"): {"lr": 1e-4}}
    defaults = {"lr": 1e-3, "steps": 5}
    labels = [_label(r, defaults, tuned.get((r["task"]["id"], "ga"))) for r in records]
    assert labels == ["ga [tuned]", "ga", "ga [tuned]", "ga [tuned]"]


def test_intervals_of_oracle_gaps_over_runs_stay_in_their_range() -> None:
    """A mean of non-negative gaps over runs is never given a negative lower bound (the t
    interval of three small gaps would reach below 0), nor a TV above 1."""
    from ubench.report.table import aggregate as _aggregate
    from ubench.report.table import bounds as _bounds

    assert _bounds("oracle_tv") == (0.0, 1.0)
    assert _bounds("oracle_gap_ua") == (0.0, 1.0) and _bounds("oracle_gap_fd")[0] == 0.0
    mean, lo, hi = _aggregate([0.0, 0.002, 0.01], [(0, 0.01)] * 3, _bounds("oracle_gap_ua"))
    assert lo == 0.0 and hi > mean > 0
    assert _aggregate([0.99, 0.9, 1.0], [(0.9, 1.0)] * 3, _bounds("oracle_tv"))[2] == 1.0


def _bernoulli_runs(rng: np.random.Generator, ua: float, ra: float, n: int = 3
                    ) -> list[dict[str, np.ndarray]]:
    return [{"ua": (rng.random(300) < ua).astype(float),
             "ra": (rng.random(400) < ra).astype(float)} for _ in range(n)]


def test_standing_scores_an_evaluation_row_like_a_one_point_front() -> None:
    from ubench.report.protocol import standing

    rng = np.random.default_rng(1)
    runs = _bernoulli_runs(rng, 0.99, 0.9)
    s = standing(DIGITS, 0.95, "m [tuned]", "m", runs, resamples=300)
    assert s.reached and s.runs == 3 and s.runs_reaching == 3
    assert s.forget == pytest.approx(np.mean([r["ua"].mean() for r in runs]))
    assert s.keep_at_target == s.keep and s.area == pytest.approx(s.forget * s.keep)
    assert s.area == pytest.approx(front_area([(s.forget, s.keep)]))  # the one-point front
    for value, (lo, hi) in [(s.forget, s.forget_ci), (s.keep, s.keep_ci),
                            (s.keep_at_target, s.keep_at_target_ci), (s.area, s.area_ci)]:
        assert lo <= value <= hi and hi - lo > 0
    # a row that does not forget enough keeps its keep-metric but scores 0 at the target
    low = standing(DIGITS, 0.95, "f [tuned]", "f", _bernoulli_runs(rng, 0.2, 1.0),
                   resamples=300)
    assert not low.reached and low.runs_reaching == 0 and low.keep > 0.99
    assert low.keep_at_target == 0 and low.keep_at_target_ci == (0.0, 0.0)
    assert low.area == pytest.approx(low.forget * low.keep)
    with pytest.raises(ValueError):
        standing(DIGITS, 0.95, "x", "x", [])


def test_the_garbage_policy_keeps_a_row_that_destroys_the_prompt_off_the_target() -> None:
    """On a text-to-image task a row whose mean garbage rate exceeds the task's limit does not
    reach the target, on its mean and on every replicate; below the limit, or on a task that
    only reports garbage (no limit), it is scored as before."""
    from ubench.report.protocol import standing, standing_cells

    rng = np.random.default_rng(2)
    runs = _bernoulli_runs(rng, 0.99, 0.9)
    noise = [np.ones(100, dtype=bool) for _ in runs]
    clean = [np.zeros(100, dtype=bool) for _ in runs]
    plain = standing(DIGITS, 0.95, "m [tuned]", "m", runs, resamples=200)
    reported = standing(DIGITS, 0.95, "m [tuned]", "m", runs, resamples=200, garbage=noise)
    kept = standing(DIGITS, 0.95, "m [tuned]", "m", runs, resamples=200, garbage=clean,
                    garbage_limit=0.5)
    for s in (reported, kept):
        assert s.reached and s.keep_at_target == plain.keep_at_target and s.destroys is None
    out = standing(DIGITS, 0.95, "m [tuned]", "m", runs, resamples=200, garbage=noise,
                   garbage_limit=0.5)
    assert not out.reached and out.runs_reaching == 0 and out.destroys == 1.0
    assert out.keep_at_target == 0 and out.keep_at_target_ci == (0.0, 0.0)
    assert out.area == pytest.approx(plain.area) and out.forget == plain.forget
    assert "destroying the prompt" in standing_cells(out)["at"]


def test_rank_standings_shares_ties_puts_references_last_and_gives_rank_intervals() -> None:
    from ubench.report.protocol import rank_standings, standing

    rng = np.random.default_rng(2)
    tie = _bernoulli_runs(rng, 1.0, 0.8)  # two rows with the very same samples tie
    rows = {"clear [tuned]": _bernoulli_runs(rng, 1.0, 1.0), "tie-a [tuned]": tie,
            "tie-b [tuned]": tie, "miss [tuned]": _bernoulli_runs(rng, 0.1, 1.0),
            "retrain": _bernoulli_runs(rng, 1.0, 1.0)}
    standings = [standing(DIGITS, 0.95, label, label.split()[0], runs,
                          reference=label == "retrain", resamples=200)
                 for label, runs in rows.items()]
    ranked = rank_standings(standings)
    assert [s.label for s in ranked] == ["clear [tuned]", "tie-a [tuned]", "tie-b [tuned]",
                                         "miss [tuned]", "retrain"]
    assert [s.rank for s in ranked] == [1, 2, 2, 4, None]
    assert ranked[0].rank_ci == (1, 1) and ranked[3].rank_ci == (4, 4)
    assert ranked[1].rank_ci == ranked[2].rank_ci == (2, 2)  # tied in every replicate
    assert ranked[-1].reference and ranked[-1].rank_ci is None
    # clear and the tie are told apart in every replicate: three tiers; the reference has none
    assert [s.tier for s in ranked] == [1, 2, 2, 3, None]


def _at(label: str, rank: int, ci: tuple[int, int]) -> Any:
    from ubench.report.protocol import Standing

    s = Standing(label, label, False, 3, 1.0, (1.0, 1.0), 1.0, (1.0, 1.0), 1.0, (1.0, 1.0),
                 1.0, (1.0, 1.0), True, 3)
    s.rank, s.rank_ci = rank, ci
    return s


def test_tiers_are_anchored_on_their_best_row_not_chained() -> None:
    """A row joins the tier when its rank interval overlaps the tier's best row's; a chain of
    neighbours that overlap one another does not merge a board whose ends are apart."""
    from ubench.report.protocol import assign_tiers

    rows = [_at("a", 1, (1, 2)), _at("b", 2, (1, 3)), _at("c", 3, (3, 4)), _at("d", 4, (3, 5)),
            _at("e", 5, (4, 5))]
    assert assign_tiers(rows) == 2
    assert [s.tier for s in rows] == [1, 1, 2, 2, 2]  # c overlaps b, not a: a new tier
    one = [_at("a", 1, (1, 3)), _at("b", 2, (1, 3)), _at("c", 3, (1, 3))]
    assert assign_tiers(one) == 1  # a board that does not separate its rows says so
    apart = [_at("a", 1, (1, 1)), _at("b", 2, (2, 2))]
    assert assign_tiers(apart) == 2 and assign_tiers([]) == 0
