"""UNet weights from outside ubench: read any common layout into a task's architecture.

``ubench eval`` scores models ubench did not make. Whatever the source's layout, its weights end
up as one state dict in the *task's own* UNet architecture, checked before anything is sampled:

* a diffusers UNet folder (``config.json`` + ``*.safetensors``), a diffusers pipeline folder
  (its ``unet/``), or a ubench model folder (``conditioner.json``, ``unet/``);
* a single ``.safetensors`` file holding a UNet state dict, with diffusers' parameter names or
  the original (CompVis / LDM) names — ``model.diffusion_model.input_blocks...``, as the ESD,
  SalUn and UnlearnDiffAtk repositories release their erased UNets — converted with diffusers'
  own ``convert_ldm_unet_checkpoint``;
* an original-format ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin`` file, read with
  ``torch.load(weights_only=True)``: tensors only, never an unpickled object.

The weights must fit the task's UNet exactly (every name, every shape); a UNet of another
conditioning (class labels where the task feeds text, or the reverse) or another size is refused
in one :class:`~ubench.core.errors.IncompatibleError` line that says what differs.
:func:`unet_digest` names the result by its content — the parameter names, dtypes, shapes and
bytes — so the same weights give the same digest from every layout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ubench.core.digest import bytes_sha256
from ubench.core.errors import IncompatibleError, MissingAssetError

#: file suffixes read as original-format checkpoints (``torch.load(weights_only=True)``)
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
#: the prefix of the UNet's parameters in an original (CompVis / LDM) Stable Diffusion checkpoint
LDM_PREFIX = "model.diffusion_model."


def unet_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a UNet's weights: names (sorted), dtypes, shapes and bytes — independent of
    the file layout they were read from."""
    def parts() -> Any:
        for name in sorted(state):
            t = state[name].detach().cpu().contiguous().reshape(-1)
            yield f"{name}|{t.dtype}|{tuple(state[name].shape)}\n".encode()
            yield t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return bytes_sha256(parts())


def conditioning_of(names: set[str]) -> str:
    """``text`` (cross-attention keys), ``class`` (a class embedding) or ``none``, from the
    parameter names of a UNet state dict in diffusers' or the original naming."""
    if any(".attn2." in n for n in names):
        return "text"
    if any(n.startswith(("class_embedding.", "label_emb.")) for n in names):
        return "class"
    return "none"


def read_source_weights(src: Path, target: torch.nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """The UNet state dict held by ``src`` in ``target``'s parameter names, and its layout's
    name (``diffusers``, ``diffusers-pipeline``, ``ubench``, ``safetensors``, ``compvis``).

    Refuses (one line) a missing path, a file that is not weights (a pickle with code in it, a
    truncated file), and weights of another conditioning or architecture than ``target``."""
    if not src.exists():
        raise MissingAssetError(f"model {str(src)!r} does not exist; pass a diffusers UNet or "
                                "pipeline folder, a .safetensors or .ckpt file, a run id or a "
                                "Hugging Face id in the local cache")
    if src.is_dir():
        state, layout = _folder_weights(src)
    else:
        state, layout = _file_weights(src)
    if any(k.startswith(LDM_PREFIX) or k.startswith("input_blocks.") for k in state):
        state = _from_ldm(state, target, src)
        layout = "compvis"
    fit(state, target, src)
    return state, layout


#: scheduler settings a pipeline folder must share with the task's model
SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                 "prediction_type")


def pipeline_differences(folder: Path, model: Any) -> list[str]:
    """What a diffusers pipeline folder holds besides its UNet that is not the task's: its
    scheduler's noise schedule, its text encoder's or VAE's weights (compared in float32, so
    an fp16 copy of the same weights matches), or a component the task's model has none of.
    ``model`` is the task's base :class:`~ubench.models.diffusion.DiffusionModel`. Empty when
    everything it holds matches (or it is not a pipeline folder)."""
    if not (folder / "unet" / "config.json").is_file():
        return []
    out = []
    sched = folder / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        theirs = json.loads(sched.read_text())
        ours = dict(model.noise_scheduler.config)
        out += [f"scheduler.{k}={theirs[k]!r} (the task's: {ours.get(k)!r})"
                for k in SCHEDULE_KEYS if k in theirs and theirs[k] != ours.get(k)]
    encoder = getattr(model.conditioner, "text_encoder", None)
    for name, module in (("text_encoder", encoder), ("vae", getattr(model, "vae", None))):
        d = folder / name
        if not d.is_dir():
            continue
        if module is None:
            out.append(f"{name} (the task's model has none: it is not a Stable Diffusion "
                       "pipeline)")
            continue
        files = sorted(d.glob("*.safetensors"))
        if not files:
            out.append(f"{name} (no .safetensors weights to check)")
            continue
        theirs_state: dict[str, torch.Tensor] = {}
        for f in files:
            theirs_state.update(_safetensors(f))
        if _float_digest(theirs_state) != _float_digest(module.state_dict()):
            out.append(f"{name} weights")
    return out


