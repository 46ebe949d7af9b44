"""Fréchet distances: FD in a task's own feature space, and FID through clean-fid.

FD(A, B) = ||mu_A - mu_B||^2 + Tr(S_A + S_B - 2 (S_A S_B)^{1/2}), computed in float64. With a
digits judge as the feature network this is *not* FID (no Inception), so it is reported as FD and
the feature network's hash is recorded. The interval resamples the generated set with the real set
fixed (basic bootstrap, see :func:`frechet_with_ci`).

FID (:class:`FID`) is clean-fid's, on Inception features, against a folder of reference images the
user supplies; clean-fid is an optional dependency and fetches its Inception weights itself on
first use, so a machine without them gets one clear line instead of a traceback.

For in-memory images (CIFAR-10) :func:`clean_features` runs clean-fid's own "clean" preprocessing
(its PIL bicubic resize to 299x299 on float32, per channel) and a :class:`FeatureNet`: clean-fid's
Inception-v3 (``inception-2015-12-05.pt``, 2048-d pool features) loaded from a local file by
:func:`inception_net` — never downloaded — or an injected test network; :meth:`FID.from_stats`
turns the generated features and cached reference statistics into the metric.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy import linalg

from ubench.api import Metric, MetricValue
from ubench.core.bootstrap import BOOTSTRAP_SEED
from ubench.core.errors import MissingAssetError

if TYPE_CHECKING:
    import torch


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of the rows of ``x`` in float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_from_stats(mu_a: np.ndarray, s_a: np.ndarray, mu_b: np.ndarray, s_b: np.ndarray
                       ) -> float:
    """Fréchet distance between N(mu_a, s_a) and N(mu_b, s_b)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(s_a @ s_b)
            singular = not np.isfinite(covmean).all()
        except linalg.LinAlgWarning:
            singular = True
    if singular:  # fewer samples than dimensions: regularise as pytorch-fid does
        eps = np.eye(len(mu_a)) * 1e-6
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(np.real(covmean)))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to rows of ``a`` and ``b``."""
    return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b))


def frechet_with_ci(gen: np.ndarray, real: np.ndarray, resamples: int = 200,
                    level: float = 0.95, seed: int = BOOTSTRAP_SEED
                    ) -> tuple[float, float, float]:
    """(value, low, high): FD and a *basic* bootstrap interval over the generated set.

    Resampling with replacement duplicates points and inflates FD, so the plain percentile
    interval can lie entirely above the estimate. The basic (reverse-percentile) interval
    ``[2 FD - q_hi, 2 FD - q_lo]`` corrects that bias to first order; it is clipped at 0 and, in
    degenerate cases (fewer samples than feature dimensions, where the bias is not first order),
    widened to contain the estimate.
    """
    real_stats = gaussian_stats(real)
    value = frechet_from_stats(*gaussian_stats(gen), *real_stats)
    rng = np.random.default_rng(seed)
    n = len(gen)
    stats = [frechet_from_stats(*gaussian_stats(gen[rng.integers(0, n, size=n)]), *real_stats)
             for _ in range(resamples)]
    alpha = (1 - level) / 2
    q_lo, q_hi = np.quantile(stats, [alpha, 1 - alpha])
    lo, hi = max(0.0, 2 * value - float(q_hi)), 2 * value - float(q_lo)
    return value, min(lo, value), max(hi, value)


class FrechetDistance(Metric):
    """Frechet distance between generated and real features of a task's own feature network."""

    name: ClassVar[str] = "fd"
    higher_is_better: ClassVar[bool] = False
    split: ClassVar[str] = "remain"
    bounds: ClassVar[tuple[float, float]] = (0.0, math.inf)
    #: a regression must move FD by more than 5 % of the baseline's value (its scale depends on
    #: the feature network)
    tolerance: ClassVar[float] = 0.0
    relative_tolerance: ClassVar[float] = 0.05

    @classmethod
    def from_features(cls, generated: np.ndarray, real: np.ndarray,
                      definition: Mapping[str, Any]) -> MetricValue:
        """FD between the rows of ``generated`` and ``real`` with its basic bootstrap interval
        (over the generated set); ``n`` is the number of generated samples."""
        gen = np.asarray(generated, dtype=np.float64)
        ref = np.asarray(real, dtype=np.float64)
        value, lo, hi = frechet_with_ci(gen, ref)
        ref_mean, ref_cov = gaussian_stats(ref)
        return cls.make(value, lo, hi, len(generated), definition,
                        samples={"features": gen, "ref_mean": ref_mean, "ref_cov": ref_cov})


