"""Pinned reference assets: the judges, base models and oracles that records are measured with.

The offline tasks' reference models (the digits judge, the digits base model and its ten retrain
oracles, the t2i world's base model) are trained once by ubench's own code
(``ubench assets build TASK``) and **shipped as files** in ``ubench/pinned/`` with a manifest,
``manifest.json``, that lists for every asset

* ``files``: each file's sha256 (weights stored as float16 safetensors, loaded as float32: the
  loaded model is the same bit for bit on every run and machine);
* ``spec``: the cache key that produced it (architecture, recipe, data digest, code version), so
  a task whose recipe changed refuses a stale pinned file instead of silently using it;
* ``quality``: what was measured on the stored (rounded) model when it was built — the judge's
  held-out accuracy and rejection rates, a model's judged sample accuracy or exact alignment;
* ``digest``: one short digest of the asset (of its files' hashes), the value run identities and
  records carry.

Tasks read a pinned asset by name (:func:`pinned_folder`), which checks the spec and the files'
hashes (once per process) and raises one :class:`~ubench.core.errors.MissingAssetError` line naming
``ubench assets build`` when a file is missing or differs. ``$UBENCH_ASSETS`` points at another
pinned folder (a user's own build). :func:`pinned_digest` reads the manifest only, so a run's
identity is known before any weight is loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ubench.core.digest import file_sha256, fresh_sha256, stable_hash
from ubench.core.errors import CorruptAssetError, MissingAssetError
from ubench.core.paths import confined
from ubench.store.io import write_text_atomic

MANIFEST = "manifest.json"
#: layout version of the manifest
MANIFEST_VERSION = 1


def pinned_root() -> Path:
    """The pinned-asset folder: ``$UBENCH_ASSETS`` or the package's ``pinned/``."""
    env = os.environ.get("UBENCH_ASSETS")
    return Path(env).expanduser() if env else Path(__file__).parent.parent / "pinned"


@dataclass(frozen=True)
class PinnedAsset:
    """One manifest entry."""

    name: str
    folder: Path
    #: relative path -> sha256 (hex)
    files: Mapping[str, str]
    spec: Mapping[str, Any]
    quality: Mapping[str, Any]
    #: which command built it
    build: str

    @property
    def digest(self) -> str:
        """The asset's short digest: of its files' names and hashes (16 hex characters)."""
        return asset_digest(self.files)


def asset_digest(files: Mapping[str, str]) -> str:
    """The digest records and identities carry for an asset made of ``files`` (path -> sha256)."""
    return stable_hash(sorted(files.items()), 16)


def read_manifest(root: Path | None = None) -> dict[str, Any]:
    """The manifest of ``root`` (default :func:`pinned_root`) as a dict (empty if absent)."""
    root = root or pinned_root()
    path = root / MANIFEST
    if not path.is_file():
        return {"version": MANIFEST_VERSION, "assets": {}}
    return _read_manifest(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _read_manifest(path: str, _mtime_ns: int) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("assets"), dict):
            raise ValueError("no 'assets' table")
    except (OSError, ValueError) as e:
        raise CorruptAssetError(f"the pinned-asset manifest {path} is unreadable ({e}); restore "
                                "it with `git checkout -- ubench/pinned` or rebuild it with "
                                "`ubench assets build TASK`") from None
    return data


def pinned_asset(name: str, root: Path | None = None) -> PinnedAsset | None:
    """The manifest entry of ``name`` (``None`` when the manifest has none)."""
    root = root or pinned_root()
    entry = read_manifest(root)["assets"].get(name)
    if entry is None:
        return None
    return PinnedAsset(name, root / name, dict(entry["files"]), dict(entry["spec"]),
                       dict(entry.get("quality", {})), str(entry.get("build", "")))


def _build_hint(task: str) -> str:
    return (f"rebuild it with `ubench assets build {task}` (minutes on CPU) or restore the "
            "shipped files with `git checkout -- ubench/pinned`")


