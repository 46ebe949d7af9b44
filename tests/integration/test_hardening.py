"""The second reliability probe's cases, one test each: nothing is deleted outside its folder,
nothing is read outside its store, and every fault a user can meet — a hostile manifest or
record, a full disk, a huge plan or seed, an unreachable Ray cluster, a signal, a stale staging
folder, a bad ``--out``, an edited record — is one line with the fix and a non-zero exit.

Cases that start the command line in a process are in the fault suite (``slow`` and ``faults``:
``.ci/run`` runs it); the in-process ones run by default."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST, ROOT, TINY
from tests.unit.test_compare import make_run
from ubench.core.errors import CorruptRecordError, StoreError
from ubench.report.build import build_report
from ubench.report.compare import CompareError, compare

SETS = [a for s in FAST for a in ("--set", s)]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ubench.cli.main", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                          cwd=cwd)


def one_line(proc: subprocess.CompletedProcess) -> str:
    """The process's last stderr line, after checking it printed no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines, proc.stderr
    return lines[-1]


# ----------------------------------------------------------------------------- 1-3. security
@pytest.mark.parametrize("entry", ["/VICTIM", "../VICTIM", "sub/../../VICTIM", "link/x"])
def test_a_hostile_report_manifest_deletes_nothing_outside_out(entry: str, tmp_path: Path
                                                               ) -> None:
    """(1) A manifest that names a file outside --out (absolute, `..`, through a link) is
    refused before anything is written or deleted."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    store, out = tmp_path / "s", tmp_path / "L"
    make_run(store)
    out.mkdir()
    (out / "link").symlink_to(tmp_path, target_is_directory=True)
    (out / ".ubench-report.json").write_text(json.dumps(
        {"files": [entry.replace("VICTIM", "victim.txt").replace("/victim", str(victim))
                   if entry.startswith("/") else entry.replace("VICTIM", "victim.txt")]}))
    with pytest.raises(StoreError, match="not a file inside"):
        build_report(store, out)
    assert victim.read_text() == "keep me" and not (out / "README.md").exists()


@pytest.mark.parametrize("name", ["/dev/zero", "../../../../../../etc/passwd"])
def test_compare_reads_nothing_a_record_points_outside_its_folder(name: str, tmp_path: Path
                                                                  ) -> None:
    """(2, 3) `artifacts.samples` naming /dev/zero is refused at once (it read until memory ran
    out); naming ../../etc/passwd, the fix names the run's own folder, not /etc."""
    folder = make_run(tmp_path / "a")
    rec = json.loads((folder / "record.json").read_text())
    rec["artifacts"]["samples"] = name
    (folder / "record.json").write_text(json.dumps(rec))
    t0 = time.perf_counter()
    with pytest.raises(CompareError) as caught:
        compare(tmp_path / "a", tmp_path / "a")
    assert time.perf_counter() - t0 < 30
    message = str(caught.value)
    assert "not a file in its own folder" in message
    assert message.endswith(f"or delete {folder}") and "/etc" not in message.split("delete")[-1]


# ----------------------------------------------------------------------------- 4, 6. huge inputs
@pytest.mark.slow
@pytest.mark.faults
def test_a_plan_of_a_million_runs_is_refused_at_once_with_its_count(tmp_path: Path) -> None:
    """(4) 1,000 seeds x 1,000 learning rates: refused in well under a second of work (it
    expanded for minutes and 1.3 GB), naming the count."""
    plan = tmp_path / "huge.toml"
    plan.write_text(f'methods = ["ga"]\ntasks = ["{TINY}"]\nseeds = {list(range(1000))}\n'
                    f"method.lr = {[1e-5 * (i + 1) for i in range(1000)]}\n")
    t0 = time.perf_counter()
    proc = cli("sweep", str(plan), "--dry-run", "--store", str(tmp_path / "s"))
    assert time.perf_counter() - t0 < 30
    assert proc.returncode == 2
    assert "expands to 1,000,000 runs, more than the 10,000" in one_line(proc)


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("args", [
    ["run", "--method", "ga", "--task", TINY, "--seed", "99999999999999999999"],
    ["run", "--method", "ga", "--task", TINY, "--set", "task.eval_seed=9007199254740993"],
    ["attack", "abcdef", "--attack", "relearn", "--seed", "99999999999999999999"],
], ids=["--seed", "eval_seed", "attack --seed"])
def test_a_huge_seed_is_refused_when_parsed(args: list[str], tmp_path: Path) -> None:
    """(6) Seeds beyond 2**31-1 were an "Overflow when unpacking long long" traceback (the
    second after unlearning); now a usage error, before any work."""
    t0 = time.perf_counter()
    proc = cli(*args, "--store", str(tmp_path / "s"))
    assert proc.returncode == 2 and "2147483647" in one_line(proc)
    assert time.perf_counter() - t0 < 60 and not (tmp_path / "s").exists()


