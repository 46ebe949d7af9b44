"""Every lookup in the local Hugging Face cache, in one place; nothing here touches the network.

ubench never downloads at run time. Weights and data a user fetched once (``hf download ...``)
are found where the hub client leaves them, reading the disk only (``local_files_only`` /
``try_to_load_from_cache``); a miss returns ``None`` and the caller raises one
:class:`~ubench.core.errors.MissingAssetError` line that names the download command.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def cached_file(repo: str, filename: str, repo_type: str = "model") -> Path | None:
    """A file of a hub repository if it is in the local cache, else ``None``."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=hf_hub_cache(), repo_type=repo_type)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def cached_snapshot(repo: str, allow_patterns: Sequence[str], repo_type: str = "model"
                    ) -> Path | None:
    """The local snapshot folder of ``repo`` holding ``allow_patterns``, else ``None``
    (``repo_type="dataset"`` for a data set such as ``uoft-cs/cifar10``)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, local_files_only=True, cache_dir=hf_hub_cache(),
                                      allow_patterns=list(allow_patterns), repo_type=repo_type))
    except Exception:  # LocalEntryNotFoundError, OfflineModeIsEnabled, ...
        return None
