"""The digits judge: a small CNN trained here, used for UA, RA, the garbage rate and FD features.

It plays the role CLIP zero-shot plays for CIFAR-10 in the paper: it decides which class a
generated image shows. Like the paper's CLIP label set, which has a "random noise" label beside
the ten classes, it has a **reject option**: an 11th class, :data:`NOT_A_DIGIT`, trained on
synthetic garbage (uniform and Gaussian noise, blank images at any grey level, saturated binary
noise, and real digits with their pixels scrambled). A model that "forgets" a digit by drawing
white squares is then seen doing so (the garbage rate) instead of being credited with some digit.

Its 64-d penultimate activations are the feature space of FD (a Fréchet distance in *this*
network's space, not Inception's — hence "FD", not "FID"). Training is deterministic (fixed seed,
one thread when trained by the task's worker) and uses ±1 pixel shifts as augmentation; the
held-out accuracy on real digits (a rejection counts as an error), the rejection rate of
held-out garbage and the false-rejection rate of real digits are measured and stored with the
weights (``quality.json``); the accuracy must reach 98 % for the full task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

#: the judge's reject class: "not a digit"
NOT_A_DIGIT = 10
#: the kinds of synthetic garbage the reject class is trained on
GARBAGE_KINDS = ("uniform noise", "gaussian noise", "blank", "saturated", "scrambled digit")


class DigitsJudge(nn.Module):
    """conv32-conv64-pool-conv64-pool -> 64-d features -> 11 logits: the ten digits and
    :data:`NOT_A_DIGIT` (8x8 input in [-1, 1])."""

    feature_dim = 64
    num_outputs = 11

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 2 * 2, self.feature_dim)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(self.feature_dim, self.num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


@dataclass(frozen=True)
class JudgeSpec:
    """How the judge is trained (part of its asset key)."""

    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    #: garbage images per real image in every epoch (drawn anew each epoch), labelled NOT_A_DIGIT
    garbage_fraction: float = 0.2


def garbage_images(n: int, gen: torch.Generator, digits: torch.Tensor) -> torch.Tensor:
    """``n`` synthetic non-digit 8x8 images in [-1, 1], an equal mix of :data:`GARBAGE_KINDS`.

    * uniform noise in [-1, 1]; Gaussian noise (sd 0.6, clipped);
    * blank: one grey level anywhere in [-1, 1] plus faint noise (sd 0.05) — white, black and
      grey squares, what a collapsed generator draws;
    * saturated: every pixel -1 or +1, each +1 with a per-image probability in [0.15, 0.85];
    * scrambled: a real digit from ``digits`` with its 64 pixels randomly permuted (same ink,
      no shape).

    Every kind is drawn for every image and one is picked per image, so the stream of random
    numbers does not depend on which kinds are picked.
    """
    shape = (n, 1, 8, 8)
    kind = torch.randint(0, len(GARBAGE_KINDS), (n,), generator=gen)
    uniform = torch.rand(shape, generator=gen) * 2 - 1
    gauss = (torch.randn(shape, generator=gen) * 0.6).clamp(-1, 1)
    level = torch.rand((n, 1, 1, 1), generator=gen) * 2 - 1
    blank = (level + 0.05 * torch.randn(shape, generator=gen)).clamp(-1, 1)
    p_on = 0.15 + 0.7 * torch.rand((n, 1, 1, 1), generator=gen)
    saturated = torch.where(torch.rand(shape, generator=gen) < p_on, 1.0, -1.0)
    src = digits[torch.randint(0, len(digits), (n,), generator=gen)].reshape(n, 64)
    perm = torch.argsort(torch.rand((n, 64), generator=gen), dim=1)
    scrambled = torch.gather(src, 1, perm).reshape(shape)
    options = torch.stack([uniform, gauss, blank, saturated, scrambled])  # (kinds, n, 1, 8, 8)
    return options[kind, torch.arange(n)]


def _shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shift by up to one pixel in each direction (zero padding = background -1)."""
    n = x.shape[0]
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx = torch.randint(0, 3, (n,), generator=gen)
    dy = torch.randint(0, 3, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8]
    return out


def train_judge(images: torch.Tensor, labels: torch.Tensor, spec: JudgeSpec) -> DigitsJudge:
    """Train the judge on (images, labels) plus fresh garbage each epoch (labelled
    :data:`NOT_A_DIGIT`); deterministic in ``spec.seed``."""
    gen = torch.Generator("cpu").manual_seed(spec.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        net = DigitsJudge()
    n_garbage = round(spec.garbage_fraction * len(labels))
    total = len(labels) + n_garbage
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    steps_per_epoch = max(1, total // spec.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, spec.epochs * steps_per_epoch)
    net.train()
    for _ in range(spec.epochs):
        xs = torch.cat([images, garbage_images(n_garbage, gen, images)])
        ys = torch.cat([labels, torch.full((n_garbage,), NOT_A_DIGIT, dtype=labels.dtype)])
        order = torch.randperm(total, generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * spec.batch_size:(b + 1) * spec.batch_size]
            x = _shift(xs[idx], gen)
            with torch.random.fork_rng(devices=[]):  # dropout draws from a seeded stream
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                loss = F.cross_entropy(net(x), ys[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
            sched.step()
    net.eval()
    return net


@torch.no_grad()
def judge_predict(net: DigitsJudge, images: torch.Tensor, batch_size: int = 1024
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels in 0..10, 10 = :data:`NOT_A_DIGIT`; 64-d features) for images in
    [-1, 1]."""
    net.eval()
    preds, feats = [], []
    for lo in range(0, images.shape[0], batch_size):
        f = net.features(images[lo:lo + batch_size])
        feats.append(f)
        preds.append(net.head(f).argmax(1))
    return torch.cat(preds), torch.cat(feats)


#: seed of the held-out garbage the judge's rejection rate is measured on (never trained on)
HELDOUT_GARBAGE_SEED = 987_654
#: held-out garbage images measured
HELDOUT_GARBAGE = 1000


def judge_quality(net: DigitsJudge, held_images: torch.Tensor, held_labels: torch.Tensor
                  ) -> dict[str, float | int]:
    """The judge's measured quality on data it never saw: accuracy on real held-out digits (a
    rejection counts as an error), their false-rejection rate, and the rejection rate of
    held-out garbage (scrambling the held-out digits)."""
    pred, _ = judge_predict(net, held_images)
    gen = torch.Generator("cpu").manual_seed(HELDOUT_GARBAGE_SEED)
    junk, _ = judge_predict(net, garbage_images(HELDOUT_GARBAGE, gen, held_images))
    return {"heldout_accuracy": float((pred == held_labels).float().mean()),
            "false_reject_rate": float((pred == NOT_A_DIGIT).float().mean()),
            "garbage_reject_rate": float((junk == NOT_A_DIGIT).float().mean()),
            "n_heldout": len(held_labels), "n_garbage": HELDOUT_GARBAGE}