class FID(Metric):
    """FID (clean-fid, Inception features) of generations against user-provided reference images."""

    name: ClassVar[str] = "fid"
    higher_is_better: ClassVar[bool] = False
    split: ClassVar[str] = "remain"
    bounds: ClassVar[tuple[float, float]] = (0.0, float("inf"))
    tolerance: ClassVar[float] = 0.0
    relative_tolerance: ClassVar[float] = 0.05

    @staticmethod
    def check_reference(reference: Path) -> Any:
        """clean-fid's ``fid`` module, after checking the reference folder (one line if either is
        missing); call it before generating anything."""
        if not reference.is_dir():
            raise MissingAssetError(f"FID reference folder {str(reference)!r} does not exist; "
                                    "pass --set task.fid_reference=<folder of images> or leave "
                                    "it empty")
        try:
            from cleanfid import fid as cfid
        except ImportError:
            raise MissingAssetError("FID needs clean-fid: `pip install clean-fid==0.1.35`"
                                    ) from None
        return cfid

    @classmethod
    def compute(cls, images: torch.Tensor, reference: Path,
                definition: Mapping[str, Any]) -> MetricValue:
        """clean-fid FID (mode "clean") of ``images`` (N, 3, H, W in [-1, 1]) against the image
        folder ``reference``. clean-fid gives no interval: the value is repeated as its bounds."""
        import torch
        from PIL import Image

        cfid = cls.check_reference(reference)
        u8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        with tempfile.TemporaryDirectory() as tmp:
            for i, img in enumerate(u8.permute(0, 2, 3, 1).cpu().numpy()):
                Image.fromarray(np.ascontiguousarray(img)).save(f"{tmp}/{i:05d}.png")
            try:
                value = float(cfid.compute_fid(tmp, str(reference), mode="clean",
                                               num_workers=0))
            except Exception as e:  # URLError offline: the Inception weights are not cached
                raise MissingAssetError(f"clean-fid could not compute FID ({type(e).__name__}: "
                                        f"{e}); it downloads its Inception weights on first use"
                                        ) from None
        return cls.make(value, value, value, len(images), {
            **definition, "formula": "clean-fid FID, mode clean (no interval)",
            "reference": str(reference)})

    @classmethod
    def from_stats(cls, mu_gen: np.ndarray, sigma_gen: np.ndarray, mu_ref: np.ndarray,
                   sigma_ref: np.ndarray, n: int, definition: Mapping[str, Any]) -> MetricValue:
        """FID from generated-feature statistics and reference statistics (float64), as
        clean-fid computes it. No interval (a bootstrap of 2048-d matrix square roots costs
        minutes per run): the value is repeated as its bounds and the definition says so."""
        value = frechet_from_stats(np.asarray(mu_gen, np.float64),
                                   np.asarray(sigma_gen, np.float64),
                                   np.asarray(mu_ref, np.float64),
                                   np.asarray(sigma_ref, np.float64))
        return cls.make(value, value, value, n, {
            **definition, "interval": "none (FID over the whole set; the value is repeated)"})


# ----------------------------------------------------------------------------- Inception features
#: clean-fid's Inception-v3: the TorchScript port of the TensorFlow FID network (StyleGAN2-ADA)
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                 + INCEPTION_FILE)
#: clean-fid's input size and the dimension of the pool features
INCEPTION_SIZE = 299
INCEPTION_DIMS = 2048


