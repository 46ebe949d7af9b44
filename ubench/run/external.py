"""``ubench eval``: score a model ubench did not make, as a run of the ``external`` row.

A source (what the user typed) is found, read into the task's own UNet architecture
(:mod:`ubench.models.weights`: diffusers folders, pipelines, single safetensors files,
original-format checkpoints; checked before anything is sampled), named by its content digest and
imported into the asset cache. The run it becomes is resolved like any other
(:func:`ubench.run.identity.resolve` with ``method.model=<digest>``), so the task's evaluation,
store, skipping of finished runs and attacks are the same code as ``ubench run``'s. What the
source was is recorded beside the identity (``record["source"]``), never in it: the same
weights copied elsewhere or saved in another layout are the same run.

Sources, tried in this order:

* a ubench run — its folder, or its id (a unique prefix of 6+ hex digits) in the store — whose
  saved ``model/`` is re-evaluated under the current task version;
* a local path: a diffusers UNet or pipeline folder, a ubench model folder, a ``.safetensors``
  or ``.ckpt``/``.pt``/``.pth``/``.bin`` file;
* a Hugging Face id (``owner/name``), from the local cache only; a miss says the
  ``hf download`` command.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ubench.core.errors import AttackTargetError, ConfigError, IncompatibleError, MissingAssetError
from ubench.run.identity import RunSpec, resolve

#: an ``owner/name`` Hugging Face id (not an existing path)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
#: the method id of a given model's row
EXTERNAL = "external"


@dataclasses.dataclass
class Given:
    """A source found: the local path its weights are read from, and what to record of it."""

    path: Path
    #: recorded as ``record["source"]`` (the name shown in the report, the kind, what was given)
    info: dict[str, Any]


def find_source(src: str, store: str | Path | None = None) -> Given:
    """The local weights ``src`` names: a ubench run, a path, or a cached Hugging Face id."""
    from ubench.store.layout import RECORD_FILE
    from ubench.store.runs import locate, model_folder

    path = Path(src).expanduser()
    looks_like_run = (path / RECORD_FILE).is_file() or (
        not path.exists() and len(src) >= 6 and all(c in "0123456789abcdef" for c in src))
    if looks_like_run:
        try:
            found = locate(src, store)
        except AttackTargetError as e:
            raise MissingAssetError(str(e)) from None
        rec = found.record
        if rec.get("method", {}).get("training_free"):
            raise ConfigError(f"run {rec['run_id']} is the training-free method "
                              f"{rec['method']['id']!r}: its weights are the base model's and "
                              "what it changed is how it samples, which `ubench eval` of "
                              "weights cannot carry; attack or re-run the run itself")
        if rec.get("method", {}).get("reference"):
            raise ConfigError(f"run {rec['run_id']} is the {rec['method']['id']!r} reference "
                              "row; its model is the task's own (`ubench run --method "
                              f"{rec['method']['id']} --task {rec['task']['id']}`)")
        folder = model_folder(found.folder)
        if not rec.get("artifacts", {}).get("model") or not folder.is_dir():
            raise MissingAssetError(f"run {rec['run_id']} has no saved model in {folder} (made "
                                    "before runs saved their weights, or a store copied without "
                                    "them); remake it with `ubench run ... --force`")
        return Given(folder, {"kind": "run", "given": src, "run_id": rec["run_id"],
                              "method": rec["method"]["id"], "task": rec["task"]["id"],
                              "name": f"{rec['method']['id']} {rec['run_id'][:8]}"})
    if path.exists():
        return Given(path, {"kind": "path", "given": src, "name": path.name or str(path)})
    if HUB_ID.match(src):
        from ubench.core.hub import cached_snapshot

        snap = cached_snapshot(src, ["*.json", "*.txt", "*.safetensors", "*.ckpt", "*.pt",
                                     "*.pth", "*.bin"])
        if snap is None:
            raise MissingAssetError(f"{src} is not in the local Hugging Face cache and ubench "
                                    f"never downloads; fetch it once with `hf download {src}`")
        return Given(snap, {"kind": "hub", "given": src, "name": src,
                            "revision": snap.name})
    raise MissingAssetError(f"model {src!r} does not exist: pass a diffusers UNet or pipeline "
                            "folder, a .safetensors or .ckpt file, a run id or a Hugging Face id "
                            "in the local cache")


def import_source(given: Given, target: Any, say: Callable[[str], None]) -> str:
    """Read ``given``'s weights into ``target``'s (a UNet's) names and shapes, import them into
    the asset cache, and return their content digest."""
    from ubench.methods.external import CACHE_KIND, WEIGHTS_FILE, cache_key
    from ubench.models.weights import read_source_weights, unet_digest
    from ubench.store.cache import cached, write_tensors

    state, layout = read_source_weights(given.path, target)
    digest = unet_digest(state)
    given.info["layout"] = layout
    cached(CACHE_KIND, cache_key(digest), lambda tmp: write_tensors(tmp / WEIGHTS_FILE, state))
    say(f"{given.info['given']}: {layout} weights, digest {digest[:16]}")
    return digest


def resolve_eval(task: str, sources: Iterable[str], *, seed: int = 0,
                 overrides: Iterable[str] = (), store: str | Path | None = None,
                 names: Iterable[str] = (), say: Callable[[str], None] | None = None
                 ) -> list[RunSpec]:
    """One run spec per source: found, checked against the task's UNet and imported first (so
    that a bad source is refused before anything is sampled)."""
    from ubench.models.weights import pipeline_differences

    say = say or (lambda _m: None)
    items = list(overrides)
    if any(o.strip().startswith("method.") for o in items):
        raise ConfigError("ubench eval scores a given model: it has no method.KEY to set "
                          "(task.KEY only)")
    probe = resolve(EXTERNAL, task, seed, items)  # the task's config, before any weight loads
    task_obj = probe.task_cls(probe.task_config)
    task_obj.prepare(say, None)
    base = task_obj.base_model("cpu")
    target = base.unet
    labels = list(names)
    specs = []
    for i, src in enumerate(sources):
        given = find_source(src, store)
        differs = pipeline_differences(given.path, base) if given.path.is_dir() else []
        if differs:
            raise IncompatibleError(
                f"{src} is a pipeline whose other components are not task {task}'s: "
                f"{'; '.join(differs)}; ubench scores a UNet with the task's own text encoder, "
                "VAE and scheduler, so pass its unet/ folder only if that is what you mean")
        if given.info.get("task") not in (None, task):
            say(f"note: run {given.info['run_id']} was made on {given.info['task']}; scoring "
                f"its model on {task}")
        try:
            digest = import_source(given, target, say)
        except IncompatibleError as e:
            raise IncompatibleError(f"{e} (task {task})") from None
        spec = resolve(EXTERNAL, task, seed, [*items, f"method.model={digest}"])
        if i < len(labels) and labels[i]:
            given.info["name"] = labels[i]
        spec.source = given.info
        specs.append(spec)
    return specs


def source_line(spec: RunSpec) -> str:
    """One line naming what a spec scores (for the command's progress)."""
    info = spec.source or {}
    return f"{info.get('name', '?')} ({info.get('layout', '?')}; {json.dumps(info.get('given'))})"
