"""Loading the model being unlearned: any local Hugging Face causal-LM directory."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .gguf_import import GGUFImportError, imported_dir

WEIGHT_SUFFIXES = (".safetensors", ".bin")


class BaseModelError(ValueError):
    """The base-model directory is missing or is not a causal LM."""


@dataclass
class BaseModel:
    """A frozen base model with its tokenizer and fingerprint."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    path: Path
    fingerprint: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def trained_from_scratch(path: str | Path) -> bool:
    """True for a demo model trained from scratch on the demo world (demo_model.json without a
    pretrained base): it knows nothing but the world, so it has no general abilities to keep."""
    manifest = Path(path) / "demo_model.json"
    if not manifest.is_file():
        return False
    try:
        return not json.loads(manifest.read_text()).get("config", {}).get("base")
    except (OSError, ValueError):
        return False


def model_fingerprint(path: str | Path) -> str:
    """SHA-256 over the config and weight files: adapters are only valid against these weights."""
    root = Path(path)
    if not (root / "config.json").is_file():
        raise BaseModelError(f"{root} is not a Hugging Face model directory (no config.json)")
    digest = hashlib.sha256()
    files = [root / "config.json"] + sorted(p for p in root.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_base_model(path: str | Path, device: str | None = None) -> BaseModel:
    """Load a causal LM and its tokenizer for inference; parameters are frozen. A GGUF file, or a
    directory that holds one instead of config.json, is imported first (gguf_import.imported_dir)."""
    root = Path(path)
    if not root.exists():
        raise BaseModelError(f"base model directory not found: {root}")
    try:
        root = imported_dir(root)
    except GGUFImportError as exc:
        raise BaseModelError(str(exc)) from None
    if not root.is_dir():
        raise BaseModelError(f"base model directory not found: {root}")
    try:
        config = json.loads((root / "config.json").read_text())
    except FileNotFoundError as exc:
        raise BaseModelError(f"{root} has no config.json") from exc
    if not any(arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel") for arch in config.get("architectures", [])):
        raise BaseModelError(f"{root} is not a causal language model (architectures={config.get('architectures')})")
    tokenizer = AutoTokenizer.from_pretrained(root)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right
    model = AutoModelForCausalLM.from_pretrained(root, dtype=torch.float32)
    model.to(pick_device(device))
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return BaseModel(model=model, tokenizer=tokenizer, path=root, fingerprint=model_fingerprint(root))
