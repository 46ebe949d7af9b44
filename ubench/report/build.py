"""Records -> leaderboard: the store's records to Markdown, CSV and a web page, installed
into an output folder without touching anything the report did not write.

The tables are :mod:`ubench.report.table`'s rows; the fair protocol's fronts and rankings come
from :mod:`ubench.report.protocol`, the attack tables from :mod:`ubench.report.robustness` and
the web page from :mod:`ubench.report.web`. Each table also gets a sample grid: the first run of
every row (lowest seed), stacked, labelled. The Markdown and CSV files are what a results
checkout commits; the web page, its run pages, thumbnails and the grids are build outputs.
Nothing here is typed by hand, and nothing here runs a model: what the report needs to know
about methods and tasks comes from :mod:`ubench.catalog.facts`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ubench.catalog import facts
from ubench.catalog.facts import garbage_limit
from ubench.core.errors import CorruptRecordError, StoreError
from ubench.core.paths import confined
from ubench.report.formats import BANNER, LEGACY_SUFFIX, fmt, md, set_apart, slug, write_csv
from ubench.report.protocol import (
    RANKING_INTRO,
    Ranking,
    derive_oracle_gaps,
    fronts,
    fronts_markdown,
    fronts_table,
    rank_standings,
    ranking_block,
    rankings_table,
    standing,
    task_rule,
    tiers_summary,
)
from ubench.report.table import (
    distinct_runs,
    judge_flag,
    leaderboard_rows,
    metric_order,
    preset_targets,
)
from ubench.store import reader
from ubench.store.io import move, write_text_atomic
from ubench.store.reader import load_attack_records, load_records


def to_markdown(tables: dict[str, list[dict[str, Any]]],
                ranked: Mapping[str, Ranking] | None = None,
                how: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
                notes: Mapping[str, str] | None = None) -> str:
    """The leaderboard's Markdown: a tier count per ranking, then per table its ranking (when
    it has one: :func:`evaluation_rankings`) and every row. ``how[title][label]``: the
    ranking's *how it forgets* cells; ``notes[title]``: the sentence under its ranking."""
    ranked, how, notes = ranked or {}, how or {}, notes or {}
    lines = [BANNER, "", "# ubench leaderboard", "",
             "Each cell: mean over runs [95 % interval]. One run: its bootstrap interval over "
             "samples; several runs: Student-t interval over runs, where runs of one model "
             "(a reference row's model under another seed; runs whose every metric is "
             "identical, as UCE's closed form gives) count once. ↑ higher is better, "
             "↓ lower is better. Reference rows are marked *(ref)*. Tables marked *(legacy "
             "assets)* hold records made before run identities included the digests of the "
             "judge and base model they were measured with; their numbers are not comparable "
             "with the others'. Tables marked *(superseded judge)* hold records whose UA, RA, "
             "concept and garbage rates and FD were read by the original digits judge, which "
             "misreads narrow and thin zeros (docs/judges.md); they are ranked only among "
             "themselves. ⚑ marks a "
             "row whose two validated judges (docs/judges.md) "
             "disagree on its remain generations far more than on real digits, or on its "
             "forget generations far more than on the retrain oracle's: its judged numbers are "
             "not a verdict.", ""]
    if ranked:
        lines += [RANKING_INTRO, "", *tiers_summary(ranked, md)]
    for title, rows in tables.items():
        names = metric_order({n for r in rows for n in r["metric_names"]})
        arrows = {n: next(("↑" if r[f"{n}_higher_is_better"] else "↓") for r in rows if n in r)
                  for n in names}
        lines += [f"## {md(title)}", ""]
        if title in ranked:
            lines += ranking_block(title, ranked[title], how.get(title, {}), md,
                                   notes.get(title))
            lines += ["### Every row", ""]
        head = ["method", *[f"{md(n.upper())} {arrows[n]}" for n in names], "runs", "seeds",
                "forgotten", "unlearn s", "peak RSS MB"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            flag = judge_flag(r)
            cells = [md(r["method"]) + (" *(ref)*" if r["reference"] else "")
                     + (" *(training-free)*" if r.get("training_free") else "")
                     + (f" ⚑ {md(flag)}" if flag else "")]
            for n in names:
                cells.append(f"{fmt(r[n])} [{fmt(r[n + '_lo'])}, {fmt(r[n + '_hi'])}]"
                             if n in r else "—")
            runs = str(r["runs"]) + (f" ({r['distinct_runs']} distinct)"
                                     if r.get("distinct_runs", r["runs"]) != r["runs"] else "")
            cells += [runs, md(",".join(map(str, r["seeds"]))),
                      md(",".join(r["forget"])) or "—", f"{r['unlearn_s']:.1f}",
                      f"{r['peak_rss_mb']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Samples (first run of each row): `grids/{slug(title)}.png` (drawn by "
                      "`ubench report` next to this file; a build output, not committed).", ""]
    return "\n".join(lines) + "\n"


def sample_grid(rows: list[dict[str, Any]], warn: Callable[[str], None] | None = None
                ) -> Any:
    """The sample grid of each row's first run, stacked with the row's label above it.

    An unreadable image (a truncated file) is left out of the grid and reported to ``warn``.
    """
    from PIL import Image, ImageDraw

    tiles = []
    for r in rows:
        if not r["_runs"]:
            continue
        first = r["_runs"][0]
        try:
            png = reader.grid(first)
            if png is None:
                continue
            with Image.open(io.BytesIO(png)) as img:
                tiles.append((r["method"], img.convert("RGB")))
        except (OSError, SyntaxError, ValueError, CorruptRecordError) as e:
            if warn is not None:
                warn(f"warning: the sample grid of {reader.where(first)} is unreadable "
                     f"({type(e).__name__}); its grid tile is left out (rerun that run with "
                     "--force to redraw it)")
    if not tiles:
        return None
    width = max(t.width for _, t in tiles)
    label_h = 14
    out = Image.new("RGB", (width, sum(t.height + label_h for _, t in tiles)), "white")
    draw = ImageDraw.Draw(out)
    y = 0
    for label, tile in tiles:
        draw.text((2, y + 1), label, fill="black")
        out.paste(tile, (0, y + label_h))
        y += tile.height + label_h
    return out


MANIFEST = ".ubench-report.json"
#: the outputs ``ubench report --format`` chooses from, in the order they are written
FORMATS = ("md", "csv", "html")


def _format_of(name: str) -> str:
    """Which format a generated file belongs to (a report of some formats leaves the files of
    the others as they are)."""
    if name in ("README.md", "robustness.md") or name.startswith("grids/"):
        return "md"
    if name.endswith(".csv"):
        return "csv"
    return "html"  # index.html, thumbs/, runs/


def parse_formats(text: str) -> tuple[str, ...]:
    """``"md,csv,html"`` -> the formats, in :data:`FORMATS` order; an unknown one is a
    usage error."""
    from ubench.core.errors import ConfigError, did_you_mean

    chosen = [f.strip().lower() for f in text.split(",") if f.strip()]
    if not chosen:
        raise ConfigError(f"--format needs at least one of {','.join(FORMATS)}")
    for f in chosen:
        if f not in FORMATS:
            raise ConfigError("--format: " + did_you_mean(f, FORMATS, "format")
                              + f" (choose from {','.join(FORMATS)})")
    return tuple(f for f in FORMATS if f in chosen)


def build_report(root: Path, out: str | Path, say: Callable[[str], None] | None = None,
                 formats: tuple[str, ...] = FORMATS,
                 extras: Mapping[str, Mapping[str, Any]] | None = None) -> list[Path]:
    """Write the leaderboard into ``out``: ``README.md`` and ``grids/`` (format ``md``),
    ``leaderboard.csv``, ``runs.csv`` and, when there are tuning runs, ``fronts.csv`` (``csv``),
    ``index.html`` with ``thumbs/`` and one page per record under ``runs/`` (``html``, see
    :mod:`ubench.report.web`). Tuning runs of the fair protocol feed the trade-off fronts (Markdown
    section, ``fronts.csv``, the page's plots), never the tables; each forgetting metric gets
    its oracle gap where a retrain record of the same instance exists. Each table of a task with
    a tuning rule gets its tuned rows ranked by the fronts' scalar on the evaluation runs
    (Markdown section, ``ranking.csv``; :func:`evaluation_rankings`).

    ``extras`` maps a table's title to what the page adds to that table's trade-off plot
    (``{"points": [...]}``, e.g. each method's tuning points and Pareto front; see
    :func:`ubench.report.web.render.check_points`).

    Nothing in ``out`` changes unless the whole report was built: the files are made in a
    temporary folder first and then moved in one by one (each move atomic). Only files this
    command generated are replaced or removed — those listed in ``out``'s manifest
    (``.ubench-report.json``) — and any other file in the way is an error, so records, notes and
    images of the user's in the same folder are never touched. Files of formats not chosen this
    time stay as they are. A store that does not exist or holds no records is refused before
    anything is written.
    """
    if not root.is_dir():
        raise StoreError(f"the store {root} does not exist or is not a folder; pass "
                         "--store <folder with records>")
    where, store = Path(out).resolve(), root.resolve()
    if where == store or store in where.parents:
        raise StoreError(f"--out {out} is inside the store {root}: the report would mix with "
                         "the records; write it next to them (e.g. --out "
                         f"{root.parent / 'report'})")
    records = load_records(root)  # raises before anything is written
    attacks = load_attack_records(root)
    if not records:
        raise StoreError(f"no records under {root}; run something first or pass --store "
                         "<folder with records>")
    derive_oracle_gaps(records)  # oracle_gap_* / oracle_tv beside each forgetting metric
    tables = leaderboard_rows(records)
    targets = preset_targets()
    found = fronts(records, targets=targets)
    ranked = evaluation_rankings(tables, targets)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} is a file; pass a folder")
    _remove_dead_staging(out)
    staging = out.parent / f".{out.name}.report-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    # the folder is made inside the try: a SIGTERM handled right after mkdir (a busy machine
    # can pause the process exactly there) must still remove it
    try:
        try:
            staging.mkdir(parents=True)
        except (FileNotFoundError, NotADirectoryError, FileExistsError) as e:  # /proc/x, a/file/x
            raise StoreError(f"cannot create the report folder {out} ({e.strerror}); pass "
                             "--out <a folder you can write>") from None
        files: list[str] = []
        if "md" in formats:
            files += _write_markdown(tables, staging, say, found, ranked)
        if "csv" in formats:
            files += _write_csv(tables, records, staging, found, ranked)
        # robustness.md / robustness.csv when the store holds attack records (ubench attack)
        robust = [f for f in _robustness(records, attacks, staging) if _format_of(f) in formats]
        files += robust
        if "md" in formats and robust:
            with (staging / "README.md").open("a") as readme:
                readme.write(robustness_note(robust))
        if "html" in formats:
            from ubench.report.web.render import write_html

            merged = _front_points(tables, found)
            for title, extra in (extras or {}).items():
                merged.setdefault(title, {}).setdefault("points", []).extend(
                    extra.get("points", []))
            files += write_html(tables, records, staging, merged, say, ranked)
        _install(staging, out, files, formats)
    finally:
        _remove_uninterrupted(staging)
    return [out / f for f in files]


