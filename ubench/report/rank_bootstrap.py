"""The hierarchical bootstrap of the fronts and the ranking, vectorised, draw for draw.

:func:`ubench.report.protocol.standing` and :func:`~ubench.report.protocol.front_scalars`
resample, in every replicate and for every group of runs (a tuning point, an evaluation row),
the runs of the group (``rng.integers(0, R, size=R)``) and then the samples of every picked run
(``rng.integers(0, L, size=L)`` per metric, in the run's key order). Written as a loop that is
a million small calls (seconds for the committed records). :func:`hierarchical_means` computes
the same replicates with whole-array operations *and the very same random draws*, so the report
is byte-identical to the loop's.

How the draws are reproduced. NumPy's ``Generator.integers(0, n, size=m)`` for ``1 < n <= 2**32``
takes, for each of its ``m`` values, the next 32-bit word of the bit generator and keeps
``(word * n) >> 32`` (Lemire's method); it rejects a word whose low half ``(word * n) mod 2**32``
is below ``(2**32 - n) mod n`` and takes the next one instead (rare: probability below
``n / 2**32``). The 32-bit words form one stream across calls (PCG64 keeps the spare half of a
64-bit output for the next call), and ``n == 1`` takes no word at all. So the draws of a
replicate are a fixed layout of words — when every run of a group has the same keys, in the same
order, with the same lengths — and the stream, read with ``integers(0, 2**32, dtype=uint64)``,
gives them all at once; a rejected word is dropped from the stream and the layout read again
from there. ``tests/unit/test_rank_bootstrap.py`` checks the result against the loop.

A mean of a gathered ``(replicates, L)`` array along its rows is NumPy's pairwise sum of each
row, as for each row alone, so the means are the same floats too. Anything outside the fast
path's assumptions (ragged groups, 2-D scores, integer scores, ``n > 2**32``) returns ``None``
and the caller runs the loop (:func:`hierarchical_means_loop`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

#: 32-bit words read per block (bounds the memory of a replicate block: ~5 arrays of 8 bytes)
BLOCK_WORDS = 1 << 20
_LOW = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


class _Stream:
    """The bit generator's 32-bit words, in order (what ``Generator.integers`` consumes)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.buf = np.zeros(0, dtype=np.uint64)

    def take(self, n: int) -> np.ndarray:
        if len(self.buf) < n:
            more = self.rng.integers(0, 1 << 32, size=n - len(self.buf) + 64, dtype=np.uint64)
            self.buf = np.concatenate([self.buf, more]) if len(self.buf) else more
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _group_shape(runs: Sequence[Mapping[str, np.ndarray]]
                 ) -> tuple[list[str], list[int]] | None:
    """The key order and lengths every run of a group shares, or None."""
    if not runs:
        return None
    keys = list(runs[0].keys())
    lengths = []
    for k in keys:
        first = runs[0][k]
        if not isinstance(first, np.ndarray) or first.ndim != 1 or len(first) < 1:
            return None
        lengths.append(len(first))
    for r in runs:
        if list(r.keys()) != keys:
            return None
        for k, n in zip(keys, lengths, strict=True):
            v = r[k]
            if (not isinstance(v, np.ndarray) or v.ndim != 1 or len(v) != n
                    or v.dtype != runs[0][k].dtype or v.dtype.kind != "f"):
                return None
    if len(runs) > 1 << 32 or max(lengths) > 1 << 32:
        return None
    return keys, lengths


#: a layout: per group of runs, its number of runs and its keys with their lengths, in order
Layout = tuple[tuple[int, tuple[tuple[str, int], ...]], ...]


