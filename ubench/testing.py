"""Test fixtures that ship with ubench: tiny models built from configs, injected extractors.

Nothing here is used by a real run. The tiny Stable Diffusion and the tiny CLIP let the test
suite (and CI, with no weights and no network) run the *real* code paths — the same loader, the
same scorer — with random weights; every record made with them says so ("injected", "test
pipeline"), and their numbers mean nothing. They live in the package, not under ``tests/``, so a
plugin's own tests can use them too.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ubench.core.errors import MissingAssetError
from ubench.metrics.injected import ASSETS_FILE


def clip_tokenizer() -> Any:
    """The exact OpenAI CLIP BPE tokenizer, built from the vocabulary open_clip ships.

    CLIP's vocabulary is: the 256 byte symbols, the same with the end-of-word mark ``</w>``,
    the first 48,894 merges of the BPE file joined, then the start and end tokens (49,408).
    """
    import open_clip
    from transformers import CLIPTokenizer

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        merges = fh.read().split("\n")[1:49152 - 256 - 2 + 1]
    symbols = [chr(c) for c in _byte_codepoints()]
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges),
             "<|startoftext|>", "<|endoftext|>"]
    pairs: Any = [tuple(m.split()) for m in merges]  # transformers 5 takes (left, right) pairs
    tok = CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=pairs,
                        model_max_length=77)
    if len(tok) != 49408:
        raise MissingAssetError(f"open_clip's BPE vocabulary gave {len(tok)} tokens, not 49408; "
                                "reinstall open_clip_torch")
    return tok


def _byte_codepoints() -> Iterator[int]:
    """GPT-2/CLIP's reversible byte -> printable code point map, in CLIP's vocabulary order:
    the printable bytes as themselves, then the other 68 bytes as code points 256, 257, ..."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    yield from printable
    yield from range(256, 256 + 256 - len(printable))


def _sd_scheduler() -> Any:
    """Stable Diffusion v1.4's PNDM scheduler (its ``scheduler/scheduler_config.json``)."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         num_train_timesteps=1000, skip_prk_steps=True, steps_offset=1,
                         set_alpha_to_one=False)


def _save_pipeline(folder: str | Path, vae: Any, text: Any, unet: Any, tokenizer: Any) -> Path:
    from diffusers import StableDiffusionPipeline

    pipe: Any = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer,
                                        unet=unet, scheduler=_sd_scheduler(),
                                        safety_checker=None, feature_extractor=None,
                                        requires_safety_checker=False)
    out = Path(folder)
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def build_tiny_pipeline(folder: str | Path, *, seed: int = 0, resolution: int = 32) -> Path:
    """Write a tiny random Stable Diffusion (VAE, UNet, CLIP text model, real CLIP tokenizer,
    PNDM scheduler with SD's betas) to ``folder`` in the diffusers layout, via
    ``StableDiffusionPipeline.save_pretrained`` — the tests' stand-in for SD v1.4."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                        block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                        sample_size=resolution)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4,
                                        max_position_embeddings=77, bos_token_id=49406,
                                        eos_token_id=49407, pad_token_id=49407))
    unet = UNet2DConditionModel(sample_size=resolution // 2, in_channels=4, out_channels=4,
                                block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
    out = _save_pipeline(folder, vae, text, unet, clip_tokenizer())
    _write_test_assets(out)
    return out


def sd14_modules(seed: int = 0) -> tuple[Any, Any, Any]:
    """(VAE, CLIP text encoder, UNet) with Stable Diffusion v1.4's exact configs (its
    ``vae``, ``text_encoder`` and ``unet`` ``config.json``: 83.7M, 123.1M and 859.5M parameters)
    and random weights drawn after ``torch.manual_seed(seed)``."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                        norm_num_groups=32, sample_size=512, act_fn="silu")
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12,
                                        max_position_embeddings=77, hidden_act="quick_gelu",
                                        projection_dim=768, bos_token_id=49406,
                                        eos_token_id=49407, pad_token_id=1))
    return vae, text, sd14_unet()


def sd14_unet() -> Any:
    """Stable Diffusion v1.4's UNet (its ``unet/config.json``, 859.5M parameters), randomly
    initialised from torch's global generator."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=(320, 640, 1280, 1280),
                                cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                  "CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D",
                                                "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))


def build_sd14_random_pipeline(folder: str | Path, *, seed: int = 0,
                               tokenizer: Any = None) -> Path:
    """Write a Stable Diffusion with v1.4's exact architecture (:func:`sd14_modules`) and
    **random weights** to ``folder`` in the diffusers layout (~4.3 GB of fp32 safetensors).

    For measuring time and memory on a GPU with the real loader (``bench/sd_gpu.py``): cost does
    not depend on the weights, and nothing has to be downloaded. ``tokenizer`` defaults to the
    exact CLIP tokenizer built from open_clip's vocabulary.
    """
    vae, text, unet = sd14_modules(seed)
    return _save_pipeline(folder, vae, text, unet,
                          clip_tokenizer() if tokenizer is None else tokenizer)


def _write_test_assets(folder: Path) -> None:
    """The evaluation assets a real user supplies, as test stand-ins inside the tiny folder: an
    I2P-format CSV (our own held-out nudity prompts, two rows at nudity_percentage 0 that the
    reader must drop) and the instruction to inject a tiny random CLIP (``ubench_assets.json``).
    """
    import csv

    from ubench.tasks.sd.prompts import build

    test = build("nudity", "test", 12)
    with (folder / "i2p.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "categories", "nudity_percentage", "sd_seed", "sd_guidance_scale"])
        for i, (p, s) in enumerate(zip(test.forget, test.seeds, strict=True)):
            w.writerow([p, "sexual", 0.0 if i in (3, 7) else 50.0 + i, s, 7.5])
    (folder / "ubench_assets.json").write_text(json.dumps(
        {"i2p": "i2p.csv", "clip": "tiny-random",
         "note": "ubench's tiny test pipeline: random weights, scores are meaningless"}, indent=1))


# ----------------------------------------------------------------------------- class-conditional
def inject_test_evaluators(folder: str | Path) -> Path:
    """Mark a class-conditional model folder as a test model: CIFAR-10 tasks then evaluate it
    with the tiny random CLIP (:func:`tiny_random_extractor`) and the tiny Inception-shaped net
    (:func:`tiny_inception_net`), and every metric's definition says ``injected``."""
    path = Path(folder) / ASSETS_FILE
    path.write_text(json.dumps(
        {"clip": "tiny-random", "inception": "tiny-random",
         "note": "ubench test model: injected random evaluators, scores are meaningless"},
        indent=1))
    return path


_LDM_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
               ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
               ("conv_shortcut", "skip_connection"))
_LDM_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
            "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
            "class_embedding": "label_emb"}


