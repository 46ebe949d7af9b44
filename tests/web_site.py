"""A small store for the web-page tests: two tables, references, a robustness metric, tuning
points, a failed run, and hostile strings in every place a record can carry one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

#: a string that would run script, break a table or an attribute if it were not escaped
HOSTILE = ("x\"'|<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"
           "\nline2 | `tick` [link](javascript:window.__pwned=3)")
#: a method id that is not registered (ids name folders and files, so they are plain names: a
#: record whose id carries markup or a path is refused when loaded; test_hardening checks that)
EVIL_METHOD = "evil-plugin"
#: a metric no built-in knows (the robustness table's kind), and one with markup in its name
RELEARN = "relearn_ua@50"
EVIL_METRIC = "m<script>window.__pwned=4</script>"

#: (method, seed, ua, ra, extra config) of the main table, in the order they are written
MAIN = [("base", 0, 0.00, 0.999, {}), ("retrain", 0, 0.98, 0.998, {}),
        ("ga", 0, 0.90, 0.20, {}), ("ga", 1, 0.94, 0.30, {}),
        ("graddiff", 0, 1.00, 0.95, {}), ("ga", 0, 0.60, 0.70, {"note": HOSTILE}),
        (EVIL_METHOD, 0, 0.50, 0.85, {})]


def _metric(value: float, better: bool = True) -> dict[str, Any]:
    return {"value": value, "ci_low": max(0.0, value - 0.02), "ci_high": min(1.0, value + 0.02),
            "n": 100, "higher_is_better": better,
            "definition": {"n": 100, "formula": HOSTILE, "judge": "tiny"}}


def _record(method: str, seed: int, metrics: dict[str, Any], config: dict[str, Any],
            task_config: dict[str, Any] | None = None, run_id: str | None = None,
            status: str = "ok", error: str | None = None) -> dict[str, Any]:
    from ubench.catalog.facts import method_defaults
    from ubench.store.record import SCHEMA_VERSION
    from ubench.store.records import validate_record

    defaults = method_defaults(method)
    rec = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id or f"{method}-{seed}-{len(config)}"[:40].replace("/", "_"),
        "status": status, "created_at": "2026-01-01T00:00:00+00:00",
        "task": {"id": "digits-class", "version": "1",
                 "config": {"forget_class": 0, "remain_policy": "balanced",
                            **(task_config or {})},
                 "assets": {"base": "0123456789abcdef", "judge": HOSTILE}},
        "method": {"id": method, "version": "1",
                   "config": {**(defaults if defaults is not None else {"knob": HOSTILE}),
                              **config},
                   "reference": method in ("base", "retrain")},
        "seed": seed, "metrics": metrics,
        "cost": {"unlearn_seconds": 1.5 + seed, "peak_rss_mb": 100.0},
        "env": {"note": HOSTILE}, "error": error, "details": {"why": HOSTILE},
    }
    return validate_record(copy.deepcopy(rec), "synthetic")


def build_store(root: Path) -> list[dict[str, Any]]:
    """Write the records (and a coloured ``samples.png`` next to each) under ``root``."""
    from PIL import Image

    recs = []
    for i, (method, seed, ua, ra, config) in enumerate(MAIN):
        metrics = {"ua": _metric(ua), "ra": _metric(ra), "fd": {**_metric(0.5), "value": 30.0 + i,
                                                                "ci_low": 25.0, "ci_high": 40.0,
                                                                "higher_is_better": False}}
        metrics[RELEARN] = _metric(ua / 2)
        if method == EVIL_METHOD:
            metrics[EVIL_METRIC] = _metric(0.5)
        recs.append(_record(method, seed, metrics, config,
                            run_id=f"evil-{i}" if config else None))
    # a second table: a hostile setting value, one method
    recs.append(_record("ga", 0, {"ua": _metric(0.7), "ra": _metric(0.6)}, {},
                        task_config={"remain_policy": HOSTILE}, run_id="ga-hostile-setting"))
    # a failed run: in no table, listed with its (hostile) error
    recs.append(_record("graddiff", 2, {}, {}, status="failed", error=HOSTILE,
                        run_id="graddiff-failed"))
    for k, rec in enumerate(recs):
        folder = root / rec["task"]["id"] / rec["method"]["id"] / rec["run_id"]
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps(rec))
        if rec["status"] == "ok":
            Image.new("RGB", (48, 26), (40 * k % 256, 90, 200 - 20 * k % 200)).save(
                folder / "samples.png")
    return recs


def tuning_points(title: str) -> dict[str, dict[str, Any]]:
    """Extra plot points of the data contract: three tuning points and a two-point front."""
    pts: list[dict[str, Any]] = [
        {"method": "graddiff", "kind": "tuning", "x": 0.7, "y": 0.9, "x_lo": 0.65,
         "x_hi": 0.75, "y_lo": 0.85, "y_hi": 0.93},
        {"method": "graddiff", "kind": "tuning", "x": 0.8, "y": 0.8},
        {"method": "graddiff", "kind": "tuning", "x": 0.95, "y": 0.5},
        {"method": "graddiff", "kind": "front", "x": 0.7, "y": 0.9},
        {"method": "graddiff", "kind": "front", "x": 0.95, "y": 0.5},
    ]
    return {title: {"points": pts}}


def main_title(tables: dict[str, Any]) -> str:
    return next(t for t in tables if "remain_policy=balanced" in t)
