"""Metric math: Fréchet distance, UA/RA, bootstrap intervals."""

from __future__ import annotations

import numpy as np

from ubench.metrics.bootstrap import bootstrap_ci
from ubench.metrics.classification import remaining_accuracy, unlearning_accuracy
from ubench.metrics.frechet import frechet_distance, frechet_with_ci


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
    ua, lo, hi, n = unlearning_accuracy(np.array([0, 0, 1, 2]), forget_label=0)
    assert (ua, n) == (0.5, 4) and lo <= ua <= hi
    ra, *_ = remaining_accuracy(np.array([1, 2, 3, 3]), np.array([1, 2, 3, 4]))
    assert ra == 0.75


def test_bootstrap_is_seeded_and_sensible() -> None:
    x = np.random.default_rng(3).random(1000) < 0.3
    a = bootstrap_ci(x.astype(float))
    assert a == bootstrap_ci(x.astype(float))
    assert a[0] < 0.3 < a[1] and a[1] - a[0] < 0.07
