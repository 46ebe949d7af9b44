"""Wall time and peak memory of ``ubench report`` on the committed records, side by side.

Each variant runs ``python -m ubench.cli.main report`` in a fresh process on ``leaderboard/records``
into a temporary folder; its peak RSS is the kernel's ``ru_maxrss`` of that process (``os.wait4``)
and its time the wall clock around it. Variants alternate round by round so that other load on
the machine hits them alike; the best round of each is the figure (load only adds time), the
median beside it:

* ``now (md,csv,html)`` — this checkout, every format (the goal: <= 10 s and <= 300 MB on 2 cores);
* ``now (md,csv)`` — this checkout, the Markdown/CSV report alone;
* ``before (md,csv)`` — the ``ubench/`` package of ``--baseline`` (a git revision, default the
  commit before the report went torch-free), extracted with ``git archive`` and run from its own
  folder (``ubench.methods`` / ``ubench.tasks`` still come from this checkout's editable install,
  which that report imports through the registry).

It also prints the page weight of the web page (``index.html`` plus the thumbnails it shows) and
the number of files the report writes.

    python bench/report.py                      # 3 rounds
    python bench/report.py --rounds 5 --baseline <git-rev>
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
BASELINE = "bc9be4e"  # the last commit whose report imported the model stack


def measure(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
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
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the 'before' report")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        old.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline, "ubench"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        report = [sys.executable, "-m", "ubench.cli.main", "report", "--store", str(RECORDS)]
        variants = {
            "now (md,csv,html)": ([*report, "--out", f"{tmp}/a"], ROOT),
            "now (md,csv)": ([*report, "--out", f"{tmp}/b", "--format", "md,csv"], ROOT),
            "before (md,csv)": ([*report, "--out", f"{tmp}/c"], old),
        }
        which = subprocess.run([sys.executable, "-c", "import ubench; print(ubench.__file__)"],
                               cwd=old, capture_output=True, text=True, check=True).stdout
        assert which.startswith(str(old)), f"the baseline did not load its own package: {which}"
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, (cmd, cwd) in variants.items():
                results[name].append(measure(cmd, cwd))
        out = Path(tmp) / "a"
        files = json.loads((out / ".ubench-report.json").read_text())["files"]
        page = (out / "index.html").stat().st_size
        thumbs = sum(p.stat().st_size for p in (out / "thumbs").glob("*.png"))
        runs = sum(p.stat().st_size for p in (out / "runs").glob("*.html"))
    n = len(list(RECORDS.glob("**/record.json")))
    print(f"ubench report on {n} committed records, {args.rounds} rounds, {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.1f}: a shared machine inflates times)")
    print(f"{'variant':<20} {'best s':>8} {'median s':>9} {'peak RSS MB':>12}")
    for name, rs in results.items():
        walls = [w for w, _ in rs]
        print(f"{name:<20} {min(walls):8.2f} {statistics.median(walls):9.2f} "
              f"{max(m for _, m in rs):12.0f}")
    new, before = results["now (md,csv,html)"], results["before (md,csv)"]
    speed = min(w for w, _ in before) / min(w for w, _ in new)
    memory = max(m for _, m in before) / max(m for _, m in new)
    print(f"before / now (all formats): time x{speed:.1f}, memory x{memory:.1f}")
    n_thumbs = sum(f.startswith("thumbs/") for f in files)
    print(f"web page weight: index.html {page / 1e6:.2f} MB + {n_thumbs} "
          f"thumbnails {thumbs / 1e6:.2f} MB = {(page + thumbs) / 1e6:.2f} MB "
          f"(run pages, loaded one at a time: {runs / 1e6:.2f} MB in all)")
    print(f"files written: {len(files)} ({sum(f.startswith('runs/') for f in files)} run pages)")


if __name__ == "__main__":
    main()