@pytest.mark.slow
@pytest.mark.faults
def test_a_plan_with_a_huge_seed_fails_its_dry_run(tmp_path: Path) -> None:
    plan = tmp_path / "p.toml"
    plan.write_text(f'methods = ["ga"]\ntasks = ["{TINY}"]\nseeds = [99999999999999]\n')
    proc = cli("sweep", str(plan), "--dry-run")
    assert proc.returncode == 2 and "p.toml:3: seeds must be integers in 0..2147483647" in \
        one_line(proc)
    plan.write_text(f'methods = ["ga"]\ntasks = ["{TINY}"]\ntask.eval_seed = 9007199254740993\n')
    proc = cli("sweep", str(plan), "--dry-run")
    assert proc.returncode == 2 and "eval_seed must be in 0..2147483647" in one_line(proc)


def test_every_seed_field_of_every_config_is_bounded() -> None:
    """A seed field added later gets the same bound (checked before torch, from the schema)."""
    from ubench.catalog.fastcheck import schema

    for kind in ("methods", "tasks", "attacks"):
        for name, entry in schema()[kind].items():
            for field in entry["fields"]:
                if field == "seed" or field.endswith("_seed"):
                    assert entry["bounds"].get(field, {}).get("le") == 2**31 - 1, (name, field)


