"""Fréchet distance between two feature sets, in a task's own feature space.

FD(A, B) = ||mu_A - mu_B||^2 + Tr(S_A + S_B - 2 (S_A S_B)^{1/2}), computed in float64. With a
digits judge as the feature network this is *not* FID (no Inception), so it is reported as FD and
the feature network's hash is recorded. The interval resamples the generated set with the real set
fixed.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from scipy import linalg

from ubench.api import Metric
from ubench.metrics.bootstrap import BOOTSTRAP_SEED


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to rows of ``a`` and ``b``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a = np.cov(a, rowvar=False)
    s_b = np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(s_a @ s_b)
            singular = not np.isfinite(covmean).all()
        except linalg.LinAlgWarning:
            singular = True
    if singular:  # fewer samples than dimensions: regularise as pytorch-fid does
        eps = np.eye(a.shape[1]) * 1e-6
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))


def frechet_with_ci(gen: np.ndarray, real: np.ndarray, resamples: int = 200,
                    level: float = 0.95, seed: int = BOOTSTRAP_SEED
                    ) -> tuple[float, float, float]:
    """(value, low, high): FD and a percentile bootstrap over the generated set."""
    value = frechet_distance(gen, real)
    rng = np.random.default_rng(seed)
    n = len(gen)
    stats = [frechet_distance(gen[rng.integers(0, n, size=n)], real) for _ in range(resamples)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return value, float(lo), float(hi)


class FrechetDistance(Metric):
    """Frechet distance between generated and real features of a task's own feature network."""

    name: ClassVar[str] = "fd"
    higher_is_better: ClassVar[bool] = False
    split: ClassVar[str] = "remain"
