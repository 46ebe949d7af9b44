"""Percentile bootstrap confidence intervals with a fixed resampling seed.

The resampling seed is fixed (not the run seed) so that the interval of a given set of samples is
itself reproducible; it is recorded in every metric definition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

BOOTSTRAP_SEED = 12345

G = TypeVar("G")


def bootstrap_ci(values: np.ndarray, stat: Callable[[np.ndarray], float] = np.mean,
                 resamples: int = 1000, level: float = 0.95, seed: int = BOOTSTRAP_SEED
                 ) -> tuple[float, float]:
    """(low, high) percentile interval of ``stat`` over resamples of ``values`` (first axis)."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    if stat is np.mean and values.ndim == 1:  # vectorised fast path
        idx = rng.integers(0, n, size=(resamples, n))
        stats = values[idx].mean(axis=1)
    else:
        stats = np.array([stat(values[rng.integers(0, n, size=n)]) for _ in range(resamples)])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def mean_with_ci(scores: np.ndarray | Sequence[float] | Sequence[bool]
                 ) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of per-sample scores (0/1 outcomes, cosines, counts, ...).

    The interval is the 95 % percentile bootstrap over samples (:func:`bootstrap_ci`); no scores
    give ``(nan, nan, nan, 0)``.
    """
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan"), 0
    lo, hi = bootstrap_ci(x)
    return float(x.mean()), lo, hi, len(x)


def paired_group_replicates(groups: Sequence[G], sizes: Sequence[int],
                            stat: Callable[[G, np.ndarray], float], resamples: int,
                            seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Bootstrap replicates of the mean over ``groups`` of ``stat(group, indices)``.

    A hierarchical, paired bootstrap: each replicate resamples the groups (seeds, runs), then
    the samples within each picked group — ``sizes[g]`` of them, drawn as indices, so the two
    sides of a pair (two methods scored on the same prompts and generation seeds) are resampled
    together by ``stat``. The draws come from ``default_rng(seed)`` in a fixed order (the groups,
    then each picked group's indices), so a figure computed with it is reproducible.
    """
    if len(groups) != len(sizes) or not groups:
        raise ValueError("paired_group_replicates needs one size per group, and a group")
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for i in range(resamples):
        picked = rng.integers(0, len(groups), size=len(groups))
        out[i] = np.mean([stat(groups[g], rng.integers(0, sizes[g], size=sizes[g]))
                          for g in picked])
    return out
