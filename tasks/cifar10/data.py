"""CIFAR-10's train set from a local copy, in either of its two unpickled formats.

* the official **binary release** (``cifar-10-batches-bin``: ``data_batch_1.bin`` ..
  ``data_batch_5.bin``, 10,000 records of 3,073 bytes each: one label byte, then the 32x32 red,
  green and blue planes), parsed with numpy;
* the **Hugging Face parquet files** of ``uoft-cs/cifar10`` (``plain_text/train-*.parquet``:
  columns ``img`` — a PNG — and ``label``), read with pandas/pyarrow and decoded with Pillow; a
  single parquet file, a folder holding them, or the local Hugging Face cache.

The python release (``cifar-10-batches-py``) is a set of pickles: ubench never unpickles, so it
refuses that folder with one line that names the binary release. Nothing is downloaded; a
missing data set is one :class:`~ubench.core.errors.MissingAssetError` line with the exact download
command. Both formats decode to the same ``(N, 32, 32, 3)`` uint8 array, so the same images give
the same :attr:`CifarData.digest` whatever file they came from (cache keys use it).

Only the train split is read: D_f, D_r, ``ubench pretrain`` and the FID reference statistics
(the paper's EDM reference is the full 50,000-image train set) all use it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ubench.core.digest import bytes_sha256
from ubench.core.errors import InputError, MissingAssetError

if TYPE_CHECKING:
    import torch

#: CIFAR-10's classes in label order
CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck")
NUM_CLASSES = len(CLASSES)
SIZE = 32
#: one record of the binary release: the label byte and 3 x 32 x 32 pixel bytes
RECORD_BYTES = 1 + 3 * SIZE * SIZE
TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
#: records per official batch file (the size check tolerates smaller files, e.g. test data)
OFFICIAL_RECORDS = 10_000

HF_REPO = "uoft-cs/cifar10"
HF_TRAIN_PATTERN = "plain_text/train-*"
BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#: column names of the image in parquet copies (``uoft-cs/cifar10`` uses ``img``)
IMAGE_COLUMNS: tuple[str, ...] = ("img", "image")


def download_hint() -> str:
    """The one-line instruction of what to download and how to point ubench at it."""
    return (f"download it once with `hf download {HF_REPO} --repo-type dataset --include "
            f"'{HF_TRAIN_PATTERN}'` (120 MB, into the Hugging Face cache, found automatically) "
            f"or the binary release (`curl -LO {BINARY_URL} && tar xzf cifar-10-binary.tar.gz`, "
            "162 MB) and pass --set task.data=/path/to/cifar-10-batches-bin; nothing is "
            "downloaded at run time")


@dataclass(frozen=True)
class CifarData:
    """The train split: uint8 images ``(N, 32, 32, 3)``, int64 labels ``(N,)``, where they came
    from and a digest of their content (format-independent)."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    digest: str

    def indices_of(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.labels == k)

    def counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=NUM_CLASSES).tolist()


def as_float(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, 32, 32, 3)`` images as a float tensor ``(N, 3, 32, 32)`` in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


# ----------------------------------------------------------------------------- locating
def find_data(data: str = "") -> Path:
    """The local CIFAR-10 copy to read: ``data`` (a folder or a parquet file) when given, else
    the Hugging Face cache, else ``$UBENCH_HOME/data/cifar-10-batches-bin``; one line if none."""
    if data:
        path = Path(data).expanduser()
        if not path.exists():
            raise MissingAssetError(f"CIFAR-10 data {str(path)!r} does not exist; "
                                    + download_hint())
        return path
    from ubench.core.hub import cached_snapshot
    from ubench.core.paths import ubench_home

    snapshot = cached_snapshot(HF_REPO, [HF_TRAIN_PATTERN], repo_type="dataset")
    if snapshot is not None and _parquet_files(snapshot):
        return snapshot
    local = ubench_home() / "data" / "cifar-10-batches-bin"
    if local.is_dir():
        return local
    raise MissingAssetError("CIFAR-10 is not on this machine; " + download_hint())