# ----------------------------------------------------------------------------- 7. Ray addresses
@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("address", ["ray://127.0.0.1:1", "127.0.0.1:1", "auto"])
def test_an_unreachable_ray_cluster_is_one_line_in_seconds(address: str, tmp_path: Path) -> None:
    """(7) A 57-line traceback, a hang of more than 90 s of Ray's retries, and a hint to free
    disk space: now one line each, in well under 15 s."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    t0 = time.perf_counter()
    proc = cli("sweep", str(ROOT / "plans" / "quick.toml"), "--on", "ray", "--address", address,
               "--store", str(tmp_path / "s"), env={"RAY_ADDRESS": ""}, timeout=60)
    assert time.perf_counter() - t0 < 15
    line = one_line(proc)
    assert proc.returncode in (1, 2) and line.startswith(f"error: --address {address}")
    assert "free space" not in line


# ----------------------------------------------------------------------------- 8, 9. signals
#: the committed results (read only): their report writes its web page for seconds, long enough
#: to be signalled while its staging folder exists
BIG = ROOT / "leaderboard" / "records"


def _report_until(store: Path, out: Path, sig: int) -> subprocess.Popen:
    """Start `ubench report`, send ``sig`` once its staging folder exists; the process."""
    proc = subprocess.Popen([sys.executable, "-m", "ubench.cli.main", "report", "--store",
                             str(store), "--out", str(out)], stderr=subprocess.PIPE, text=True)
    for _ in range(12000):
        if list(out.parent.glob(f".{out.name}.report-*")) or proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


@pytest.mark.slow
@pytest.mark.faults
def test_sigterm_during_report_exits_143_and_kill_9_leaves_nothing_behind(tmp_path: Path
                                                                         ) -> None:
    """(8) SIGTERM during `report` exited 130; (9) `kill -9` left `.<out>.report-<pid>/`
    staging folders that no later report removed."""
    out = tmp_path / "L"
    proc = _report_until(BIG, out, signal.SIGTERM)
    assert proc.returncode == 143, proc.stderr.read() if proc.stderr else ""
    assert not list(tmp_path.glob(".L.report-*"))
    proc = _report_until(BIG, out, signal.SIGKILL)
    assert proc.returncode == -9
    assert list(tmp_path.glob(".L.report-*")), "kill -9 leaves its staging folder"
    build_report(BIG, out, formats=("csv",))
    assert not list(tmp_path.glob(".L.report-*")) and (out / "runs.csv").is_file()


@pytest.mark.slow
@pytest.mark.faults
def test_sigterm_during_plan_expansion_exits_143(tmp_path: Path) -> None:
    """(8) SIGTERM while a big plan's runs are resolved exited 130."""
    plan = tmp_path / "p.toml"
    plan.write_text(f'methods = ["ga"]\ntasks = ["{TINY}"]\nseeds = {list(range(100))}\n'
                    f"method.lr = {[1e-5 * (i + 1) for i in range(90)]}\n")
    proc = subprocess.Popen([sys.executable, "-m", "ubench.cli.main", "sweep", str(plan),
                             "--dry-run"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(8)  # past the imports, inside the expansion of 9,000 runs
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted"


# ----------------------------------------------------------------------------- 5. a full disk
def _tmpfs(size: str) -> list[str] | None:
    """A command prefix that runs its command with a fresh tmpfs of ``size`` mounted on
    ``/tmp/ubench-full`` (a user and mount namespace: no root needed); None when this machine
    allows neither."""
    probe = ["unshare", "-rm", "sh", "-c",
             "mkdir -p /tmp/ubench-full && mount -t tmpfs -o size=1k tmpfs /tmp/ubench-full"]
    if shutil.which("unshare") and subprocess.run(probe, capture_output=True).returncode == 0:
        return ["unshare", "-rm", "sh", "-c",
                f"mkdir -p /tmp/ubench-full && mount -t tmpfs -o size={size} tmpfs "
                '/tmp/ubench-full && exec "$0" "$@"']
    return None


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("where", ["store", "cache"])
def test_a_full_disk_is_one_line_and_leaves_no_half_model(where: str, tmp_path: Path,
                                                          ubench_home: Path) -> None:
    """(5) A full disk during a run (its store, or the asset cache under UBENCH_HOME): one line
    naming the full folder, exit 1, no partial model/ folder (it was a 50-69-line
    SafetensorError traceback)."""
    prefix = _tmpfs("64k")
    if prefix is None:
        pytest.skip("cannot mount a small tmpfs here (no user namespaces, not root)")
    full = "/tmp/ubench-full"
    home = f"{full}/home" if where == "cache" else str(ubench_home)
    store = f"{full}/store" if where == "store" else str(tmp_path / "store")
    script = (f"import sys; sys.argv = ['ubench', 'run', '--method', 'ga', '--task', '{TINY}', "
              f"{', '.join(repr(a) for a in SETS)}, '--store', '{store}']; "
              "from ubench.cli.main import main; main()")
    marker = "; import os; print(sorted(os.walk(" + repr(full) + ")))"
    proc = subprocess.run([*prefix, sys.executable, "-c", script + marker],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "UBENCH_HOME": home})
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = one_line(proc)
    assert line.startswith("error: no space left on the disk holding " + full), line
    assert "free space" in line
    listing = subprocess.run([*prefix, "find", full], capture_output=True, text=True).stdout
    assert "/model" not in listing and ".tmp-" not in listing


@pytest.mark.slow
@pytest.mark.faults
def test_a_full_disk_in_a_sweep_is_each_runs_one_line_not_a_bug(tmp_path: Path) -> None:
    prefix = _tmpfs("64k")
    if prefix is None:
        pytest.skip("cannot mount a small tmpfs here (no user namespaces, not root)")
    plan = tmp_path / "p.toml"
    plan.write_text(f'methods = ["ga", "graddiff"]\ntasks = ["{TINY}"]\nseeds = [0]\n'
                    'method.steps = 4\nmethod.batch_size = 16\n')
    proc = subprocess.run([*prefix, sys.executable, "-m", "ubench.cli.main", "sweep", str(plan),
                           "--store", "/tmp/ubench-full/store", "--workers", "1", "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    runs = json.loads(proc.stdout)["runs"]
    assert [r["status"] for r in runs] == ["failed", "failed"]
    for r in runs:
        assert r["error"].startswith("no space left on the disk holding /tmp/ubench-full"), r
        assert "a bug" not in r["error"]


def test_the_disk_full_check_knows_safetensors_and_oserror() -> None:
    import errno

    from ubench.core.errors import is_disk_full

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(RuntimeError('Error while serializing: IoError(Os { code: 28, kind: '
                                      'StorageFull, message: "No space left on device" })'))
    wrapped = ValueError("saving failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


# ----------------------------------------------------------------------------- 10. the rest
@pytest.mark.slow
@pytest.mark.faults
def test_compare_out_to_a_folder_is_one_line(tmp_path: Path) -> None:
    """(10) `compare --out <a folder>` gave the disk-space hint."""
    make_run(tmp_path / "a")
    (tmp_path / "outdir").mkdir()
    proc = cli("compare", str(tmp_path / "a"), str(tmp_path / "a"), "--out",
               str(tmp_path / "outdir"))
    assert proc.returncode == 2 and "is a folder; give the path of a file" in one_line(proc)


def test_compare_refuses_a_headline_its_scores_contradict(tmp_path: Path) -> None:
    """(10) A record whose headline value is not its per-sample scores' mean was silently
    compared by the scores; now it is refused, naming the run and both numbers."""
    make_run(tmp_path / "a")
    folder = make_run(tmp_path / "b")
    rec = json.loads((folder / "record.json").read_text())
    rec["metrics"]["ra"]["value"] = 0.5
    (folder / "record.json").write_text(json.dumps(rec))
    with pytest.raises(CompareError, match=r"records ra = 0.5 but its per-sample scores "
                                           r"average 0\.98"):
        compare(tmp_path / "a", tmp_path / "b")


def test_the_pinned_asset_mismatch_names_the_real_manifest(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """(10) The sha256 mismatch error named `<asset folder's parent>/manifest.json`, which does
    not exist."""
    from ubench.store import pinned

    root = tmp_path / "pinned"
    shutil.copytree(pinned.pinned_root() / "digits" / "judge", root / "digits" / "judge")
    shutil.copy(pinned.pinned_root() / pinned.MANIFEST, root / pinned.MANIFEST)
    monkeypatch.setenv("UBENCH_ASSETS", str(root))
    monkeypatch.setattr(pinned, "_VERIFIED", set())
    weights = next((root / "digits" / "judge").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    asset = pinned.pinned_asset("digits/judge", root)
    assert asset is not None
    with pytest.raises(Exception, match="does not match its sha256") as caught:
        pinned.pinned_folder("digits/judge", asset.spec, "digits-class")
    named = str(caught.value).split(" in ", 1)[1].split(";")[0]
    assert Path(named) == root / pinned.MANIFEST and Path(named).is_file()


@pytest.mark.slow
@pytest.mark.faults
def test_tune_dry_run_piped_prints_whole_lines(tmp_path: Path) -> None:
    """(10) `tune --dry-run | cat` folded the table's cells across lines at 80 columns."""
    proc = cli("tune", "--method", "boostalign", "--task", "digits-class", "--dry-run",
               "--store", str(tmp_path / "s"), env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if "boostalign" in ln]
    assert len(rows) == 8 and all("task.forget_class=" in r for r in rows)
    assert max(len(ln) for ln in proc.stdout.splitlines()) > 80


@pytest.mark.slow
@pytest.mark.faults
def test_tune_takes_a_list_of_methods_and_names_an_unknown_one(tmp_path: Path) -> None:
    """`--method a,b` tunes the methods a protocol plan evaluates (not every method that fits);
    a misspelt id is one line with the nearest ones, before anything runs."""
    proc = cli("tune", "--method", "boostalign,graddiff", "--task", "digits-class",
               "--dry-run", "--store", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr
    assert "16 tuning runs of 2 methods" in proc.stderr
    bad = cli("tune", "--method", "boostalign,graddif", "--task", "digits-class",
              "--dry-run", "--store", str(tmp_path / "s"))
    assert bad.returncode != 0 and "Did you mean 'graddiff'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- compare over runs
def test_an_interval_over_few_runs_is_a_t_interval() -> None:
    """Two runs with deltas 0.1 and 0.3: the percentile bootstrap gave their range
    [0.1, 0.3] as a "95 %" interval; Student-t gives [-1.07, 1.47] and says so."""
    from ubench.report.compare import interval_over_runs

    mean, lo, hi, how = interval_over_runs([0.1, 0.3])
    assert mean == pytest.approx(0.2) and (lo, hi) == pytest.approx((-1.0706, 1.4706), abs=1e-3)
    assert how == "runs, t"
    mean, lo, hi, how = interval_over_runs(list(np.linspace(0, 1, 12)))
    assert how == "runs, bootstrap" and lo < mean < hi


def test_corrupt_samples_in_a_packed_store_name_the_dataset(tmp_path: Path) -> None:
    """Packed per-sample data that disagrees with its record is refused with the dataset's
    name, as a run folder's is."""
    from ubench.store.pack import pack
    from ubench.store.reader import load_records, samples

    folder = make_run(tmp_path / "a")
    rec = json.loads((folder / "record.json").read_text())
    rec["details"]["n_samples"] = 7
    (folder / "record.json").write_text(json.dumps(rec))
    pack(tmp_path / "a")
    with pytest.raises(CorruptRecordError, match=r"data/digits-class \(packed\) has 600 samples"):
        samples(load_records(tmp_path / "a")[0])


# ----------------------------------------------------------------------------- beyond the list
@pytest.mark.parametrize("field", ["run_id", "method"])
def test_a_record_whose_ids_are_paths_is_refused_before_the_report_writes(
        field: str, tmp_path: Path) -> None:
    """A run id or method id of ``../../x`` would put the report's run page (``runs/<id>.html``)
    or an unpacked run folder outside its folder: such a record is corrupt."""
    folder = make_run(tmp_path / "s")
    rec = json.loads((folder / "record.json").read_text())
    if field == "run_id":
        rec["run_id"] = "../../../escaped"
    else:
        rec["method"]["id"] = "a/../../b"
    (folder / "record.json").write_text(json.dumps(rec))
    with pytest.raises(CorruptRecordError, match="is not a name"):
        build_report(tmp_path / "s", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("escaped*"))


def test_a_hostile_packed_dataset_unpacks_nothing_outside(tmp_path: Path) -> None:
    """The same refusal when the hostile id arrives inside a packed dataset (a cloned store)."""
    import pyarrow.parquet as pq

    from ubench.store.pack import pack, unpack

    make_run(tmp_path / "s")
    pack(tmp_path / "s")
    table_path = next((tmp_path / "s" / "data").glob("*/runs.parquet"))
    table = pq.read_table(table_path)
    rec = json.loads(table.column("record")[0].as_py())
    rec["run_id"] = "../../../../escaped"
    column = table.schema.get_field_index("record")
    pq.write_table(table.set_column(column, "record", [[json.dumps(rec)]]), table_path)
    with pytest.raises(CorruptRecordError, match="is not a name"):
        unpack(tmp_path / "s", tmp_path / "u")
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("where", ["store", "inside", "proc", "under a file"])
def test_report_out_that_cannot_hold_a_report_is_one_line(where: str, tmp_path: Path) -> None:
    """``--out`` equal to or inside the store would mix pages with records; an --out that cannot
    be created was a FileNotFoundError traceback."""
    store = tmp_path / "s"
    make_run(store)
    (tmp_path / "file").write_text("x")
    out = {"store": store, "inside": store / "data" / "r", "proc": Path("/proc/ubench-x"),
           "under a file": tmp_path / "file" / "r"}[where]
    before = sorted(p.name for p in store.rglob("*"))
    proc = cli("report", "--store", str(store), "--out", str(out))
    line = one_line(proc)
    assert proc.returncode == 2, proc.stderr
    assert ("is inside the store" if where in ("store", "inside") else
            "cannot create the report folder") in line
    assert sorted(p.name for p in store.rglob("*")) == before


def test_the_pinned_manifest_cannot_make_ubench_read_outside_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An asset manifest (a cloned repository's file) naming ``../../etc/passwd``: nothing
    outside the pinned folder is hashed or read."""
    from ubench.core.errors import CorruptAssetError
    from ubench.store import pinned

    root = tmp_path / "pinned"
    shutil.copytree(pinned.pinned_root() / "digits" / "judge", root / "digits" / "judge")
    manifest = json.loads((pinned.pinned_root() / pinned.MANIFEST).read_text())
    entry = manifest["assets"]["digits/judge"]
    entry["files"] = {"../../../../../../etc/passwd": "0" * 64, **entry["files"]}
    (root / pinned.MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setenv("UBENCH_ASSETS", str(root))
    monkeypatch.setattr(pinned, "_VERIFIED", set())
    read: list[str] = []
    monkeypatch.setattr(pinned, "file_sha256", lambda p: read.append(str(p)) or "")
    monkeypatch.setattr(pinned, "fresh_sha256", lambda p: read.append(str(p)) or "")
    asset = pinned.pinned_asset("digits/judge", root)
    assert asset is not None
    with pytest.raises(CorruptAssetError, match="which is not inside"):
        pinned.pinned_folder("digits/judge", asset.spec, "digits-class")
    assert ("digits/judge", "../../../../../../etc/passwd",
            "outside the pinned folder: not read") in pinned.verify(root)
    assert not any("passwd" in p for p in read)


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("args", [
    ["run", "--method", "ga", "--task", TINY, "--threads", "1000000"],
    ["attack", "abcdef", "--attack", "relearn", "--threads", "1000000"],
    ["sweep", str(ROOT / "plans" / "quick.toml"), "--threads", "1000000"],
    ["sweep", str(ROOT / "plans" / "quick.toml"), "--workers", "1000000"],
], ids=["run", "attack", "sweep --threads", "sweep --workers"])
def test_a_million_threads_or_workers_is_refused_when_parsed(args: list[str], tmp_path: Path
                                                             ) -> None:
    """``--threads 1000000`` was a SystemError traceback inside torch."""
    proc = cli(*args, "--store", str(tmp_path / "s"))
    assert proc.returncode == 2 and "1024" in one_line(proc)
    assert not (tmp_path / "s").exists()
