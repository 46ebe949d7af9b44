"""Metric math and the metric contract: Fréchet distance, UA/RA, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from ubench.catalog.registry import METRICS
from ubench.core.bootstrap import bootstrap_ci, mean_with_ci
from ubench.metrics.classification import RemainingAccuracy, UnlearningAccuracy
from ubench.metrics.frechet import FrechetDistance, frechet_distance, frechet_with_ci


def test_frechet_of_identical_sets_is_zero() -> None:
    x = np.random.default_rng(0).normal(size=(500, 4))
    assert abs(frechet_distance(x, x)) < 1e-8


def test_frechet_matches_closed_form_for_gaussians() -> None:
    """FD between N(0, I) and N(m, 4I) is ||m||^2 + d (1 + 4 - 2*2) = ||m||^2 + d."""
    rng = np.random.default_rng(1)
    d, n = 3, 200_000
    m = np.array([1.0, -2.0, 0.5])
    a = rng.normal(size=(n, d))
    b = m + 2 * rng.normal(size=(n, d))
    assert abs(frechet_distance(a, b) - (m @ m + d)) < 0.1


def test_frechet_interval_brackets_estimate_and_handles_singular() -> None:
    rng = np.random.default_rng(2)
    gen, real = rng.normal(size=(40, 64)), rng.normal(size=(300, 64))  # n < d: singular
    value, lo, hi = frechet_with_ci(gen, real, resamples=50)
    assert np.isfinite([value, lo, hi]).all()
    assert lo <= value <= hi


def test_ua_ra() -> None:
    ua = UnlearningAccuracy.from_predictions(np.array([0, 0, 1, 2]), 0, {"judge": "j"})
    assert (ua.value, ua.n) == (0.5, 4) and ua.ci_low <= ua.value <= ua.ci_high
    assert ua.higher_is_better and ua.definition == {"judge": "j", "n": 4}
    ra = RemainingAccuracy.from_predictions(np.array([1, 2, 3, 3]), np.array([1, 2, 3, 4]), {})
    assert ra.value == 0.75 and ra.higher_is_better


def test_fd_metric_carries_its_direction_and_n() -> None:
    rng = np.random.default_rng(4)
    fd = FrechetDistance.from_features(rng.normal(size=(50, 3)), rng.normal(size=(80, 3)), {})
    assert not fd.higher_is_better and fd.n == 50 and fd.ci_low <= fd.value <= fd.ci_high


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_declares_its_contract(name: str) -> None:
    """Direction, split and bounds are stated once, on the class; from_scores applies them."""
    cls = METRICS.get(name)
    assert isinstance(cls.higher_is_better, bool) and cls.split in ("forget", "remain")
    lo, hi = cls.bounds
    assert lo < hi
    v = cls.from_scores(np.array([0.0, 1.0, 1.0, 0.0]), {"x": 1})
    assert v.higher_is_better is cls.higher_is_better and v.n == 4
    assert v.definition == {"x": 1, "n": 4} and v.value == 0.5


def test_mean_with_ci_of_nothing_is_nan() -> None:
    v, lo, hi, n = mean_with_ci([])
    assert n == 0 and all(x != x for x in (v, lo, hi))


def test_bootstrap_is_seeded_and_sensible() -> None:
    x = np.random.default_rng(3).random(1000) < 0.3
    a = bootstrap_ci(x.astype(float))
    assert a == bootstrap_ci(x.astype(float))
    assert a[0] < 0.3 < a[1] and a[1] - a[0] < 0.07


def test_paired_group_replicates_resample_groups_then_paired_samples() -> None:
    """The scripts' paired bootstrap: pairs that differ by a constant give that constant in
    every replicate; the same seed gives the same replicates; groups and sizes must match."""
    from ubench.core.bootstrap import paired_group_replicates

    rng = np.random.default_rng(0)
    groups = [(x, x + 0.25) for x in (rng.random(40), rng.random(60))]

    def diff(pair: tuple[np.ndarray, np.ndarray], idx: np.ndarray) -> float:
        return float((pair[1][idx] - pair[0][idx]).mean())

    reps = paired_group_replicates(groups, [40, 60], diff, 50)
    assert np.allclose(reps, 0.25)
    unpaired = paired_group_replicates(groups, [40, 60],
                                       lambda p, i: float(p[1][i].mean() - p[0].mean()), 50)
    assert unpaired.std() > 0  # resampling one side alone: the spread pairing removes
    assert np.array_equal(unpaired, paired_group_replicates(
        groups, [40, 60], lambda p, i: float(p[1][i].mean() - p[0].mean()), 50))
    with pytest.raises(ValueError, match="one size per group"):
        paired_group_replicates(groups, [40], diff, 5)
