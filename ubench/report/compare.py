"""``ubench compare BASELINE CURRENT``: paired, per-sample regression testing of two result sets.

Runs are **paired by their config id** (the run identity without the asset digests: same task,
version, config, user files, method, config and seed) and must then have been measured with the
same assets (judge, base model, data): comparing across a judge change is refused unless
``allow_asset_change``. For every paired run and metric:

* the **difference** ``current - baseline``;
* a **paired bootstrap** interval: sample ``i`` of both runs was generated from the same seed, so
  the per-sample scores (``scores.safetensors``) are resampled with one set of indices for both
  sides, and the interval is that of the difference of their means; for Fréchet distances the
  paired generated features (``features.safetensors``) are resampled and FD recomputed on both
  sides against the fixed reference (basic bootstrap, as the metric's own interval). A run
  without per-sample files (a legacy record; the committed leaderboard keeps no features) gets
  an *unpaired* interval, ``±sqrt(h_a^2 + h_b^2)`` from the two runs' own half-widths, and says so;
* a **regression** when the change goes in the metric's bad direction, its interval excludes 0
  and it is larger than the metric's tolerance (``Metric.tolerance`` absolute,
  ``Metric.relative_tolerance`` of the baseline value; the larger applies).

Rows aggregated over runs (method x task setting, over forget instances and seeds) get the same
treatment over runs: the mean of the per-run differences with an interval over the pairs
(Student-t for fewer than ten runs, a percentile bootstrap from ten on; the output says which).
The output is a Markdown report (regressions first) or JSON; the exit status is 0 (no
regression), 1 (a regression) or 2 (unusable input, with the fix).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ubench.catalog import facts
from ubench.core.bootstrap import BOOTSTRAP_SEED
from ubench.core.digest import stable_hash
from ubench.core.errors import ConfigError, CorruptRecordError, UbenchError
from ubench.store import reader
from ubench.store.layout import RECORD_FILE
from ubench.store.reader import load_records

#: resamples of the paired bootstrap (means: vectorised; Fréchet: one sqrtm per side each)
MEAN_RESAMPLES = 2000
FRECHET_RESAMPLES = 200


class CompareError(UbenchError):
    """Inputs ``ubench compare`` cannot use (exit 2)."""

    exit_code = 2


# ---------------------------------------------------------------------- reading
def config_id(rec: Mapping[str, Any]) -> str:
    """The record's config id (its run id for legacy records, whose ids had no assets)."""
    if "config_id" in rec:
        return str(rec["config_id"])
    if rec.get("identity_version", 1) >= 2:  # recompute, should a writer have left it out
        task = {k: v for k, v in rec["task"].items() if k in ("id", "version", "config",
                                                                 "inputs")}
        method = {k: v for k, v in rec["method"].items() if k in ("id", "version", "config")}
        return stable_hash({"task": task, "method": method, "seed": rec["seed"]}, 16)
    return str(rec["run_id"])


def load_side(path: str | Path, what: str) -> list[dict[str, Any]]:
    """Every record under ``path`` (a store, a folder of records or one run's folder)."""
    root = Path(path)
    if not root.exists():
        raise CompareError(f"{what} {root} does not exist; pass a results store or a folder of "
                           "records (e.g. leaderboard/records)")
    if root.is_file():
        root = root.parent if root.name == RECORD_FILE else root
        if root.is_file():
            raise CompareError(f"{what} {root} is a file; pass a results store or a record "
                               "folder")
    try:
        records = load_records(root)
    except CorruptRecordError as e:
        raise CompareError(str(e)) from None
    if not records:
        raise CompareError(f"{what} {root} holds no records (no run folder or packed dataset "
                           "under it); pass a results store or leaderboard/records")
    return records


def model_key(rec: Mapping[str, Any]) -> str:
    """What ``--pair-by model`` pairs by: the task, its config and the weights' content digest
    (a run's ``model_digest``; an ``external`` row's is its config's ``model``); "" for a
    record with no saved model (a reference row, a run made before runs recorded it)."""
    digest = rec.get("model_digest") or (rec["method"]["config"].get("model")
                                         if rec["method"]["id"] == "external" else None)
    if not digest:
        return ""
    return stable_hash({"task": rec["task"]["id"], "config": rec["task"]["config"],
                        "version": rec["task"]["version"], "model": digest}, 16)


