"""Sample grids: the ``samples.png`` of every run, one row per condition (forget row first).

Images are tensors in [-1, 1]; cells are separated by dark grey lines and the grid is upscaled
with nearest-neighbour interpolation so 8x8 digits stay readable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _to_png(canvas: torch.Tensor, scale: int) -> Any:
    """A (H, W) or (H, W, 3) canvas in [-1, 1] as a PIL image upscaled ``scale`` times."""
    from PIL import Image

    arr = ((canvas.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    out = Image.fromarray(np.ascontiguousarray(arr))
    return out.resize((out.width * scale, out.height * scale), Image.Resampling.NEAREST)


def class_grid(images: torch.Tensor, labels: torch.Tensor, order: list[int], per_row: int,
               scale: int = 4) -> Any:
    """Greyscale grid with one row per class in ``order`` (forget class first): the first
    ``per_row`` images of that label, and a wider separator under the forget row."""
    h, w = images.shape[-2:]
    pad = 1
    canvas = torch.full((len(order) * (h + pad) + pad + 1, per_row * (w + pad) + pad), 0.0)
    for r, k in enumerate(order):
        sel = images[labels == k][:per_row]
        top = pad + r * (h + pad) + (1 if r > 0 else 0)  # extra line under the forget row
        for col, img in enumerate(sel):
            left = pad + col * (w + pad)
            canvas[top:top + h, left:left + w] = img[0]
    return _to_png(canvas, scale)


def rgb_grid(rows: list[torch.Tensor], scale: int = 4) -> Any:
    """RGB grid: one row per tensor of (N, 3, H, W) images."""
    h, w = rows[0].shape[-2:]
    cols = max(len(r) for r in rows)
    pad = 1
    canvas = torch.full((3, len(rows) * (h + pad) + pad, cols * (w + pad) + pad), 0.0)
    for r, imgs in enumerate(rows):
        for col, img in enumerate(imgs):
            top, left = pad + r * (h + pad), pad + col * (w + pad)
            canvas[:, top:top + h, left:left + w] = img
    return _to_png(canvas.permute(1, 2, 0), scale)
