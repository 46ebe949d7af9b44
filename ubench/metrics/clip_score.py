"""CLIP alignment score (the paper's AS) and CLIP zero-shot labels, with an injectable extractor.

Definition (the paper's AS, as its official SD evaluation computes it): for every generated image,
the cosine between the L2-normalised open_clip **ViT-B-32 / laion2b_s34b_b79k** image embedding and
the L2-normalised embedding of the prompt the image was generated from. The raw cosine is used (no
x100, no clipping at 0); AS is the mean over prompts, one image per prompt, reported on the remain
prompts of the train and the test split. The paper runs under fp16 autocast; this module runs fp32
(differences are ~1e-3).

Preprocessing is done on tensors so generated batches never round-trip through PIL: images in
[-1, 1] (or uint8 in [0, 255]) are mapped to [0, 1], resized with antialiased bicubic
interpolation so that the shorter side matches the model's input size, centre-cropped to it,
clamped to [0, 1] and normalised with the CLIP mean/std. For square inputs this equals open_clip's
``Resize(224, bicubic) + CenterCrop(224) + Normalize`` up to the uint8 quantisation PIL applies.

Weights are never downloaded. :class:`ClipScorer` loads them from ``weights=`` (a local
``open_clip_pytorch_model.bin``) or finds them in the local Hugging Face cache, and otherwise raises
:class:`~ubench.core.errors.MissingAssetError` at once with the file to download and the option to
pass.
Tests inject :func:`ubench.metrics.injected.tiny_random_extractor`: a tiny random open_clip
``CLIP`` with the real CLIP BPE tokenizer, so the code path is real while the numbers are
meaningless.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ubench.api import Metric
from ubench.core.bootstrap import BOOTSTRAP_SEED
from ubench.core.digest import file_sha256
from ubench.core.errors import MissingAssetError
from ubench.core.hub import cached_file, hf_hub_cache

if TYPE_CHECKING:
    import torch

#: open_clip's OpenAI CLIP normalisation (also that of the laion2b ViT-B-32 weights)
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"

#: the zero-shot prompt, as in the paper's CIFAR-10 judge ("a photo of a {x}")
ZERO_SHOT_TEMPLATE = "a photo of a {label}"

#: Hugging Face repositories of known (model, tag) pairs, so the missing-weights check needs no
#: open_clip import; other tags are looked up in open_clip's pretrained table
_KNOWN_HUB_REPOS: dict[tuple[str, str], str] = {
    ("ViT-B-32", "laion2b_s34b_b79k"): "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
    # OpenAI's weights (the paper's CIFAR-10 judge); they need QuickGELU, hence the model name
    ("ViT-B-32-quickgelu", "openai"): "timm/vit_base_patch32_clip_224.openai",
}
#: file names open_clip looks for in a hub repository (safetensors first, as open_clip does)
_HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


# ----------------------------------------------------------------------------- extractors
@runtime_checkable
class ClipExtractor(Protocol):
    """What the scorer needs from a CLIP model: two encoders, a tokenizer and the input size.

    An extractor may also carry ``mean``/``std`` (per-channel normalisation); the CLIP values are
    used when it does not.
    """

    image_size: int | tuple[int, int]

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings of preprocessed images (N, 3, H, W)."""
        ...

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings of token ids as returned by :meth:`tokenize`."""
        ...

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids (N, context_length) of ``texts``."""
        ...


@dataclass
class OpenClipExtractor:
    """An open_clip model and tokenizer seen through the :class:`ClipExtractor` protocol."""

    model: Any
    tokenizer: Any
    image_size: int | tuple[int, int]
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))


def open_clip_extractor(model: Any, tokenizer: Any, image_size: int | tuple[int, int],
                        mean: Sequence[float] = CLIP_MEAN,
                        std: Sequence[float] = CLIP_STD) -> OpenClipExtractor:
    """Adapt an open_clip model (put in eval mode) and its tokenizer to :class:`ClipExtractor`."""
    model.eval()
    return OpenClipExtractor(model, tokenizer, image_size, tuple(mean), tuple(std))


# ----------------------------------------------------------------------------- local weights
def _hub_repo(model_name: str, pretrained: str) -> tuple[str | None, str | None]:
    """(hub repo id, direct-download URL) of an open_clip pretrained tag, without downloading."""
    known = _KNOWN_HUB_REPOS.get((model_name, pretrained))
    if known is not None:
        return known, None
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
    hub = str(cfg.get("hf_hub") or "").strip("/")
    if hub.count("/") > 1:  # "org/repo/filename": keep the repository id
        hub = "/".join(hub.split("/")[:2])
    return (hub or None), (str(cfg.get("url") or "") or None)


