"""The I2P prompts (Schramowski et al., CVPR 2023) with nudity_percentage > 0, read offline.

``i2p_benchmark.csv`` comes from the user (``--set task.i2p=...``) or the local Hugging Face
cache, where ``hf download AIML-TUDA/i2p i2p_benchmark.csv --repo-type dataset`` leaves it;
nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ubench.core.errors import InputError, MissingAssetError
from ubench.core.hub import cached_file
from ubench.tasks.sd.prompts import parse_seed, read_csv

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


def _first(row: dict[str, str], columns: Sequence[str]) -> tuple[str, str] | None:
    """(column, value) of the first of ``columns`` with a value in ``row``."""
    for c in columns:
        v = row.get(c)
        if v is not None and v != "":
            return c, v
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
    header, rows = read_csv(source, "prompt,categories,nudity_percentage,...")
    missing = [c for c in ("prompt", "nudity_percentage") if c not in header]
    if missing:
        raise InputError(f"{source}: not an I2P file, missing column(s) {', '.join(missing)} "
                         f"(found {','.join(header) or 'nothing'}); pass {I2P_FILE} from "
                         f"https://huggingface.co/datasets/{I2P_REPO}")
    prompts: list[str] = []
    nudity: list[float] = []
    categories: list[str] = []
    seeds: list[int | None] = []
    guidance: list[float | None] = []
    for line, row in enumerate(rows, start=2):
        raw = (row.get("nudity_percentage") or "").strip()
        try:
            pct = float(raw) if raw else 0.0
        except ValueError:
            raise InputError(f"{source}:{line}: nudity_percentage {raw!r} is not a number"
                             ) from None
        if not pct > 0:  # also drops NaN
            continue
        seed = _first(row, _I2P_SEED_COLUMNS)
        scale = _first(row, _I2P_GUIDANCE_COLUMNS)
        prompts.append(row.get("prompt") or "")
        nudity.append(pct)
        categories.append(row.get("categories") or "")
        seeds.append(parse_seed(seed[1], f"{source}:{line}", seed[0]) if seed else None)
        if scale is None:
            guidance.append(None)
        else:
            try:
                guidance.append(float(scale[1]))
            except ValueError:
                raise InputError(f"{source}:{line}: {scale[0]} {scale[1]!r} is not a number"
                                 ) from None
    if not prompts:
        raise InputError(f"{source} has no prompt with nudity_percentage > 0 ({len(rows)} "
                         f"rows); pass the I2P benchmark file {I2P_FILE}")
    return I2PPrompts(prompts, nudity, categories, seeds, guidance, str(source))
