"""The vectorised bootstraps of the report give the loop's floats, bit for bit (same draws)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ubench.api import TuningRule
from ubench.report import protocol
from ubench.report.rank_bootstrap import (
    _products,
    _Stream,
    hierarchical_means,
    hierarchical_means_loop,
)


def _groups(r: np.random.Generator) -> tuple[list[list[dict[str, np.ndarray]]], tuple[str, ...]]:
    groups = []
    for _ in range(int(r.integers(1, 4))):
        keys = ["a", "b"] if r.random() < 0.7 else ["b", "c", "a"]
        lengths = {k: int(r.choice([1, 2, 9, 130, 300])) for k in keys}
        dtype = np.float32 if r.random() < 0.2 else np.float64
        binary = r.random() < 0.5
        groups.append([{k: ((r.random(n) < 0.5) if binary else r.random(n)).astype(dtype)
                        for k, n in lengths.items()} for _ in range(int(r.integers(1, 10)))])
    return groups, (("a", "b") if r.random() < 0.8 else ("a", "a"))


@pytest.mark.parametrize("trial", range(12))
def test_hierarchical_means_is_the_loop(trial: int) -> None:
    groups, keys = _groups(np.random.default_rng(100 + trial))
    resamples = [1, 7, 200][trial % 3]
    fast = hierarchical_means(trial, groups, keys, resamples)
    slow = hierarchical_means_loop(np.random.default_rng(trial), groups, keys, resamples)
    assert fast is not None and fast.keys() == slow.keys()
    for k in slow:
        assert np.array_equal(fast[k], slow[k])


def test_draws_skip_rejected_words_as_numpy_does() -> None:
    """Bounds near 2**31 reject about half the words: the words after each move up by one."""
    r = np.random.default_rng(0)
    for trial in range(60):
        pattern = [(int(r.choice([2, 7, 100, 2**31 + 5, 3_000_000_000])), int(r.integers(1, 4)))
                   for _ in range(int(r.integers(1, 5)))]
        rows = int(r.integers(1, 4))
        rng = np.random.default_rng(trial)
        want = np.concatenate([rng.integers(0, n, size=m) for _ in range(rows)
                               for n, m in pattern])
        bound = np.concatenate([np.full(m, n, np.uint64) for n, m in pattern])
        thresh = (np.uint64(1 << 32) - bound) % bound
        prod = _products(_Stream(np.random.default_rng(trial)), rows, bound, thresh)
        assert np.array_equal((prod >> np.uint64(32)).astype(np.int64).ravel(), want)


def test_ragged_groups_take_the_loop() -> None:
    r = np.random.default_rng(1)
    runs = [{"a": r.random(5), "b": r.random(4)}, {"a": r.random(6), "b": r.random(4)}]
    assert hierarchical_means(0, [runs], ("a", "b"), 10) is None
    assert hierarchical_means(0, [[{"a": r.random((3, 2)), "b": r.random(3)}]], ("a", "b"),
                              10) is None


RULE = TuningRule(forget="ua", keep="ra", target=0.5, forget_higher_is_better=True)


def _old_standing_reps(runs: list[dict[str, np.ndarray]], resamples: int, seed: int
                       ) -> list[tuple[float, float]]:
    """The loop :func:`protocol.standing` had (before it was vectorised)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        picked = [runs[int(i)] for i in rng.integers(0, len(runs), size=len(runs))]
        sample = [{m: v[rng.integers(0, len(v), size=len(v))] for m, v in r.items()}
                  for r in picked]
        out.append((float(np.mean([r["ua"].mean() for r in sample])),
                    float(np.mean([r["ra"].mean() for r in sample]))))
    return out


@pytest.mark.parametrize("ragged", [False, True])
def test_standing_replicates_are_the_old_loops(ragged: bool) -> None:
    r = np.random.default_rng(2)
    runs = [{"ua": (r.random(40) < 0.6).astype(float), "ra": r.random(30 + ragged * i)}
            for i in range(4)]
    s = protocol.standing(RULE, 0.5, "x", "x", runs, resamples=300, seed=7)
    old = np.asarray(_old_standing_reps(runs, 300, 7))
    phi = np.clip(old[:, 0], 0, 1)
    assert np.array_equal(s.replicates[:, 0], np.where(phi >= 0.5 - 1e-12, old[:, 1], 0.0))
    assert np.array_equal(s.replicates[:, 1], phi * old[:, 1])


def _old_tv(a: list[str], b: list[str], resamples: int = 1000, seed: int = 12345) -> Any:
    value = protocol.total_variation(a, b)
    labels = sorted(set(a) | set(b))
    code = {k: i for i, k in enumerate(labels)}
    xa, xb = np.array([code[x] for x in a]), np.array([code[x] for x in b])
    rng = np.random.default_rng(seed)
    ra = xa[rng.integers(0, len(xa), size=(resamples, len(xa)))]
    rb = xb[rng.integers(0, len(xb), size=(resamples, len(xb)))]
    pa = np.stack([(ra == i).mean(1) for i in range(len(labels))], 1)
    pb = np.stack([(rb == i).mean(1) for i in range(len(labels))], 1)
    q_lo, q_hi = np.quantile(0.5 * np.abs(pa - pb).sum(1), [0.025, 0.975])
    lo, hi = max(0.0, 2 * value - float(q_hi)), min(1.0, 2 * value - float(q_lo))
    return value, min(lo, value), max(hi, value)


def test_tv_interval_is_the_old_one() -> None:
    r = np.random.default_rng(3)
    for na, nb, k in ((50, 50, 3), (37, 90, 11), (5, 5, 1), (200, 120, 9)):
        a = [f"l{int(x)}" for x in r.integers(0, k, na)]
        b = [f"l{int(x)}" for x in r.integers(0, k + 1, nb)]
        assert protocol.tv_with_ci(a, b) == _old_tv(a, b)


def test_rank_intervals_are_the_old_ones() -> None:
    r = np.random.default_rng(4)
    scores = np.round(r.random((50, 6, 2)), 1)  # ties on purpose
    want = np.array([protocol._competition_ranks([(float(x), float(y)) for x, y in rep])
                     for rep in scores])
    assert np.array_equal(protocol._replicate_ranks(scores), want)
