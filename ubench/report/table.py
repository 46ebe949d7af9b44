"""Records -> leaderboard rows: grouping, labels, aggregates, bounds.

Rows are grouped by task id and *setting* (the task config without the task's *instance* keys,
:attr:`ubench.api.Task.instance_keys` — ``forget_class``, ``forget_digit``, ``forget_style`` —
so runs on different instances and seeds of one setting aggregate while, e.g.,
``remain_policy=two-class`` gets its own table), then by method id and method config. A cell is
the mean over runs with a 95 % Student-t interval over runs (clipped to the metric's range); a
single run shows its own bootstrap interval. Runs of one model — a reference row's model
evaluated under several run seeds, or runs whose every metric is identical (a seed-independent
method) — count once (:func:`replicate_groups`). Reference rows (``base``, ``retrain``) come
first. Only ``ok`` records of the task's current version enter the tables. What the report needs
to know about methods and tasks comes from :mod:`ubench.catalog.facts` (no torch).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping
from functools import cache
from typing import Any

from ubench.catalog import facts
from ubench.report.formats import LEGACY_SUFFIX, SUPERSEDED_SUFFIX
from ubench.report.protocol import is_tuning

#: reference rows first, in this order
REFERENCE_ORDER = {"base": 0, "retrain": 1}


def row_label(rec: dict[str, Any], defaults: dict[str, Any],
           tuned: dict[str, Any] | None = None) -> str:
    """Method id plus the config values that differ from its defaults; a run made with a
    preset is ``method [preset]`` plus what differs from the preset's values; a model
    ``ubench eval`` scored is ``<its name> [external <digest>]``.

    ``tuned``: the committed tuned preset's values for the run's method and task. A run whose
    config holds them is that preset's row even if it was made without ``--preset`` (before the
    tuning, say): it is the same run (the identity is the config), so the tuned row never misses
    a method whose choice happens to be its defaults."""
    if rec["method"]["id"] == "external":  # a given model (ubench eval): its name and digest
        name = (rec.get("source") or {}).get("name") or "model"
        return f"{name} [external {str(rec['method']['config'].get('model', ''))[:8]}]"
    preset = (rec.get("protocol") or {}).get("preset")
    if preset:
        defaults = {**defaults, **(rec["protocol"].get("values") or {})}
    elif tuned is not None and all(rec["method"]["config"].get(k) == v
                                   for k, v in tuned.items()):
        preset = "tuned"
        defaults = {**defaults, **tuned}
    diff = {k: v for k, v in rec["method"]["config"].items() if defaults.get(k) != v}
    name = rec["method"]["id"] + (f" [{preset}]" if preset else "")
    return name + (
        " (" + ", ".join(f"{k}={v}" for k, v in sorted(diff.items())) + ")" if diff else "")


def bounds(metric: str) -> tuple[float, float]:
    """The range a metric's values live in (intervals of means over runs are clipped to it):
    the metric class's ``bounds``; for the derived oracle-gap metrics, 0 up to the width of the
    gapped metric's range, and [0, 1] for the TV distance."""
    if metric == "oracle_tv":
        return (0.0, 1.0)
    if metric.startswith("oracle_gap_"):
        lo, hi = bounds(metric.removeprefix("oracle_gap_"))
        return (0.0, hi - lo)
    cls = facts.metric_class(metric)
    if cls is None:  # a metric no longer registered: no clipping
        return (-math.inf, math.inf)
    return cls.bounds  # type: ignore[no-any-return]


def aggregate(values: list[float], cis: list[tuple[float, float]],
               bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, cis[0][0], cis[0][1]
    from scipy.special import stdtrit  # Student t quantile (what scipy.stats.t.ppf calls)

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stdtrit(n - 1, 0.975)) * sd / math.sqrt(n)
    return mean, max(bounds[0], mean - half), min(bounds[1], mean + half)


def is_legacy(rec: dict[str, Any]) -> bool:
    """A record whose run id does not include the digests of its assets (``identity_version``
    below 2): its judge and base model cannot be told apart from today's, so it is kept in
    tables of its own."""
    return int(rec.get("identity_version", 1)) < 2


@cache
def superseded_judge_digests() -> frozenset[str]:
    """The digests of the pinned judges that no longer measure the headline metrics, read from
    the pinned-asset manifest (JSON: no torch)."""
    from ubench.store.pinned import read_manifest

    assets = read_manifest().get("assets", {})
    return frozenset(str(assets[n]["digest"]) for n in facts.SUPERSEDED_JUDGES if n in assets)


