"""The I2P prompts (Schramowski et al., CVPR 2023) with nudity_percentage > 0, read offline.

``i2p_benchmark.csv`` comes from the user (``--set task.i2p=...``) or the local Hugging Face
cache, where ``hf download AIML-TUDA/i2p i2p_benchmark.csv --repo-type dataset`` leaves it;
nothing is downloaded.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ubench.errors import MissingAssetError
from ubench.hub import cached_file
from ubench.tasks.sd.prompts import parse_seed

I2P_REPO = "AIML-TUDA/i2p"
I2P_FILE = "i2p_benchmark.csv"
_I2P_SEED_COLUMNS = ("evaluation_seed", "sd_seed")
_I2P_GUIDANCE_COLUMNS = ("evaluation_guidance", "sd_guidance_scale")


@dataclass(frozen=True)
class I2PPrompts:
    """The I2P prompts with nudity_percentage > 0, in file order (854 in the released file).

    ``seeds`` and ``guidance`` are the file's per-prompt values (``evaluation_seed`` /
    ``evaluation_guidance``, or I2P's ``sd_seed`` / ``sd_guidance_scale``), None where absent;
    the paper's evaluation does not use them.
    """

    prompts: list[str]
    nudity_percentage: list[float]
    categories: list[str]
    seeds: list[int | None]
    guidance: list[float | None]
    source: str

    def __len__(self) -> int:
        return len(self.prompts)


def _i2p_missing(detail: str) -> MissingAssetError:
    return MissingAssetError(
        f"{detail}: download {I2P_FILE} from https://huggingface.co/datasets/{I2P_REPO} and "
        f"pass --set task.i2p=/path/{I2P_FILE}; nothing is downloaded")


def _first(row: dict[str, str], columns: Sequence[str]) -> str | None:
    for c in columns:
        v = row.get(c)
        if v not in (None, ""):
            return v
    return None


def load_i2p(path: str | Path | None = None) -> I2PPrompts:
    """The I2P nudity prompts (``nudity_percentage > 0``, file order) from ``path`` or the cache.

    Without ``path`` the file is looked up in the Hugging Face hub cache (as
    ``hf_hub_download(repo_id="AIML-TUDA/i2p", filename="i2p_benchmark.csv",
    repo_type="dataset")`` leaves it); a missing file raises :class:`MissingAssetError`.
    """
    if path is not None and str(path) != "":
        source = Path(path).expanduser()
        if not source.is_file():
            raise _i2p_missing(f"I2P file {str(source)!r} does not exist")
    else:
        found = cached_file(I2P_REPO, I2P_FILE, repo_type="dataset")
        if found is None:
            raise _i2p_missing("the I2P prompts are not on this machine")
        source = found
    prompts: list[str] = []
    nudity: list[float] = []
    categories: list[str] = []
    seeds: list[int | None] = []
    guidance: list[float | None] = []
    with source.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in ("prompt", "nudity_percentage") if c not in header]
        if missing:
            raise ValueError(f"{source}: not an I2P file, missing column(s) "
                             f"{', '.join(missing)} (found {','.join(header) or 'nothing'})")
        for line, row in enumerate(reader, start=2):
            raw = (row.get("nudity_percentage") or "").strip()
            try:
                pct = float(raw) if raw else 0.0
            except ValueError:
                raise ValueError(f"{source}:{line}: nudity_percentage {raw!r} is not a "
                                 "number") from None
            if not pct > 0:  # also drops NaN
                continue
            seed = _first(row, _I2P_SEED_COLUMNS)
            scale = _first(row, _I2P_GUIDANCE_COLUMNS)
            prompts.append(row.get("prompt") or "")
            nudity.append(pct)
            categories.append(row.get("categories") or "")
            seeds.append(parse_seed(seed, f"{source}:{line}") if seed is not None else None)
            guidance.append(float(scale) if scale is not None else None)
    return I2PPrompts(prompts, nudity, categories, seeds, guidance, str(source))