def hierarchical_means(seed: int, groups: Sequence[Sequence[Mapping[str, np.ndarray]]],
                       keys: Sequence[str], resamples: int) -> dict[str, np.ndarray] | None:
    """``{key: array (resamples, len(groups))}``: in replicate ``b``, for group ``g``, the mean
    over its resampled runs of each resampled run's mean of ``key`` — what
    :func:`hierarchical_means_loop` gives with ``np.random.default_rng(seed)``, from the same
    draws — or ``None`` when the groups are not shaped for the fast path.

    Every run of a group maps the same keys (each a 1-D float array), in the same order, with the
    same lengths; every ``key`` is among them. The draws depend only on the seed and that layout,
    not on the scores: they are made once per layout (:func:`_draws`, cached), and the rows of a
    table and the methods of a front that share a layout share them."""
    shapes = [_group_shape(g) for g in groups]
    if resamples < 0 or any(s is None or any(k not in s[0] for k in keys) for s in shapes):
        return None
    layout: Layout = tuple((len(runs), tuple(zip(*shape, strict=True)))  # type: ignore[misc]
                           for runs, shape in zip(groups, shapes, strict=True))
    wanted = tuple(dict.fromkeys(keys))
    draws = _draws(seed, resamples, layout, wanted)
    # float64 holds a float32 mean exactly (the callers take float() of each)
    out = {k: np.empty((resamples, len(groups))) for k in wanted}
    for g, (runs, (picks, idx)) in enumerate(zip(groups, draws, strict=True)):
        for k in wanted:
            values = np.stack([r[k] for r in runs])
            n = values.shape[1]
            # 0/1 scores (a judged sample: forgotten or not) are counted: a whole-number sum is
            # exact in any order, so count / n is the float the mean gives
            binary = bool(np.all((values == 0) | (values == 1)))
            flat = values.astype(np.uint8).ravel() if binary else values.ravel()
            block = max(1, BLOCK_WORDS // idx[k][0].size) if resamples else 1
            for b0 in range(0, resamples, block):
                b1 = min(resamples, b0 + block)
                # (block, R, L): each picked run's resampled scores
                at = picks[b0:b1, :, None].astype(np.intp) * n + idx[k][b0:b1]
                picked = np.take(flat, at)
                # a mean along the last axis is each row's own pairwise sum, as for the row alone
                per_run = (picked.sum(axis=2, dtype=np.int64) / n if binary
                           else picked.mean(axis=2))
                out[k][b0:b1, g] = per_run.astype(values.dtype, copy=False).mean(axis=1)
    return out


@lru_cache(maxsize=8)
def _draws(seed: int, resamples: int, layout: Layout, keys: tuple[str, ...]
           ) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Per group: the picked runs ``(resamples, R)`` and, per key of ``keys``, the picked
    samples ``(resamples, R, L)`` — the draws ``default_rng(seed)`` makes in the loop."""
    # the words of one replicate: per group, the run draws, then per picked run its keys' draws
    # (a draw with bound 1 takes no word)
    bounds: list[np.ndarray] = []  # the bound each word of a replicate is drawn with
    plan = []  # per group: (offset of its picks, R, offset of its runs' words, words per run,
    #            per key: (offset in a run's words, L))
    at = 0
    for n_runs, fields in layout:
        picks_at = at
        if n_runs > 1:
            bounds.append(np.full(n_runs, n_runs, dtype=np.uint64))
            at += n_runs
        inner, per_run = {}, 0
        for k, n in fields:
            inner[k] = (per_run, n)
            if n > 1:
                per_run += n
        bounds += [np.full(n, n, dtype=np.uint64) for n in (n for _, n in fields) if n > 1
                   ] * n_runs
        plan.append((picks_at, n_runs, at, per_run, inner))
        at += n_runs * per_run
    words = at
    bound = np.concatenate(bounds) if bounds else np.zeros(0, dtype=np.uint64)
    with np.errstate(divide="ignore", invalid="ignore"):  # (no word has bound 0)
        thresh = (np.uint64(1 << 32) - bound) % bound
    out = [(np.zeros((resamples, n_runs), dtype=_small(n_runs)),
            {k: np.zeros((resamples, n_runs, inner[k][1]), dtype=_small(inner[k][1]))
             for k in keys})
           for (_, n_runs, _, _, inner) in plan]
    stream = _Stream(np.random.default_rng(seed))
    block = max(1, BLOCK_WORDS // max(words, 1))
    for b0 in range(0, resamples if words else 0, block):
        nb = min(block, resamples - b0)
        prod = _products(stream, nb, bound, thresh)
        high = prod >> _SHIFT
        for (picks_at, n_runs, runs_at, per_run, inner), (picks, idx) in zip(plan, out,
                                                                              strict=True):
            if n_runs > 1:
                picks[b0:b0 + nb] = high[:, picks_at:picks_at + n_runs]
            for k in keys:
                start, n = inner[k]
                if n > 1:
                    for j in range(n_runs):
                        s = runs_at + j * per_run + start
                        idx[k][b0:b0 + nb, j] = high[:, s:s + n]
    for picks, idx in out:  # shared by later calls: read-only
        picks.flags.writeable = False
        for a in idx.values():
            a.flags.writeable = False
    return out


def _products(stream: _Stream, rows: int, bound: np.ndarray, thresh: np.ndarray
              ) -> np.ndarray:
    """``(rows, len(bound))``: ``word * bound`` for the next words ``Generator.integers`` keeps
    when a replicate's ``i``-th draw has bound ``bound[i]`` (its value is the product's high
    half). A word it rejects — the product's low half below Lemire's threshold — is skipped,
    as NumPy does, and the words after it move up by one."""
    w = stream.take(rows * len(bound)).reshape(rows, len(bound))
    while True:
        prod = w * bound
        bad = np.flatnonzero((prod & _LOW) < thresh)  # (in C order: the first rejection first)
        if not len(bad):
            return prod
        flat = w.ravel()
        p = int(bad[0])
        w = np.concatenate([flat[:p], flat[p + 1:], stream.take(1)]).reshape(w.shape)


def _small(n: int) -> type[np.integer]:
    """The smallest integer type that holds ``0 .. n - 1`` (the cache's memory)."""
    return np.int16 if n <= 1 << 15 else np.int32 if n <= 1 << 31 else np.int64


def hierarchical_means_loop(rng: np.random.Generator,
                            groups: Sequence[Sequence[Mapping[str, np.ndarray]]],
                            keys: Sequence[str], resamples: int) -> dict[str, np.ndarray]:
    """The loop :func:`hierarchical_means` reproduces (and the fallback for what it does not
    take): per replicate, per group, resample the runs, then each picked run's samples, key by
    key in the run's order; the mean over picked runs of the run's mean, per key."""
    out: dict[str, list[list[float]]] = {k: [] for k in dict.fromkeys(keys)}
    for _ in range(resamples):
        row: dict[str, list[float]] = {k: [] for k in out}
        for runs in groups:
            picked = [runs[int(i)] for i in rng.integers(0, len(runs), size=len(runs))]
            sample = [{k: v[rng.integers(0, len(v), size=len(v))] for k, v in r.items()}
                      for r in picked]
            for k in out:
                row[k].append(float(np.mean([r[k].mean() for r in sample])))
        for k in out:
            out[k].append(row[k])
    return {k: np.asarray(v, dtype=np.float64).reshape(resamples, len(groups))
            for k, v in out.items()}