def set_apart_suffix(rec: dict[str, Any]) -> str:
    """The title suffix of the tables a record goes to when it cannot sit beside current
    records: a legacy record (no asset digests in its id), or one whose headline metrics were
    read by a superseded judge (issue 31: the original digits judge misread narrow and thin
    zeros). ``""`` for a current record."""
    if is_legacy(rec):
        return LEGACY_SUFFIX
    if (rec["task"].get("assets") or {}).get("judge") in superseded_judge_digests():
        return SUPERSEDED_SUFFIX
    return ""


def tuned_choices(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(task, method): values}`` of the committed tuned preset, for every task of
    ``records``: the task's own section, or the section of the task it was tuned on (read from
    the provenance of the records made with ``--preset tuned``, so no task class is imported)."""
    from ubench.catalog.presets import PRESET_DIR

    path = PRESET_DIR / "tuned.json"
    if not path.is_file():
        return {}
    try:
        sections = json.loads(path.read_text()).get("tasks", {})
    except (OSError, ValueError):
        return {}
    source = {r["task"]["id"]: (r.get("protocol") or {}).get("tuned_on") for r in records
              if (r.get("protocol") or {}).get("preset") == "tuned"}
    out = {}
    for task in {r["task"]["id"] for r in records}:
        section = sections.get(source.get(task) or task) or {}
        for method, entry in (section.get("methods") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("values"), dict):
                out[(task, method)] = entry["values"]
    return out


def leaderboard_rows(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{table title: rows}, one table per (task, setting)."""
    tuned = tuned_choices(records)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if rec["status"] != "ok" or is_tuning(rec):  # tuning runs feed the fronts
            continue
        tid = rec["task"]["id"]
        task = facts.task_facts(tid)
        if task is not None and task.version != rec["task"]["version"]:
            continue  # an older task version: not comparable with current records
        setting = facts.setting_of(tid, rec["task"]["config"])
        groups[(tid, json.dumps(setting, sort_keys=True), set_apart_suffix(rec))].append(rec)
    tables: dict[str, list[dict[str, Any]]] = {}
    for (tid, setting_json, apart), recs in sorted(groups.items()):
        setting = json.loads(setting_json)
        title = f"{tid} — " + ", ".join(f"{k}={v}" for k, v in sorted(setting.items())) + apart
        by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rec in recs:
            method = rec["method"]["id"]
            by_method[row_label(rec, facts.default_config(method, tid),
                                tuned.get((tid, method)))].append(rec)
        rows = [make_row(label, rs) for label, rs in by_method.items()]
        rows.sort(key=lambda r: (REFERENCE_ORDER.get(r["method_id"], 2), r["method"]))
        flag_forget_agreement(rows)
        tables[title] = rows
    return tables


def make_row(label: str, recs: list[dict[str, Any]]) -> dict[str, Any]:
    runs = sorted(recs, key=run_order)  # (the aggregates keep the store's order of recs)
    row: dict[str, Any] = {
        "method": label, "method_id": recs[0]["method"]["id"],
        "reference": recs[0]["method"].get("reference", False), "runs": len(recs),
        "training_free": bool(recs[0]["method"].get("training_free", False)),
        "seeds": sorted({r["seed"] for r in recs}),
        "forget": sorted({str(v) for r in recs for v in
                          facts.instance_of(r["task"]["id"], r["task"]["config"]).values()}),
        "_first": runs[0].get("_path", ""),
        "_runs": runs,  # the records of the row, first run first (the HTML page lists them)
    }
    names = metric_order({k for r in recs for k in r["metrics"]})
    groups = replicate_groups(recs)
    row["distinct_runs"] = len(groups)
    for name in names:
        # one value per model: the mean of its evaluations (they differ only where a metric
        # was re-measured on another machine), with its first evaluation's interval
        units = [[r["metrics"][name] for r in g if name in r["metrics"]] for g in groups]
        units = [u for u in units if u]
        mean, lo, hi = aggregate([sum(m["value"] for m in u) / len(u) for u in units],
                                  [(u[0]["ci_low"], u[0]["ci_high"]) for u in units],
                                  bounds(name))
        row[name] = mean
        row[f"{name}_lo"], row[f"{name}_hi"] = lo, hi
        row[f"{name}_higher_is_better"] = units[0][0]["higher_is_better"]
    row["metric_names"] = names
    # the judge-agreement check (docs/judges.md): runs whose two validated judges disagree well
    # beyond their disagreement on real digits, and on which split
    checked = [r for r in recs if "judges_flagged" in (r.get("details") or {})]
    flagged = [r for r in checked if "remain" in r["details"]["judges_flagged"]]
    row["judges_checked"], row["judges_flagged"] = len(checked), len(flagged)
    row["unlearn_s"] = sum(r["cost"].get("unlearn_seconds", 0) for r in recs) / len(recs)
    row["peak_rss_mb"] = max(r["cost"].get("peak_rss_mb", 0) for r in recs)
    return row


