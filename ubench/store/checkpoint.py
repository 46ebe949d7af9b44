"""One resumable checkpoint folder, for every loop that can be interrupted: a method's
unlearning (:class:`ubench.training.loop.Loop`), an attack's budget loop and pretraining.

A checkpoint is ``<owner>/checkpoint/`` holding named groups of tensors (one safetensors file
each: weights, an embedding, a data order), named torch objects (an optimiser's state, random
generator states: ``torch.save``, read back with ``weights_only=True``, so a checkpoint never
unpickles code) and a JSON state (the step, logs, batch positions). It is written into a
temporary folder and swapped in (:func:`ubench.store.io.swap_folder`), so a process killed at
any moment leaves the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ubench.store.io import fresh_folder, swap_folder
from ubench.store.layout import CHECKPOINT_DIR

STATE_FILE = "state.json"


class Checkpoint:
    """The checkpoint of the loop that owns ``owner`` (a run, attack or pretraining folder)."""

    def __init__(self, owner: Path) -> None:
        self.folder = owner / CHECKPOINT_DIR

    def exists(self) -> bool:
        return (self.folder / STATE_FILE).is_file()

    def step(self) -> int:
        """The step the checkpoint was taken at (0 when there is none or it is unreadable)."""
        try:
            return int(json.loads((self.folder / STATE_FILE).read_text())["step"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def save(self, state: Mapping[str, Any],
             tensors: Mapping[str, Mapping[str, Any]] | None = None,
             objects: Mapping[str, Any] | None = None) -> None:
        """Write ``state`` (JSON), each group of ``tensors`` (``{group: {name: tensor}}``) and
        each of ``objects`` (optimiser and generator states) atomically."""
        import torch
        from safetensors.torch import save_file

        tmp = fresh_folder(self.folder)
        for group, named in (tensors or {}).items():
            save_file({k: v.detach().cpu().contiguous() for k, v in named.items()},
                      str(tmp / f"{group}.safetensors"))
        for name, obj in (objects or {}).items():
            torch.save(obj, tmp / f"{name}.pt")
        (tmp / STATE_FILE).write_text(json.dumps(dict(state), default=str))
        swap_folder(tmp, self.folder)

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.folder / STATE_FILE).read_text()))

    def tensors(self, group: str, device: str | None = None) -> dict[str, Any]:
        from safetensors.torch import load_file

        path = str(self.folder / f"{group}.safetensors")
        return load_file(path, device=device) if device else load_file(path)

    def object(self, name: str, device: str | None = None) -> Any:
        import torch

        return torch.load(self.folder / f"{name}.pt", weights_only=True, map_location=device)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
