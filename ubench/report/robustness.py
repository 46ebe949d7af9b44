"""Attack records: where they live, how to read them, and the report's robustness tables.

**Layout.** An attack on a run writes ``<run folder>/attacks/<attack>/<attack_id>/attack.json``
(schema: ``ubench/store/attack_record.schema.json``, generated from
:class:`ubench.store.record.AttackRecord`)
plus its artifacts (``samples.png``, ``embedding.safetensors``, ``prompts.jsonl``).

**The loader contract** (:func:`load_attack_records`, for ``ubench report``, ``ubench compare``
and anyone else): one dict per valid attack record under the store, validated against the schema,
with ``_path`` added; keys as in :class:`~ubench.store.record.AttackRecord`:

* ``attack_id`` (identity: run id + attack id/version/config + attack seed), ``status``
  (``ok`` / ``failed`` / ``running``), ``seed``;
* ``run``: ``run_id``, ``task`` and ``method`` (copies of the run's record: id, version, config)
  and ``seed`` — enough to pair an attack with its run or with the same run in another store;
* ``attack``: ``id``, ``version``, ``config``;
* ``metrics``: ``{metric id: {value, ci_low, ci_high, n, higher_is_better, definition}}`` where
  every id carries its budget (``relearn_ua@50``, ``invert_rate@200``,
  ``softprompt_asr@2000``; :func:`ubench.api.parse_attack_metric_id` splits it);
* ``details``: ``forget_metric`` (the task metric the attack measures) and per-attack extras
  (``steps_to_relearn``, per-budget rates, seconds at each budget).

Pair records across stores by ``(run.run_id, attack.id, attack.config, seed)`` — i.e. by
``attack_id``. Corrupt records are reported together, as for runs.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from ubench.catalog import facts
from ubench.report.formats import BANNER, fmt, md, write_csv
from ubench.report.table import (
    REFERENCE_ORDER,
    aggregate,
    bounds,
    row_label,
    set_apart_suffix,
    tuned_choices,
)


# ---------------------------------------------------------------------- robustness tables
def _attack_label(rec: dict[str, Any]) -> str:
    """Attack id plus the config values that differ from its defaults on the run's task."""
    aid, task = rec["attack"]["id"], rec["run"]["task"]["id"]
    # no attack or task class is imported for built-ins (an attack no longer registered: {},
    # every value shown)
    defaults = facts.attack_defaults(aid, task)
    diff = {k: v for k, v in rec["attack"]["config"].items()
            if _norm(defaults.get(k)) != _norm(v)}
    return aid + (" (" + ", ".join(f"{k}={_norm(v)}" for k, v in sorted(diff.items())) + ")"
                  if diff else "")


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def robustness_rows(runs: list[dict[str, Any]], attacks: list[dict[str, Any]]
                    ) -> dict[str, dict[str, Any]]:
    """``{table title: {"attack", "forget_metric", "budgets", "rows"}}``: one table per task
    setting and attack (with its config), one row per method (reference rows first); each cell
    aggregates the attack records of the row's runs like the leaderboard does (mean, Student-t
    interval over runs; one run: its bootstrap interval)."""
    from ubench.api import parse_attack_metric_id

    by_run = {r["run_id"]: r for r in runs if r.get("status") == "ok"}
    tuned = tuned_choices(list(by_run.values()))
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for a in attacks:
        task = a["run"]["task"]
        if a["status"] != "ok":
            continue
        known = facts.task_facts(task["id"])
        if known is not None and known.version != task["version"]:
            continue  # an older task version: not comparable with current records
        setting = facts.setting_of(task["id"], task["config"])
        # an attack on a run read by a superseded judge (or a legacy run) is set apart like it
        attacked = by_run.get(a["run"]["run_id"])
        apart = set_apart_suffix(attacked) if attacked is not None else ""
        groups[(task["id"], json.dumps(setting, sort_keys=True), _attack_label(a),
                apart)].append(a)
    tables: dict[str, dict[str, Any]] = {}
    for (tid, setting_json, attack, apart), recs in sorted(groups.items()):
        setting = json.loads(setting_json)
        title = (f"{tid} — " + ", ".join(f"{k}={v}" for k, v in sorted(setting.items()))
                 + f" — {attack}" + apart)
        forget = str(recs[0].get("details", {}).get("forget_metric", ""))
        by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for a in recs:
            method = a["run"]["method"]
            run = by_run.get(a["run"]["run_id"], {"method": method})  # its preset provenance
            by_method[row_label(run, facts.default_config(method["id"], tid),
                                tuned.get((tid, method["id"])))].append(a)
        metric_ids = sorted({m for a in recs for m in a["metrics"]},
                            key=lambda m: (parse_attack_metric_id(m) or (m, 0))[::-1])
        rows = []
        for label, rs in by_method.items():
            rows.append(_row(label, rs, by_run, forget, metric_ids))
        rows.sort(key=lambda r: (REFERENCE_ORDER.get(r["method_id"], 2), r["method"]))
        tables[title] = {"attack": attack, "attack_id": recs[0]["attack"]["id"],
                         "forget_metric": forget, "metrics": metric_ids, "rows": rows}
    return tables


