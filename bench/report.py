"""Wall time and peak memory of ``ubench report`` on the committed records, side by side.

Each variant runs ``python -m ubench.cli.main report`` in a fresh process on the committed store
(``leaderboard/records``, packed) into a temporary folder; its peak RSS is the kernel's
``ru_maxrss`` of that process (``os.wait4``) and its time the wall clock around it. Variants
alternate round by round so that other load on the machine hits them alike; the best round of
each is the figure (load only adds time), the median beside it:

* ``packed (md,csv,html)`` — every format, from the packed dataset;
* ``packed (md,csv)`` — the Markdown/CSV report alone;
* ``run folders (md,csv,html)`` — every format, from the same records unpacked into run folders
  (``ubench pack --unpack``): what packing changes for the report.

It also prints the page weight of the web page (``index.html`` plus the thumbnails it shows) and
the number of files the report writes.

With ``--before PATH`` (another checkout of ubench, e.g. ``git worktree add /tmp/before HEAD``)
the same two packed variants also run with that checkout's code (``PYTHONPATH=PATH``, from
``PATH``) on the same records, in the same rounds, so the two are side by side.

    python bench/report.py                      # 3 rounds
    python bench/report.py --rounds 5
    python bench/report.py --before /tmp/before --no-loose
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "leaderboard" / "records"


def measure(cmd: list[str], cwd: Path, env: dict[str, str] | None = None
            ) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout of ubench: run its report beside this one's")
    ap.add_argument("--no-loose", action="store_true",
                    help="skip the run-folders variant (unpacking takes a while)")
    args = ap.parse_args()
    from ubench.store.pack import unpack
    from ubench.store.reader import load_records

    with tempfile.TemporaryDirectory() as tmp:
        report = [sys.executable, "-m", "ubench.cli.main", "report", "--store"]
        here: dict[str, str] = {}
        variants = {
            "packed (md,csv,html)": ([*report, str(RECORDS), "--out", f"{tmp}/a"], ROOT, here),
            "packed (md,csv)": ([*report, str(RECORDS), "--out", f"{tmp}/b", "--format",
                                 "md,csv"], ROOT, here),
        }
        if not args.no_loose:
            loose = Path(tmp) / "loose"
            unpack(RECORDS, loose)
            variants["run folders (md,csv,html)"] = (
                [*report, str(loose), "--out", f"{tmp}/c"], ROOT, here)
        if args.before is not None:
            old = args.before.resolve()
            env = {"PYTHONPATH": str(old)}
            variants["before: packed (md,csv,html)"] = (
                [*report, str(RECORDS), "--out", f"{tmp}/d"], old, env)
            variants["before: packed (md,csv)"] = (
                [*report, str(RECORDS), "--out", f"{tmp}/e", "--format", "md,csv"], old, env)
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, (cmd, cwd, env) in variants.items():
                results[name].append(measure(cmd, cwd, env))
        out = Path(tmp) / "a"
        files = json.loads((out / ".ubench-report.json").read_text())["files"]
        page = (out / "index.html").stat().st_size
        thumbs = sum(p.stat().st_size for p in (out / "thumbs").glob("*.png"))
        runs = sum(p.stat().st_size for p in (out / "runs").glob("*.html"))
    n = len(load_records(RECORDS))
    print(f"ubench report on {n} committed records, {args.rounds} rounds, {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.1f}: a shared machine inflates times)")
    print(f"{'variant':<30} {'best s':>8} {'median s':>9} {'peak RSS MB':>12}")
    for name, rs in results.items():
        walls = [w for w, _ in rs]
        print(f"{name:<30} {min(walls):8.2f} {statistics.median(walls):9.2f} "
              f"{max(m for _, m in rs):12.0f}")

    def ratio(slow: str, fast: str, what: str) -> None:
        a, b = results[slow], results[fast]
        speed = min(w for w, _ in a) / min(w for w, _ in b)
        memory = max(m for _, m in a) / max(m for _, m in b)
        print(f"{what}: time x{speed:.2f}, memory x{memory:.2f}")

    if "run folders (md,csv,html)" in results:
        ratio("run folders (md,csv,html)", "packed (md,csv,html)",
              "run folders / packed (all formats)")
    if args.before is not None:
        ratio("before: packed (md,csv,html)", "packed (md,csv,html)",
              "before / now (all formats)")
        ratio("before: packed (md,csv)", "packed (md,csv)", "before / now (md,csv)")
    n_thumbs = sum(f.startswith("thumbs/") for f in files)
    print(f"web page weight: index.html {page / 1e6:.2f} MB + {n_thumbs} "
          f"thumbnails {thumbs / 1e6:.2f} MB = {(page + thumbs) / 1e6:.2f} MB "
          f"(run pages, loaded one at a time: {runs / 1e6:.2f} MB in all)")
    print(f"files written: {len(files)} ({sum(f.startswith('runs/') for f in files)} run pages)")


if __name__ == "__main__":
    main()