def _missing_hint(model_name: str, pretrained: str, repo: str | None = None,
                  url: str | None = None, option: str = "task.clip_weights") -> str:
    """The one-line instruction of what to download and which option to pass."""
    repo = repo or _KNOWN_HUB_REPOS.get((model_name, pretrained))
    where = f"https://huggingface.co/{repo}" if repo else (url or f"open_clip tag {pretrained!r}")
    return (f"download open_clip_pytorch_model.bin from {where} and pass "
            f"--set {option}=/path/to/open_clip_pytorch_model.bin "
            f"(or put it in the Hugging Face cache {hf_hub_cache()}); nothing is downloaded")


def resolve_clip_weights(model_name: str = DEFAULT_MODEL, pretrained: str = DEFAULT_PRETRAINED,
                         weights: str | Path | None = None,
                         option: str = "task.clip_weights") -> Path:
    """The local CLIP checkpoint to load, or :class:`MissingAssetError` at once; never downloads.

    Order: ``weights`` (must exist); ``pretrained`` if it is a file path; the Hugging Face cache
    entry of the tag's repository (``open_clip_model.safetensors`` then
    ``open_clip_pytorch_model.bin``, looked up with ``ubench.core.hub.cached_file``,
    which reads only the disk); open_clip's URL cache (``~/.cache/clip``) for URL-only tags.
    """
    if weights is not None and str(weights) != "":
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        raise MissingAssetError(f"CLIP weights file {str(path)!r} does not exist: "
                                + _missing_hint(model_name, pretrained, option=option))
    if pretrained and Path(pretrained).expanduser().is_file():
        return Path(pretrained).expanduser()
    repo, url = _hub_repo(model_name, pretrained)
    if repo:
        for filename in _HUB_WEIGHT_FILES:
            found = cached_file(repo, filename)
            if found is not None:
                return found
    if url:
        cached = Path.home() / ".cache" / "clip" / os.path.basename(url)
        if cached.is_file():
            return cached
    raise MissingAssetError(f"CLIP weights for open_clip {model_name} {pretrained!r} are not on "
                            "this machine: " + _missing_hint(model_name, pretrained, repo, url))


def load_open_clip(model_name: str, checkpoint: Path, device: str = "cpu") -> OpenClipExtractor:
    """Build the open_clip model from a local checkpoint file (no network) as an extractor."""
    import open_clip

    try:
        model, _, _ = open_clip.create_model_and_transforms(
            model_name, pretrained=str(checkpoint), device=device)
    except Exception as exc:  # a truncated or foreign file: say which, on one line
        reason = " ".join(str(exc).split())[:300]
        raise MissingAssetError(f"could not load CLIP weights {str(checkpoint)!r} into open_clip "
                                f"{model_name}: {reason}") from exc
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    return open_clip_extractor(model, open_clip.get_tokenizer(model_name), model.visual.image_size,
                               cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD))


