"""Vega-Lite specifications of a table's trade-off plot (forgetting metric vs keep metric).

Which metrics are a table's axes is derived from the metric classes: the x axis is a metric
computed on the forget split (``Metric.split == "forget"``), the y axis one computed on the
remain split; when a table has several of a split, the one marked ``Metric.headline`` wins, then
the catalogue's order. The page offers every other (forget, remain) pair in a menu.

One specification per pair; the data is inline in it. Layers, bottom to top: interval whiskers
(both axes), tuning points (hollow), Pareto fronts (lines through their points), one filled
marker per method row, and the reference rows (base, oracle) as labelled diamonds. Marks carry
names (``methods``, ``references``, ``tuning``, ``fronts``) so a test can count them in the SVG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ubench.catalog import facts

#: the Vega-Lite JSON Schema the specifications are written against (vendor/vendor.json pins
#: the library that renders them; the page never fetches this address)
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
POINT_KINDS = ("tuning", "front")


@dataclass(frozen=True)
class Axis:
    """One metric as a plot axis."""

    metric: str
    title: str
    higher_is_better: bool


def split_of(metric: str) -> str | None:
    cls = facts.metric_class(metric)
    split = getattr(cls, "split", None) if cls is not None else None
    return split if split in ("forget", "remain") else None


def _headline(metric: str) -> bool:
    cls = facts.metric_class(metric)
    return bool(getattr(cls, "headline", False)) if cls is not None else False


def axis_pairs(metrics: Sequence[str]) -> list[tuple[str, str]]:
    """Every (forget metric, remain metric) pair of a table, the headline pair first.

    ``metrics`` is in column order; an unregistered metric (no split known) is on no axis.
    """
    def ranked(split: str) -> list[str]:
        mine = [m for m in metrics if split_of(m) == split]
        return sorted(mine, key=lambda m: (not _headline(m), mine.index(m)))

    return [(f, r) for f in ranked("forget") for r in ranked("remain")]


def check_points(points: Any) -> list[dict[str, Any]]:
    """Validate the extra points a table's plot gets (the data contract with the report).

    Each point is a mapping ``{method, x, y, kind}`` with ``kind`` ``"tuning"`` (a point of the
    method's tuning space) or ``"front"`` (a point of its Pareto front; the front is drawn as a
    line through them in x order), finite ``x`` / ``y`` (the table's forget and keep metric
    unless ``x_metric`` / ``y_metric`` name others), and optional interval ends ``x_lo``,
    ``x_hi``, ``y_lo``, ``y_hi`` (default: no whisker). Raises ``ValueError`` for anything else.
    """
    out = []
    for i, p in enumerate(points or []):
        if not isinstance(p, Mapping):
            raise ValueError(f"extra point {i} is not a mapping: {p!r}")
        if p.get("kind") not in POINT_KINDS:
            raise ValueError(f"extra point {i}: kind must be one of {POINT_KINDS}, got "
                             f"{p.get('kind')!r}")
        if not isinstance(p.get("method"), str):
            raise ValueError(f"extra point {i}: method must be a string")
        q: dict[str, Any] = {"method": p["method"], "kind": p["kind"]}
        for key in ("x", "y"):
            v = p.get(key)
            if not _finite(v):
                raise ValueError(f"extra point {i}: {key} must be a finite number, got {v!r}")
            q[key] = float(v)  # type: ignore[arg-type]
            for end in ("lo", "hi"):
                e = p.get(f"{key}_{end}", v)
                if e is not None and not isinstance(e, (int, float)):
                    raise ValueError(f"extra point {i}: {key}_{end} must be a number")
                q[f"{key}_{end}"] = float(e) if e is not None and _finite(e) else q[key]
        for key in ("x_metric", "y_metric"):
            if p.get(key) is not None:
                q[key] = str(p[key])
        out.append(q)
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _point(row: Mapping[str, Any], x: str, y: str) -> dict[str, Any] | None:
    if not (_finite(row.get(x)) and _finite(row.get(y))):
        return None
    p = {"method": row["method"], "kind": "reference" if row["reference"] else "method",
         "x": row[x], "y": row[y]}
    for axis, m in (("x", x), ("y", y)):
        for end in ("lo", "hi"):
            v = row.get(f"{m}_{end}")
            p[f"{axis}_{end}"] = v if _finite(v) else p[axis]
    return p


def tradeoff_spec(rows: Sequence[Mapping[str, Any]], x: Axis, y: Axis,
                  extra: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """The Vega-Lite specification of one pair's plot (``None`` when no row has both values).

    ``rows`` are the leaderboard rows (``method``, ``reference``, ``<metric>``,
    ``<metric>_lo``/``_hi``); ``extra`` the checked extra points of this pair.
    """
    values = [p for r in rows if (p := _point(r, x.metric, y.metric)) is not None]
    if not values:
        return None
    values += [dict(p) for p in extra]
    methods = [v["method"] for v in values if v["kind"] == "method"]
    methods += sorted({v["method"] for v in values if v["kind"] in POINT_KINDS} - set(methods))
    xdom, ydom = _domain(values, "x", x.metric), _domain(values, "y", y.metric)
    xs = {"field": "x", "type": "quantitative", "title": x.title,
          "scale": {"zero": False, "nice": False, "padding": 12, "domain": xdom}}
    ys = {"field": "y", "type": "quantitative", "title": y.title,
          "scale": {"zero": False, "nice": False, "padding": 12, "domain": ydom}}
    color = {"field": "method", "type": "nominal", "title": "method",
             "scale": {"domain": methods, "scheme": "category20"},
             "legend": {"orient": "right", "labelLimit": 260}}
    tooltip = [{"field": "method", "type": "nominal"},
               {"field": "x", "type": "quantitative", "title": x.metric, "format": ".4g"},
               {"field": "x_lo", "type": "quantitative", "title": f"{x.metric} low",
                "format": ".4g"},
               {"field": "x_hi", "type": "quantitative", "title": f"{x.metric} high",
                "format": ".4g"},
               {"field": "y", "type": "quantitative", "title": y.metric, "format": ".4g"},
               {"field": "y_lo", "type": "quantitative", "title": f"{y.metric} low",
                "format": ".4g"},
               {"field": "y_hi", "type": "quantitative", "title": f"{y.metric} high",
                "format": ".4g"},
               {"field": "kind", "type": "nominal"}]

    def only(*kinds: str) -> dict[str, Any]:
        return {"filter": {"field": "kind", "oneOf": list(kinds)}}

    layers: list[dict[str, Any]] = [
        {"name": "xwhiskers", "transform": [only("method", "reference")],
         "mark": {"type": "rule", "opacity": 0.7},
         "encoding": {"x": {**xs, "field": "x_lo"}, "x2": {"field": "x_hi"},
                      "y": ys, "color": color}},
        {"name": "ywhiskers", "transform": [only("method", "reference")],
         "mark": {"type": "rule", "opacity": 0.7},
         "encoding": {"x": xs, "y": {**ys, "field": "y_lo"}, "y2": {"field": "y_hi"},
                      "color": color}},
    ]
    if any(v["kind"] in POINT_KINDS for v in values):
        layers += [
            {"name": "tuning", "transform": [only("tuning")],
             "mark": {"type": "point", "filled": False, "size": 30, "opacity": 0.6},
             "encoding": {"x": xs, "y": ys, "color": color, "tooltip": tooltip}},
            {"name": "fronts", "transform": [only("front")],
             "mark": {"type": "line", "point": True, "strokeDash": [4, 2]},
             "encoding": {"x": xs, "y": ys, "color": color, "order": {"field": "x"},
                          "detail": {"field": "method"}, "tooltip": tooltip}},
        ]
    layers.append(
        {"name": "methods", "transform": [only("method")],
         "params": [{"name": "zoom", "select": "interval", "bind": "scales"}],
         "mark": {"type": "point", "filled": True, "size": 80, "opacity": 0.9},
         "encoding": {"x": xs, "y": ys, "color": color, "tooltip": tooltip}})
    if any(v["kind"] == "reference" for v in values):
        layers += [
            {"name": "references", "transform": [only("reference")],
             "mark": {"type": "point", "shape": "diamond", "filled": True, "size": 150,
                      "color": "#222", "stroke": "white", "strokeWidth": 1},
             "encoding": {"x": xs, "y": ys, "tooltip": tooltip}},
        ]
        # reference labels beside their marker, on the side with room (left in the right half)
        middle = (xdom[0] + xdom[1]) / 2
        for side, test, dx in (("left", f"datum.x <= {middle!r}", 9),
                               ("right", f"datum.x > {middle!r}", -9)):
            layers.append(
                {"name": f"reflabels_{side}",
                 "transform": [only("reference"), {"filter": test}],
                 "mark": {"type": "text", "align": side, "dx": dx, "dy": -8, "fontSize": 11,
                          "color": "#222"},
                 "encoding": {"x": xs, "y": ys, "text": {"field": "method"}}})
    return {"$schema": SCHEMA, "width": 380, "height": 300,
            "data": {"values": values}, "layer": layers,
            "config": {"view": {"stroke": "#ddd"}, "axis": {"labelFontSize": 11,
                                                            "titleFontSize": 12}}}


def _domain(values: Sequence[Mapping[str, Any]], axis: str, metric: str) -> list[float]:
    """The axis range: the data with its whiskers, widened to at least a tenth of a bounded
    metric's range (or +-1 % of the value) so that a table whose rows all share one value
    still gets a readable axis; never beyond the metric's bounds."""
    lo = min(min(v[axis], v[f"{axis}_lo"]) for v in values)
    hi = max(max(v[axis], v[f"{axis}_hi"]) for v in values)
    cls = facts.metric_class(metric)
    b_lo, b_hi = cls.bounds if cls is not None else (-math.inf, math.inf)
    bounded = math.isfinite(b_lo) and math.isfinite(b_hi)
    least = (b_hi - b_lo) / 10 if bounded else max(abs(lo), abs(hi), 1.0) / 50
    if hi - lo < least:
        mid = (lo + hi) / 2
        lo, hi = mid - least / 2, mid + least / 2
        if lo < b_lo:
            lo, hi = b_lo, b_lo + least
        if hi > b_hi:
            lo, hi = b_hi - least, b_hi
    return [lo, hi]


def best_corner(x: Axis, y: Axis) -> str:
    """Where the better models sit, in words (the caption under a plot)."""
    return (("top" if y.higher_is_better else "bottom") + " "
            + ("right" if x.higher_is_better else "left"))
