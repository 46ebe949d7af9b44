"""``ubench report`` and ``ubench compare``: read stores, write the leaderboard or a verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ubench.cli.app import app, err
from ubench.core.errors import ConfigError


@app.command()
def report(
    store: Annotated[str | None, typer.Option(help="Results folder to read.")] = None,
    out: Annotated[str, typer.Option(help="Folder to write the leaderboard into.")
                   ] = "leaderboard",
    format_: Annotated[str, typer.Option(
        "--format", help="Outputs, comma-separated: md (README.md + grids), csv "
                         "(leaderboard.csv, runs.csv), html (index.html + thumbs/ + runs/).")
                       ] = "md,csv,html",
    open_: Annotated[bool, typer.Option(
        "--open", help="Open the web page in a browser ($BROWSER or the system's) and print its "
                       "file:// URL on stdout.")] = False,
) -> None:
    """Build the leaderboard (Markdown, CSV and a static web page) from every record in the
    store.

    Examples:
      ubench report --store results --out leaderboard
      ubench report --format html --open
    """
    from ubench.core.paths import store_root
    from ubench.report.build import build_report, parse_formats

    formats = parse_formats(format_)
    if open_ and "html" not in formats:
        raise ConfigError("--open needs the html format: add html to --format")
    written = build_report(store_root(store), out, say=err, formats=formats)
    for p in written:
        if p.parent.name not in ("runs", "thumbs"):  # hundreds of run pages: counted below
            err(f"wrote {p}")
    pages = sum(p.parent.name == "runs" for p in written)
    thumbs = sum(p.parent.name == "thumbs" for p in written)
    if pages or thumbs:
        err(f"wrote {pages} run pages and {thumbs} thumbnails under {out}")
    if open_:
        import webbrowser

        url = (Path(out) / "index.html").resolve().as_uri()
        print(url)
        if not webbrowser.open(url):
            err("no browser to open it here; open the URL above")


@app.command()
def compare(
    baseline: Annotated[str, typer.Argument(help="Baseline store or folder of records.")],
    current: Annotated[str, typer.Argument(help="Current store or folder of records.")],
    tolerance: Annotated[list[str] | None, typer.Option(
        help="Per-metric tolerance: METRIC=VALUE (absolute) or METRIC=PERCENT% (relative to "
             "the baseline), e.g. --tolerance ra=0.01 --tolerance fd=5%.")] = None,
    allow_asset_change: Annotated[bool, typer.Option(
        help="Compare runs measured with different assets (judge, base model, data).")
                                  ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of Markdown.")
                       ] = False,
    pair_by: Annotated[str, typer.Option(
        help="config: pair runs of one configuration (default); model: pair records that "
             "scored the same weights, e.g. a run and `ubench eval` of its saved model.")
                       ] = "config",
    out: Annotated[str | None, typer.Option(
        help="Also write the Markdown report to this file (e.g. for a pull-request comment).")
                   ] = None,
) -> None:
    """Pair the runs of two result sets and flag significant regressions (paired bootstrap).

    Exit status: 0 no regression, 1 a regression, 2 unusable input.

    Example: ubench compare tests/baseline/quick results/quick --tolerance ra=0.01
    """
    from ubench.report.compare import compare as run_compare
    from ubench.report.compare import parse_tolerances, to_markdown

    result = run_compare(baseline, current, tolerances=parse_tolerances(list(tolerance or [])),
                         allow_asset_change=allow_asset_change, pair_by=pair_by)
    text = to_markdown(result)
    if out:
        _write_out(Path(out), text)
    print(json.dumps(result.to_json(), indent=2, sort_keys=True) if as_json else text)
    if result.regressions:
        err(f"{len(result.regressions)} regression(s); see the table above")
        raise typer.Exit(1)


def _write_out(path: Path, text: str) -> None:
    """``--out``: the Markdown report as a file (one line with the fix when it cannot be)."""
    from ubench.core.errors import disk_full, is_disk_full

    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give the path of a file to write the "
                          "report into, e.g. --out compare.md")
    try:
        path.write_text(text)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full(path.parent, f"writing {path.name}") from None
        raise ConfigError(f"--out {path}: cannot write it ({e.strerror}); give a file in a "
                          "folder that exists and that you can write") from None