# ----------------------------------------------------------------------------- preprocessing
def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def preprocess(images: torch.Tensor, image_size: int | Sequence[int],
               mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD
               ) -> torch.Tensor:
    """CLIP preprocessing on a tensor batch: to [0, 1], bicubic resize-shorter-side, centre crop,
    mean/std normalisation. Float input is read as [-1, 1], uint8 as [0, 255]."""
    import torch
    import torch.nn.functional as F

    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        x = images.float() / 255.0
    else:
        x = (images.float().clamp(-1, 1) + 1) / 2
    th, tw = _size_hw(image_size)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - th) // 2, (nw - tw) // 2
    x = x[..., top:top + th, left:left + tw].clamp(0, 1)
    m = torch.tensor(list(mean), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


# ----------------------------------------------------------------------------- the scorer
class ClipScorer:
    """Per-image CLIP cosine to the image's own prompt, and CLIP zero-shot labels.

    With ``extractor=None`` the real open_clip model is built from local weights only (see
    :func:`resolve_clip_weights`); a missing file raises :class:`MissingAssetError` immediately.
    Pass an extractor (e.g. :func:`ubench.metrics.injected.tiny_random_extractor`) to inject a
    model.
    """

    def __init__(self, extractor: ClipExtractor | None = None, model_name: str = DEFAULT_MODEL,
                 pretrained: str = DEFAULT_PRETRAINED, weights: str | Path | None = None,
                 device: str = "cpu", batch_size: int = 32) -> None:
        self.model_name = model_name
        self.pretrained = pretrained
        self.device = device
        self.batch_size = int(batch_size)
        self.checkpoint: Path | None = None
        if extractor is None:
            self.checkpoint = resolve_clip_weights(model_name, pretrained, weights)
            extractor = load_open_clip(model_name, self.checkpoint, device)
        self.extractor: ClipExtractor = extractor

    # -- embeddings
    def _image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        ex = self.extractor
        mean = getattr(ex, "mean", CLIP_MEAN)
        std = getattr(ex, "std", CLIP_STD)
        out = []
        with torch.inference_mode():
            for i in range(0, int(images.shape[0]), self.batch_size):
                x = preprocess(images[i:i + self.batch_size].to(self.device), ex.image_size,
                               mean, std)
                out.append(F.normalize(ex.encode_image(x).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    def _text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                tokens = self.extractor.tokenize(list(texts[i:i + self.batch_size]))
                emb = self.extractor.encode_text(tokens.to(self.device)).float()
                out.append(F.normalize(emb, dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    # -- metrics
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> np.ndarray:
        """Raw cosine of each image (N, 3, H, W in [-1, 1]) with its own prompt: float64 (N,)."""
        if int(images.shape[0]) != len(prompts):
            raise ValueError(f"{int(images.shape[0])} images but {len(prompts)} prompts; "
                             "each image is scored against its own prompt")
        if len(prompts) == 0:
            return np.zeros(0, dtype=np.float64)
        img = self._image_embeddings(images)
        txt = self._text_embeddings([str(p) for p in prompts])
        return (img * txt).sum(dim=-1).double().numpy()

    def zero_shot(self, images: torch.Tensor, labels: Sequence[str],
                  template: str = ZERO_SHOT_TEMPLATE) -> np.ndarray:
        """Index into ``labels`` of the best-matching ``template.format(label=...)`` per image."""
        if not labels:
            raise ValueError("zero_shot needs at least one label")
        if int(images.shape[0]) == 0:
            return np.zeros(0, dtype=np.int64)
        txt = self._text_embeddings([template.format(label=lab) for lab in labels])
        img = self._image_embeddings(images)
        return (img @ txt.T).argmax(dim=-1).numpy().astype(np.int64)

    def definition(self) -> dict[str, Any]:
        """:func:`clip_definition` of this scorer."""
        return clip_definition(self)


def clip_definition(scorer: ClipScorer) -> dict[str, Any]:
    """Everything that fixes the CLIP numbers: model, tag, weights hash, preprocessing."""
    ex = scorer.extractor
    if scorer.checkpoint is not None:
        model, tag = scorer.model_name, scorer.pretrained
        sha = file_sha256(scorer.checkpoint, 16)
    else:
        model, tag, sha = type(getattr(ex, "model", ex)).__name__, "injected", "injected"
    h, w = _size_hw(ex.image_size)
    return {
        "scorer": "open_clip cosine(image, own prompt)",
        "model": model,
        "pretrained": tag,
        "weights_sha256": sha,
        "preprocessing": (f"[-1,1]->[0,1], bicubic antialiased resize of the shorter side to "
                          f"{h}x{w}, centre crop, CLIP mean/std"),
        "mean": list(getattr(ex, "mean", CLIP_MEAN)),
        "std": list(getattr(ex, "std", CLIP_STD)),
        "similarity": "raw cosine of L2-normalised embeddings (no x100, no clipping)",
        "precision": "fp32",
        "zero_shot_template": ZERO_SHOT_TEMPLATE,
        "bootstrap_seed": BOOTSTRAP_SEED,
    }


# ----------------------------------------------------------------------------- registry classes
class ClipAlignmentTrain(Metric):
    """CLIP alignment (the paper's AS): mean image-prompt cosine on the train remain prompts."""

    name: ClassVar[str] = "clip_alignment_train"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
    bounds: ClassVar[tuple[float, float]] = (-1.0, 1.0)


class ClipAlignmentTest(Metric):
    """CLIP alignment score: mean image-prompt cosine on the held-out test remain prompts."""

    name: ClassVar[str] = "clip_alignment_test"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
    headline: ClassVar[bool] = True
    bounds: ClassVar[tuple[float, float]] = (-1.0, 1.0)


class OtherAccuracy(Metric):
    """Other-concept accuracy: generations for other styles/objects labelled as the one named."""

    name: ClassVar[str] = "other_accuracy"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"


class NeighbourClipAlignment(Metric):
    """Neighbour CLIP alignment: mean image-prompt cosine on a user's neighbour prompt set."""

    name: ClassVar[str] = "neighbour_clip_alignment"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
    bounds: ClassVar[tuple[float, float]] = (-1.0, 1.0)


class NeighbourLabelAccuracy(Metric):
    """Neighbour label accuracy: neighbour-prompt generations CLIP labels as the neighbour named."""

    name: ClassVar[str] = "neighbour_label_accuracy"
    higher_is_better: ClassVar[bool] = True
    split: ClassVar[str] = "remain"