def _float_digest(state: Mapping[str, torch.Tensor]) -> str:
    return unet_digest({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def fit(state: dict[str, torch.Tensor], target: torch.nn.Module, src: Path) -> None:
    """Check that ``state`` is exactly ``target``'s parameters (names and shapes), and cast it
    to their dtypes in place; else one line on what differs (conditioning first)."""
    want = target.state_dict()
    theirs, ours = conditioning_of(set(state)), conditioning_of(set(want))
    if theirs != ours:
        raise IncompatibleError(
            f"{src} holds a {_cond_words(theirs)} UNet; this task's model is "
            f"{_cond_words(ours)}: use a model made for this task's conditioning")
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        raise IncompatibleError(
            f"{src} is another UNet architecture than this task's: {len(missing)} of its "
            f"{len(want)} parameters missing (e.g. {missing[:1] or '-'}), {len(extra)} unknown "
            f"(e.g. {extra[:1] or '-'}); use a model of the task's base architecture")
    for name, t in want.items():
        if tuple(state[name].shape) != tuple(t.shape):
            raise IncompatibleError(
                f"{src} is another UNet size than this task's: {name} has shape "
                f"{tuple(state[name].shape)}, the task's UNet {tuple(t.shape)}; use a model of "
                "the task's base architecture")
        if not state[name].is_floating_point() and t.is_floating_point():
            raise IncompatibleError(f"{src}: {name} holds {state[name].dtype} values, not "
                                    "floating-point weights")
        state[name] = state[name].to(t.dtype).contiguous()


def _cond_words(kind: str) -> str:
    return {"text": "text-conditioned (cross-attention)", "class": "class-conditional",
            "none": "unconditional"}[kind]


def _folder_weights(d: Path) -> tuple[dict[str, torch.Tensor], str]:
    if (d / "conditioner.json").is_file():
        return _diffusers_unet(d / "unet"), "ubench"
    if (d / "unet" / "config.json").is_file():
        return _diffusers_unet(d / "unet"), "diffusers-pipeline"
    if (d / "config.json").is_file():
        return _diffusers_unet(d), "diffusers"
    files = [f for f in sorted(d.iterdir()) if f.is_file()
             and f.suffix in (".safetensors", *TORCH_SUFFIXES)]
    if len(files) == 1:  # a folder (a hub repository) holding one weights file, as ESD releases
        return _file_weights(files[0])
    raise MissingAssetError(f"{d} is not a model folder (no config.json, unet/config.json or "
                            "conditioner.json, and not exactly one weights file); pass a "
                            "diffusers UNet or pipeline folder or a weights file")


def _diffusers_unet(d: Path) -> dict[str, torch.Tensor]:
    files = sorted(d.glob("*.safetensors"))
    if not files:
        raise MissingAssetError(
            f"{d} has no .safetensors weights (ubench never unpickles a .bin file there); "
            "convert it with `UNet2DConditionModel.from_pretrained(...).save_pretrained(..., "
            "safe_serialization=True)`")
    index = [f for f in files if f.name.endswith(".index.json")]
    if index:  # (sharded weights list their shards in an index; safetensors globbing covers it)
        files = [f for f in files if f not in index]
    config = d / "config.json"
    try:
        json.loads(config.read_text())
    except (OSError, ValueError) as e:
        raise MissingAssetError(f"{config} is unreadable ({type(e).__name__}); restore the "
                                "folder's config.json") from None
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(_safetensors(f))
    return state


def _safetensors(f: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(f))
    except Exception as e:  # a truncated or foreign file
        reason = " ".join(str(e).split())[:160]
        raise MissingAssetError(f"{f} is not a readable .safetensors file ({type(e).__name__}: "
                                f"{reason}); download or convert it again") from None


def _file_weights(f: Path) -> tuple[dict[str, torch.Tensor], str]:
    if f.suffix == ".safetensors":
        return _safetensors(f), "safetensors"
    if f.suffix not in TORCH_SUFFIXES:
        raise MissingAssetError(f"{f}: unknown weights file type {f.suffix!r}; ubench reads "
                                ".safetensors, and .ckpt/.pt/.pth/.bin as plain tensors")
    try:
        loaded = torch.load(str(f), map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError (code objects), a truncated zip, ...
        # torch's own text is paragraphs with terminal escapes: keep its first sentence
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().split(".")[0]
        reason = " ".join(first.split())[:100]
        raise MissingAssetError(
            f"{f} is not a plain weights file that can be read without running code from it "
            f"({type(e).__name__}: {reason}); ubench loads only tensors "
            "(torch.load(weights_only=True)): save the UNet's state_dict, or use .safetensors"
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]  # the Lightning checkpoints of the original SD code
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor)
                                                  for v in loaded.values()):
        raise MissingAssetError(f"{f} holds no state dict of tensors (a {type(loaded).__name__}"
                                "); save the UNet's state_dict")
    return {str(k): v for k, v in loaded.items()}, "checkpoint"


def _from_ldm(state: dict[str, torch.Tensor], target: torch.nn.Module, src: Path
              ) -> dict[str, torch.Tensor]:
    """Original (CompVis / LDM) UNet names -> diffusers', with diffusers' own converter."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    if not any(k.startswith(LDM_PREFIX) for k in state):  # a bare UNet state dict
        state = {LDM_PREFIX + k: v for k, v in state.items()}
    config = dict(getattr(target, "config", {}))
    if "layers_per_block" not in config:
        raise IncompatibleError(f"{src} is in the original (CompVis) layout, which this task's "
                                "UNet has no conversion for")
    try:
        return dict(convert_ldm_unet_checkpoint(state, config))
    except Exception as e:  # a checkpoint of another shape than the config describes
        reason = " ".join(str(e).split())[:160]
        raise IncompatibleError(f"{src}: its original-layout UNet does not convert to this "
                                f"task's architecture ({type(e).__name__}: {reason})") from None
