"""scikit-learn's digits as tensors, with one fixed train/held-out split.

The 1,797 8x8 images (values 0..16) ship inside scikit-learn, so this needs no network. The split
is stratified and fixed (seed 0, 20 % held out): the diffusion models and the judge train on the
train part only, and the held-out part is the real reference for FD and the judge's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ubench.core.digest import bytes_sha256

HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class DigitsSplit:
    """Images in [-1, 1] with shape (N, 1, 8, 8) and their labels, for one split."""

    images: torch.Tensor
    labels: torch.Tensor

    def of_class(self, c: int) -> torch.Tensor:
        return self.images[self.labels == c]


@lru_cache(maxsize=1)
def load_digits_splits() -> tuple[DigitsSplit, DigitsSplit]:
    """(train, held_out) splits of scikit-learn's digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0) * 2.0 - 1.0
    y = d.target.astype(np.int64)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=HELD_OUT_FRACTION,
                                      stratify=y, random_state=SPLIT_SEED)
    def mk(idx: np.ndarray) -> DigitsSplit:
        return DigitsSplit(torch.from_numpy(x[idx]).unsqueeze(1), torch.from_numpy(y[idx]))
    return mk(np.sort(idx_tr)), mk(np.sort(idx_te))


@lru_cache(maxsize=1)
def data_digest() -> str:
    """Hash of the data and split (part of every cached asset's key)."""
    tr, te = load_digits_splits()
    return bytes_sha256((t.numpy().tobytes() for t in (tr.images, tr.labels, te.images,
                                                        te.labels)), 16)