def _index(records: list[dict[str, Any]], what: str, by: str = "config"
           ) -> dict[str, list[dict[str, Any]]]:
    """The records by config id (or by :func:`model_key`). One id may hold several records
    measured with different assets (a store with legacy records and their reruns on the pinned
    assets); two records of one configuration *and* one set of assets cannot be told apart,
    which is an error."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        key = config_id(rec) if by == "config" else model_key(rec)
        if not key:
            key = f"unpaired:{rec['run_id']}"  # no saved model: pairs with nothing
        same = out.setdefault(key, [])
        for other in same:
            if _assets_key(other) == _assets_key(rec):
                raise CompareError(
                    f"{what} holds two records of one run configuration measured with the same "
                    f"assets ({rec['task']['id']} / {rec['method']['id']} seed {rec['seed']}: "
                    f"runs {other['run_id']} and {rec['run_id']}); keep one of them (move the "
                    "other run folder away)")
        same.append(rec)
    return out


def _assets_key(rec: Mapping[str, Any]) -> str:
    """The asset digests a record was measured with (legacy records: none)."""
    assets = rec["task"].get("assets")
    return "legacy" if assets is None else json.dumps(assets, sort_keys=True)


def _pair(base: Mapping[str, list[dict[str, Any]]], cur: Mapping[str, list[dict[str, Any]]]
          ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[dict[str, Any]],
                     list[dict[str, Any]]]:
    """(pairs, baseline-only, current-only). Runs pair by config id; where a side holds
    several records of one configuration, records measured with the same assets pair first,
    and one leftover on each side pairs as an asset change."""
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    only_b: list[dict[str, Any]] = []
    only_c: list[dict[str, Any]] = []
    for key in sorted(set(base) | set(cur)):
        bs = {_assets_key(r): r for r in base.get(key, [])}
        cs = {_assets_key(r): r for r in cur.get(key, [])}
        same = sorted(set(bs) & set(cs))
        pairs += [(bs[a], cs[a]) for a in same]
        rest_b = [r for a, r in sorted(bs.items()) if a not in same]
        rest_c = [r for a, r in sorted(cs.items()) if a not in same]
        if len(rest_b) == 1 and len(rest_c) == 1:
            pairs.append((rest_b[0], rest_c[0]))
        else:
            only_b += rest_b
            only_c += rest_c
    return pairs, only_b, only_c


def _loose_key(rec: Mapping[str, Any]) -> str:
    """The identity without task version and assets: used only to explain unpaired runs."""
    return stable_hash({"task": rec["task"]["id"], "config": rec["task"]["config"],
                        "method": rec["method"]["id"], "mconfig": rec["method"]["config"],
                        "seed": rec["seed"]}, 16)


def _samples_check(rec: Mapping[str, Any]) -> None:
    """Refuse a run whose samples are truncated or corrupt (one line, the fix)."""
    try:
        reader.samples(rec)
    except CorruptRecordError as e:
        raise CompareError(str(e)) from None


def _arrays(rec: Mapping[str, Any], kind: str) -> dict[str, np.ndarray]:
    """The run's per-sample ``scores`` or ``features`` as numpy arrays ({} when it has none)."""
    try:
        return reader.scores(rec) if kind == "scores" else reader.features(rec)
    except CorruptRecordError as e:
        raise CompareError(str(e)) from None


