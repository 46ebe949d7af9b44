"""Shared fixtures: every test runs offline, with its own store and a shared tiny-asset cache."""

from __future__ import annotations

import os
from pathlib import Path

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

TINY = "digits-class-tiny"
FAST = ["method.steps=4", "method.batch_size=16"]
