"""Injected evaluators: tiny random networks a *test* model folder asks for instead of the real
judges, so that the test suite (and CI, with no weights and no network) runs the real scoring
code of the Stable Diffusion and CIFAR-10 tasks.

A model folder opts in with ``ubench_assets.json`` (:data:`ASSETS_FILE`; written only by
:mod:`ubench.testing`'s tiny pipelines and ``inject_test_evaluators``); every metric measured
with an injected network says ``injected`` in its definition, and the task prints a note, so a
number from one is never mistaken for a real one. They live here, among the metrics, because a
real task loads them when a folder asks; the fixtures that *make* such folders live in
:mod:`ubench.testing`, which production code never imports.
"""

from __future__ import annotations

from typing import Any

import torch

from ubench.metrics.clip_score import DEFAULT_MODEL, OpenClipExtractor, open_clip_extractor

#: the file in a model folder that names evaluation assets to inject (tests only); whatever it
#: substitutes is printed and recorded as "injected"
ASSETS_FILE = "ubench_assets.json"


def tiny_random_extractor(seed: int = 0) -> OpenClipExtractor:
    """A tiny random open_clip CLIP (1.6M parameters) with the real CLIP BPE tokenizer, for tests.

    Embedding width 32; vision: ViT width 32, 2 layers, 4 heads, patch 4, 32x32 input; text: width
    32, 2 layers, 4 heads, the 49408-token CLIP vocabulary and context 77. Initialisation is seeded
    without touching the global torch RNG. Scores from it exercise the real code but mean nothing.
    """
    import open_clip
    from open_clip.model import CLIP

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(
            embed_dim=32,
            vision_cfg={"width": 32, "layers": 2, "head_width": 8, "patch_size": 4,
                        "image_size": 32},
            text_cfg={"width": 32, "heads": 4, "layers": 2, "context_length": 77,
                      "vocab_size": 49408},
        )
    return open_clip_extractor(model, open_clip.get_tokenizer(DEFAULT_MODEL), 32)


def tiny_inception_net(seed: int = 0, dims: int = 64) -> Any:
    """An Inception-shaped random feature network for tests: the same input contract as
    clean-fid's Inception (``(N, 3, 299, 299)`` floats in [0, 255], normalised as it does) and
    ``dims`` output features (64, so covariances stay small). Numbers from it mean nothing."""
    from ubench.metrics.frechet import FeatureNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, kernel_size=7, stride=4), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, kernel_size=5, stride=4), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(16 * 16, dims),
        ).eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != (3, 299, 299):
            raise ValueError(f"expected (N, 3, 299, 299) inputs, got {tuple(x.shape)}")
        with torch.no_grad():
            return net((x - 128) / 128)

    return FeatureNet(forward, dims, f"injected: tiny random Inception-shaped net ({dims}-d, "
                      f"seed {seed})", "injected")
