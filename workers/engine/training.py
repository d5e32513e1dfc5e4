"""Training one orthogonal unlearning LoRA per request, and the adapter weights it produces.

The LoRA is attached to the frozen base model with PEFT for the length of one training run and
removed afterwards (`unload()`, no merge), so the caller's model comes back with the same modules,
weights, flags and attributes. The result is an `AdapterWeights`: per LoRA'd module A (r x d_in),
B (d_out x r) and the scaling alpha / r, plus the PEFT config. It saves to and loads from the
standard PEFT directory format (adapter_config.json + adapter_model.safetensors), so
`PeftModel.from_pretrained` reads it as well.

The training attaches modules to the shared base model: do not train on a BaseModel that a
GatedModel in another thread is serving from at the same time.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from peft import LoraConfig, PeftConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers.pytorch_utils import Conv1D

from .base_model import BaseModel
from .config import UnlearnConfig
from .methods import IGNORE_INDEX, MissingRetainDataError, as_examples, collate, encode, get_method

# ADAPTER_CONFIG_NAME and ADAPTER_WEIGHTS_NAME are also re-exported: tests/adapters_store/test_no_torch.py reads them here.
from .unit_manifest import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, canonical_safetensors

PEFT_PREFIX = "base_model.model."  # how PEFT names a module of the wrapped model in its state dict


class TrainingCancelled(Exception):
    """`should_stop` asked to stop; the base model has been restored and nothing was produced."""

    def __init__(self, step: int, total: int):
        super().__init__(f"training cancelled at step {step} of {total}")
        self.step = step
        self.total = total


class AdapterFormatError(ValueError):
    """An adapter directory is not a LoRA this engine can use."""


# ---------------------------------------------------------------------------------------------
# Adapter weights


@dataclass
class LoraModule:
    """The LoRA of one linear module: delta(h) = scaling * B @ A @ h."""

    A: torch.Tensor  # [r, d_in], PEFT's lora_A weight
    B: torch.Tensor  # [d_out, r], PEFT's lora_B weight
    scaling: float

    @property
    def rank(self) -> int:
        return self.A.shape[0]


@dataclass
class AdapterWeights:
    """One request's LoRA, detached from any model (tensors on the CPU, float32)."""

    modules: dict[str, LoraModule]  # module name in the base model -> its LoRA
    peft_config: LoraConfig
    base_fingerprint: str | None = None  # the base model it was trained against

    @property
    def num_parameters(self) -> int:
        return sum(m.A.numel() + m.B.numel() for m in self.modules.values())

    def __repr__(self) -> str:
        ranks = sorted({m.rank for m in self.modules.values()})
        base = (self.base_fingerprint or "unknown")[:12]
        return f"AdapterWeights({len(self.modules)} modules, r={ranks}, {self.num_parameters} parameters, base={base})"

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write adapter_config.json and adapter_model.safetensors in PEFT's layout."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for name, module in sorted(self.modules.items()):
            tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = module.A.detach().cpu().contiguous()
            tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = module.B.detach().cpu().contiguous()
        metadata = {"format": "pt"}
        if self.base_fingerprint:
            metadata["base_fingerprint"] = self.base_fingerprint
        # Canonical header: the same adapter gives the same bytes, and so the same digest.
        (directory / ADAPTER_WEIGHTS_NAME).write_bytes(canonical_safetensors(safetensors.torch.save(tensors, metadata=metadata)))
        (directory / ADAPTER_CONFIG_NAME).write_text(peft_config_json(self.peft_config))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> AdapterWeights:
        directory = Path(directory)
        return cls.from_bytes((directory / ADAPTER_CONFIG_NAME).read_bytes(), (directory / ADAPTER_WEIGHTS_NAME).read_bytes())

    @classmethod
    def from_bytes(cls, config_json: bytes, weights: bytes) -> AdapterWeights:
        """Parse the two PEFT files from memory (lets artifacts verify the exact bytes it parses)."""
        peft_config = PeftConfig.from_peft_type(**LoraConfig.check_kwargs(**json.loads(config_json)))
        if not isinstance(peft_config, LoraConfig):
            raise AdapterFormatError(f"expected a LoRA adapter, got peft_type={peft_config.peft_type}")
        unsupported = [
            name
            for name, value in [
                ("use_dora", peft_config.use_dora),
                ("lora_bias", peft_config.lora_bias),
                ("rank_pattern", peft_config.rank_pattern),
                ("alpha_pattern", peft_config.alpha_pattern),
                ("modules_to_save", peft_config.modules_to_save),
            ]
            if value
        ]
        if unsupported:
            raise AdapterFormatError(f"unsupported LoRA options: {unsupported}")
        tensors = safetensors.torch.load(weights)
        metadata = _safetensors_metadata(weights)
        pairs: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            if not key.startswith(PEFT_PREFIX) or not key.endswith((".lora_A.weight", ".lora_B.weight")):
                raise AdapterFormatError(f"unexpected tensor {key!r} in a LoRA adapter")
            name, part, _ = key[len(PEFT_PREFIX) :].rsplit(".", 2)
            pairs.setdefault(name, {})[part] = tensor.float()
        modules = {}
        for name, pair in sorted(pairs.items()):
            if set(pair) != {"lora_A", "lora_B"}:
                raise AdapterFormatError(f"module {name!r} lacks lora_A or lora_B")
            A, B = pair["lora_A"], pair["lora_B"]
            if A.shape[0] != B.shape[1]:
                raise AdapterFormatError(f"module {name!r}: A is {tuple(A.shape)} but B is {tuple(B.shape)}")
            modules[name] = LoraModule(A, B, _scaling(peft_config, A.shape[0]))
        return cls(modules, peft_config, metadata.get("base_fingerprint"))