def _remove_uninterrupted(folder: Path) -> None:
    """Delete ``folder`` with SIGINT and SIGTERM held back until it is gone (a second signal
    during the deletion would leave half of it); they are delivered right after."""
    main = threading.current_thread() is threading.main_thread()
    before = (signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
              if main else None)
    try:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        if before is not None:  # the caller's mask, as it was
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


#: the columns the ranking adds beside its scalar: how a row forgets (each where its records have
#: it: the fidelity and the judges' agreement are in records made since issue 31)
HOW_IT_FORGETS = ("garbage_rate", "forget_fidelity", "judge_agreement_forget", "oracle_tv")


def evaluation_rankings(tables: Mapping[str, list[dict[str, Any]]],
                        targets: Mapping[str, float]) -> dict[str, Ranking]:
    """Per current table of a task with a tuning rule: its rows at the tuned preset (and its
    reference rows) scored by the fronts' scalars on the evaluation runs, ranked.

    The target is the tuned preset's for the task, or for the task it was tuned on (the
    ``tuned_on`` its records carry), or the rule's fixed one. Rows with a config beside the
    preset's (``method [tuned] (x=y)``) and rows at other configs are not the protocol's and are
    left out; so is a row with a run that saved no per-sample scores (named in the section).
    Runs of one model count once, as in the tables (:func:`distinct_runs`).
    """
    out: dict[str, Ranking] = {}
    for title, rows in tables.items():
        # legacy rows are not the protocol's; a superseded judge's rows are ranked among
        # themselves, under their own title, so that before and after can be read side by side
        if set_apart(title) == LEGACY_SUFFIX or not rows:
            continue
        first = rows[0]["_runs"][0]
        rule = task_rule(first["task"]["id"])
        tuned_on = next(((r.get("protocol") or {}).get("tuned_on") for row in rows
                         for r in row["_runs"] if (r.get("protocol") or {}).get("tuned_on")),
                        None)
        target = targets.get(first["task"]["id"], targets.get(str(tuned_on)))
        target = target if target is not None else (rule.target if rule else None)
        chosen = [r for r in rows if r["method"] == f"{r['method_id']} [tuned]"
                  or (r["reference"] and r["method"] == r["method_id"])]
        if rule is None or target is None or not any(not r["reference"] for r in chosen):
            continue
        standings, left_out = [], []
        limit = garbage_limit(first["task"]["id"])
        for row in chosen:
            scores = [reader.scores(r) for r in distinct_runs(row["_runs"])]
            if not all(rule.forget in sc and rule.keep in sc for sc in scores):
                left_out.append(f"{row['method']} (a run saved no per-sample "
                                f"{rule.forget} / {rule.keep} scores)")
                continue
            garbage = ([sc["garbage_rate"] for sc in scores]
                       if limit is not None and all("garbage_rate" in sc for sc in scores)
                       else None)
            standings.append(standing(rule, target, row["method"], row["method_id"],
                                      [{rule.forget: sc[rule.forget], rule.keep: sc[rule.keep]}
                                       for sc in scores], reference=bool(row["reference"]),
                                      garbage=garbage, garbage_limit=limit))
        if any(not s.reference for s in standings):
            out[title] = (rule, target, rank_standings(standings), left_out)
    return out


