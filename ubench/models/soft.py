"""Learned and relaxed conditions: what inversion and soft-prompt attacks optimise.

Two verbs on top of the model layer, both differentiable with respect to the learned vectors and
neither touching a weight:

* :func:`learned_class` — on a class-conditional model, the class id :data:`LEARNED_CLASS` is
  embedded as a given vector instead of a row of the UNet's class-embedding table (a forward
  hook on that table), so ``predict_noise``, ``denoising_loss`` and ``sample_encoded`` work with
  a class nobody trained;
* :func:`encode_prefixed` — on a text-conditioned model, ``k`` token *embeddings* are put right
  after the start token of each prompt (a forward hook on the text encoder's input embedding
  table), and the frozen encoder runs as usual: textual inversion's new word, UnlearnDiffAtk's
  prepended tokens. With ``k = 0`` it reproduces the conditioner's plain encoding.

Both work for every conditioner ubench has (class labels; MiniLM in the t2i world; CLIP in Stable
Diffusion) through :meth:`TextConditioner.text_model` / :meth:`ClipTextConditioner.text_model`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ubench.core.errors import IncompatibleError
from ubench.models.diffusion import DiffusionModel
from ubench.models.text import TextModel

#: the class id that :func:`learned_class` embeds as the learned vector
LEARNED_CLASS = -1


# ---------------------------------------------------------------------- class-conditional
def class_table(model: DiffusionModel) -> torch.nn.Embedding:
    """The UNet's class-embedding table (one row per class, the last one the null class)."""
    table = getattr(model.unet, "class_embedding", None)
    if not isinstance(table, torch.nn.Embedding):
        raise IncompatibleError("this model has no class-embedding table to invert; class "
                                "inversion needs a class-conditional UNet")
    return table


@contextmanager
def learned_class(model: DiffusionModel, vector: torch.Tensor) -> Iterator[None]:
    """Within the block, class id :data:`LEARNED_CLASS` is embedded as ``vector`` (shape ``(d,)``
    where ``d`` is the class-embedding width); every other id is embedded as usual.

    Gradients flow from the UNet's output to ``vector``; the table itself is untouched.
    """
    table = class_table(model)
    mask: list[torch.Tensor] = []

    def before(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        labels = args[0]
        mask.append(labels == LEARNED_CLASS)
        return (labels.clamp(min=0), *args[1:])

    def after(_module: Any, _args: Any, out: torch.Tensor) -> torch.Tensor:
        chosen = mask.pop()
        return torch.where(chosen[:, None], vector.to(out.dtype).expand_as(out), out)

    handles = [table.register_forward_pre_hook(before), table.register_forward_hook(after)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def learned_labels(n: int, device: torch.device | str) -> torch.Tensor:
    """``n`` copies of :data:`LEARNED_CLASS`: the encoded condition of the learned class."""
    return torch.full((n,), LEARNED_CLASS, dtype=torch.long, device=device)


# ---------------------------------------------------------------------- text-conditioned
def text_model(model: DiffusionModel) -> TextModel:
    """The tokenizer and encoder of a text-conditioned model (IncompatibleError otherwise)."""
    parts = getattr(model.conditioner, "text_model", None)
    if not model.text_conditioned or parts is None:
        raise IncompatibleError("this model is not text-conditioned; prompt attacks need a "
                                "text encoder")
    result: TextModel = parts()
    return result


def token_table(model: DiffusionModel) -> torch.Tensor:
    """The text encoder's input embedding table ``(vocabulary, width)`` (frozen)."""
    return text_model(model).encoder.get_input_embeddings().weight  # type: ignore[no-any-return]


def token_ids(model: DiffusionModel, words: str) -> list[int]:
    """The ids of ``words`` without special tokens."""
    ids: list[int] = text_model(model).tokenizer(words, add_special_tokens=False).input_ids
    return ids


def max_length(model: DiffusionModel) -> int:
    return int(model.conditioner.max_length)  # type: ignore[union-attr]


def prefixed_ids(model: DiffusionModel, prompts: Sequence[str], k: int,
                 prefix: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of ``prompts`` with ``k`` slots right after the start token.

    The prompt's own tokens are cut so that start, slots, prompt and end token fit the
    conditioner's length; padding follows as the conditioner pads. The slots hold ``prefix``
    (``(N, k)`` or ``(k,)`` ids) when given, else a placeholder that :func:`encode_prefixed`
    replaces. With ``k = 0`` this is exactly the tokenizer's own output.
    """
    tm = text_model(model)
    tok = tm.tokenizer
    length = max_length(model)
    if not 0 <= k <= length - 2:
        raise ValueError(f"k must be in 0..{length - 2}; got {k}")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = tok(list(prompts), truncation=True, max_length=length).input_ids
    ids = torch.full((len(rows), length), int(pad), dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    slots = torch.zeros((len(rows), k), dtype=torch.long)
    if prefix is not None:
        slots = prefix.reshape(-1, k).expand(len(rows), k).to(torch.long).cpu()
    for i, row in enumerate(rows):
        body = list(row[1:-1])[:length - 2 - k]
        seq = [row[0], *slots[i].tolist(), *body, row[-1]]
        ids[i, :len(seq)] = torch.tensor(seq)
        mask[i, :len(seq)] = 1
    return ids, mask


def encode_prefixed(model: DiffusionModel, prompts: Sequence[str], vectors: torch.Tensor
                    ) -> torch.Tensor:
    """The encoder states of ``prompts`` with the token embeddings ``vectors`` (``(k, d)`` for
    all prompts, or ``(N, k, d)``, one set per prompt) right after the start token.

    Differentiable with respect to ``vectors``; the encoder's weights are untouched. Returns
    ``(N, length, width)`` float32 on the model's device, what ``predict_noise`` consumes.
    """
    tm = text_model(model)
    n = len(prompts)
    k = int(vectors.shape[-2])
    ids, mask = prefixed_ids(model, prompts, k)
    table = tm.encoder.get_input_embeddings()
    dev = table.weight.device
    per_prompt = vectors.to(dev).expand(n, k, vectors.shape[-1])
    length = ids.shape[1]
    width = per_prompt.shape[-1]
    filled = torch.cat([per_prompt.new_zeros(n, 1, width), per_prompt,
                        per_prompt.new_zeros(n, length - 1 - k, width)], dim=1)
    slot = torch.zeros((n, length), dtype=torch.bool, device=dev)
    slot[:, 1:1 + k] = True

    def put(_module: Any, _args: Any, out: torch.Tensor) -> torch.Tensor:
        return torch.where(slot[..., None], filled.to(out.dtype), out)

    with tm.lock:
        handle = table.register_forward_hook(put)
        try:
            out = tm.encoder(input_ids=ids.to(dev),
                             attention_mask=mask.to(dev) if tm.uses_attention_mask else None)
        finally:
            handle.remove()
    return out.last_hidden_state.float().to(model.device)  # type: ignore[no-any-return]


def decode_tokens(model: DiffusionModel, ids: Sequence[int]) -> str:
    """The text of token ids (for records; what a user would paste as a prompt)."""
    text: str = text_model(model).tokenizer.decode(list(ids))
    return text
