"""The leaderboard web page: what the report writes (static checks) and what a real browser
shows (headless Debian Chromium driven by Playwright; skipped with the reason when either is
missing — `.ci/run` installs both; never a browser download)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.conftest import ROOT
from tests.web_site import (
    EVIL_METHOD,
    EVIL_METRIC,
    HOSTILE,
    MAIN,
    RELEARN,
    build_store,
    main_title,
    tuning_points,
)
from ubench.report.build import build_report
from ubench.report.table import leaderboard_rows
from ubench.store.reader import load_records


def make_site(root: Path) -> tuple[Path, dict[str, Any]]:
    """A store with :mod:`tests.web_site`'s records and its report (tuning points included)."""
    store, out = root / "store", root / "site"
    build_store(store)
    tables = leaderboard_rows(load_records(store))
    build_report(store, out, extras=tuning_points(main_title(tables)))
    return out, tables


class Links(HTMLParser):
    """Every href / src of a page, and the ids it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("href", "src") and v is not None]
        if a.get("id"):
            self.ids.add(a["id"])  # type: ignore[arg-type]
        if tag == "script":
            self.scripts.append(a)


def broken_links(page: Path) -> list[str]:
    """The links and images of ``page`` that do not resolve to a file (or an id on it)."""
    parser = Links()
    parser.feed(page.read_text())
    bad = []
    for ref in parser.refs:
        parts = urlsplit(ref)
        assert parts.scheme == "", f"{page.name} links outside the site: {ref}"
        if not parts.path:
            if parts.fragment not in parser.ids:
                bad.append(ref)
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        if not (target.is_file() and (not parts.fragment or target.suffix != ".html"
                                      or parts.fragment in _ids(target))):
            bad.append(ref)
    return bad


@cache
def _ids(page: Path) -> frozenset[str]:
    parser = Links()
    parser.feed(page.read_text())
    return frozenset(parser.ids)


# ----------------------------------------------------------------------------- static checks
def test_every_record_string_is_escaped_in_the_html(tmp_path: Path) -> None:
    out, _ = make_site(tmp_path)
    pages = [out / "index.html", *sorted((out / "runs").glob("*.html"))]
    assert len(pages) == 1 + len(MAIN) + 2
    for page in pages:
        text = page.read_text()
        for raw in ("<script>window.__pwned", "<img src=x", "<i>\"", "<b>\""):
            assert raw not in text, (page.name, raw)
        parser = Links()
        parser.feed(text)
        # only the page's own scripts (library + page script) and inert JSON blocks
        assert all(s.get("type") in (None, "application/json") for s in parser.scripts)
        assert not any(s.get("src") for s in parser.scripts), "no external script"
    index = (out / "index.html").read_text()
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in index
    assert "\\u003cscript\\u003ewindow.__pwned=1" in index  # inside the plot's JSON


def test_pages_link_only_to_files_that_exist(tmp_path: Path) -> None:
    out, _ = make_site(tmp_path)
    for page in [out / "index.html", *(out / "runs").glob("*.html")]:
        assert broken_links(page) == [], page.name


def test_a_packed_store_gives_the_same_site(tmp_path: Path) -> None:
    """The site is a pure function of the records: packing the store changes no page, no
    thumbnail, no record file, and every link of the packed site resolves."""
    from ubench.store.pack import pack

    store = tmp_path / "store"
    build_store(store)
    pack(store, tmp_path / "packed")
    build_report(store, tmp_path / "a", formats=("html",))
    build_report(tmp_path / "packed", tmp_path / "b", formats=("html",))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*")
                           if p.is_file())
    assert any(f.suffix == ".png" and f.parts[0] == "runs" for f in files)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    for page in [tmp_path / "b" / "index.html", *(tmp_path / "b" / "runs").glob("*.html")]:
        assert broken_links(page) == [], page.name


def committed_site(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The web page of one task of the committed results (t2i-object: real records, attacks
    and grids, 90 pages), built as a user builds it."""
    store = tmp_path / "store"
    src = ROOT / "leaderboard" / "records" / "data" / "t2i-object"
    if not src.is_dir():
        pytest.skip("no committed t2i-object records")
    shutil.copytree(src, store / "data" / "t2i-object")
    build_report(store, tmp_path / "site")
    return tmp_path / "site", leaderboard_rows(load_records(store))


def test_the_committed_results_make_a_site_whose_links_resolve(tmp_path: Path) -> None:
    out, tables = committed_site(tmp_path)
    pages = [out / "index.html", *sorted((out / "runs").glob("*.html"))]
    assert len(pages) == 1 + len(load_records(tmp_path / "store"))
    for page in pages:
        assert broken_links(page) == [], page.name
    assert len(tables) >= 1