def replicate_groups(recs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The runs of a row grouped by the model they evaluated, so that a model evaluated under
    several run seeds counts once in an interval over runs (three evaluations of one oracle are
    one model, not three). A reference row's model does not depend on the run seed (the base
    model, the retrain oracle of the instance: pinned or keyed by recipe), so its runs group by
    task instance and assets; another method's runs group only when every metric value is
    identical — a seed-independent method such as UCE's closed form, evaluated on the same
    fixed evaluation seeds. Groups keep the order of their first runs."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        if r["method"].get("reference"):
            key = json.dumps([r["task"]["config"], r["task"].get("assets")], sort_keys=True,
                             default=str)
        else:
            key = json.dumps([r["task"]["config"],
                              sorted((k, m["value"]) for k, m in r["metrics"].items())],
                             sort_keys=True, default=str)
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def distinct_runs(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first run of each of :func:`replicate_groups`: one run per model."""
    return [g[0] for g in replicate_groups(recs)]


def run_order(rec: dict[str, Any]) -> tuple[Any, ...]:
    """A row's runs by seed, then task config (the first one's grid represents the row)."""
    return (rec["seed"], json.dumps(rec["task"]["config"], sort_keys=True),
            rec.get("_path", ""))


#: a row's forget-split judge agreement is flagged when its interval lies wholly this far below
#: the retrain oracle row's agreement (the same margin as the remain split's, against real digits)
AGREEMENT_MARGIN = 0.05


def flag_forget_agreement(rows: list[dict[str, Any]]) -> None:
    """Flag every row whose two validated judges agree on its forget generations well below how
    they agree on the retrain oracle's — the row's interval over runs, or any one run's own
    bootstrap interval, lying wholly :data:`AGREEMENT_MARGIN` below the oracle's agreement
    (``row["judges_forget_below"]``: the oracle's value; ``row["judges_forget_runs"]``: how many
    runs). The oracle's own forget generations are the yardstick, because what a model draws for
    a concept it does not know divides the judges even when the model is the oracle. Per run,
    as the remain check is: one seed that draws the concept in a shape the judges split is
    enough to doubt the row's concept rate, however well the other seeds agree."""
    oracle = next((r for r in rows if r["method_id"] == "retrain"
                   and "judge_agreement_forget" in r), None)
    if oracle is None:
        return
    bar = oracle["judge_agreement_forget"] - AGREEMENT_MARGIN
    for r in rows:
        if r is oracle or "judge_agreement_forget" not in r:
            continue
        runs = [rec for rec in r["_runs"]
                if rec["metrics"].get("judge_agreement_forget", {}).get("ci_high", 1.0) < bar]
        if runs or r["judge_agreement_forget_hi"] < bar:
            r["judges_forget_below"] = oracle["judge_agreement_forget"]
            r["judges_forget_runs"] = len(runs)


def judge_flag(row: Mapping[str, Any]) -> str | None:
    """The row's judge-agreement flag as a short text (None when nothing is flagged): remain
    generations the judges read unlike real digits, forget generations they read far less alike
    than the retrain oracle's (per run, or over the row's runs)."""
    parts = []
    if row.get("judges_flagged"):
        parts.append(f"judges disagree on the remain generations of {row['judges_flagged']} of "
                     f"{row['judges_checked']} runs")
    if "judges_forget_below" in row:
        runs = row.get("judges_forget_runs", 0)
        where = (f" (far below it in {runs} of {row['runs']} runs)" if runs else "")
        parts.append(f"judges agree on {row['judge_agreement_forget']:.2f} of its forget "
                     f"generations, the retrain oracle's {row['judges_forget_below']:.2f}"
                     + where)
    return "; ".join(parts) or None


def metric_order(names: set[str]) -> list[str]:
    """Built-in metrics in catalogue order (UA, RA, FD), then any others alphabetically."""
    from ubench.catalog.builtins import BUILTIN_METRICS

    order = list(BUILTIN_METRICS)
    return sorted(names, key=lambda k: (order.index(k) if k in order else len(order), k))


def preset_targets() -> dict[str, float]:
    """The forgetting targets the committed tuned preset chose, per task (if any)."""
    from ubench.catalog.presets import PRESET_DIR

    path = PRESET_DIR / "tuned.json"
    if not path.is_file():
        return {}
    try:
        tasks = json.loads(path.read_text()).get("tasks", {})
        return {t: float(v["target"]) for t, v in tasks.items() if v.get("target") is not None}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


