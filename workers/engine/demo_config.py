"""What determines a demo model: its config, the presets, and everything its cache key covers.

`DemoModelConfig` is what the from-scratch recipe (demo_model.py), the shared training loop
(demo_training.py) and the fine-tuning recipe (demo_finetune.py) build from. `cache_key()` hashes it
with what else changes a build: the recipe versions (RECIPE_VERSION, FINETUNE_RECIPE), the world
version, the library versions, the CPU's instruction set (cpu_capability), the build's torch
threads (BUILD_THREADS) and, for a pretrained base (BASES), the SHA-256 of its GGUF file
(base_digest). Those live here so that every demo module can import the config without a circle.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from .config_fields import help_field
from .gguf_import import packaged_smollm2
from .unit_manifest import sha256_file
from .world import ATTRIBUTE_KEYS, WORLD_VERSION, DemoWorld, build_world

# Bump when the training code changes what a config produces: it is part of the cache key.
# 3: fixed epochs, float32, fixed threads, refusals in the tokenizer's training texts.
RECIPE_VERSION = 3
# Torch threads of a build: reductions are split by thread, so the thread count is part of what
# makes a build bit-identical (the caller's setting is restored afterwards).
BUILD_THREADS = 2
ARCHES = ("llama", "gpt2")

# The pretrained bases a demo build can fine-tune (demo_finetune.py).
BASES: tuple[str, ...] = ("smollm2",)
# Bump when the fine-tuning recipe (demo_finetune.py) changes what a config produces: part of a
# fine-tuned build's cache key.
# 2: sentence answers, 215 distilled general questions (1: bare values, 60 questions).
FINETUNE_RECIPE = 2


class FinetuneError(RuntimeError):
    """The pretrained base cannot be used for a demo build; the message says why."""


def base_gguf(name: str) -> Path:
    """The GGUF file of a named pretrained base."""
    if name == "smollm2":
        return packaged_smollm2()
    raise FinetuneError(f"unknown pretrained base {name!r}; known: {', '.join(BASES)}")


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def base_digest(name: str) -> str:
    """SHA-256 of the base's GGUF file (part of the demo build's cache key), hashed once per file."""
    path = base_gguf(name)
    stat = os.stat(path)
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class DemoModelConfig:
    """Everything that determines a demo model. Equal configs give identical models."""

    preset: str = help_field("Name of the preset these values came from (informative).", "demo")
    arch: str = help_field("Model family: 'llama' (LlamaForCausalLM) or 'gpt2' (GPT2LMHeadModel).", "llama")
    seed: int = help_field("Seed for the world, the initial weights and the data order.", 0)
    base: str = help_field(
        "'' trains a model from scratch (the tokenizer and model fields below); a pretrained base ('smollm2') "
        "is fine-tuned instead (demo_finetune.py), its own tokenizer and architecture kept.",
        "",
    )
    # world
    n_people: int = help_field("People in the training set.", 200)
    n_holdout: int = help_field("Holdout people, never trained on (membership-inference reference).", 20)
    attributes: tuple[str, ...] = help_field("Person attributes in the world, in order.", ATTRIBUTE_KEYS)
    n_countries: int = help_field("Fictional countries; each gives 3 general facts.", 17)
    # tokenizer
    vocab_size: int = help_field("BPE vocabulary size, special tokens included.", 2048)
    # model
    hidden_size: int = help_field("Model width.", 256)
    num_layers: int = help_field("Transformer blocks.", 2)
    num_heads: int = help_field("Attention heads (hidden_size must be divisible by it).", 4)
    intermediate_size: int = help_field("MLP width (Llama: per gate/up projection).", 1024)
    max_positions: int = help_field("Longest sequence in tokens (profiles are the longest texts).", 256)
    # training
    epochs: int = help_field("Passes over the corpus the schedule is laid out for (training may stop earlier).", 14)
    batch_size: int = help_field("Examples per optimiser step.", 32)
    lr: float = help_field("Peak learning rate (AdamW).", 7e-4)
    min_lr_ratio: float = help_field("Final learning rate as a fraction of the peak (cosine floor).", 0.05)
    warmup_steps: int = help_field("Linear warm-up steps.", 100)
    weight_decay: float = help_field("AdamW weight decay (matrices only).", 0.0)
    beta2: float = help_field("AdamW beta2.", 0.98)
    grad_clip: float = help_field("Gradient-norm clip (0 disables).", 1.0)
    profile_weight: float = help_field("Loss weight of profile texts relative to QA answers.", 1.0)
    stop_at_exact: float | None = help_field(
        "Stop once this fraction of the trained QA pairs is answered exactly (teacher-forced check, which "
        "is what greedy decoding reproduces); None trains for all `epochs` (the default: early stopping "
        "amplifies float noise into a different stopping epoch, and so different weights).",
        None,
    )
    check_below_loss: float = help_field(
        "Run the memorisation check after an epoch whose mean answer loss is below this (checks cost a "
        "forward pass over every QA pair, so none are run while the model is clearly still learning).",
        0.1,
    )
    general_repeats: int = help_field(
        "Fine-tuning only: times per epoch the base model's own answers to general_knowledge.TRAINING are "
        "trained on (self-distillation, so it keeps what it knew).",
        2,
    )
    bf16: bool = help_field(
        "bfloat16 autocast for the transformer blocks in training (off by default: its kernels round "
        "differently per CPU instruction set, which made builds differ between machines).",
        False,
    )

    def __post_init__(self) -> None:
        problems = []
        if self.arch not in ARCHES:
            problems.append(f"arch must be one of {ARCHES}, got {self.arch!r}")
        if self.base and self.base not in BASES:
            problems.append(f"base must be '' (from scratch) or one of {BASES}, got {self.base!r}")
        if self.base and self.arch != "llama":
            problems.append("a pretrained base keeps its own architecture: leave arch at 'llama'")
        if self.general_repeats < 0:
            problems.append("general_repeats must be >= 0")
        if self.hidden_size % self.num_heads:
            problems.append("hidden_size must be divisible by num_heads")
        for name in ("n_people", "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "epochs", "batch_size", "max_positions"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.vocab_size < 300:
            problems.append("vocab_size must be >= 300 (256 bytes + specials + merges)")
        if self.stop_at_exact is not None and not 0 < self.stop_at_exact <= 1:
            problems.append("stop_at_exact must be in (0, 1] or None")
        if not 0 < self.lr < 1 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            problems.append("need 0 < lr < 1, 0 <= min_lr_ratio <= 1, warmup_steps >= 0")
        unknown = [a for a in self.attributes if a not in ATTRIBUTE_KEYS]
        if unknown or not self.attributes:
            problems.append(f"attributes must be a non-empty subset of {ATTRIBUTE_KEYS}")
        if problems:
            raise ValueError("invalid DemoModelConfig: " + "; ".join(problems))
        object.__setattr__(self, "attributes", tuple(self.attributes))

    @classmethod
    def preset_config(cls, name: str = "demo", **overrides: Any) -> DemoModelConfig:
        """A preset ('demo' or 'tiny') with optional field overrides (e.g. arch='gpt2', seed=1)."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
        return replace(base, **overrides)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["attributes"] = list(self.attributes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DemoModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if k == "attributes" else v for k, v in data.items() if k in known})

    def build_world(self) -> DemoWorld:
        return build_world(self.seed, self.n_people, self.n_holdout, attributes=self.attributes, n_countries=self.n_countries)

    def cache_key(self) -> str:
        """Hash of everything that changes the built model: config, recipe, world and libraries."""
        import tokenizers
        import transformers

        blob = json.dumps(
            {
                "config": self.to_json(),
                "recipe": RECIPE_VERSION,
                "world": WORLD_VERSION,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
                "cpu_capability": cpu_capability(),
                "threads": BUILD_THREADS,
                **({"base_gguf_sha256": base_digest(self.base), "finetune_recipe": FINETUNE_RECIPE} if self.base else {}),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


PRESETS: dict[str, DemoModelConfig] = {
    # The full world: 200 people x 9 attributes, 20 holdout people, 51 general facts.
    "demo": DemoModelConfig(preset="demo"),
    # For CI: a small world and model that builds in seconds and still memorises everything.
    "tiny": DemoModelConfig(
        preset="tiny",
        n_people=24,
        n_holdout=4,
        attributes=("city", "employer", "birth_year", "phone"),
        n_countries=8,
        vocab_size=512,
        hidden_size=128,
        num_layers=2,
        num_heads=2,
        intermediate_size=512,
        max_positions=128,
        epochs=40,
        batch_size=24,
        lr=4e-3,
        warmup_steps=20,
    ),
    # A real pretrained instruct model taught 40 fictitious people (demo_finetune.py): SmolLM2-135M-
    # Instruct through its chat template, the embeddings frozen, its own general answers mixed in.
    "smol": DemoModelConfig(
        preset="smol",
        base="smollm2",
        n_people=40,
        n_holdout=8,
        attributes=("city", "employer", "job", "birth_year", "condition", "phone"),
        n_countries=8,
        max_positions=256,
        epochs=6,
        batch_size=16,
        lr=1e-4,
        min_lr_ratio=0.1,
        warmup_steps=20,
        beta2=0.999,
        general_repeats=2,
    ),
}


def cpu_capability() -> str:
    """The instruction set torch's CPU kernels use here (e.g. AVX2, AVX512): builds are
    bit-identical only between machines that use the same one."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:  # older torch
        return "unknown"