def test_page_data_axes_extra_points_and_robustness_columns(tmp_path: Path) -> None:
    out, tables = make_site(tmp_path)
    index = (out / "index.html").read_text()
    blobs = re.findall(r'<script type="application/json" class="specs">(.*?)</script>', index,
                       re.S)
    assert len(blobs) == len(tables) == 2
    main = json.loads(blobs[list(tables).index(main_title(tables))])
    # the headline pair first (UA vs RA), then UA vs FD; the robustness metric is a column
    # but on no axis (its split is unknown)
    first = main[0]["layer"]
    assert [ly["name"] for ly in first] == ["xwhiskers", "ywhiskers", "tuning", "fronts",
                                            "methods", "references", "reflabels_left",
                                            "reflabels_right"]
    values = main[0]["data"]["values"]
    assert sum(v["kind"] == "tuning" for v in values) == 3
    assert sum(v["kind"] == "front" for v in values) == 2
    assert {v["method"] for v in values if v["kind"] == "reference"} == {"base", "retrain"}
    assert len(main) == 2
    assert main[1]["layer"][1]["encoding"]["y"]["title"].startswith("FD")
    assert all(v["kind"] not in ("tuning", "front") for v in main[1]["data"]["values"])
    assert "RELEARN_<wbr>UA@50" in index
    assert EVIL_METRIC.upper() not in index  # escaped, never raw
    # every row has a thumbnail of its first run (the main table's rows + the other's one)
    assert index.count('src="thumbs/') == sum(len(rows) for rows in tables.values()) == \
        len({(m, json.dumps(c)) for m, _, _, _, c in MAIN}) + 1


def test_extra_points_are_checked() -> None:
    from ubench.report.web.plot import check_points

    assert check_points([{"method": "m", "kind": "front", "x": 1, "y": 2}])[0]["x_lo"] == 1.0
    for bad in ([{"method": "m", "kind": "other", "x": 1, "y": 2}],
                [{"method": "m", "kind": "tuning", "x": float("nan"), "y": 2}],
                [{"method": 3, "kind": "tuning", "x": 1, "y": 2}], ["point"]):
        with pytest.raises(ValueError, match="extra point 0"):
            check_points(bad)


def test_axes_come_from_the_metric_classes() -> None:
    from ubench.report.web.plot import axis_pairs

    assert axis_pairs(["ua", "ra", "fd"])[:2] == [("ua", "ra"), ("ua", "fd")]
    t2i = ["concept_rate", "concept_rate_paraphrase", "alignment_train", "alignment_test", "fd"]
    assert axis_pairs(t2i)[0] == ("concept_rate", "alignment_test")
    sd = ["nudity_rate", "exposed_parts", "clip_alignment_train", "clip_alignment_test"]
    assert axis_pairs(sd)[0] == ("nudity_rate", "clip_alignment_test")
    assert axis_pairs(["concept_rate", "clip_alignment_train", "clip_alignment_test",
                       "other_accuracy"])[0] == ("concept_rate", "clip_alignment_test")
    assert axis_pairs([RELEARN, "ra"]) == []  # an unknown metric is on no axis


def test_format_option_open_and_other_formats_left_alone(tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "lb"
    build_store(store)

    # the browser --open starts: a stub on $BROWSER (Python's webbrowser honours it) that
    # records the URL it was given, as a real browser would receive it
    opened = tmp_path / "opened.txt"
    stub = tmp_path / "browser"
    stub.write_text(f"#!/bin/sh\necho \"$1\" > {opened}\n")
    stub.chmod(0o755)

    def cli(*args: str, browser: str = str(stub)) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ubench.cli.main", "report", "--store",
                               str(store), "--out", str(out), *args], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "BROWSER": browser})

    md = cli("--format", "md")
    assert md.returncode == 0, md.stderr
    assert (out / "README.md").is_file() and not (out / "index.html").exists()
    html = cli("--format", "html", "--open")
    assert html.returncode == 0, html.stderr
    url = (out / "index.html").resolve().as_uri()
    assert html.stdout.strip() == url and opened.read_text().strip() == url
    nobrowser = cli("--format", "html", "--open", browser=str(tmp_path / "no-such-browser"))
    assert nobrowser.returncode == 0 and nobrowser.stdout.strip() == url
    assert "open the URL above" in nobrowser.stderr
    assert (out / "README.md").is_file(), "a report of other formats leaves md alone"
    manifest = json.loads((out / ".ubench-report.json").read_text())["files"]
    assert "README.md" in manifest and "index.html" in manifest
    assert not any(f.endswith(".csv") for f in manifest)
    for args, needle in ((["--format", "pdf"], "format"), (["--format", "md", "--open"],
                                                            "--open needs the html format")):
        bad = cli(*args)
        assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error:")
        assert needle in bad.stderr and "Traceback" not in bad.stderr