def detect(path: Path) -> tuple[str, list[Path]]:
    """``("binary", the five batch files)`` or ``("parquet", files)`` for a user path; one line
    otherwise."""
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet", [path]
        if path.name.endswith((".tar.gz", ".tgz")):
            raise InputError(f"{path} is an archive: extract it first (tar xzf {path.name}) and "
                             "pass the cifar-10-batches-bin folder as task.data")
        if path.name.startswith("data_batch_"):
            raise InputError(f"{path} is one batch file: pass its folder as task.data")
        raise InputError(f"{path} is not CIFAR-10 data: task.data takes the binary release's "
                         "cifar-10-batches-bin folder, a parquet file or a folder of parquet "
                         "files")
    for folder in (path, path / "cifar-10-batches-bin"):
        if (folder / "data_batch_1.bin").is_file():
            return "binary", [folder / name for name in TRAIN_BATCHES]
    if any((p / name).exists() for p in (path, path / "cifar-10-batches-py")
           for name in ("data_batch_1", "batches.meta")):
        raise InputError(
            f"{path} is CIFAR-10's python release, a set of pickles, and ubench never "
            f"unpickles: download the binary release instead ({BINARY_URL}, 162 MB), extract it "
            "and pass --set task.data=/path/to/cifar-10-batches-bin")
    files = _parquet_files(path)
    if files:
        return "parquet", files
    raise MissingAssetError(f"no CIFAR-10 train data in {path} (expected the binary release's "
                            "data_batch_1.bin..data_batch_5.bin or parquet train files); "
                            + download_hint())


def check_layout(data: str) -> None:
    """Refuse a user-given ``task.data`` whose layout is wrong without decoding anything: a
    missing path, the pickle release, an archive, a binary batch missing or of a length that is
    not a whole number of records, a parquet file without the needed columns. Called when the
    config is built, so a bad path is refused before the run writes anything."""
    kind, files = detect(find_data(data))
    for f in files:
        if kind == "binary":
            _check_batch_file(f)
        else:
            _parquet_columns(f)


def _check_batch_file(f: Path) -> None:
    if not f.is_file():
        raise InputError(f"{f.parent} lacks {f.name}: the binary release has "
                         f"{', '.join(TRAIN_BATCHES)}; extract cifar-10-binary.tar.gz again")
    size = f.stat().st_size
    if size == 0 or size % RECORD_BYTES:
        raise InputError(
            f"{f} is corrupt: {size:,} bytes is not a whole number of {RECORD_BYTES:,}-byte "
            f"records (an official batch is {OFFICIAL_RECORDS * RECORD_BYTES:,} bytes); "
            "download and extract cifar-10-binary.tar.gz again")