def _row(label: str, recs: list[dict[str, Any]], by_run: dict[str, dict[str, Any]],
         forget: str, metric_ids: list[str]) -> dict[str, Any]:
    first = recs[0]
    row: dict[str, Any] = {
        "method": label, "method_id": first["run"]["method"]["id"],
        "reference": bool(first["run"]["method"].get("reference", False)), "runs": len(recs),
        "training_free": bool(first["run"]["method"].get("training_free", False)),
        "seeds": sorted({a["run"]["seed"] for a in recs}), "cells": {}}
    plain = [by_run[a["run"]["run_id"]]["metrics"][forget] for a in recs
             if a["run"]["run_id"] in by_run and forget in by_run[a["run"]["run_id"]]["metrics"]]
    if forget and len(plain) == len(recs):
        row["cells"][forget] = _cell(plain, bounds(forget))
    for mid in metric_ids:
        ms = [a["metrics"][mid] for a in recs if mid in a["metrics"]]
        if len(ms) == len(recs):
            row["cells"][mid] = _cell(ms, bounds(forget) if forget and not mid.startswith(
                ("invert_rate", "softprompt_asr")) else (0.0, 1.0))
    key = f"steps_to_{first['attack']['id']}"
    if all(key in a.get("details", {}) for a in recs):
        reached = [a["details"][key] for a in recs]
        budget = max(int(a["details"].get("censored_at") or 0) for a in recs)
        row["steps_to"] = _median_steps(reached, budget)
    return row


def _cell(ms: list[dict[str, Any]], bounds: tuple[float, float]) -> dict[str, Any]:
    mean, lo, hi = aggregate([m["value"] for m in ms], [(m["ci_low"], m["ci_high"]) for m in ms],
                              bounds)
    return {"value": mean, "lo": lo, "hi": hi, "higher_is_better": ms[0]["higher_is_better"]}


def _median_steps(reached: list[int | None], budget: int) -> dict[str, Any]:
    """Median steps to the threshold over runs (a run that never got there counts as beyond the
    budget), and how many runs got there."""
    values = [math.inf if r is None else float(r) for r in reached]
    med = statistics.median(values)
    return {"median": None if math.isinf(med) else med, "reached": sum(r is not None
                                                                         for r in reached),
            "runs": len(reached), "budget": budget}


def _steps_text(s: dict[str, Any]) -> str:
    med = s["median"]
    shown = f"> {s['budget']}" if med is None else f"{med:g}"
    return f"{shown} ({s['reached']}/{s['runs']})"


def robustness_markdown(tables: dict[str, dict[str, Any]]) -> str:
    """The robustness tables as Markdown (strings from records escaped)."""
    lines = [BANNER, "", "# Robustness under attack", "",
             "Per task setting and attack: the run's plain forgetting metric next to the same "
             "metric (or the attack's success rate) after each attack budget. Each cell: mean "
             "over runs [95 % interval]; one run: its bootstrap interval over samples. Metric ids "
             "carry the budget (`relearn_ua@50`: UA after 50 relearning steps; "
             "`invert_rate@200`: generations with the learned condition that show the concept "
             "after 200 steps; `softprompt_asr@B`: UnlearnDiffAtk's success rate after B "
             "iterations per prompt). Reference rows are marked *(ref)*: the base model (the "
             "concept is there to be found) and the oracle retrained without it (the yardstick: "
             "an unlearned model should resist no worse than the oracle).", ""]
    for title, t in tables.items():
        names = ([t["forget_metric"]] if any(t["forget_metric"] in r["cells"]
                                             for r in t["rows"]) else []) + t["metrics"]
        has_steps = any("steps_to" in r for r in t["rows"])
        lines += [f"## {md(title)}", ""]
        head = ["method", *[md(n) + (" (plain)" if n == t["forget_metric"] else "")
                            for n in names]]
        if has_steps:
            head.append(f"steps to {md(t['attack_id'])} (runs)")
        head += ["runs", "seeds"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in t["rows"]:
            cells = [md(r["method"]) + (" *(ref)*" if r["reference"] else "")
                     + (" *(training-free)*" if r.get("training_free") else "")]
            for n in names:
                c = r["cells"].get(n)
                arrow = "" if c is None else ("↑" if c["higher_is_better"] else "↓")
                cells.append("—" if c is None else
                             f"{fmt(c['value'])} [{fmt(c['lo'])}, {fmt(c['hi'])}] {arrow}")
            if has_steps:
                cells.append(_steps_text(r["steps_to"]) if "steps_to" in r else "—")
            cells += [str(r["runs"]), md(",".join(map(str, r["seeds"])))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def robustness_frame_rows(tables: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The robustness tables in long form (one line per row and metric) for the CSV."""
    from ubench.api import parse_attack_metric_id

    out = []
    for title, t in tables.items():
        for r in t["rows"]:
            for name, c in r["cells"].items():
                parsed = parse_attack_metric_id(name)
                out.append({"table": title, "attack": t["attack"], "method": r["method"],
                            "reference": r["reference"], "metric": name,
                            "budget": parsed[1] if parsed else "",
                            "value": c["value"], "ci_low": c["lo"], "ci_high": c["hi"],
                            "higher_is_better": c["higher_is_better"], "runs": r["runs"],
                            "seeds": ",".join(map(str, r["seeds"])),
                            "steps_to": _steps_text(r["steps_to"]) if "steps_to" in r else None})
    return out


def write_robustness(runs: list[dict[str, Any]], attacks: list[dict[str, Any]],
                     folder: Path) -> list[str]:
    """Write ``robustness.md`` and ``robustness.csv`` into ``folder`` (the report's staging
    folder); returns the file names written (none when no attack record is usable)."""
    import pandas as pd

    tables = robustness_rows(runs, attacks)
    if not tables:
        return []
    (folder / "robustness.md").write_text(robustness_markdown(tables))
    write_csv(pd.DataFrame(robustness_frame_rows(tables)), folder / "robustness.csv")
    return ["robustness.md", "robustness.csv"]