def test_the_report_path_never_imports_the_model_stack(tmp_path: Path) -> None:
    store = tmp_path / "store"
    build_store(store)
    code = ("import sys; from pathlib import Path; from ubench.report.build import build_report; "
            f"build_report(Path({str(store)!r}), {str(tmp_path / 'out')!r}); "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_report_facts_agree_with_the_classes() -> None:
    """The torch-free facts (from ubench/catalog/config_schema.json) are what the classes say."""
    from ubench.catalog import facts
    from ubench.catalog.builtins import BUILTIN_METHODS, BUILTIN_TASKS
    from ubench.catalog.registry import METHODS, TASKS

    for m in BUILTIN_METHODS:
        assert facts.method_defaults(m) == facts._jsonable(METHODS.get(m).Config().to_dict())
    for t in BUILTIN_TASKS:
        cls, got = TASKS.get(t), facts.task_facts(t)
        assert got is not None and got.version == cls.version
        assert got.defaults == facts._jsonable(cls.Config().to_dict())
        assert got.method_defaults == facts._jsonable(
            {k: dict(v) for k, v in cls.method_defaults.items()})
    assert facts.task_facts("no-such-task") is None and facts.method_defaults("nope") is None


def test_vendored_javascript_matches_its_pins() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import vendor_js
    finally:
        sys.path.pop(0)
    assert vendor_js.check() == []
    pins = json.loads(vendor_js.MANIFEST.read_text())["packages"]
    assert {p["package"] for p in pins} == {"vega", "vega-lite", "vega-embed"}
    assert all(p["license"] and p["integrity"].startswith("sha512-") for p in pins)


# ----------------------------------------------------------------------------- the browser
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One headless Chromium for the module, with a fresh profile folder."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed "
                                      "(pip install -e '.[test]')")
    if CHROMIUM is None:
        pytest.skip("no Chromium found: apt-get install -y chromium (as .ci/run does)")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=FLAGS, viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return make_site(tmp_path_factory.mktemp("web"))