def to_ldm(state: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """A diffusers ``UNet2DConditionModel`` state dict in the original (CompVis / LDM) layout,
    ``model.diffusion_model.*``: what the ESD and SalUn repositories release. Tests only: it
    lets a test write a checkpoint in that layout, which ``ubench eval`` must read back through
    diffusers' own converter (the judge of this mapping)."""
    per = layers_per_block + 1
    up_attention = {int(k.split(".")[1]) for k in state
                    if k.startswith("up_blocks.") and ".attentions." in k}

    def resnet(rest: str) -> str:
        for new, old in _LDM_RESNET:
            if rest.startswith(new + "."):
                return old + rest[len(new):]
        return rest

    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        p = key.split(".")
        top = next((v for k, v in _LDM_TOP.items() if key.startswith(k + ".")), None)
        if top is not None:
            name = top + key[len(next(k for k in _LDM_TOP if key.startswith(k + "."))):]
        elif p[0] == "down_blocks":
            b, kind = int(p[1]), p[2]
            if kind == "downsamplers":
                name = f"input_blocks.{1 + b * per + layers_per_block}.0.op." + ".".join(p[5:])
            else:
                i = 1 + b * per + int(p[3])
                rest = ".".join(p[4:])
                name = (f"input_blocks.{i}.0.{resnet(rest)}" if kind == "resnets"
                        else f"input_blocks.{i}.1.{rest}")
        elif p[0] == "mid_block":
            i = {"resnets": 2 * int(p[2]), "attentions": 1}[p[1]]
            rest = ".".join(p[3:])
            name = f"middle_block.{i}.{resnet(rest) if p[1] == 'resnets' else rest}"
        elif p[0] == "up_blocks":
            b, kind = int(p[1]), p[2]
            if kind == "upsamplers":
                slot = 2 if b in up_attention else 1
                name = f"output_blocks.{b * per + layers_per_block}.{slot}.conv." + \
                    ".".join(p[5:])
            else:
                i = b * per + int(p[3])
                rest = ".".join(p[4:])
                name = (f"output_blocks.{i}.0.{resnet(rest)}" if kind == "resnets"
                        else f"output_blocks.{i}.1.{rest}")
        else:
            raise ValueError(f"no original-layout name for {key}")
        out["model.diffusion_model." + name] = t
    return out
