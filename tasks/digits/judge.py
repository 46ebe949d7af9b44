"""The digits judge: a small CNN trained here, used for UA, RA and FD features.

It plays the role CLIP zero-shot plays for CIFAR-10 in the paper: it decides which class a
generated image shows. Its 64-d penultimate activations are the feature space of FD (a Fréchet
distance in *this* network's space, not Inception's — hence "FD", not "FID"). Training is
deterministic (fixed seed, one thread when trained by the task's worker) and uses ±1 pixel shifts
as augmentation; the held-out accuracy is measured and stored with the weights and must reach
98 % for the full task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


class DigitsJudge(nn.Module):
    """conv32-conv64-pool-conv64-pool -> 64-d features -> 10 logits (8x8 input in [-1, 1])."""

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 2 * 2, self.feature_dim)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(self.feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


@dataclass(frozen=True)
class JudgeSpec:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0


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
    """Train the judge on (images, labels); deterministic in ``spec.seed``."""
    gen = torch.Generator("cpu").manual_seed(spec.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        net = DigitsJudge()
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    steps_per_epoch = max(1, len(labels) // spec.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, spec.epochs * steps_per_epoch)
    net.train()
    for _ in range(spec.epochs):
        order = torch.randperm(len(labels), generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * spec.batch_size:(b + 1) * spec.batch_size]
            x = _shift(images[idx], gen)
            with torch.random.fork_rng(devices=[]):  # dropout draws from a seeded stream
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                loss = F.cross_entropy(net(x), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
            sched.step()
    net.eval()
    return net


@torch.no_grad()
def judge_predict(net: DigitsJudge, images: torch.Tensor, batch_size: int = 1024
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, 64-d features) for images in [-1, 1]."""
    net.eval()
    preds, feats = [], []
    for lo in range(0, images.shape[0], batch_size):
        f = net.features(images[lo:lo + batch_size])
        feats.append(f)
        preds.append(net.head(f).argmax(1))
    return torch.cat(preds), torch.cat(feats)