class Loaded:
    """A page loaded from disk, with every console error and page error it produced."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.page = browser.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")
        if self.page.locator(".vis").count():
            self.page.wait_for_function(
                "document.querySelectorAll('.vis[data-rendered]').length === "
                "document.querySelectorAll('.vis').length", timeout=30_000)

    def eval(self, js: str, arg: Any = None) -> Any:
        return self.page.evaluate(js, arg)

    def close(self) -> None:
        self.page.close()


def _check_rendered(loaded: Loaded, tables: dict[str, Any]) -> None:
    """Every table and plot there; one marker per method row and per reference row."""
    assert loaded.errors == []
    sections = loaded.page.locator("section.board-section")
    assert sections.count() == len(tables)
    for i, rows in enumerate(tables.values()):
        section = sections.nth(i)
        assert section.locator("table.board tbody tr").count() == len(rows)
        assert section.locator(".vis svg.marks").count() == 1
        counts = section.evaluate(
            "s => ['methods', 'references'].map(n => s.querySelectorAll("
            "'.vis svg.marks g.' + n + '_marks path').length)")
        metrics = [m for m in ("ua", "concept_rate", "nudity_rate")
                   if any(m in r for r in rows)]
        plotted = [r for r in rows if metrics and metrics[0] in r]
        assert counts == [sum(not r["reference"] for r in plotted),
                          sum(bool(r["reference"]) for r in plotted)]
    broken = loaded.eval("() => Array.from(document.images).filter("
                         "i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    assert broken == []


@pytest.mark.browser
def test_the_page_renders_in_a_browser(browser: Any, site: tuple[Path, dict[str, Any]],
                                       tmp_path: Path) -> None:
    out, tables = site
    loaded = Loaded(browser, out / "index.html")
    _check_rendered(loaded, tables)
    main = loaded.page.locator("section.board-section").nth(list(tables).index(
        main_title(tables)))
    marks = main.evaluate("s => ['tuning', 'fronts'].map(n => s.querySelectorAll("
                          "'.vis svg.marks g.' + n + '_marks path').length)")
    assert marks == [3, 1]  # three hollow tuning points, one front line
    # the pair menu redraws the plot with UA vs FD
    main.locator("select.pair-select").select_option("1")
    loaded.page.wait_for_function(
        "s => s.querySelector('.vis').getAttribute('data-rendered') === '1'",
        arg=main.element_handle())
    assert "FD" in main.locator(".vis svg.marks").text_content()
    loaded.page.screenshot(path=str(tmp_path / "leaderboard-1280x900.png"))
    assert (tmp_path / "leaderboard-1280x900.png").stat().st_size > 10_000
    assert loaded.errors == []


@pytest.mark.browser
def test_sorting_a_column_reorders_rows_with_references_on_top(
        browser: Any, site: tuple[Path, dict[str, Any]]) -> None:
    out, tables = site
    rows = tables[main_title(tables)]
    loaded = Loaded(browser, out / "index.html")
    table = loaded.page.locator("section.board-section").nth(
        list(tables).index(main_title(tables))).locator("table.board")

    def labels() -> list[str]:
        return table.evaluate("t => Array.from(t.tBodies[0].rows).map("
                              "r => r.cells[0].getAttribute('data-v'))")

    assert labels() == [r["method"] for r in rows]
    refs = [r["method"] for r in rows if r["reference"]]
    rest = [r for r in rows if not r["reference"]]
    ra = table.locator("thead th", has_text=re.compile(r"^\s*RA\b"))  # not ORACLE_GAP_UA
    ra.locator("button").click()  # best first: high
    assert labels() == refs + [r["method"] for r in sorted(rest, key=lambda r: -r["ra"])]
    assert ra.get_attribute("aria-sort") == "descending"
    ra.locator("button").click()
    assert labels() == refs + [r["method"] for r in sorted(rest, key=lambda r: r["ra"])]
    table.locator("thead th", has_text="method").locator("button").click()
    assert labels() == refs + sorted((r["method"] for r in rest), key=str.lower)
    assert loaded.errors == []


@pytest.mark.browser
def test_hostile_strings_show_as_text_and_run_no_script(
        browser: Any, site: tuple[Path, dict[str, Any]]) -> None:
    out, _ = site
    pages = [out / "index.html", *sorted((out / "runs").glob("*.html"))]
    hostile = [p for p in pages if "&lt;script&gt;window.__pwned=1" in p.read_text()]
    assert hostile == pages  # every page shows some of it (configs, errors, definitions)
    for page in hostile:
        loaded = Loaded(browser, page)
        assert loaded.eval("() => window.__pwned") is None
        assert "<script>window.__pwned=1</script>" in loaded.eval(
            "() => document.body.innerText")
        assert loaded.eval("() => document.querySelectorAll('script:not([type])').length") \
            == (2 if page.name == "index.html" else 0)
        assert loaded.eval("() => document.querySelectorAll('img[src=x], i, b').length") == 0
        assert loaded.errors == []
        if page.name == "index.html":
            labels = loaded.eval("() => Array.from(document.querySelectorAll("
                                 "'td.method summary')).map(s => s.textContent)")
            # "[tuned]" when the committed preset's ga values are ga's defaults (they are
            # on digits-class: the row is then the tuned configuration)
            assert {f"ga (note={HOSTILE})", f"ga [tuned] (note={HOSTILE})"} & set(labels)
            assert f"{EVIL_METHOD} (knob={HOSTILE})" in labels  # not installed: every value
            # the plot's tooltips show the hostile labels as text too
            marks = loaded.page.locator(".vis svg.marks g.methods_marks path")
            shown = []
            for k in range(marks.count()):
                marks.nth(k).hover(force=True)
                shown.append(loaded.eval("() => (document.getElementById('vg-tooltip-element')"
                                         " || {}).innerText || ''"))
            assert any("<script>window.__pwned=1</script>" in t for t in shown), shown
            assert loaded.eval("() => document.querySelectorAll("
                               "'#vg-tooltip-element script, #vg-tooltip-element img')"
                               ".length") == 0
            assert loaded.eval("() => window.__pwned") is None
        loaded.close()


@pytest.mark.browser
def test_every_image_and_link_resolves_in_the_browser(
        browser: Any, site: tuple[Path, dict[str, Any]]) -> None:
    out, _ = site
    loaded = Loaded(browser, out / "index.html")
    hrefs = loaded.eval("() => Array.from(document.querySelectorAll('a[href]'))"
                        ".map(a => a.href)")
    assert hrefs
    for href in hrefs:
        parts = urlsplit(href)
        assert parts.scheme == "file", href
        assert Path(unquote(parts.path)).is_file(), href
    run = next(h for h in hrefs if "/runs/" in h)
    page = Loaded(browser, Path(unquote(urlsplit(run).path)))
    assert page.eval("() => Array.from(document.images).every(i => i.complete && "
                     "i.naturalWidth > 0)")
    assert page.eval("() => document.images.length") == 1
    assert page.errors == []


@pytest.mark.browser
def test_the_committed_results_render(browser: Any, tmp_path: Path) -> None:
    out, tables = committed_site(tmp_path)
    loaded = Loaded(browser, out / "index.html")
    _check_rendered(loaded, tables)
    loaded.page.screenshot(path=str(tmp_path / "committed-1280x900.png"))

