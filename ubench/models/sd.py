"""Stable Diffusion in the model layer: a latent :class:`DiffusionModel` with a frozen CLIP text
encoder and a VAE, loaded from a local diffusers folder or the local Hugging Face cache only.

Methods see the same verbs as on every other task (``denoising_loss``, ``predict_noise``,
``sample``, ``trainable_parameters(scope)``, ...): the UNet works on VAE latents (scaled by the
VAE's ``scaling_factor``), so a method never knows it trains Stable Diffusion. Tasks additionally
call :meth:`LatentDiffusionModel.generate` (sample + decode) to get images.

Nothing is downloaded at run time. A missing model is one :class:`MissingAssetError` line that
says what to download and where to put it. The same loader reads the tiny pipeline that
:func:`ubench.testing.build_tiny_pipeline` writes from configs (tests, CI), so the real path is
the tested path.

On CUDA the UNet keeps fp32 master weights and runs under bf16 autocast with gradient
checkpointing (memory per method: docs/tasks/sd.md); the frozen VAE and text encoder are
held in fp16. On CPU everything is fp32 and deterministic.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ubench.core.errors import MissingAssetError
from ubench.core.hub import cached_snapshot
from ubench.models.diffusion import DiffusionModel
from ubench.models.text import TextModel

#: the paper's base model and the files of it that ubench reads (safetensors only)
SD_REPO = "CompVis/stable-diffusion-v1-4"
SD_FILES = ("model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/config.json",
            "text_encoder/model.safetensors", "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors", "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors")
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def download_hint(repo: str = SD_REPO) -> str:
    patterns = " ".join(f"'{p}'" for p in SD_FILES)
    return (f"download it once with `hf download {repo} --include {patterns}` (about 4.3 GB, "
            "into the Hugging Face cache) or pass --set task.model=/path/to/a/diffusers/folder; "
            "nothing is downloaded at run time")


def resolve_sd(model: str = "", repo: str = SD_REPO) -> Path:
    """The local folder of a Stable Diffusion model in diffusers layout.

    ``model`` is a folder (``--set task.model=...``); empty means the snapshot of ``repo`` in the
    local Hugging Face cache (``local_files_only``: the disk is read, the network never).
    """
    if model:
        folder = Path(model).expanduser()
        if not folder.is_dir():
            raise MissingAssetError(f"Stable Diffusion folder {str(folder)!r} does not exist; "
                                    + download_hint(repo))
    else:
        found = cached_snapshot(repo, SD_FILES)
        if found is None:
            raise MissingAssetError(f"Stable Diffusion ({repo}) is not on this machine; "
                                    + download_hint(repo))
        folder = found
    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise MissingAssetError(f"{folder} is not a complete Stable Diffusion folder in "
                                f"diffusers layout (missing {', '.join(missing)}); "
                                + download_hint(repo))
    return folder


class ClipTextConditioner:
    """Prompts -> frozen CLIP text-encoder states ``(N, 77, d)``; null = the empty prompt.

    Stable Diffusion's conditioning: the tokenizer pads to ``model_max_length`` and the UNet
    cross-attends to ``last_hidden_state``. The encoder is frozen, so encodings are memoised per
    prompt (on the CPU, in fp32).
    """

    kind = "clip"

    def __init__(self, tokenizer: Any, text_encoder: Any) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self._cache: dict[str, torch.Tensor] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> ClipTextConditioner:
        return self  # frozen and memoised: copies share it

    @property
    def max_length(self) -> int:
        return int(min(self.tokenizer.model_max_length,
                       self.text_encoder.config.max_position_embeddings))

    @torch.no_grad()
    def precompute(self, prompts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        dev = next(self.text_encoder.parameters()).device
        for lo in range(0, len(missing), 64):
            chunk = missing[lo:lo + 64]
            ids = self.tokenizer(chunk, padding="max_length", truncation=True,
                                 max_length=self.max_length, return_tensors="pt").input_ids
            states = self.text_encoder(ids.to(dev)).last_hidden_state.float().cpu()
            for p, s in zip(chunk, states, strict=True):
                self._cache[p] = s.clone()

    def text_model(self) -> TextModel:
        """The CLIP tokenizer and text encoder behind :meth:`encode` (no attention mask, as
        Stable Diffusion's pipeline encodes)."""
        return TextModel(self.tokenizer, self.text_encoder, False, contextlib.nullcontext())

    def encode(self, conditions: Any, device: torch.device | str) -> torch.Tensor:
        prompts = [conditions] if isinstance(conditions, str) else [str(p) for p in conditions]
        self.precompute(prompts)
        if not prompts:
            width = self.text_encoder.config.hidden_size
            return torch.empty(0, self.max_length, width, device=device)
        return torch.stack([self._cache[p] for p in prompts]).to(device)

    def null(self, n: int, device: torch.device | str) -> torch.Tensor:
        return self.encode([""] * n, device)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_length": self.max_length}


class LatentDiffusionModel(DiffusionModel):
    """Stable Diffusion: an epsilon-prediction UNet on VAE latents, CLIP text conditioning."""

    def __init__(self, unet: Any, scheduler: Any, conditioner: ClipTextConditioner, vae: Any,
                 source: Path, mixed_precision: bool = False) -> None:
        super().__init__(unet, scheduler, conditioner)  # type: ignore[arg-type]
        self.vae = vae
        self.source = source
        self.mixed_precision = mixed_precision

    @property
    def text_conditioned(self) -> bool:
        return True

    @property
    def scale_factor(self) -> int:
        """Pixels per latent cell (8 for Stable Diffusion)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.mixed_precision and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            out = self.unet(x_t, t, encoder_hidden_states=cond).sample
        return out.float()

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Images in [-1, 1] -> scaled latents (the posterior mean; deterministic)."""
        dtype = next(self.vae.parameters()).dtype
        out = []
        for lo in range(0, len(images), batch_size):
            x = images[lo:lo + batch_size].to(self.device, dtype)
            out.append(self.vae.encode(x).latent_dist.mean.float().cpu())
        return torch.cat(out) * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1] on the CPU."""
        dtype = next(self.vae.parameters()).dtype
        out = []
        for lo in range(0, len(latents), batch_size):
            z = latents[lo:lo + batch_size].to(self.device, dtype)
            img = self.vae.decode(z / self.vae.config.scaling_factor).sample
            out.append(img.float().clamp(-1, 1).cpu())
        return torch.cat(out)

    def generate(self, prompts: Sequence[str], *, steps: int, guidance: float,
                 seeds: Sequence[int], batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents, images) for ``prompts``; sample i depends only on ``seeds[i]``."""
        latents = self.sample(list(prompts), steps=steps, guidance=guidance, seeds=seeds,
                              batch_size=batch_size)
        return latents, self.decode(latents, batch_size)

    def clone_frozen(self) -> LatentDiffusionModel:
        twin = self._twin()
        twin.unet.eval()
        twin.unet.requires_grad_(False)
        return twin

    def clone(self) -> LatentDiffusionModel:
        return self._twin()

    def _twin(self) -> LatentDiffusionModel:
        import copy

        twin = LatentDiffusionModel(copy.deepcopy(self.unet), self.noise_scheduler,
                                    self.conditioner, self.vae,  # type: ignore[arg-type]
                                    self.source, self.mixed_precision)
        twin.sampling_rule = self.sampling_rule
        return twin

    def save(self, directory: str | Path) -> None:
        """Write the UNet in diffusers format (``unet/``) plus a note on how to load it.

        Any ``StableDiffusionPipeline`` takes it:
        ``StableDiffusionPipeline.from_pretrained(base, unet=UNet2DConditionModel.from_pretrained(
        directory, subfolder="unet"))``.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(d / "unet", safe_serialization=True)
        (d / "base_model.json").write_text(json.dumps(
            {"base": str(self.source), "replaced": ["unet"],
             "load": "StableDiffusionPipeline.from_pretrained(base, unet=UNet2DConditionModel"
                     ".from_pretrained(<this folder>, subfolder='unet'))"}, indent=1))


def load_sd(folder: Path, device: str = "cpu") -> LatentDiffusionModel:
    """Load a diffusers-layout Stable Diffusion folder (never unpickles: safetensors only)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    # transformers can silently return a 2-token tokenizer from a wrong folder
    if len(tokenizer) < 1000:
        raise MissingAssetError(f"the CLIP tokenizer in {folder / 'tokenizer'} is broken "
                                f"({len(tokenizer)} tokens); " + download_hint())
    cuda = torch.device(device).type == "cuda"
    frozen_dtype = torch.float16 if cuda else torch.float32
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", use_safetensors=True,
                                                 dtype=frozen_dtype)
    vae = AutoencoderKL.from_pretrained(folder / "vae", use_safetensors=True,
                                        torch_dtype=frozen_dtype)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True)
    sched = DDPMScheduler.from_config(DDPMScheduler.load_config(folder / "scheduler"))
    for frozen in (text_encoder, vae):
        frozen.eval().requires_grad_(False).to(device)
    if cuda:
        unet.enable_gradient_checkpointing()
    cond = ClipTextConditioner(tokenizer, text_encoder)
    return LatentDiffusionModel(unet.to(device), sched, cond, vae, folder, mixed_precision=cuda)
