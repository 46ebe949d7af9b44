"""What produced a record: package versions, git state, hardware, threads."""

from __future__ import annotations

import contextlib
import platform
import subprocess
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("ubench", "torch", "diffusers", "transformers", "numpy", "scipy", "scikit-learn",
            "safetensors", "pillow")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state() -> dict[str, Any]:
    """sha and dirty flag of the ubench checkout (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                     "--untracked-files=no"], capture_output=True, text=True,
                                    timeout=5, check=True).stdout.strip())
        return {"sha": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


@contextlib.contextmanager
def fixed_threads(n: int) -> Iterator[None]:
    """Run a block with a fixed torch thread count (results that must not depend on the machine:
    reference training, text encodings)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def numerics_fingerprint() -> str:
    """A digest of the exact float32 bits a fixed small UNet-like workload produces here.

    Two machines give bit-identical ubench numbers only if their float kernels agree: PyTorch's
    CPU convolutions and matrix products pick their code path (oneDNN / MKL: AVX2, AVX-512,
    AMX ...) by the CPU and the thread count, and different paths round differently. The
    workload (convolutions, group norm, SiLU, a linear layer and a batched matmul on inputs from
    a seeded generator, ~10 ms) goes through the same kernels as the digits and CIFAR models and
    judges, so equal fingerprints mean the same kernels and different ones mean float-level
    differences are expected (``ubench compare`` says so). Computed on the CPU at the current
    thread count; GPU runs are told apart by ``env.gpu`` as well.
    """
    import torch
    import torch.nn.functional as F

    from ubench.core.digest import bytes_sha256

    g = torch.Generator().manual_seed(20241210)
    x = torch.randn(16, 8, 16, 16, generator=g)
    w1 = torch.randn(32, 8, 3, 3, generator=g) / 8
    w2 = torch.randn(64, 32, 3, 3, generator=g) / 16
    lin = torch.randn(64, 96, generator=g) / 8
    with torch.no_grad():
        h = F.silu(F.group_norm(F.conv2d(x, w1, padding=1), 8))
        h = F.silu(F.group_norm(F.conv2d(h, w2, padding=1, stride=2), 8))
        f = h.mean(dim=(2, 3)) @ lin
        a = h.flatten(2).transpose(1, 2)  # (16, 64 positions, 64 channels)
        att = torch.softmax(a @ a.transpose(1, 2) / 8, dim=-1) @ a
    return bytes_sha256((t.contiguous().numpy().tobytes() for t in (h, f, att)), 16)


def environment(device: str) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "numerics": numerics_fingerprint(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "packages": package_versions(),
        "git": git_state(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def reset_cuda_peak(device: str) -> None:
    """Start measuring a run's peak GPU memory (nothing on the CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: str) -> dict[str, float]:
    """Peak resident memory of this process so far (Linux reports KiB; with ``--method all`` it
    is the peak over the runs done so far) and, on GPU, the run's peak allocated memory."""
    import resource

    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        import torch

        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out
