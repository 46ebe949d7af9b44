"""Write ``index.html``, ``thumbs/`` and ``runs/`` of the leaderboard (see
:mod:`ubench.report.web`).

The leaderboard rows come from :func:`ubench.report.table.leaderboard_rows`; this module only
turns them into page data (formatted cells, interval bars, sort keys, plot specifications,
links) and renders the Jinja2 templates. The site is self-contained: each record gets its page,
its record (``runs/<name>.json``) and its sample grid (``runs/<name>.png``) beside it, so the
folder can be copied or served alone. Output is a pure function of the records (no dates,
sorted keys).
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from ubench.catalog import facts
from ubench.core.errors import CorruptRecordError
from ubench.report.formats import slug
from ubench.report.table import bounds, judge_flag, metric_order
from ubench.report.web import plot
from ubench.report.web.plot import check_points  # re-exported: the data contract of extra points
from ubench.store import reader

__all__ = ["check_points", "json_for_script", "write_html"]

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "vendor"
#: the largest thumbnail (pixels); grids are reduced by a whole factor to fit
THUMB_MAX = (200, 130)
ROW_CAPTION = "top row: forget · rows below: remain"


def json_for_script(obj: Any) -> Markup:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``
    (so no ``</script>`` or ``<!--``), no line separators, no NaN (``null`` instead)."""
    text = json.dumps(_no_nan(obj), sort_keys=True, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return Markup(text)


def _no_nan(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_nan(v) for v in obj]
    return obj


def _num(v: Any) -> str:
    """A number as the tables print it (same rule as the Markdown report)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return str(v)
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:48] or "run"


def _page_names(records: Sequence[dict[str, Any]]) -> dict[int, str]:
    """A unique, file-system-safe page name per record (its run id where that is safe)."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for rec in records:
        base = _safe_name(str(rec.get("run_id", "")))
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}-{k}"
        used.add(name)
        names[id(rec)] = name
    return names


@lru_cache(maxsize=1)
def _vendor() -> tuple[list[dict[str, Any]], Markup]:
    """The vendored libraries (name, version, licence) and their code, concatenated."""
    manifest = json.loads((VENDOR / "vendor.json").read_text())
    code = []
    for entry in manifest["packages"]:
        js = (VENDOR / entry["file"]).read_text(encoding="utf-8")
        if "</script" in js.lower():  # scripts/vendor_js.py refuses such a file too
            raise RuntimeError(f"{entry['file']} contains '</script' and cannot be inlined")
        code.append(f"/* {entry['package']} {entry['version']} ({entry['license']}; licence "
                    f"text shipped in ubench/report/web/vendor/{entry['license_file']}) */\n{js}")
    return manifest["packages"], Markup("\n".join(code))


def _env() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["num"] = _num
    env.filters["pretty"] = lambda v: json.dumps(_no_nan(v), indent=2, sort_keys=True,
                                                 ensure_ascii=False)
    env.filters["compact"] = lambda v: (v if isinstance(v, str) else
                                        json.dumps(_no_nan(v), sort_keys=True,
                                                   ensure_ascii=False))
    return env