# ---------------------------------------------------------------------- statistics
def paired_mean_delta(a: np.ndarray, b: np.ndarray, resamples: int = MEAN_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(mean(b) - mean(a), low, high): percentile interval of the difference of means over
    resamples of the paired indices."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = b - a
    n = len(d)
    if n == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    stats = d[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return float(d.mean()), float(lo), float(hi)


def paired_frechet_delta(fa: np.ndarray, fb: np.ndarray, ref_mean: np.ndarray,
                         ref_cov: np.ndarray, resamples: int = FRECHET_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(FD(b) - FD(a), low, high) against one fixed reference: the generated features of both
    runs are resampled with the same indices; basic bootstrap interval (resampling inflates FD
    on both sides, and the basic interval corrects the rest to first order)."""
    from ubench.metrics.frechet import frechet_from_stats, gaussian_stats

    def fd(x: np.ndarray) -> float:
        return frechet_from_stats(*gaussian_stats(x), ref_mean, ref_cov)

    fa, fb = np.asarray(fa, dtype=np.float64), np.asarray(fb, dtype=np.float64)
    delta = fd(fb) - fd(fa)
    if np.array_equal(fa, fb):
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    n = len(fa)
    stats = []
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        stats.append(fd(fb[idx]) - fd(fa[idx]))
    q_lo, q_hi = np.quantile(stats, [0.025, 0.975])
    return delta, 2 * delta - float(q_hi), 2 * delta - float(q_lo)


#: from this many paired runs on, a row's interval over runs is a percentile bootstrap; below,
#: a bootstrap of a handful of values is only their range (two deltas 0.1 and 0.3 would give a
#: "95 %" interval [0.1, 0.3]), so the row gets a Student-t interval instead
BOOTSTRAP_MIN_RUNS = 10


def interval_over_runs(deltas: list[float], resamples: int = MEAN_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float, str]:
    """(mean, low, high, how) of per-run differences: a 95 % Student-t interval over the pairs
    when there are fewer than :data:`BOOTSTRAP_MIN_RUNS` (``how`` = ``"runs, t"``), a percentile
    bootstrap over them otherwise (``"runs, bootstrap"``)."""
    d = np.asarray(deltas, dtype=np.float64)
    n = len(d)
    if n >= BOOTSTRAP_MIN_RUNS:
        mean, lo, hi = paired_mean_delta(np.zeros(n), d, resamples, seed)
        return mean, lo, hi, "runs, bootstrap"
    from scipy.special import stdtrit  # Student t quantile (what scipy.stats.t.ppf calls)

    mean = float(d.mean())
    half = float(stdtrit(n - 1, 0.975)) * float(d.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, "runs, t"


# ---------------------------------------------------------------------- tolerances
@dataclass(frozen=True)
class Tolerance:
    absolute: float
    relative: float

    def of(self, baseline: float) -> float:
        return max(self.absolute, self.relative * abs(baseline))

    def __str__(self) -> str:
        parts = []
        if self.absolute:
            parts.append(f"{self.absolute:g}")
        if self.relative:
            parts.append(f"{100 * self.relative:g} %")
        return " or ".join(parts) or "0"


def parse_tolerances(items: list[str]) -> dict[str, Tolerance]:
    """``["ra=0.01", "fd=5%"]`` -> tolerances (a ``%`` value is relative to the baseline)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        try:
            if not (sep and name):
                raise ValueError
            rel = value.endswith("%")
            x = float(value[:-1]) / 100 if rel else float(value)
            if not math.isfinite(x) or x < 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"bad --tolerance {item!r}; write METRIC=VALUE (absolute, e.g. "
                              "ra=0.01) or METRIC=PERCENT% (relative, e.g. fd=5%)") from None
        out[name] = Tolerance(0.0, x) if rel else Tolerance(x, 0.0)
    return out


def metric_tolerance(name: str, overrides: Mapping[str, Tolerance]) -> Tolerance:
    if name in overrides:
        return overrides[name]
    from ubench.catalog.registry import METRICS

    if name in METRICS:
        try:
            cls = METRICS.get(name)
            return Tolerance(float(cls.tolerance), float(cls.relative_tolerance))
        except Exception:  # a metric whose module no longer imports: no tolerance
            pass
    return Tolerance(0.0, 0.0)


# ---------------------------------------------------------------------- comparison
@dataclass
class MetricDelta:
    metric: str
    before: float
    after: float
    delta: float
    low: float
    high: float
    #: "paired" (per-sample bootstrap), "unpaired" (from the two intervals), "runs" (over runs)
    interval: str
    higher_is_better: bool
    tolerance: str
    regression: bool
    improvement: bool


@dataclass
class PairResult:
    task: str
    setting: str
    method: str
    seed: int
    instance: str
    config_id: str
    baseline_run: str
    current_run: str
    metrics: list[MetricDelta] = field(default_factory=list)


@dataclass
class Comparison:
    baseline: str
    current: str
    pairs: list[PairResult]
    aggregates: list[PairResult]
    only_baseline: list[dict[str, Any]]
    only_current: list[dict[str, Any]]
    not_ok: list[dict[str, Any]]
    #: whether the paired runs' float kernels agree (:func:`numerics_of`)
    numerics: dict[str, Any] = field(default_factory=dict)

    @property
    def regressions(self) -> list[tuple[PairResult, MetricDelta]]:
        return [(p, m) for p in [*self.pairs, *self.aggregates] for m in p.metrics
                if m.regression]

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "current": self.current,
                "regressions": len(self.regressions),
                "pairs": [asdict(p) for p in self.pairs],
                "aggregates": [asdict(p) for p in self.aggregates],
                "only_baseline": self.only_baseline, "only_current": self.only_current,
                "not_ok": self.not_ok, "numerics": self.numerics}


def _defaults(kind: str, name: str) -> dict[str, Any]:
    """A built-in config's defaults from ``ubench/catalog/config_schema.json`` (no torch import)."""
    from ubench.catalog.fastcheck import schema

    entry = schema().get(kind, {}).get(name)
    return {k: f["default"] for k, f in entry["fields"].items()} if entry else {}


def _diff(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(config.items())
                     if k not in defaults or defaults[k] != v)


def _setting(rec: Mapping[str, Any]) -> str:
    """The task config values that differ from the task's defaults (the instance aside: the
    task's :attr:`~ubench.api.Task.instance_keys`)."""
    task = rec["task"]["id"]
    return _diff(facts.setting_of(task, rec["task"]["config"]), _defaults("tasks", task))


def _instance(rec: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in
                    facts.instance_of(rec["task"]["id"], rec["task"]["config"]).items())


def _method_label(rec: Mapping[str, Any]) -> str:
    """``method [preset] (values that differ from the method's own defaults)``."""
    preset = (rec.get("protocol") or {}).get("preset")
    diff = _diff(rec["method"]["config"], _defaults("methods", rec["method"]["id"]))
    return rec["method"]["id"] + (f" [{preset}]" if preset else "") + (
        f" ({diff})" if diff else "")


def _brief(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {"task": rec["task"]["id"], "method": rec["method"]["id"], "seed": rec["seed"],
            "instance": _instance(rec), "run_id": rec["run_id"], "status": rec["status"]}


def _judge(delta: float, lo: float, hi: float, hib: bool, before: float, tol: Tolerance
           ) -> tuple[bool, bool]:
    """(regression, improvement) by the rule in the module docstring."""
    if not all(math.isfinite(v) for v in (delta, lo, hi)):
        return False, False
    bad = -delta if hib else delta  # > 0 when the change goes in the bad direction
    excludes_zero = lo > 0 or hi < 0
    big = abs(delta) > tol.of(before)
    return bad > 0 and excludes_zero and big, bad < 0 and excludes_zero and big


def compare_pair(a: dict[str, Any], b: dict[str, Any], tolerances: Mapping[str, Tolerance]
                 ) -> PairResult:
    """Every metric the two runs share, with its paired interval and verdict."""
    sa, sb = _arrays(a, "scores"), _arrays(b, "scores")
    fa, fb = _arrays(a, "features"), _arrays(b, "features")
    out = PairResult(a["task"]["id"], _setting(a), _method_label(a), int(a["seed"]),
                     _instance(a), config_id(a), a["run_id"], b["run_id"])
    for name in sorted(set(a["metrics"]) & set(b["metrics"])):
        ma, mb = a["metrics"][name], b["metrics"][name]
        before, after = float(ma["value"]), float(mb["value"])
        kind = "paired"
        if name in sa and name in sb and len(sa[name]) == len(sb[name]):
            for rec, value, arr in ((a, before, sa[name]), (b, after, sb[name])):
                _check_headline(rec, name, value, arr)
            delta, lo, hi = paired_mean_delta(sa[name], sb[name])
            delta = after - before
        elif (f"{name}.features" in fa and f"{name}.features" in fb
              and fa[f"{name}.features"].shape == fb[f"{name}.features"].shape
              and np.array_equal(fa[f"{name}.ref_mean"], fb[f"{name}.ref_mean"])):
            _, lo, hi = paired_frechet_delta(fa[f"{name}.features"], fb[f"{name}.features"],
                                             fa[f"{name}.ref_mean"], fa[f"{name}.ref_cov"])
            delta = after - before
            lo, hi = min(lo, delta), max(hi, delta)
        else:
            kind = "unpaired"
            delta = after - before
            half = math.hypot((ma["ci_high"] - ma["ci_low"]) / 2,
                              (mb["ci_high"] - mb["ci_low"]) / 2)
            lo, hi = delta - half, delta + half
        hib = bool(ma["higher_is_better"])
        tol = metric_tolerance(name, tolerances)
        reg, imp = _judge(delta, lo, hi, hib, before, tol)
        out.metrics.append(MetricDelta(name, before, after, delta, lo, hi, kind, hib, str(tol),
                                       reg, imp))
    return out


def _check_headline(rec: Mapping[str, Any], name: str, value: float, scores: np.ndarray) -> None:
    """Refuse a run whose headline value is not the mean of its per-sample scores (the record or
    its scores were edited, or belong to different runs): the paired interval would describe
    other numbers than the delta it is printed beside."""
    mean = float(np.mean(scores))
    if not math.isclose(mean, value, rel_tol=1e-9, abs_tol=1e-12) and \
            not (math.isnan(mean) and math.isnan(value)):
        raise CompareError(f"run {rec['run_id']} ({reader.where(rec)}) records {name} = "
                           f"{value:.6g} but its per-sample scores average {mean:.6g}: its "
                           "record or its scores were edited or mixed up; re-run that run or "
                           "restore both from where it was made")


def aggregate(pairs: list[PairResult], tolerances: Mapping[str, Tolerance]) -> list[PairResult]:
    """Per (task, setting, method): the mean of the per-run differences over its paired runs
    (two or more), with an interval over the pairs valid for their number
    (:func:`interval_over_runs`)."""
    groups: dict[tuple[str, str, str], list[PairResult]] = defaultdict(list)
    for p in pairs:
        groups[(p.task, p.setting, p.method)].append(p)
    out = []
    for (task, setting, method), ps in sorted(groups.items()):
        if len(ps) < 2:
            continue
        row = PairResult(task, setting, method, -1, f"{len(ps)} runs", "", "", "")
        names = sorted(set.intersection(*[{m.metric for m in p.metrics} for p in ps]))
        for name in names:
            ms = [next(m for m in p.metrics if m.metric == name) for p in ps]
            before = float(np.mean([m.before for m in ms]))
            after = float(np.mean([m.after for m in ms]))
            delta, lo, hi, how = interval_over_runs([m.delta for m in ms])
            tol = metric_tolerance(name, tolerances)
            reg, imp = _judge(delta, lo, hi, ms[0].higher_is_better, before, tol)
            row.metrics.append(MetricDelta(name, before, after, delta, lo, hi, how,
                                           ms[0].higher_is_better, str(tol), reg, imp))
        out.append(row)
    return out


def compare(baseline: str | Path, current: str | Path, *,
            tolerances: Mapping[str, Tolerance] | None = None,
            allow_asset_change: bool = False,
            say: Callable[[str], None] | None = None, pair_by: str = "config") -> Comparison:
    """Pair the runs of two result sets and compare every shared metric (module docstring).

    ``pair_by="model"`` pairs records that scored the same weights on the same task setting
    (:func:`model_key`) whatever made them: a run and ``ubench eval`` of its saved model."""
    if pair_by not in ("config", "model"):
        raise ConfigError(f"--pair-by {pair_by!r}: use config (the run's configuration) or "
                          "model (the same weights)")
    tolerances = tolerances or {}
    for name in tolerances:
        from ubench.catalog.registry import METRICS

        if name not in METRICS:
            from ubench.core.errors import did_you_mean

            raise ConfigError("--tolerance: " + did_you_mean(name, METRICS.names(), "metric"))
    base_all = load_side(baseline, "baseline")
    cur_all = load_side(current, "current")
    not_ok = [_brief(r) for r in [*base_all, *cur_all] if r["status"] != "ok"]
    base = _index([r for r in base_all if r["status"] == "ok"], f"baseline {baseline}",
                  pair_by)
    cur = _index([r for r in cur_all if r["status"] == "ok"], f"current {current}", pair_by)
    shared, only_base, only_cur = _pair(base, cur)
    if not shared:
        raise CompareError(_why_unpaired(base, cur, str(baseline), str(current)))
    # a record compared with itself (one store on both sides) is measured with one set of
    # assets, even a legacy one; otherwise a legacy record's assets are unknown
    changed = [(a, b) for a, b in shared if Path(a["_path"]).resolve() != Path(b["_path"]).resolve()
               and (a["task"].get("assets") != b["task"].get("assets")
                    or "assets" not in a["task"])]
    if changed and not allow_asset_change:
        a, b = changed[0]
        diff = _asset_diff(a["task"].get("assets"), b["task"].get("assets"))
        raise CompareError(
            f"{len(changed)} of {len(shared)} paired runs were measured with different assets "
            f"(e.g. {a['task']['id']} / {a['method']['id']} seed {a['seed']}: {diff}); a "
            "difference would mix the method's change with the judge's or model's. Compare "
            "records made with the same pinned assets, or pass --allow-asset-change")
    for a, b in shared:
        _samples_check(a)
        _samples_check(b)
    pairs = [compare_pair(a, b, tolerances) for a, b in shared]
    return Comparison(str(baseline), str(current), pairs, aggregate(pairs, tolerances),
                      [_brief(r) for r in only_base], [_brief(r) for r in only_cur], not_ok,
                      numerics_of(shared))


def _kernels(rec: Mapping[str, Any]) -> str | None:
    """A run's float-kernel identity: its numerics fingerprint and thread count (None for a
    record made before ubench recorded the fingerprint)."""
    env = rec.get("env") or {}
    if not env.get("numerics"):
        return None
    threads = env.get("torch_threads")
    device = env.get("gpu") or env.get("device", "cpu")  # a GPU run: its GPU's kernels too
    return (f"{env['numerics']} ({env.get('cpu', 'unknown CPU')}, {threads} "
            f"thread{'s' if threads != 1 else ''}, {device})")


def numerics_of(shared: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Whether the two sides ran on the same float kernels (``env.numerics``, see
    :func:`ubench.core.env.numerics_fingerprint`): ``match`` is True when every paired run's kernels
    agree (a harmless change then gives every delta exactly 0), False when some differ (float-
    level differences, e.g. in the fourth digit of FD, are expected and are not regressions) and
    None when a side's records predate the fingerprint."""
    kernels = [(_kernels(a), _kernels(b)) for a, b in shared]
    known = all(ka and kb for ka, kb in kernels)
    same = all(ka == kb for ka, kb in kernels)
    return {"match": same if known else None,
            "baseline": sorted({ka or "unrecorded" for ka, _ in kernels}),
            "current": sorted({kb or "unrecorded" for _, kb in kernels})}


def numerics_note(c: Comparison) -> str:
    """One sentence on what bit-identity to expect between the two sides ("" if they match)."""
    match = c.numerics.get("match")
    if match is True or not c.numerics:
        return ""
    if match is None:
        head = "Some records predate ubench's float-kernel fingerprint, so whether the two sides "\
               "ran on the same float kernels is unknown"
    else:
        head = (f"The two sides ran on different float kernels (baseline: "
                f"{'; '.join(c.numerics['baseline'])} — current: "
                f"{'; '.join(c.numerics['current'])})")
    return (f"{head}: small float-level differences (e.g. in the fourth digit of FD) are "
            "expected and are not regressions; bit-identical numbers need the same CPU kind "
            "and thread count.")


def _asset_diff(a: Mapping[str, str] | None, b: Mapping[str, str] | None) -> str:
    if a is None or b is None:
        return "a legacy record carries no asset digests"
    keys = sorted(set(a) | set(b))
    changed = [f"{k} {a.get(k, '-')} -> {b.get(k, '-')}" for k in keys if a.get(k) != b.get(k)]
    return ", ".join(changed)


def _why_unpaired(base: Mapping[str, list[dict[str, Any]]],
                  cur: Mapping[str, list[dict[str, Any]]], bname: str, cname: str) -> str:
    loose_b = {_loose_key(r): r for rs in base.values() for r in rs}
    for r in (r for rs in cur.values() for r in rs):
        other = loose_b.get(_loose_key(r))
        if other is not None and other["task"]["version"] != r["task"]["version"]:
            return (f"no paired runs: the records are of different task versions "
                    f"({r['task']['id']} version {other['task']['version']} in {bname}, "
                    f"{r['task']['version']} in {cname}); their numbers are not comparable — "
                    "re-run the baseline with this ubench")
    n_cur, n_base = sum(map(len, cur.values())), sum(map(len, base.values()))
    return (f"no paired runs: none of the {n_cur} runs in {cname} has the configuration "
            f"(task, config, method, config, seed) of any of the {n_base} in {bname}; "
            "compare results of the same runs (e.g. the same plan or suite)")


# ---------------------------------------------------------------------- output
def _f(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"


def _sf(v: float) -> str:
    return ("+" if v > 0 else "") + _f(v)


def to_markdown(c: Comparison) -> str:
    """A report fit to paste into a pull request: regressions first."""
    from ubench.report.formats import md

    regs = c.regressions
    lines = [f"## ubench compare: `{md(c.baseline)}` → `{md(c.current)}`", "",
             f"**{len(regs)} regression{'s' if len(regs) != 1 else ''}** in {len(c.pairs)} "
             f"paired runs; {len(c.only_baseline)} runs only in the baseline, "
             f"{len(c.only_current)} only in the current set. A regression: a change in the "
             "metric's bad direction whose 95 % paired interval excludes 0 and that exceeds "
             "the metric's tolerance.", ""]
    if note := numerics_note(c):
        lines += [f"> {md(note)}", ""]
    head = "| method | task | setting | seed / forget | metric | before → after | Δ [95 % interval] | tolerance |"  # noqa: E501
    sep = "|---|---|---|---|---|---|---|---|"

    def row(p: PairResult, m: MetricDelta) -> str:
        arrow = "↑" if m.higher_is_better else "↓"
        who = f"{p.seed} / {p.instance}" if p.seed >= 0 else p.instance
        interval = f"{_sf(m.delta)} [{_sf(m.low)}, {_sf(m.high)}]" + (
            "" if m.interval == "paired" else f" ({m.interval})")
        return (f"| {md(p.method)} | {md(p.task)} | {md(p.setting) or '—'} | {md(who)} | "
                f"{md(m.metric)} {arrow} | {_f(m.before)} → {_f(m.after)} | {interval} | "
                f"{md(m.tolerance)} |")

    if regs:
        lines += ["### Regressions", "", head, sep, *[row(p, m) for p, m in regs], ""]
    lines += ["### Every paired run", "", head, sep]
    lines += [row(p, m) for p in c.pairs for m in p.metrics]
    if c.aggregates:
        lines += ["", "### Aggregated over runs (mean of per-run differences, bootstrap over "
                  "runs)", "", head, sep]
        lines += [row(p, m) for p in c.aggregates for m in p.metrics]
    for title, items in (("Only in the baseline", c.only_baseline),
                         ("Only in the current set", c.only_current),
                         ("Not compared (failed or unfinished)", c.not_ok)):
        if items:
            lines += ["", f"### {title}", ""]
            lines += [f"- {md(r['task'])} / {md(r['method'])} seed {r['seed']} "
                      f"{md(r['instance'])} (run {md(r['run_id'])}, {md(r['status'])})"
                      for r in items]
    return "\n".join(lines) + "\n"