def peft_config_json(config: LoraConfig) -> str:
    """adapter_config.json as PEFT writes it, with sets sorted so the bytes are reproducible."""
    data = config.to_dict()
    for key, value in data.items():
        if isinstance(value, set):
            data[key] = sorted(value)
    return json.dumps(data, indent=2, sort_keys=True)


def _scaling(config: LoraConfig, rank: int) -> float:
    return config.lora_alpha / (math.sqrt(rank) if config.use_rslora else rank)


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    header_length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_length]).get("__metadata__", {}) or {}


# ---------------------------------------------------------------------------------------------
# Orthogonality


def stack_lora_A(adapters: Sequence[AdapterWeights], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Per module, the previous adapters' A matrices stacked row-wise: [sum_k r_k, d_in]."""
    stacked: dict[str, list[torch.Tensor]] = {}
    for adapter in adapters:
        for name, module in adapter.modules.items():
            stacked.setdefault(name, []).append(module.A)
    return {name: torch.cat(parts).to(device=device, dtype=torch.float32) for name, parts in stacked.items()}


def orthogonality_penalty(current: Mapping[str, torch.Tensor], previous: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """sum over modules m and previous adapters k of ||A_k,m A_t,m^T||_F^2.

    `previous` holds the A_k of each module stacked row-wise (stack_lora_A): the squared Frobenius
    norm of the stacked product is the sum over k of the per-adapter terms.
    """
    total = torch.zeros((), device=next(iter(current.values())).device)
    for name, A_t in current.items():
        if name in previous:
            total = total + (previous[name] @ A_t.float().T).pow(2).sum()
    return total


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class Progress:
    step: int  # optimiser steps done
    total: int
    loss: float  # task loss + lambda * orthogonality
    orthogonality: float  # the unweighted orthogonality term

    @property
    def percent(self) -> float:
        return 100.0 * self.step / self.total


@dataclass
class TrainingCallbacks:
    on_progress: Callable[[Progress], None] | None = None  # called after every step
    should_stop: Callable[[], bool] | None = None  # polled before every step; True cancels


def lora_config(config: UnlearnConfig, model: torch.nn.Module) -> LoraConfig:
    """The PEFT LoRA config for `config` on `model` (GPT-2 Conv1D layers store W transposed)."""
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=copy.copy(config.target_modules),
        fan_in_fan_out=any(isinstance(module, Conv1D) for module in model.modules()),
        bias="none",
        task_type="CAUSAL_LM",
    )


def train_unit_adapter(
    base: BaseModel,
    forget: Sequence[Any],
    config: UnlearnConfig,
    previous: Sequence[AdapterWeights] = (),
    retain: Sequence[Any] | None = None,
    callbacks: TrainingCallbacks | None = None,
) -> AdapterWeights:
    """Train one new LoRA on the frozen base model so that it unlearns `forget`.

    forget / retain: (question, answer) pairs or raw texts (see methods.as_examples).
    previous: the adapters of the currently active requests; the new adapter's A matrices are
    pushed orthogonal to theirs with weight config.lambda_orth.
    """
    callbacks = callbacks or TrainingCallbacks()
    method = get_method(config)
    tokenizer, device = base.tokenizer, base.device
    forget_data = [encode(tokenizer, ex, config.max_length) for ex in as_examples(forget, method.target, tokenizer)]
    retain_data = [encode(tokenizer, ex, config.max_length) for ex in as_examples(retain or [], "answer", tokenizer)]
    if not forget_data:
        raise ValueError("the forget set is empty")
    foreign = [a.base_fingerprint for a in previous if a.base_fingerprint and a.base_fingerprint != base.fingerprint]
    if foreign:
        raise ValueError(f"previous adapters were trained against another base model ({foreign[0][:12]})")
    if method.needs_retain and not retain_data:
        raise MissingRetainDataError(f"method {config.method!r} needs retain examples (retain=...); none were given")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    steps_per_epoch = math.ceil(len(forget_data) / config.batch_size)
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)  # LoRA init and dropout
        order_rng = torch.Generator().manual_seed(config.seed)
        with attached_lora(base.model, lora_config(config, base.model)) as model:
            lora_A = {name: layer.lora_A["default"].weight for name, layer in _lora_layers(base.model)}
            previous_A = stack_lora_A(previous, device) if config.lambda_orth > 0 else {}
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
            retain_batches = _batches(retain_data, config.batch_size, order_rng) if method.needs_retain else None
            forget_batches = _batches(forget_data, config.batch_size, order_rng)

            def train_step(step: int, of: int) -> None:
                if callbacks.should_stop is not None and callbacks.should_stop():
                    raise TrainingCancelled(step, of)
                forget_batch = collate(next(forget_batches), pad_id, device)
                retain_batch = collate(next(retain_batches), pad_id, device) if retain_batches else None
                loss = method.loss(model, forget_batch, retain_batch)
                orthogonality = orthogonality_penalty(lora_A, previous_A) if previous_A else torch.zeros(())
                loss = loss + config.lambda_orth * orthogonality
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                if callbacks.on_progress is not None:
                    callbacks.on_progress(Progress(step + 1, of, loss.item(), orthogonality.item()))

            for step in range(total):
                train_step(step, total)
            # Settling (config.settle_epochs): a fixed target is learnt when greedy decoding gives it
            # word for word; a near miss ("I can' share") is a garbled refusal at inference.
            settle = config.settle_epochs if method.target == "refusal" and config.max_steps is None else 0
            done = total
            for _ in range(settle):
                if _all_exact(model, forget_data, pad_id, device, config.batch_size):
                    break
                for step in range(done, done + steps_per_epoch):
                    train_step(step, done + steps_per_epoch)  # the bar stays near 100%: one epoch at a time
                done += steps_per_epoch
            return extract_adapter(base, model.peft_config["default"])


