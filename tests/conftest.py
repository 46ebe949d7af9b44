"""Shared fixtures: every test runs offline, with its own store and a shared tiny-asset cache."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
if "PYTEST_XDIST_WORKER" in os.environ:  # `pytest -n 2`: one core per worker, not two each
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ubench_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole session, so tiny base models and judges are trained once."""
    home = tmp_path_factory.mktemp("ubench-home")
    os.environ["UBENCH_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Stable Diffusion pipeline built from configs (real CLIP tokenizer), made once."""
    from ubench.testing import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture()
def store(tmp_path: Path, ubench_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh results store per test."""
    path = tmp_path / "results"
    monkeypatch.setenv("UBENCH_STORE", str(path))
    return path


#: the repository root
ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (the scripts are not a package), loaded once: it is
    registered in ``sys.modules``, where dataclasses look their module up."""
    key = f"ubench_script_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module

TINY = "digits-class-tiny"
FAST = ["method.steps=4", "method.batch_size=16"]