def _how_it_forgets(tables: Mapping[str, list[dict[str, Any]]],
                    found: Mapping[str, Ranking]) -> dict[str, dict[str, dict[str, str]]]:
    """``{title: {row label: {column: "mean [lo, hi]"}}}`` of :data:`HOW_IT_FORGETS`."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for title in found:
        for row in tables[title]:
            for m in HOW_IT_FORGETS:
                if m in row:
                    out.setdefault(title, {}).setdefault(row["method"], {})[m] = (
                        f"{fmt(row[m])} [{fmt(row[f'{m}_lo'])}, {fmt(row[f'{m}_hi'])}]")
            flag = judge_flag(row)
            if flag and "judge_agreement_forget" in row:  # the flag follows the row here too
                out[title][row["method"]]["judge_agreement_forget"] += f" ⚑ {flag}"
    return out


def oracle_yardsticks(tables: Mapping[str, list[dict[str, Any]]],
                      found: Mapping[str, Ranking]) -> dict[str, str]:
    """``{title: sentence}``: what the retrain oracle of each ranked table draws for the forget
    prompts, per forget instance — its garbage rate, the same number the methods' rows show —
    so that a yardstick that itself draws garbage (issue 31: the digits class-7 oracle draws
    *not a digit* for 54 % of its class-7 samples) is said where the oracle TV is read."""
    out: dict[str, str] = {}
    for title in found:
        oracle = next((r for r in tables[title] if r["method_id"] == "retrain"), None)
        if oracle is None:
            continue
        per: dict[str, list[float]] = {}
        for rec in oracle["_runs"]:
            value = (rec["metrics"].get("garbage_rate") or {}).get("value")
            if value is not None:
                inst = facts.instance_of(rec["task"]["id"], rec["task"]["config"])
                key = ", ".join(f"{k} {v}" for k, v in sorted(inst.items())) or "its instance"
                per.setdefault(key, []).append(float(value))
        if per:
            cells = "; ".join(f"{k}: {fmt(sum(v) / len(v))}" for k, v in sorted(per.items()))
            out[title] = (f"Yardstick: the retrain oracle's own forget generations are garbage "
                          f"at {cells} (mean over its runs). Oracle TV and the oracle gaps "
                          "compare each row with that model, garbage included: a row that "
                          "draws garbage looks closer to an oracle that draws it too.")
    return out


def _write_markdown(tables: dict[str, list[dict[str, Any]]], staging: Path,
                    say: Callable[[str], None] | None, found: Mapping[str, Any],
                    ranked: Mapping[str, Ranking]) -> list[str]:
    files = ["README.md"]
    text = to_markdown(tables, ranked, _how_it_forgets(tables, ranked),
                       oracle_yardsticks(tables, ranked))
    if found:
        text += "\n".join(fronts_markdown(found, md)) + "\n"
    (staging / "README.md").write_text(text)
    (staging / "grids").mkdir()
    for title, rows in tables.items():
        grid = sample_grid(rows, say)
        if grid is not None:
            name = f"grids/{slug(title)}.png"
            grid.save(staging / name)
            files.append(name)
    return files


def _write_csv(tables: dict[str, list[dict[str, Any]]], records: list[dict[str, Any]],
               staging: Path, found: Mapping[str, Any],
               ranked: Mapping[str, Ranking]) -> list[str]:
    import pandas as pd

    flat = []
    for title, rows in tables.items():
        for r in rows:
            flat.append({"table": title, **{k: (",".join(map(str, v)) if isinstance(v, list)
                                                else v) for k, v in r.items()
                                            if k not in ("metric_names", "_first", "_runs")}})
    write_csv(pd.DataFrame(flat), staging / "leaderboard.csv")
    write_csv(pd.DataFrame([{
        "task": r["task"]["id"], "method": r["method"]["id"], "seed": r["seed"],
        "run_id": r["run_id"], "status": r["status"],
        **{f"task.{k}": v for k, v in r["task"]["config"].items()},
        **{k: m["value"] for k, m in r["metrics"].items()},
        "unlearn_seconds": r["cost"].get("unlearn_seconds"), "error": r.get("error"),
    } for r in records]), staging / "runs.csv")
    files = ["leaderboard.csv", "runs.csv"]
    if found:
        write_csv(pd.DataFrame(fronts_table(found)), staging / "fronts.csv")
        files.append("fronts.csv")
    if ranked:
        write_csv(pd.DataFrame(rankings_table(ranked)), staging / "ranking.csv")
        files.append("ranking.csv")
    return files


def _front_points(tables: Mapping[str, Any], found: Mapping[str, Any]
                  ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The tuning points and fronts of each task, as extra points of the web page's trade-off
    plot of the task's first current table (the forgetting metric on x, the keep metric on y)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for task, (rule, _target, summaries) in found.items():
        title = next((t for t in tables if t.startswith(f"{task} — ")
                      and not set_apart(t)), None)
        if title is None:
            continue
        points = out.setdefault(title, {}).setdefault("points", [])
        for s in summaries:
            for p in s.points:
                x = p["forget_score"] if rule.forget_higher_is_better else 1 - p["forget_score"]
                point = {"method": s.method, "x": x, "y": p["keep"], "x_metric": rule.forget,
                         "y_metric": rule.keep}
                points.append({**point, "kind": "tuning"})
                if p["on_front"]:
                    points.append({**point, "kind": "front"})
    return out


def _remove_dead_staging(out: Path) -> None:
    """Delete the staging folders (``.<out>.report-<pid>``) that a report killed with ``kill -9``
    left beside ``out``; a live report's (its process still runs) is left alone."""
    for folder in out.parent.glob(f".{out.name}.report-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not folder.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # its report is dead
            shutil.rmtree(folder, ignore_errors=True)
        except (PermissionError, OverflowError, ValueError):  # another user's, or not a pid
            continue


def _generated(out: Path) -> set[str]:
    """The files a previous ``ubench report`` wrote into ``out`` (its manifest; for a folder
    written before manifests existed, recognised by the README's banner)."""
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            files = json.loads(manifest.read_text()).get("files", [])
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise ValueError("its files are not a list of names")
        except (OSError, ValueError, AttributeError):
            raise StoreError(f"the report manifest {manifest} is unreadable; delete it (and the "
                             "files the report made) or choose another --out") from None
        outside = [f for f in files if not _inside(out, f)]
        if outside:  # a manifest someone else wrote (a cloned folder): never delete by it
            raise StoreError(f"the report manifest {manifest} names {outside[0]!r}, which is not "
                             f"a file inside {out}; ubench report writes and deletes only inside "
                             "--out: delete that manifest (and check where it came from) or "
                             "choose another --out")
        return set(files)
    readme = out / "README.md"
    if readme.is_file() and readme.read_text(errors="replace").startswith(BANNER):
        legacy = {"README.md", "leaderboard.csv", "runs.csv"}
        return legacy | {f"grids/{p.name}" for p in (out / "grids").glob("*.png")}
    return set()


def _inside(out: Path, name: str) -> bool:
    """Whether the manifest entry ``name`` is a relative path that stays inside ``out``."""
    return confined(out, name) is not None


def _install(staging: Path, out: Path, files: list[str],
             formats: tuple[str, ...] = FORMATS) -> None:
    """Move the staged files into ``out``, replacing only files the report generated before
    (and, of those, removing the ones of the chosen formats it did not make this time)."""
    out.mkdir(parents=True, exist_ok=True)
    previous = _generated(out)
    for f in files:
        target = out / f
        if target.exists() and f not in previous:
            raise StoreError(f"refusing to overwrite {target}: ubench report did not write it "
                             f"(it is not in {out / MANIFEST}); move it away or choose another "
                             "--out")
    for f in files:
        (out / f).parent.mkdir(parents=True, exist_ok=True)
        move(staging / f, out / f)
    redone = {f for f in previous if _format_of(f) in formats}
    for stale in sorted(redone - set(files)):
        (out / stale).unlink(missing_ok=True)
    for folder in ("grids", "thumbs", "runs"):
        if (out / folder).is_dir() and not any((out / folder).iterdir()):
            (out / folder).rmdir()
    kept = {f for f in previous - redone if (out / f).is_file()}
    write_text_atomic(out / MANIFEST, json.dumps(
        {"generated_by": "ubench report", "files": sorted(kept | set(files))}, indent=1) + "\n")


# ---------------------------------------------------------------------- robustness (attacks)
def _robustness(records: list[dict[str, Any]], attacks: list[dict[str, Any]],
                staging: Path) -> list[str]:
    """``robustness.md`` / ``robustness.csv`` when the store holds attack records."""
    if not attacks:
        return []
    from ubench.report.robustness import write_robustness

    return write_robustness(records, attacks, staging)


def robustness_note(files: list[str]) -> str:
    """A pointer from the leaderboard to the robustness tables (nothing without attacks)."""
    if "robustness.md" not in files:
        return ""
    return ("\n## Robustness under attack\n\nRelearning, resurgence, concept inversion and "
            "soft-prompt attacks on these runs: [robustness.md](robustness.md) "
            "(CSV: robustness.csv).\n")