def _all_exact(model: torch.nn.Module, data: list, pad_id: int, device: torch.device, batch_size: int) -> bool:
    """Whether every example's target (end token included) is the argmax at each of its positions,
    teacher-forced, with dropout off: exactly when greedy decoding reproduces it."""
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size * 4):
                batch = collate(data[start : start + batch_size * 4], pad_id, device)
                logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
                labels = batch.labels[:, 1:]
                mask = labels != IGNORE_INDEX
                if not bool(((logits.argmax(-1) == labels) | ~mask).all()):
                    return False
        return True
    finally:
        model.train()


BUCKET_BATCHES = 4  # batches per length bucket: examples of similar length train together


def _batches(data: list, batch_size: int, generator: torch.Generator) -> Iterator[list]:
    """Endless shuffled mini-batches; every epoch is a new permutation, cut into buckets of a few
    batches sorted by length (a padded prompt of a hundred tokens no longer makes seven short
    questions pay for its padding), the batches then shuffled again. The last batch may be short."""
    for _ in itertools.count():
        order = torch.randperm(len(data), generator=generator).tolist()
        chunk = batch_size * BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), chunk):
            bucket = sorted(order[start : start + chunk], key=lambda i: len(data[i][0]))
            batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
        for index in torch.randperm(len(batches), generator=generator).tolist():
            yield [data[i] for i in batches[index]]


def _lora_layers(model: torch.nn.Module) -> list[tuple[str, LoraLayer]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, LoraLayer)]


def extract_adapter(base: BaseModel, peft_config: LoraConfig) -> AdapterWeights:
    """Copy the LoRA weights out of a model that currently has the 'default' adapter attached."""
    modules = {
        name: LoraModule(
            A=layer.lora_A["default"].weight.detach().float().cpu().clone(),
            B=layer.lora_B["default"].weight.detach().float().cpu().clone(),
            scaling=float(layer.scaling["default"]),
        )
        for name, layer in _lora_layers(base.model)
    }
    saved = copy.deepcopy(peft_config)
    saved.inference_mode = True
    saved.base_model_name_or_path = str(base.path)
    saved.target_modules = sorted(modules)  # the modules actually adapted, by full name
    return AdapterWeights(modules, saved, base.fingerprint)


@contextmanager
def attached_lora(model: torch.nn.Module, config: LoraConfig) -> Iterator[torch.nn.Module]:
    """Attach a trainable LoRA to `model` in place; on exit remove it and restore every flag.

    The base model stays in eval mode (no dropout noise in the frozen network); only the LoRA
    dropout modules train.
    """
    was_training = model.training
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    peft_model = get_peft_model(model, copy.deepcopy(config))
    try:
        peft_model.eval()
        for name, module in model.named_modules():
            if "lora_dropout" in name:
                module.train()
        yield peft_model
    finally:
        peft_model.unload()  # replaces each LoRA layer by its untouched base layer; no merge
        model.train(was_training)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(requires_grad[name])
