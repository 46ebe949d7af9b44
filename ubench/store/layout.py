"""The one place that spells the store's file names.

A store is a folder. While runs are made it holds one folder per run::

    <store>/<task>/<method>/<run id>/
        record.json                    the run's record (schema: record.schema.json)
        samples.jsonl                  one line per generated sample: seed, condition, judgement
        scores.safetensors             per-sample scores of the mean metrics (ubench compare)
        features.safetensors           generated features of the Fréchet metrics (ubench compare)
        samples.png                    the sample grid
        model/                         the unlearned weights (diffusers layout)
        checkpoint/                    while the run is in progress
        attacks/<attack>/<attack id>/  attack.json, its artifacts and grid, its checkpoint
    <store>/.locks/                    one lock file per run, attack and the packer
    <store>/.sweep/                    sweep logs and engine folders

and, once ``ubench pack`` has packed it, the compact dataset that the leaderboard commits::

    <store>/data/<task>/{runs,attacks,samples,scores,files}.parquet  (see ubench.store.dataset)

Every other module asks this one for a path; none spells these names itself (a test checks).
"""

from __future__ import annotations

from pathlib import Path

RECORD_FILE = "record.json"
SAMPLES_FILE = "samples.jsonl"
SCORES_FILE = "scores.safetensors"
FEATURES_FILE = "features.safetensors"
GRID_FILE = "samples.png"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoint"
ATTACKS_DIR = "attacks"
ATTACK_FILE = "attack.json"
#: where an attack on a reference row rebuilds that row's model (removed afterwards)
REBUILD_DIR = "rebuild"
LOCKS_DIR = ".locks"
SWEEP_DIR = ".sweep"
DATA_DIR = "data"


def run_dir(root: Path, task: str, method: str, run_id: str) -> Path:
    """The folder of one run."""
    return root / task / method / run_id


def store_of(run_folder: Path) -> Path:
    """The store a run folder lives in (``<store>/<task>/<method>/<run id>``)."""
    return run_folder.parents[2]


def attack_dir(run_folder: Path, attack: str, attack_id: str) -> Path:
    """The folder of one attack on the run in ``run_folder``."""
    return run_folder / ATTACKS_DIR / attack / attack_id


def run_lock(root: Path, run_id: str) -> Path:
    """The lock a run holds while it runs (an identical run waits on it)."""
    return root / LOCKS_DIR / f"{run_id}.lock"


def attack_lock(root: Path, attack_id: str) -> Path:
    return root / LOCKS_DIR / f"attack-{attack_id}.lock"


def pack_lock(root: Path) -> Path:
    """The lock ``ubench pack`` holds while it packs a store (one packer at a time)."""
    return root / LOCKS_DIR / "pack.lock"


def sweep_dir(root: Path) -> Path:
    return root / SWEEP_DIR


def sweep_log(root: Path, run_id: str) -> Path:
    """The log of a run's attempts in a sweep (appended to by every attempt)."""
    return sweep_dir(root) / "logs" / f"{run_id}.log"


def data_dir(root: Path) -> Path:
    """The packed dataset of a store."""
    return root / DATA_DIR


def record_sort_key(task: str, method: str, run_id: str) -> str:
    """The order runs are listed in, packed or not: the order of their record paths."""
    return f"{task}/{method}/{run_id}/{RECORD_FILE}"


def attack_sort_key(task: str, method: str, run_id: str, attack: str, attack_id: str) -> str:
    return f"{task}/{method}/{run_id}/{ATTACKS_DIR}/{attack}/{attack_id}/{ATTACK_FILE}"