@dataclass
class FeatureNet:
    """A FID feature network: float images ``(N, 3, 299, 299)`` in [0, 255] -> ``(N, dims)``."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    dims: int
    #: what it is ("clean-fid Inception-v3 ..." or "injected ...")
    name: str
    #: sha256 prefix of its weights file ("injected" for a test network)
    sha: str
    device: str = "cpu"


def inception_hint() -> str:
    from ubench.core.paths import ubench_home

    return (f"download {INCEPTION_URL} (about 95 MB) and pass --set "
            f"task.inception_weights=/path/to/{INCEPTION_FILE} (or put it at "
            f"{ubench_home() / 'weights' / INCEPTION_FILE} or /tmp/{INCEPTION_FILE}, where "
            "clean-fid keeps it); nothing is downloaded at run time")


def resolve_inception_weights(path: str = "") -> Path:
    """The local ``inception-2015-12-05.pt``: ``path`` if given (it must exist), else ubench's
    weights folder, else clean-fid's own download place (``/tmp``); one line when absent."""
    from ubench.core.paths import ubench_home

    if path:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        raise MissingAssetError(f"Inception weights {str(p)!r} do not exist: " + inception_hint())
    for candidate in (ubench_home() / "weights" / INCEPTION_FILE, Path("/tmp") / INCEPTION_FILE):
        if candidate.is_file():
            return candidate
    raise MissingAssetError("the Inception weights for FID are not on this machine: "
                            + inception_hint())


def inception_net(weights: Path, device: str = "cpu") -> FeatureNet:
    """clean-fid's Inception (``InceptionV3W``, no resize inside) from a local file."""
    import torch

    try:
        from cleanfid.inception_torchscript import InceptionV3W
    except ImportError:
        raise MissingAssetError("FID needs clean-fid: `pip install clean-fid==0.1.35`") from None
    with tempfile.TemporaryDirectory() as tmp:  # InceptionV3W reads <folder>/<fixed name>
        folder = weights.parent
        if weights.name != INCEPTION_FILE:
            os.symlink(weights.resolve(), Path(tmp) / INCEPTION_FILE)
            folder = Path(tmp)
        try:
            net = InceptionV3W(str(folder), download=False, resize_inside=False).to(device)
        except Exception as e:  # a truncated or foreign file
            reason = " ".join(str(e).split())[:200]
            raise MissingAssetError(f"could not load the Inception weights {str(weights)!r} "
                                    f"({type(e).__name__}: {reason}): " + inception_hint()
                                    ) from None
    net.eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x.to(device))

    from ubench.core.digest import file_sha256

    return FeatureNet(forward, INCEPTION_DIMS, f"clean-fid Inception-v3 ({INCEPTION_FILE}), "
                      "2048-d pool features", file_sha256(weights, 16), device)


def clean_features(images: torch.Tensor, net: FeatureNet, batch_size: int = 200,
                   workers: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """clean-fid "clean" features of uint8 images ``(N, 3, H, W)``: each image goes through
    clean-fid's own resizer (PIL bicubic to 299x299 on float32 values, channel by channel; run on
    ``workers`` threads, order kept), then ``net``. Returns float64 ``(N, net.dims)``."""
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from cleanfid.resize import build_resizer

    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images (N, 3, H, W); got {images.dtype} "
                         f"{tuple(images.shape)}")
    resize = build_resizer("clean")
    hwc = images.permute(0, 2, 3, 1).numpy()
    out = np.zeros((len(hwc), net.dims), dtype=np.float64)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for lo in range(0, len(hwc), batch_size):
            chunk = list(pool.map(resize, list(hwc[lo:lo + batch_size])))
            batch = torch.from_numpy(np.stack(chunk).transpose(0, 3, 1, 2).copy())
            out[lo:lo + len(chunk)] = net.forward(batch).double().cpu().numpy()
            if progress is not None:
                progress(lo + len(chunk), len(hwc))
    return out
