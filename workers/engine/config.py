"""The configuration of one unlearning run: which method, which LoRA, how long to train.

Plain dataclass, no torch import, so the service can validate and store a config without loading
the engine. Every field carries its help text in `metadata["help"]` (the PEFT convention).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from .config_fields import help_field
from .phrasings import POSITIVE_FAMILIES

METHOD_NAMES: tuple[str, ...] = ("o3", "ga", "gd", "npo")


class ConfigError(ValueError):
    """An UnlearnConfig field has an invalid value."""


@dataclass
class UnlearnConfig:
    """How one request's unlearning adapter is trained (O3.md section 2; baselines in EVAL.md)."""

    method: str = help_field(
        "Unlearning method: 'o3' (refusal cross-entropy + orthogonality), 'ga' (gradient ascent), "
        "'gd' (gradient difference, needs retain data) or 'npo' (negative preference optimisation).",
        "o3",
    )
    rank: int = help_field("LoRA rank r of the new adapter.", 8)
    alpha: float = help_field("LoRA alpha; the adapter is scaled by alpha / rank.", 16.0)
    dropout: float = help_field("Dropout on the LoRA input during training (the base model stays in eval mode).", 0.0)
    target_modules: str | list[str] = help_field(
        "Modules that get a LoRA: 'all-linear' (every nn.Linear / GPT-2 Conv1D except the LM head), "
        "or a list of module names or name suffixes as PEFT accepts them.",
        "all-linear",
    )
    lr: float = help_field(
        "AdamW learning rate. Chosen on the development phrasings of the tiny demo model (share of "
        "word-for-word refusals with the adapter on: 3e-3 0.83, 6e-3 0.92 after 10 epochs); the "
        "reference uses 3e-4 on a 7B model.",
        5e-3,
    )
    epochs: int = help_field(
        "Passes over the training prompts (the forget set's own and the synthesised ones, see "
        "`synthesis`): about a hundred for a person with nine facts, so the default (10) gives some "
        "60 to 160 steps; fewer left the adapter's refusals garbled on the tiny demo model (6 epochs: "
        "a third word for word). The reference trains 10 epochs.",
        10,
    )
    settle_epochs: int = help_field(
        "For a method with a fixed target (o3's refusal): after `epochs`, up to this many more while "
        "some training prompt's target is not yet its greedy answer (every target token the argmax, "
        "teacher-forced, checked after each epoch). 10 epochs leave about one refusal in twelve "
        "garbled on the tiny demo model ('I can' share ...'); 0 trains `epochs` exactly.",
        10,
    )
    batch_size: int = help_field("Training prompts per step (and retain examples per step for 'gd').", 8)
    max_steps: int | None = help_field("Upper bound on optimiser steps; None trains all epochs.", None)
    lambda_orth: float = help_field(
        "Weight of the orthogonality term sum_k ||A_k A_t^T||_F^2 against the active previous adapters (O3 uses 0.1); 0 disables it.",
        0.1,
    )
    seed: int = help_field("Seed for the LoRA initialisation, data order, dropout and the synthesised prompts.", 0)
    synthesis: dict = help_field(
        "Training prompts synthesised from the forget facts in the development phrasings (never the "
        "certification ones), per probe family: how many per fact. The adapter then learns to refuse "
        "the subject in every shape the gateway serves (statements, chats, other languages, name "
        "forms, wrappers, padding), not only in the forget set's own questions. {} trains on the "
        "forget set alone.",
        {"P": 2, "statement": 2, "open": 1, "language": 2, "name_forms": 2, "wrapper": 1, "chat": 1, "D": 1},
    )
    npo_beta: float = help_field("Inverse temperature beta of NPO.", 0.1)
    retain_weight: float = help_field("Weight of the retain cross-entropy in 'gd'.", 1.0)
    weight_decay: float = help_field("AdamW weight decay on the LoRA parameters.", 0.0)
    max_grad_norm: float | None = help_field("Gradient-norm clipping; None disables it.", 1.0)
    max_length: int = help_field("Longest training sequence in tokens; longer prompts are cut from the left.", 256)

    def __post_init__(self) -> None:
        if self.method not in METHOD_NAMES:
            raise ConfigError(f"method must be one of {METHOD_NAMES}, got {self.method!r}")
        if isinstance(self.target_modules, (list, tuple)):
            self.target_modules = [str(name) for name in self.target_modules]
            if not self.target_modules:
                raise ConfigError("target_modules must not be empty")
        elif not isinstance(self.target_modules, str) or not self.target_modules:
            raise ConfigError("target_modules must be 'all-linear', a module name pattern or a list of names")
        for name in ("rank", "epochs", "batch_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.settle_epochs, bool) or not isinstance(self.settle_epochs, int) or self.settle_epochs < 0:
            raise ConfigError(f"settle_epochs must be a non-negative integer, got {self.settle_epochs!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ConfigError(f"max_steps must be None or a positive integer, got {self.max_steps!r}")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        for name in ("alpha", "lr", "npo_beta"):
            value = getattr(self, name)
            if not _finite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name in ("lambda_orth", "retain_weight", "weight_decay"):
            value = getattr(self, name)
            if not _finite(value) or value < 0:
                raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
        if not _finite(self.dropout) or not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.max_grad_norm is not None and (not _finite(self.max_grad_norm) or self.max_grad_norm <= 0):
            raise ConfigError(f"max_grad_norm must be None or positive, got {self.max_grad_norm!r}")
        if not isinstance(self.synthesis, dict) or any(
            not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int) or v < 0 for k, v in self.synthesis.items()
        ):
            raise ConfigError(f"synthesis must map probe family names to non-negative integers, got {self.synthesis!r}")
        unknown = sorted(set(self.synthesis) - set(POSITIVE_FAMILIES) - {"F"})
        if unknown:
            raise ConfigError(f"synthesis names unknown probe families {unknown}; known: {', '.join(POSITIVE_FAMILIES)}")

    @property
    def scaling(self) -> float:
        """The LoRA scale alpha / r that multiplies B A."""
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnlearnConfig:
        """Inverse of to_dict; unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown UnlearnConfig fields: {unknown}")
        return cls(**data)

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text (for CLIs and forms)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