def pinned_digest(name: str, spec: Mapping[str, Any], task: str) -> str:
    """The digest of pinned asset ``name`` built from ``spec``, from the manifest alone (no file
    is read): what a run's identity carries. Raises MissingAssetError when the manifest has no
    such asset or it was built from another spec."""
    return _checked_entry(name, spec, task).digest


def _checked_entry(name: str, spec: Mapping[str, Any], task: str) -> PinnedAsset:
    root = pinned_root()
    asset = pinned_asset(name, root)
    if asset is None:
        raise MissingAssetError(f"the pinned asset {name!r} is not in {root / MANIFEST}; "
                                + _build_hint(task))
    if _canonical(asset.spec) != _canonical(spec):
        raise MissingAssetError(f"the pinned asset {name!r} in {root} was built from another "
                                f"recipe than this ubench's {task} uses; " + _build_hint(task))
    return asset


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


_VERIFIED: set[tuple[str, str]] = set()


def pinned_folder(name: str, spec: Mapping[str, Any], task: str) -> Path:
    """The folder of pinned asset ``name``, after checking its spec and every file's sha256
    (each file once per process). One MissingAssetError line with the fix otherwise."""
    asset = _checked_entry(name, spec, task)
    for rel, sha in asset.files.items():
        if (str(asset.folder), rel) in _VERIFIED:
            continue
        path = confined(asset.folder, rel)
        if path is None:
            raise CorruptAssetError(f"{pinned_root() / MANIFEST} names the file {rel!r} of asset "
                                    f"{name!r}, which is not inside {asset.folder}; "
                                    + _build_hint(task))
        if not path.is_file():
            raise MissingAssetError(f"the pinned asset file {path} is missing; "
                                    + _build_hint(task))
        if file_sha256(path) != sha:
            raise MissingAssetError(f"the pinned asset file {path} does not match its sha256 in "
                                    f"{pinned_root() / MANIFEST}; " + _build_hint(task))
        _VERIFIED.add((str(asset.folder), rel))
    return asset.folder


def verify(root: Path | None = None) -> list[tuple[str, str, str]]:
    """Re-hash every pinned file: ``(asset, file, "ok" | problem)`` for each (no cache)."""
    root = root or pinned_root()
    out = []
    for name, entry in sorted(read_manifest(root)["assets"].items()):
        for rel, sha in sorted(entry["files"].items()):
            folder = confined(root, name)
            path = confined(folder, rel) if folder is not None else None
            if path is None:
                out.append((name, rel, "outside the pinned folder: not read"))
                continue
            if not path.is_file():
                out.append((name, rel, "missing"))
                continue
            got = fresh_sha256(path)
            out.append((name, rel, "ok" if got == sha else f"sha256 {got[:12]}… != {sha[:12]}…"))
    return out


def write_entry(root: Path, name: str, spec: Mapping[str, Any], quality: Mapping[str, Any],
                build: str) -> PinnedAsset:
    """Hash the files now in ``root/name`` and record them in ``root``'s manifest (atomically)."""
    folder = root / name
    files = {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
             if p.is_file()}
    path = root / MANIFEST
    data: dict[str, Any] = (json.loads(path.read_text()) if path.is_file()
                            else {"version": MANIFEST_VERSION, "assets": {}})
    data["assets"][name] = {"files": files, "spec": json.loads(_canonical(spec)),
                            "quality": dict(quality), "build": build,
                            "digest": asset_digest(files)}
    data["assets"] = dict(sorted(data["assets"].items()))
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    _read_manifest.cache_clear()
    _VERIFIED.difference_update({k for k in _VERIFIED if k[0] == str(folder)})
    asset = pinned_asset(name, root)
    assert asset is not None
    return asset


def export_model(source: Path, target: Path) -> None:
    """Copy a saved :class:`~ubench.models.diffusion.DiffusionModel` folder to ``target`` with
    its UNet weights stored as float16 (``DiffusionModel.load`` reads them back as float32)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("key.json"))
    weights = target / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(weights),
              metadata={"format": "pt"})


def export_tensors(source: Path, target: Path) -> None:
    """Copy a safetensors file with its float tensors stored as float16."""
    from safetensors.torch import load_file, save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    state = load_file(str(source))
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in state.items()}, str(target))
