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

from collections.abc import Callable
from dataclasses import asdict, dataclass

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


class PartnerJudge(nn.Module):
    """The partner judge: conv5x5(24)-BN, then two stride-2 conv3x3 (48, 96)-BN, global average
    pooling -> 64-d features -> 11 logits. Another architecture than :class:`DigitsJudge` on
    purpose (a wide first kernel, strided convolutions instead of max pooling, batch norm, no
    spatial layout left after pooling), trained with another augmentation
    (:func:`partner_augment`): its errors should not be the same errors, so that agreement
    between the two means something."""

    feature_dim = 64
    num_outputs = 11

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 24, 5, padding=2), nn.BatchNorm2d(24), nn.ReLU(),
            nn.Conv2d(24, 48, 3, stride=2, padding=1), nn.BatchNorm2d(48), nn.ReLU(),
            nn.Conv2d(48, 96, 3, stride=2, padding=1), nn.BatchNorm2d(96), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, self.feature_dim), nn.ReLU())
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(self.feature_dim, self.num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

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
    """``n`` synthetic non-digit 8x8 images in [-1, 1], an equal mix of :data:`GARBAGE_KINDS`
    (:func:`garbage_by_kind` draws them; one kind is picked per image)."""
    kind, options = garbage_by_kind(n, gen, digits)
    return options[kind, torch.arange(n)]


def garbage_by_kind(n: int, gen: torch.Generator, digits: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of every one of :data:`GARBAGE_KINDS` (``options``, shape (kinds, n, 1, 8,
    8), in [-1, 1]) and a random kind per image (``kind``, what :func:`garbage_images` picks).

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
    return kind, options


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


#: either judge architecture
Judge = DigitsJudge | PartnerJudge


def _pick(options: list[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """One of ``options`` (each (N, 1, 8, 8)) per image, chosen uniformly; every option is
    computed for every image so the random stream does not depend on the picks."""
    stack = torch.stack(options)
    kind = torch.randint(0, len(options), (stack.shape[1],), generator=gen)
    return stack[kind, torch.arange(stack.shape[1])]


def robust_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The validated CNN judge's augmentation: per image, nothing or one of the stress set's
    deformation families at *wider, random* strengths than the stress set uses (horizontal
    scale 0.45-1, vertical 0.55-1, erosion, dilation, shifts of 2 with vertical jitter,
    rotations up to 30 degrees, an erased 2x2 block). Trained on the train split only; the
    stress set deforms held-out digits."""
    from ubench.tasks.digits import stress

    return _pick([x, stress.squeeze(x, gen, 0.45, 1.0), stress.stretch(x, gen, 0.55, 1.0),
                  stress.thin(x, gen, 0.3, 1.0), stress.thicken(x, gen, 0.1, 0.6),
                  stress.shift(x, gen, vertical=True), stress.rotate(x, gen, 0.0, 30.0),
                  stress.erase(x, gen)], gen)


def partner_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The partner judge's augmentation, deliberately another family than
    :func:`robust_augment`: one random affine map per image (independent x/y scale 0.5-1.15,
    rotation up to 28 degrees, shear up to 0.3, translation up to 1.5 pixels), a smooth elastic
    displacement (amplitude about half a pixel) and pixel noise (sd 0.05); a quarter of the
    images are left as they are. No morphology: its accuracy on thinned and thickened digits is
    not trained for."""
    n = x.shape[0]
    u = torch.rand(n, 6, generator=gen)
    sx, sy = 0.5 + 0.65 * u[:, 0], 0.5 + 0.65 * u[:, 1]
    a = torch.deg2rad((u[:, 2] * 2 - 1) * 28)
    sh = (u[:, 3] * 2 - 1) * 0.3
    tx, ty = (u[:, 4] * 2 - 1) * 1.5 / 4, (u[:, 5] * 2 - 1) * 1.5 / 4  # grid units: 4 px = 1
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos / sx, (-sin + sh) / sx
    theta[:, 1, 0], theta[:, 1, 1] = sin / sy, cos / sy
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    coarse = torch.randn(n, 2, 3, 3, generator=gen) * 0.12
    grid = grid + F.interpolate(coarse, size=(8, 8), mode="bicubic",
                                align_corners=True).permute(0, 2, 3, 1)
    ink = ((x + 1) / 2).clamp(0, 1)
    warped = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    noisy = (warped + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1) * 2 - 1
    keep = torch.rand(n, generator=gen) < 0.25
    return torch.where(keep.view(-1, 1, 1, 1), x, noisy)


def train_judge(images: torch.Tensor, labels: torch.Tensor, spec: JudgeSpec,
                net: Judge | None = None,
                augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
                ) -> Judge:
    """Train a judge on (images, labels) plus fresh garbage each epoch (labelled
    :data:`NOT_A_DIGIT`); deterministic in ``spec.seed``.

    ``net`` defaults to a :class:`DigitsJudge` initialised from ``spec.seed``; ``augment`` (the
    validated judges' deformations, applied to the real digits of each batch before the ±1 pixel
    shift) defaults to none, which is how the original judge was trained."""
    gen = torch.Generator("cpu").manual_seed(spec.seed)
    if net is None:
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
            x = xs[idx]
            if augment is not None:
                real = ys[idx] != NOT_A_DIGIT
                x = torch.where(real.view(-1, 1, 1, 1), augment(x, gen), x)
            x = _shift(x, gen)
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
def judge_predict(net: Judge, images: torch.Tensor, batch_size: int = 1024
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


def judge_quality(net: Judge, held_images: torch.Tensor, held_labels: torch.Tensor
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


@dataclass(frozen=True)
class JudgeRecipe:
    """How one pinned judge is made: architecture, augmentation and training spec. Its
    :meth:`key` is the asset key (a new recipe is a new asset, never a silent change)."""

    #: ``cnn-maxpool`` (:class:`DigitsJudge`) or ``cnn-strided`` (:class:`PartnerJudge`)
    arch: str
    #: ``stress-families`` (:func:`robust_augment`) or ``affine-elastic``
    #: (:func:`partner_augment`); both on top of the ±1 pixel shifts every judge trains with
    augment: str
    spec: JudgeSpec
    #: one line for the docs and ``ubench assets judges``
    summary: str

    def new_net(self) -> Judge:
        """The untrained network, initialised from the spec's seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.spec.seed)
            return DigitsJudge() if self.arch == "cnn-maxpool" else PartnerJudge()

    def train(self, images: torch.Tensor, labels: torch.Tensor) -> Judge:
        """Train on the train split (deterministic in the spec's seed)."""
        augment = robust_augment if self.augment == "stress-families" else partner_augment
        return train_judge(images, labels, self.spec, net=self.new_net(), augment=augment)

    def key(self) -> dict[str, object]:
        return {"arch": self.arch, "augment": self.augment, "judge": asdict(self.spec),
                "code_version": "1"}


#: the validated judges (issue 31), by asset role. ``judge-robust`` has the original judge's
#: architecture (so FD keeps its feature space's shape) trained with the stress families;
#: ``judge-partner`` is the independent second opinion.
VALIDATED_JUDGES: dict[str, JudgeRecipe] = {
    "judge-robust": JudgeRecipe(
        "cnn-maxpool", "stress-families", JudgeSpec(epochs=120),
        "the original CNN trained 120 epochs with the stress families at random strengths"),
    "judge-partner": JudgeRecipe(
        "cnn-strided", "affine-elastic", JudgeSpec(epochs=40),
        "a strided CNN with batch norm, trained with random affine maps, elastic warps and "
        "noise"),
}


#: the judge behind the headline metrics (UA, RA, concept rate, garbage rate, FD features) of the
#: digits and t2i tasks: the validated one (docs/judges.md). Records made before issue 31 used
#: the original ``digits/judge``; their asset digest says so, and the report keeps them apart.
HEADLINE_JUDGE = "judge-robust"


def load_judge(path: str, arch: str = "cnn-maxpool") -> Judge:
    """A judge from its ``judge.safetensors`` (float32, eval mode)."""
    from safetensors.torch import load_file

    net: Judge = DigitsJudge() if arch == "cnn-maxpool" else PartnerJudge()
    net.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    return net.eval()