def _parquet_columns(f: Path) -> str:
    """The image column of a parquet file, after checking its schema (one line if wrong)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingAssetError("reading parquet needs pyarrow: `pip install pyarrow==26.0.1`"
                                ) from None
    try:
        names = list(pq.read_schema(f).names)
    except Exception as e:  # not parquet at all, truncated, ...
        raise InputError(f"{f} is not a readable parquet file ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:150]})") from None
    image_col = next((c for c in IMAGE_COLUMNS if c in names), None)
    if image_col is None or "label" not in names:
        raise InputError(f"{f} has columns {names}; CIFAR-10 parquet needs 'img' (or 'image': "
                         f"PNG bytes) and 'label' (0..9), as in {HF_REPO}")
    return image_col


def _parquet_files(folder: Path) -> list[Path]:
    """Train-split parquet files under ``folder`` (``train-*.parquet`` or ``train/*.parquet``)."""
    return sorted(f for f in folder.rglob("*.parquet")
                  if f.name.startswith("train") or f.parent.name == "train")


# ----------------------------------------------------------------------------- reading
def load_train(data: str = "") -> CifarData:
    """The train split of the CIFAR-10 copy :func:`find_data` picks (decoded once per process
    and file state)."""
    path = find_data(data).resolve()
    kind, files = detect(path)
    return _load(kind, tuple((str(f), *_stat(f)) for f in files))


def _stat(f: Path) -> tuple[int, int]:
    try:
        st = f.stat()
    except FileNotFoundError:
        return (-1, -1)
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=4)
def _load(kind: str, state: tuple[tuple[str, int, int], ...]) -> CifarData:
    """Decode the files listed in ``state`` (path, size, mtime: a changed file is read again)."""
    files = [Path(s[0]) for s in state]
    if kind == "binary":
        images, labels = read_binary(files[0].parent)
        source = f"binary release {files[0].parent}"
    else:
        parts = [read_parquet(f) for f in files]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        source = "parquet " + ", ".join(str(f) for f in files)
    digest = bytes_sha256([images.tobytes(), labels.astype("<i8").tobytes()], 16)
    return CifarData(images, labels, source, digest)


def read_binary(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The five train batches of the binary release, checked record by record."""
    images, labels = [], []
    for name in TRAIN_BATCHES:
        f = folder / name
        _check_batch_file(f)
        raw = np.fromfile(f, dtype=np.uint8).reshape(-1, RECORD_BYTES)
        y = raw[:, 0].astype(np.int64)
        bad = np.flatnonzero(y >= NUM_CLASSES)
        if bad.size:
            raise InputError(f"{f} is corrupt: record {int(bad[0])} has label byte "
                             f"{int(y[bad[0]])} (labels are 0..9); download and extract "
                             "cifar-10-binary.tar.gz again")
        images.append(raw[:, 1:].reshape(-1, 3, SIZE, SIZE).transpose(0, 2, 3, 1))
        labels.append(y)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def read_parquet(f: Path) -> tuple[np.ndarray, np.ndarray]:
    """One parquet file of PNG-encoded images and labels (``uoft-cs/cifar10``'s layout)."""
    import pandas as pd

    image_col = _parquet_columns(f)
    table = pd.read_parquet(f, columns=[image_col, "label"], engine="pyarrow")
    try:
        labels = table["label"].to_numpy(dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError(f"{f}: column 'label' is not integer (0..9)") from None
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        raise InputError(f"{f}: row {int(bad[0])} has label {int(labels[bad[0]])} "
                         "(labels are 0..9)")
    images = np.empty((len(labels), SIZE, SIZE, 3), dtype=np.uint8)
    for i, cell in enumerate(table[image_col]):
        images[i] = _decode(cell, f, i)
    return images, labels


def _decode(cell: object, f: Path, row: int) -> np.ndarray:
    """A 32x32 RGB image from a parquet cell (a ``{"bytes": ...}`` struct or raw bytes)."""
    from PIL import Image, UnidentifiedImageError

    blob = cell.get("bytes") if isinstance(cell, dict) else cell
    if not isinstance(blob, (bytes, bytearray)):
        raise InputError(f"{f}: row {row} holds no image bytes in its image column")
    try:
        with Image.open(io.BytesIO(blob)) as img:
            img.load()
            mode, size, pixels = img.mode, img.size, np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"{f}: row {row} is not a readable image ({type(e).__name__})"
                         ) from None
    if mode != "RGB" or size != (SIZE, SIZE):
        raise InputError(f"{f}: row {row} is a {size[0]}x{size[1]} {mode} image; CIFAR-10 "
                         f"images are {SIZE}x{SIZE} RGB")
    return pixels


# ----------------------------------------------------------------------------- writing (tests)
def write_binary(folder: str | Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write images/labels as a binary-release folder (five train batches; the test batch holds
    the first few records), the layout :func:`read_binary` reads. For tests and small examples."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    records = np.concatenate([labels.astype(np.uint8)[:, None],
                              images.transpose(0, 3, 1, 2).reshape(len(labels), -1)], axis=1)
    for name, part in zip(TRAIN_BATCHES, np.array_split(records, len(TRAIN_BATCHES)),
                          strict=True):
        part.astype(np.uint8).tofile(out / name)
    records[: min(len(records), 10)].astype(np.uint8).tofile(out / "test_batch.bin")
    (out / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n")
    return out


def write_parquet(path: str | Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write images/labels as a parquet file in ``uoft-cs/cifar10``'s layout (``img`` = PNG
    struct, ``label``). For tests and small examples."""
    import pandas as pd
    from PIL import Image

    cells = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img), "RGB").save(buf, format="PNG")
        cells.append({"bytes": buf.getvalue(), "path": None})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"img": cells, "label": labels.astype(np.int64)}).to_parquet(
        out, engine="pyarrow", index=False)
    return out


def synthetic(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Small CIFAR-shaped data for tests: ``per_class`` noisy images of a per-class colour and
    stripe pattern for each of the ten classes (interleaved by class)."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(NUM_CLASSES), per_class).astype(np.int64)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    images = np.empty((len(labels), SIZE, SIZE, 3), dtype=np.uint8)
    for i, k in enumerate(labels):
        colour = np.array([(k * 67) % 256, (k * 131 + 40) % 256, (k * 29 + 90) % 256], float)
        stripes = ((xx + yy * (k % 3)) // (2 + k % 4)) % 2
        img = colour[None, None, :] * (0.6 + 0.4 * stripes[..., None])
        img = img + rng.normal(0, 12, img.shape)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels


__all__ = ["CLASSES", "NUM_CLASSES", "CifarData", "as_float", "check_layout", "detect",
           "download_hint", "find_data", "load_train", "read_binary", "read_parquet",
           "synthetic", "write_binary", "write_parquet"]