# ----------------------------------------------------------------------------- page data
def _columns(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    names = metric_order({n for r in rows for n in r["metric_names"]})
    cols = []
    for n in names:
        better = next(r[f"{n}_higher_is_better"] for r in rows if n in r)
        lo, hi = bounds(n)
        if not (math.isfinite(lo) and math.isfinite(hi)):  # scale bars to the table's values
            ends = [r[f"{n}_{e}"] for r in rows if n in r for e in ("lo", "hi")
                    if isinstance(r.get(f"{n}_{e}"), (int, float))
                    and math.isfinite(r[f"{n}_{e}"])]
            lo = lo if math.isfinite(lo) else min(ends, default=0.0)
            hi = hi if math.isfinite(hi) else max(ends, default=1.0)
        cls = facts.metric_class(n)
        label = Markup.escape(n.upper()).replace("_", Markup("_<wbr>"))  # may wrap at _
        cols.append({"name": n, "label": label, "arrow": "↑" if better else "↓",
                     "better": "high" if better else "low", "range": (lo, hi),
                     "split": plot.split_of(n) or "",
                     "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls else ""})
    return cols


def _cell(row: dict[str, Any], col: dict[str, Any]) -> dict[str, Any]:
    n = col["name"]
    if n not in row:
        return {"text": "—", "interval": "", "sort": "", "bar": None}
    v, lo, hi = row[n], row[f"{n}_lo"], row[f"{n}_hi"]
    cell: dict[str, Any] = {"text": _num(v), "interval": f"[{_num(lo)}, {_num(hi)}]",
            "sort": repr(float(v)) if math.isfinite(v) else "", "bar": None}
    a, b = col["range"]
    if b > a and all(math.isfinite(t) for t in (v, lo, hi)):
        def pct(t: float) -> float:
            return round(100 * min(1.0, max(0.0, (t - a) / (b - a))), 2)

        cell["bar"] = {"left": pct(lo), "width": max(0.8, round(pct(hi) - pct(lo), 2)),
                       "mid": pct(v)}
    return cell


def _runs_of(row: dict[str, Any], names: dict[int, str]) -> list[dict[str, Any]]:
    """A row's runs: seed, instance, its page and its record."""
    runs = []
    for rec in row["_runs"]:
        inst = ", ".join(f"{k}={v}" for k, v in
                         facts.instance_of(rec["task"]["id"], rec["task"]["config"]).items())
        runs.append({"seed": rec["seed"], "instance": inst, "run_id": rec["run_id"],
                     "page": f"runs/{names[id(rec)]}.html",
                     "record": f"runs/{names[id(rec)]}.json"})
    return runs


def _ranking(found: Any) -> dict[str, Any] | None:
    """The page's view of a table's ranking (:func:`ubench.report.build.evaluation_rankings`):
    every value preformatted, every string escaped by the template."""
    if found is None:
        return None
    from ubench.report.protocol import ranking_rule, standing_cells, tier_count

    rule, target, standings, left_out = found
    rows = [{"label": s.label, "reference": s.reference, "runs": s.runs, **standing_cells(s)}
            for s in standings]
    return {"rule": ranking_rule(rule, target), "forget": rule.forget, "keep": rule.keep,
            "rows": rows, "left_out": list(left_out), "tiers": tier_count(found)}


def _table(i: int, title: str, rows: list[dict[str, Any]], names: dict[int, str],
           thumbs: dict[int, dict[str, Any]], extra: Mapping[str, Any],
           ranking: Any = None) -> dict[str, Any]:
    task_id, _, setting = title.partition(" — ")
    cols = _columns(rows)
    view_rows = []
    for r in rows:
        first = r["_runs"][0] if r["_runs"] else None
        view_rows.append({
            "label": r["method"], "method_id": r["method_id"], "reference": r["reference"],
            "cells": [_cell(r, c) for c in cols], "runs": r["runs"],
            "seeds": ",".join(map(str, r["seeds"])), "forget": ",".join(r["forget"]) or "—",
            "unlearn_s": r["unlearn_s"], "peak_rss_mb": r["peak_rss_mb"],
            "judges_flag": judge_flag(r),
            "thumb": thumbs.get(id(first)) if first is not None else None,
            "page": f"runs/{names[id(first)]}.html" if first is not None else None,
            "run_list": _runs_of(r, names)})
    points = check_points(extra.get("points", []))
    pairs = []
    metric_cols = {c["name"]: c for c in cols}
    for k, (fx, ky) in enumerate(plot.axis_pairs([c["name"] for c in cols])):
        x = plot.Axis(fx, f"{fx.upper()} {metric_cols[fx]['arrow']} (forget)",
                      metric_cols[fx]["better"] == "high")
        y = plot.Axis(ky, f"{ky.upper()} {metric_cols[ky]['arrow']} (keep)",
                      metric_cols[ky]["better"] == "high")
        mine = [p for p in points if p.get("x_metric", fx if k == 0 else None) == fx
                and p.get("y_metric", ky if k == 0 else None) == ky]
        spec = plot.tradeoff_spec(rows, x, y, mine)
        if spec is not None:
            pairs.append({"label": f"{x.title} vs {y.title}", "spec": spec,
                          "corner": plot.best_corner(x, y), "x": fx, "y": ky})
    return {"anchor": f"t{i}-{slug(title)}", "title": title, "task": task_id,
            "setting": setting, "columns": cols, "rows": view_rows, "pairs": pairs,
            "specs": json_for_script([p["spec"] for p in pairs]),
            "n_points": len(points), "ranking": _ranking(ranking)}


# ----------------------------------------------------------------------------- images
def _thumbnail(rec: dict[str, Any], target: Path, warn: Callable[[str], None] | None
               ) -> dict[str, Any] | None:
    """A reduced copy of a run's grid (whole-factor box reduction keeps pixel art sharp-ish)."""
    from PIL import Image

    try:
        png = reader.grid(rec)
        if png is None:
            return None
        with Image.open(io.BytesIO(png)) as img:
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, CorruptRecordError) as e:
        if warn is not None:
            warn(f"warning: the sample grid of {reader.where(rec)} is unreadable "
                 f"({type(e).__name__}); its thumbnail is left out (rerun that run with "
                 "--force to redraw it)")
        return None
    factor = max(1, math.ceil(max(rgb.width / THUMB_MAX[0], rgb.height / THUMB_MAX[1])))
    small = rgb.reduce(factor) if factor > 1 else rgb
    if _grey(small):
        small = small.convert("L")  # a third of the bytes for greyscale grids (digits)
    target.parent.mkdir(parents=True, exist_ok=True)
    small.save(target, optimize=True)
    return {"width": small.width, "height": small.height}


def _grey(img: Any) -> bool:
    from PIL import ImageChops

    r, g, b = img.split()
    return ImageChops.difference(r, g).getbbox() is None and \
        ImageChops.difference(r, b).getbbox() is None


# ----------------------------------------------------------------------------- writing
def write_html(tables: dict[str, list[dict[str, Any]]], records: list[dict[str, Any]],
               staging: Path, extras: Mapping[str, Mapping[str, Any]],
               say: Callable[[str], None] | None = None,
               rankings: Mapping[str, Any] | None = None) -> list[str]:
    """Render the page, the thumbnails and the run pages (each with its record and its grid)
    into ``staging``, to be installed under ``out``. Returns the written files, relative to
    ``staging``. ``rankings``: a table title's ranking on the evaluation split (shown under the
    table)."""
    env = _env()
    names = _page_names(records)
    files: list[str] = []
    thumbs: dict[int, dict[str, Any]] = {}
    for rows in tables.values():
        for r in rows:
            if not r["_runs"]:
                continue
            first = r["_runs"][0]
            if id(first) in thumbs:
                continue
            name = f"thumbs/{names[id(first)]}.png"
            size = _thumbnail(first, staging / name, say)
            if size is not None:
                thumbs[id(first)] = {"src": name, **size}
                files.append(name)
    unknown = sorted(set(extras) - set(tables))
    if unknown:
        raise ValueError(f"extra plot points for tables that do not exist: {unknown}")
    views = [_table(i, t, rows, names, thumbs, extras.get(t, {}),
                    (rankings or {}).get(t))
             for i, (t, rows) in enumerate(tables.items())]
    in_tables = {id(rec) for rows in tables.values() for r in rows for rec in r["_runs"]}
    table_of = {id(rec): v["anchor"] for v, rows in zip(views, tables.values(), strict=True)
                for r in rows for rec in r["_runs"]}
    others = [{"task": rec["task"]["id"], "method": rec["method"]["id"], "seed": rec["seed"],
               "status": rec["status"], "version": rec["task"]["version"],
               "error": rec.get("error") or "", "page": f"runs/{names[id(rec)]}.html",
               "why": _why_left_out(rec)}
              for rec in records if id(rec) not in in_tables]
    vendor, code = _vendor()
    css = (HERE / "static" / "style.css").read_text(encoding="utf-8")
    js = (HERE / "static" / "page.js").read_text(encoding="utf-8")
    (staging / "index.html").write_text(env.get_template("index.html.j2").render(
        tables=views, others=others, vendor=vendor, vendor_code=code, css=Markup(css),
        script=Markup(js), n_records=len(records), row_caption=ROW_CAPTION), encoding="utf-8")
    files.insert(0, "index.html")
    (staging / "runs").mkdir(exist_ok=True)
    run_tpl = env.get_template("run.html.j2")
    for rec in records:
        base = f"runs/{names[id(rec)]}"
        (staging / f"{base}.json").write_text(json.dumps(
            {k: v for k, v in rec.items() if not k.startswith("_")}, indent=2, sort_keys=True,
            allow_nan=True) + "\n", encoding="utf-8")
        grid = _grid_copy(rec, staging / f"{base}.png", say)
        (staging / f"{base}.html").write_text(run_tpl.render(
            **_run_view(rec, names[id(rec)], grid, table_of.get(id(rec))), css=Markup(css),
            row_caption=ROW_CAPTION), encoding="utf-8")
        files += [f"{base}.html", f"{base}.json", *([f"{base}.png"] if grid else [])]
    return files


def _grid_copy(rec: dict[str, Any], target: Path, warn: Callable[[str], None] | None) -> bool:
    """Copy a record's sample grid next to its page; whether it has one."""
    try:
        png = reader.grid(rec)
    except CorruptRecordError as e:
        if warn is not None:
            warn(f"warning: {e}")
        return False
    if png is None:
        return False
    target.write_bytes(png)
    return True


def _why_left_out(rec: dict[str, Any]) -> str:
    if rec["status"] != "ok":
        return f"status {rec['status']}"
    task = facts.task_facts(rec["task"]["id"])
    if task is not None and task.version != rec["task"]["version"]:
        return f"task version {rec['task']['version']} (current: {task.version})"
    return ""


def _run_view(rec: dict[str, Any], name: str, grid: bool, anchor: str | None
              ) -> dict[str, Any]:
    """What a run page shows: identity, configs with the defaults marked, metrics with their
    definitions, cost, the grid, its record."""
    defaults = facts.default_config(rec["method"]["id"], rec["task"]["id"])
    task = facts.task_facts(rec["task"]["id"])
    metrics = []
    for n in metric_order(set(rec["metrics"])):
        m = rec["metrics"][n]
        cls = facts.metric_class(n)
        metrics.append({"name": n, "value": m["value"], "lo": m["ci_low"], "hi": m["ci_high"],
                        "n": m["n"], "arrow": "↑" if m["higher_is_better"] else "↓",
                        "split": plot.split_of(n) or "",
                        "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls else "",
                        "definition": sorted(m.get("definition", {}).items())})
    return {
        "rec": rec, "anchor": anchor, "metrics": metrics,
        "method_config": [(k, v, k in defaults and defaults[k] != v)
                          for k, v in sorted(rec["method"]["config"].items())],
        "task_config": [(k, v, task is not None and k in task.defaults
                         and task.defaults[k] != v)
                        for k, v in sorted(rec["task"]["config"].items())],
        "record_href": quote(f"{name}.json"),
        "grid_href": quote(f"{name}.png") if grid else None,
        "cost": sorted(rec.get("cost", {}).items()),
        "extra_sections": [(k, rec[k]) for k in ("request", "details", "train_log", "env",
                                                 "artifacts") if rec.get(k)],
    }
