"""The CIFAR-10 setting's fixed choices: architecture, pretraining recipes, unlearning recipes,
the low-diversity class pairs and the zero-shot labels. Each value names its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ubench.training.pretrain import PretrainSpec


@dataclass(frozen=True)
class ModelSpec:
    """The class-conditional UNet (part of every pretrained model's key).

    The defaults are DDPM's CIFAR-10 network (Ho et al. 2020, appendix B; diffusers'
    ``google/ddpm-cifar10-32`` layout): channels 128/256/256/256, two residual blocks per level,
    self-attention at 16x16, dropout 0.1, GroupNorm(32), sinusoidal time embedding with DDPM's
    phase; plus 11 class embeddings (10 classes + the null class 10 of guidance). 35.75M
    parameters.
    """

    channels: tuple[int, ...] = (128, 256, 256, 256)
    layers_per_block: int = 2
    #: resolution levels with self-attention (1 = 16x16)
    attention_levels: tuple[int, ...] = (1,)
    dropout: float = 0.1
    norm_num_groups: int = 32
    init_seed: int = 0

    def unet_options(self) -> dict[str, Any]:
        """DDPM's settings of the diffusers UNet (one attention head, unpadded downsampling,
        no sin/cos flip, frequency shift 1, GroupNorm eps 1e-6)."""
        return {"dropout": self.dropout, "attention_head_dim": None, "downsample_padding": 0,
                "flip_sin_to_cos": False, "freq_shift": 1, "norm_eps": 1e-6}


#: the recipe of ``ubench pretrain --task cifar10-class``: DDPM's optimiser, warm-up, EMA and flips
#: with label dropout 0.1, for 200,000 steps at batch 128 (a quarter of DDPM's schedule) — a
#: usable model in a few GPU-hours (docs/tasks/cifar10.md, estimates). DDPM's full-quality recipe is
#: the same at ``--steps 800000``.
PRETRAIN = PretrainSpec(steps=200_000)

#: the tiny preset's recipe (tests): a few seconds on one CPU core
TINY_PRETRAIN = PretrainSpec(steps=12, batch_size=16, lr=1e-3, warmup=0, ema_decay=0.9)
TINY_MODEL = ModelSpec(channels=(16, 32), layers_per_block=1, attention_levels=(1,),
                       dropout=0.0, norm_num_groups=8)

#: the paper's low-diversity control (Table 3 "Case 1", the official code's
#: ``select_custom_samples``): forget class -> the two classes D_r is drawn from. Classes 0, 2
#: and 5 are the paper's; for the others we take the two classes of the same kind (vehicle /
#: animal) that CIFAR-10 classifiers confuse it with most (docs/tasks/cifar10.md)
TWO_CLASS_PAIRS: dict[int, tuple[int, int]] = {
    0: (2, 8),   # airplane -> bird, ship (paper)
    1: (9, 8),   # automobile -> truck, ship
    2: (4, 6),   # bird -> deer, frog (paper)
    3: (5, 6),   # cat -> dog, frog
    4: (7, 2),   # deer -> horse, bird
    5: (3, 6),   # dog -> cat, frog (paper)
    6: (3, 4),   # frog -> cat, deer
    7: (4, 5),   # horse -> deer, dog
    8: (0, 1),   # ship -> airplane, automobile
    9: (1, 8),   # truck -> automobile, ship
}

#: the paper's zero-shot CLIP labels (official evaluation code): the ten classes as it names
#: them plus "random noise", which keeps broken images from being forced into a class
CLIP_LABELS: tuple[str, ...] = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse",
                                "ship", "truck", "random noise")
CLIP_TEMPLATE = "a photo of a {label}"
#: open_clip name of OpenAI's ViT-B/32 (QuickGELU, as OpenAI trained it) and its tag
CLIP_MODEL = "ViT-B-32-quickgelu"
CLIP_PRETRAINED = "openai"
CLIP_REPO = "timm/vit_base_patch32_clip_224.openai"

#: evaluation sample counts per side (forget-class generations / remaining-class generations)
EVAL_PRESETS: dict[str, int] = {"budget": 5_000, "paper": 50_000}

# ----------------------------------------------------------------------------- unlearning recipes
#: the paper's CIFAR-10 recipe (official code, §4.1 of the digest): Adam 1e-5, 64 forget images
#: per step, 782 steps (50 kimg), lambda 5, per-element truncation at alpha 0.1 of the denoised-
#: image error (``clip-x0``, as the code caps x0 errors before the EDM weight), the full remain
#: gradient over the 450-image D_r (RGD); graddiff keeps ``full`` so that the projection is the
#: only difference (its docstring)
_GRADIENT: dict[str, Any] = {"steps": 782, "lr": 1e-5, "batch_size": 64, "remain_weight": 5.0,
                             "truncation": "clip-x0", "clip_alpha": 0.1, "remain_gradient": "full"}
#: SalUn's CIFAR-10 DDPM settings (its repository's config and README): Adam 1e-4, 500
#: iterations, batch 128, alpha 1e-3, gradient clipping 1.0, pseudo label (c + 1) mod 10
_SALUN: dict[str, Any] = {"steps": 500, "lr": 1e-4, "batch_size": 128, "remain_weight": 1e-3,
                          "grad_clip": 1.0, "pseudo": "next"}
#: ESD's defaults (1,000 iterations, Adam 1e-5, 50 DDIM steps, start guidance 3, eta 1)
_ESD: dict[str, Any] = {"steps": 1000, "lr": 1e-5, "ddim_steps": 50, "start_guidance": 3.0}

CIFAR_METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "boostalign": _GRADIENT, "graddiff": _GRADIENT,
    "ga": {k: v for k, v in _GRADIENT.items() if k not in ("remain_weight", "remain_gradient")},
    "finetune": {"steps": 782, "lr": 1e-5, "batch_size": 64},
    "rl": _SALUN, "salun": _SALUN,
    "esd-u": _ESD, "esd-full": _ESD,
}

#: the tiny preset (tests): every recipe at 2 steps and batch 8, ESD on a 4-step schedule
TINY_METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    m: {**v, "steps": 2, "batch_size": 8, **({"ddim_steps": 4} if m.startswith("esd") else {})}
    for m, v in CIFAR_METHOD_DEFAULTS.items()}
