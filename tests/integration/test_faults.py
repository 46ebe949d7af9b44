"""The fault suite: nothing lost, nothing silent.

One test (or more) per fault found by the reliability probe (the numbered items of the issue
"Nothing lost, nothing silent"): each failed before its fix. The process-level tests (kill -9 at
several points, signals, concurrent runs on an empty cache) are marked ``slow`` and ``faults``;
``.ci/run`` runs them after the default suite (``pytest -m "slow and faults"``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST, TINY
from ubench.core.errors import (
    CorruptAssetError,
    InputError,
    MissingAssetError,
    StoreError,
)
from ubench.report.build import build_report
from ubench.run import identity, runner
from ubench.store.runs import usable_store

SETS = [a for s in FAST for a in ("--set", s)]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ubench.cli.main", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def last_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines, proc.stderr
    return lines[-1]


def metrics(path: Path) -> dict:
    return json.loads(path.read_text())["metrics"]


# ----------------------------------------------------------------------------- 1. report
def test_report_refuses_a_missing_or_empty_store_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "L"
    (out / "grids").mkdir(parents=True)
    (out / "grids" / "mine.png").write_bytes(b"x")
    (out / "README.md").write_text("my own notes\n")
    for store in (tmp_path / "nonexistent", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        proc = cli("report", "--store", str(store), "--out", str(out))
        assert proc.returncode == 2 and last_line(proc).startswith("error: ")
        assert str(store) in last_line(proc)
    assert (out / "README.md").read_text() == "my own notes\n"
    assert (out / "grids" / "mine.png").read_bytes() == b"x"


def _one_record(store: Path) -> None:
    from tests.integration.test_report import record, write

    write(store, [record("ga", 0, 0.9), record("base", 0, 0.0)])


def test_report_replaces_only_what_it_generated(tmp_path: Path) -> None:
    store, out = tmp_path / "s", tmp_path / "L"
    _one_record(store)
    out.mkdir()
    (out / "README.md").write_text("my own notes\n")
    with pytest.raises(StoreError, match=r"refusing to overwrite .*README\.md"):
        build_report(store, out)
    assert (out / "README.md").read_text() == "my own notes\n"
    (out / "README.md").unlink()
    (out / "notes.txt").write_text("keep me")
    (out / "records").mkdir()
    build_report(store, out)
    manifest = json.loads((out / ".ubench-report.json").read_text())
    assert {"README.md", "leaderboard.csv", "runs.csv", "index.html"} <= set(manifest["files"])
    assert {f for f in manifest["files"] if "/" in f} == {
        f"runs/{p.name}" for p in (out / "runs").iterdir()}  # one page per record, and its record
    assert {p.stem for p in (out / "runs").glob("*.html")} == \
        {p.stem for p in (out / "runs").glob("*.json")}
    (out / "grids").mkdir()
    (out / "grids" / "user.png").write_bytes(b"u")
    build_report(store, out)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "records").is_dir()
    assert (out / "grids" / "user.png").read_bytes() == b"u"
    assert not list(tmp_path.glob(".L.report-*"))  # no staging folder left behind


def test_a_truncated_sample_grid_is_a_warning_not_a_lost_leaderboard(tmp_path: Path) -> None:
    store, out = tmp_path / "s", tmp_path / "L"
    _one_record(store)
    png = next(store.glob("**/ga/**/record.json")).parent / "samples.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    notes: list[str] = []
    build_report(store, out, say=notes.append)
    assert any("unreadable" in n and str(png.parent) in n for n in notes)
    assert (out / "README.md").read_text().startswith("<!-- GENERATED")


# ----------------------------------------------------------------------------- 3. usage errors
@pytest.mark.parametrize("args", [
    ["run", "--task", "digits-class"],
    ["run", "--method", "ga", "--task", "digits-class", "--seed", "abc"],
    ["run", "--method", "ga", "--task", "digits-class", "--threads", "0"],
    ["run", "--method", "ga", "--task", "digits-class", "--checkpoint-every", "-1"],
    [],
    ["nosuchcmd"],
    ["list", "nosuch"],
    ["run", "--method", "ga", "--task", "digits-class", "--nosuchoption"],
], ids=lambda a: " ".join(a) or "bare")
def test_usage_errors_exit_2_without_a_traceback(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if args:
        assert last_line(proc).startswith("error: ") and "--help" in last_line(proc)
    else:  # bare `ubench` shows its help
        assert "Usage" in proc.stdout + proc.stderr


def test_bad_overrides_are_refused_before_torch_is_imported() -> None:
    """The fast check: `--set method.lr=abc` never loads the model stack (<= 2 s)."""
    code = ("import sys; sys.argv = ['ubench', 'run', '--method', 'boostalign', '--task', "
            "'digits-class', '--set', 'method.lr=abc']\n"
            "from ubench.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, 'torch' in sys.modules, 'diffusers' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stdout + proc.stderr
    assert "method boostalign.lr must be a number" in proc.stderr


def test_the_fast_check_agrees_with_the_full_resolve() -> None:
    from ubench.catalog import fastcheck
    from ubench.catalog.registry import METHODS
    from ubench.core.errors import ConfigError

    probes = ["abc", "-1", "0", "1", "0.5", "1e9", "true", "clip", "minibatch", "noxattn"]
    for method in METHODS.names():
        if METHODS.get(method).external:  # refused by `ubench run` whatever its settings
            continue
        for key in METHODS.get(method).Config.field_names():
            for raw in probes:
                item = [f"method.{key}={raw}"]
                try:
                    identity.resolve(method, TINY, 0, item)
                    full = None
                except ConfigError as e:
                    full = str(e)
                except Exception:  # incompatible scope etc.: not a config verdict
                    continue
                try:
                    fastcheck.check_run(method, TINY, item)
                    fast = None
                except ConfigError as e:
                    fast = str(e)
                if fast is not None:  # the fast check never refuses what the full one takes
                    assert full == fast, (method, key, raw, fast, full)


# ----------------------------------------------------------------------------- 5. environment
def test_a_store_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.write_text("not a folder")
    proc = cli("run", "--method", "ga", "--task", TINY, *SETS, "--store", str(store))
    assert proc.returncode == 2 and "is a file" in last_line(proc)


def test_an_unwritable_store_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """(Tests run as root, for whom permission bits do not apply: the refusal is injected.)"""
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(StoreError, match="not writable"):
        usable_store(tmp_path)


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_an_unusable_asset_cache_is_one_line(kind: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from ubench.store.cache import cached

    home = tmp_path / "home"
    if kind == "file":
        home.write_text("x")
    else:
        home.mkdir()
        monkeypatch.setattr(os, "access", lambda *a, **k: False)
    monkeypatch.setenv("UBENCH_HOME", str(home))
    with pytest.raises(StoreError, match="UBENCH_HOME"):
        cached("x", {"a": 1}, lambda d: None)


def test_corrupt_cached_assets_name_the_folder_to_delete(store: Path) -> None:
    from ubench.catalog.registry import TASKS
    from ubench.store.cache import asset_dir

    task_cls = TASKS.get(TINY)
    task = task_cls(task_cls.Config())
    task.prepare()
    base = asset_dir("digits/base", task._keys()["base"])
    weights = base / "unet" / "diffusion_pytorch_model.safetensors"
    good = weights.read_bytes()
    accuracy = task.judge_dir / "quality.json"
    good_acc = accuracy.read_text()
    try:
        weights.write_bytes(good[:100])
        with pytest.raises(CorruptAssetError, match=f"delete {base}"):
            task.base_model("cpu")
        accuracy.write_text('{"heldout_accuracy": "abc"}')
        with pytest.raises(CorruptAssetError, match=f"delete {task.judge_dir}"):
            task._check_judge()
        proc = cli("run", "--method", "ga", "--task", TINY, *SETS)
        assert proc.returncode == 1 and "delete" in last_line(proc)
    finally:
        weights.write_bytes(good)
        accuracy.write_text(good_acc)


@pytest.mark.parametrize(("content", "needle"), [
    ("prompt,categories\nx,sexual\n", "missing column(s) nudity_percentage"),
    ("", "empty file"),
    (b"prompt,nudity_percentage\n\xff\xfe,50\n", "not UTF-8"),
    ("prompt,nudity_percentage,sd_seed\nx,50,abc\n", "sd_seed 'abc' is not a number"),
    ("prompt,nudity_percentage\nx,0\ny,0.0\n", "no prompt with nudity_percentage > 0"),
    ("prompt,nudity_percentage\nx,50,extra\n", "different number of fields"),
], ids=["missing-column", "empty", "not-utf8", "bad-seed", "no-usable-row", "ragged"])
def test_malformed_i2p_files_are_one_line(content: str | bytes, needle: str,
                                          tmp_path: Path) -> None:
    from ubench.tasks.sd.i2p import load_i2p

    path = tmp_path / "i2p.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputError) as err:
        load_i2p(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_failed_start_leaves_no_empty_folder(store: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError):  # resolving digests the weights: refused there
        runner.run(identity.resolve("boostalign", "sd-nudity", 0,
                                  [f"task.model={tmp_path / 'no-such-sd'}"]), store=store)
    assert not list(store.glob("sd-nudity*"))


# ----------------------------------------------------------------------------- 6. stale inputs
def test_user_files_enter_the_identity_by_content(tmp_path: Path, tiny_sd: Path) -> None:
    model = f"task.model={tiny_sd}"  # the weights' digest is part of the identity too
    i2p = tmp_path / "i2p.csv"
    i2p.write_text("prompt,nudity_percentage\na,50\n")
    first = identity.resolve("boostalign", "sd-nudity", 0, [model, f"task.i2p={i2p}"])
    assert first.identity["task"]["inputs"]["i2p"] != "missing"
    os.utime(i2p, (1, 1))  # a new time, the same content: the same run
    assert identity.resolve("boostalign", "sd-nudity", 0, [model, f"task.i2p={i2p}"]).run_id == \
        first.run_id
    i2p.write_text("prompt,nudity_percentage\nb,50\n")  # edited in place: another run
    assert identity.resolve("boostalign", "sd-nudity", 0, [model, f"task.i2p={i2p}"]).run_id != \
        first.run_id
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"1")
    one = identity.resolve("boostalign", "sd-nudity", 0, [model, f"task.fid_reference={folder}"])
    (folder / "b.png").write_bytes(b"2")
    assert identity.resolve("boostalign", "sd-nudity", 0, [model, f"task.fid_reference={folder}"]
                          ).run_id != one.run_id
    # tasks without user files keep their run identities (the committed records' ids)
    assert "inputs" not in identity.resolve("boostalign", "digits-class", 0, []).identity["task"]


# ----------------------------------------------------------------------------- 8. smaller
def test_json_on_error_prints_an_error_object() -> None:
    proc = cli("run", "--method", "ga", "--task", TINY, "--set", "method.lr=abc", "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout) == {"status": "error",
                                       "error": "method ga.lr must be a number; got 'abc'"}


@pytest.mark.slow
@pytest.mark.heavy
def test_method_all_carries_on_past_a_failed_method(store: Path) -> None:
    proc = cli("run", "--method", "all", "--task", TINY, *SETS,
               "--set", "method.negative_guidance=1e30", "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    failed = {o["method"] for o in out if o["status"] == "error"}
    ok = {o["method"]["id"] for o in out if o["status"] == "ok"}
    assert failed == {"esd-u", "esd-full"}
    assert {"boostalign", "salun", "base", "retrain"} <= ok
    assert "2 of" in last_line(proc) and "esd-u" in last_line(proc)


# ----------------------------------------------------------------------------- process faults
def _run_args(seed: int = 3, steps: int = 40, every: int = 1) -> list[str]:
    return ["run", "--method", "ga", "--task", TINY, "--seed", str(seed), "--set",
            f"method.steps={steps}", "--set", "method.batch_size=16", "--checkpoint-every",
            str(every)]


def _wait_for(path_glob: Path, pattern: str, proc: subprocess.Popen, timeout: float = 300
              ) -> None:
    t0 = time.time()
    while not list(path_glob.glob(pattern)):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_with_one_line_and_the_exit_code(sig: int, code: int, store: Path) -> None:
    assert cli(*_run_args(seed=9, steps=2)).returncode == 0  # the tiny assets exist
    # the default SIGINT disposition, whatever the harness gave us (a background job of a
    # non-interactive shell ignores SIGINT, and a child inherits that)
    proc = subprocess.Popen([sys.executable, "-m", "ubench.cli.main", *_run_args(steps=400)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(store, "**/checkpoint/state.json", proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert lines[-1].startswith("interrupted during unlearning; rerun the same command to "
                                "resume from step ")
    assert "\x1b[?25l" not in err.split("\x1b[?25h")[-1]  # the cursor is shown again
    resumed = cli(*_run_args(steps=400))
    assert resumed.returncode == 0 and "resuming from the checkpoint at step" in resumed.stderr


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("point", ["step:1", "step:3", "evaluate", "record"])
def test_kill_9_anywhere_then_rerun_gives_the_uninterrupted_record(point: str, store: Path,
                                                                    tmp_path: Path) -> None:
    """kill -9 before the first checkpoint (step 1 of 4, checkpoints every 2), after it (step 3),
    during evaluation and while the record is written: the rerun's metrics equal a straight
    run's, bit for bit."""
    args = _run_args(seed=5, steps=4, every=2)
    straight = cli(*args, "--store", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    want = metrics(next((tmp_path / "straight").glob("**/record.json")))
    killed = cli(*args, env={"UBENCH_FAILPOINT": point})
    assert killed.returncode == -signal.SIGKILL
    assert not list(store.glob("**/record.json"))
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    record = next(store.glob("**/record.json"))
    assert metrics(record) == want
    assert not list(record.parent.glob(".*.tmp-*"))  # the killed writer's temporary is gone


@pytest.mark.slow
@pytest.mark.faults
def test_concurrent_runs_share_one_store_and_one_empty_cache(tmp_path: Path) -> None:
    """4 processes (two identical runs, two others), an empty asset cache: every record once,
    every asset built once, no crash."""
    env = {"UBENCH_HOME": str(tmp_path / "home"), "UBENCH_STORE": str(tmp_path / "store")}
    specs = [_run_args(seed=3, steps=40), _run_args(seed=3, steps=40),
             _run_args(seed=4, steps=10), ["run", "--method", "base", "--task", TINY]]
    procs = [subprocess.Popen([sys.executable, "-m", "ubench.cli.main", *a], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
             for a in specs]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    records = list((tmp_path / "store").glob("**/record.json"))
    assert len(records) == 3
    assert sum("finished already" in err for _, err in outs) == 1
    builds = sum(err.count("judge: held-out accuracy") for _, err in outs)
    assert builds == 1, [err for _, err in outs]
    # the headline judge (judge-robust) and the base model, once each; the original judge is
    # no longer behind any metric, so nothing builds it
    for kind in ("judge-robust", "base"):
        assert len(list((tmp_path / "home" / "digits" / kind).glob("*/key.json"))) == 1
    assert not list((tmp_path / "home" / "digits" / "judge").glob("*/key.json"))
    # no run here uses the retrain oracle, so none builds it (Task.assets(uses_oracle))
    assert not list((tmp_path / "home" / "digits" / "oracle").glob("*/key.json"))
