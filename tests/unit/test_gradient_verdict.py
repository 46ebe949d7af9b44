"""scripts/gradient_verdict.py: the paired boostalign - graddiff differences and the verdict."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.conftest import load_script


def _script() -> ModuleType:
    return load_script("gradient_verdict")


def test_paired_interval_holds_the_value_and_pairs_samples() -> None:
    s = _script()
    rng = np.random.default_rng(0)
    base = [rng.random(100) for _ in range(3)]
    shifted = [x + 0.1 for x in base]  # every pair differs by exactly 0.1: no spread at all
    value, lo, hi = s.paired(shifted, base, resamples=200)
    assert value == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same seeds"):
        s.paired(base, base[:2])


def test_verdict_reads_the_metric_direction() -> None:
    s = _script()
    assert s.verdict("concept_rate", (-0.2, -0.3, -0.1)) == "boostalign"  # lower is better
    assert s.verdict("alignment_test", (-0.2, -0.3, -0.1)) == "graddiff"
    assert s.verdict("forget_fidelity", (0.05, -0.01, 0.1)) == "tied"


def _rec(method: str, seed: int, task: str = "t2i-style") -> dict[str, Any]:
    return {"run_id": f"{method}-{seed}", "status": "ok", "seed": seed,
            "task": {"id": task}, "method": {"id": method}, "train_log": {"forget_off": 7},
            "metrics": {m: {"value": 0.5} for m in ("concept_rate", "alignment_test",
                                                     "forget_fidelity", "garbage_rate")}}


def test_report_says_whether_the_threshold_changed_the_verdict() -> None:
    s = _script()
    recs = [_rec(m, seed) for m in ("boostalign", "graddiff") for seed in range(3)]
    recs += [{**_rec(m, seed), "run_id": f"abs-{m}-{seed}"}
             for m in ("boostalign", "graddiff") for seed in range(3)]
    ids = {r["run_id"]: ("absolute m 1.1" if r["run_id"].startswith("abs") else
                         "relative (tuned)") for r in recs}
    rows = s.collect(recs, ids)

    def scores(rec: dict[str, Any]) -> dict[str, np.ndarray]:
        # relative: boostalign keeps more alignment; absolute: the two are the same
        up = rec["method"]["id"] == "boostalign" and not rec["run_id"].startswith("abs")
        return {m: np.full(50, 0.9 if (up and m == "alignment_test") else 0.5)
                for m in s.METRICS}

    text = "\n".join(s.report(rows, scores))
    assert "### t2i-style" in text and "| boostalign | relative (tuned) | 0.500 [0.500" in text
    assert "| 7 |" in text  # the brake's steps from the train log
    assert "+0.400 [+0.400, +0.400] (boostalign)" in text
    assert "yes, on alignment_test." in text
