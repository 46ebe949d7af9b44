"""Each room does one job: import boundaries, one hasher, one grid module, metrics own direction."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import ROOT


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "ubench" / "models").glob("*.py")),
                         ids=lambda p: p.name)
def test_the_model_layer_imports_no_task_and_no_method(path) -> None:
    bad = {m for m in _imports(path) if m.startswith(("ubench.tasks", "ubench.methods"))}
    assert not bad, f"{path.name} imports {bad}"


def test_one_file_hasher_and_one_hub_module() -> None:
    for path in [*ROOT.glob("ubench/**/*.py"), *ROOT.glob("methods/*.py"),
                 *ROOT.glob("tasks/**/*.py")]:
        text = path.read_text()
        if path.name != "digest.py":
            assert "hashlib.sha256()" not in text, f"{path} hashes files itself"
        if path.name != "hub.py":
            assert not re.search(r"try_to_load_from_cache|snapshot_download", text), \
                f"{path} looks up the Hugging Face cache itself"


def test_tasks_never_restate_a_metric_direction() -> None:
    for path in ROOT.glob("tasks/**/*.py"):
        text = path.read_text()
        assert "MetricValue(" not in text and "higher_is_better" not in text, \
            f"{path} builds a metric value by hand"


def test_methods_use_the_loop_not_their_own() -> None:
    """No method file writes its own optimiser, checkpoint or resume (ubench.training.loop)."""
    for path in ROOT.glob("methods/*.py"):
        text = path.read_text()
        for needle in ("torch.optim.Adam(", "from safetensors", "checkpoint_every", ".step()"):
            assert needle not in text, f"{path.name} contains {needle!r}"


def test_one_checkpoint_and_one_atomic_writer() -> None:
    """Every resumable loop checkpoints through ubench.store.checkpoint, and every file is
    renamed into place by ubench.store.io (or the lock-free digest cache of ubench.core)."""
    allowed = {"io.py", "digest.py"}
    for path in [*ROOT.glob("ubench/**/*.py"), *ROOT.glob("methods/*.py"),
                 *ROOT.glob("tasks/**/*.py"), *ROOT.glob("attacks/*.py")]:
        text = path.read_text()
        if path.name not in allowed:
            assert "os.replace(" not in text, f"{path} renames files itself: use ubench.store.io"
        if path.name != "checkpoint.py":
            assert "optimizer.pt" not in text and "state.json" not in text, \
                f"{path} writes a checkpoint itself: use ubench.store.checkpoint"
