"""The CI regression gate, end to end: ``ubench compare`` against the committed quick-suite
baseline catches a real code regression and lets a harmless change through.

Both runs are boostalign on the quick suite's cell (digits-class, forget class 0, seed 0, 200 /
40 evaluation samples), side by side in two processes (about two minutes on 2 cores):

* a **regression**: the restricted gradient loses its remain term (the step is the forget
  ascent alone, as if ``remain_weight`` were 0) — a bug in code, so the run keeps the
  baseline's identity and pairs with it; the gate must exit 1 and name RA and FD;
* a **harmless change**: a different ``--checkpoint-every`` (not part of the run's identity;
  resume is bit for bit) — the gate must exit 0, with every delta 0 when this machine's float
  kernels are the baseline's (``env.numerics``), and only float-level deltas, said to be
  expected, when they are not (another CPU kind: PyTorch's CPU kernels round differently per
  instruction set, e.g. FD 20.1970 -> 20.1938 between two Xeon generations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BASELINE = ROOT / "tests" / "baseline" / "quick"
QUICK = ["--set", "task.forget_class=0", "--set", "task.eval_forget=200",
         "--set", "task.eval_per_class=40"]

BROKEN = """
import sys, torch
import ubench.methods.boostalign as ba

def broken(g, r, weight):  # the regression: the remain term is dropped
    with torch.no_grad():
        for x, y in zip(g, r):
            y.copy_(-x)
    return False

ba.restricted_gradient_ = broken
from ubench.cli.main import main
sys.argv = ["ubench", *sys.argv[1:]]
main()
"""

pytestmark = [pytest.mark.slow, pytest.mark.gate]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "UBENCH_HOME": str(tmp / "home"),
            "OMP_NUM_THREADS": "1"}


def test_the_gate_catches_a_regression_and_passes_a_harmless_change(tmp_path: Path) -> None:
    assert (BASELINE / "data" / "digits-class" / "runs.parquet").is_file(), \
        "run the quick suite baseline (plans/quick.toml) and pack it"
    args = ["run", "--method", "boostalign", "--task", "digits-class", "--threads", "1", *QUICK]
    broken = subprocess.Popen([sys.executable, "-c", BROKEN, *args, "--store",
                               str(tmp_path / "broken")], env=_env(tmp_path), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    harmless = subprocess.Popen([sys.executable, "-m", "ubench.cli.main", *args, "--store",
                                 str(tmp_path / "harmless"), "--checkpoint-every", "7"],
                                env=_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    for proc in (broken, harmless):
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]

    def compare(store: Path) -> tuple[int, dict]:
        proc = subprocess.run([sys.executable, "-m", "ubench.cli.main", "compare", str(BASELINE),
                               str(store), "--json"], env=_env(tmp_path), cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        return proc.returncode, json.loads(proc.stdout)

    code, out = compare(tmp_path / "broken")
    regressed = {m["metric"] for p in out["pairs"] for m in p["metrics"] if m["regression"]}
    assert code == 1 and {"ra", "fd"} <= regressed, out
    code, out = compare(tmp_path / "harmless")
    assert code == 0 and out["regressions"] == 0
    deltas = [(m["metric"], m["delta"], m["before"]) for p in out["pairs"] for m in p["metrics"]]
    if out["numerics"]["match"]:  # the baseline's CPU kind and threads: bit for bit
        assert all(d == 0 for _, d, _ in deltas), deltas
    else:  # other float kernels (a different CPU): float-level noise only, and said so
        assert all(abs(d) <= 0.01 * max(1.0, abs(b)) for _, d, b in deltas), deltas
        text = subprocess.run([sys.executable, "-m", "ubench.cli.main", "compare", str(BASELINE),
                               str(tmp_path / "harmless")], env=_env(tmp_path), cwd=ROOT,
                              capture_output=True, text=True, timeout=600).stdout
        assert "float kernels" in text and "not regressions" in text
