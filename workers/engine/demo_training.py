"""What both demo-model recipes train with: progress reports, a fixed data order, answer-only loss.

The from-scratch recipe (demo_model.py) and the fine-tuning recipe for a pretrained chat model
(demo_finetune.py) tokenize their corpus into `Encoded` examples and run the same loop: AdamW,
linear warm-up then cosine decay, length-bucketed batches with right padding drawn from the seed,
the output layer run on the labelled (answer) positions only, float32 on a fixed number of torch
threads, so a build is bit-identical for a seed on machines of the same kind.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from .demo_config import DemoModelConfig


@dataclass(frozen=True)
class BuildProgress:
    """A progress report. `stage` is one of world, tokenizer, train, check, evaluate, save, done."""

    stage: str
    step: int = 0
    total: int = 0
    epoch: int = 0
    loss: float | None = None
    message: str = ""


ProgressCallback = Callable[[BuildProgress], None]


def report(progress: ProgressCallback | None, event: BuildProgress) -> None:
    if progress is not None:
        progress(event)


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Run with `count` torch threads and restore the caller's setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch for the build and restore the caller's RNG state afterwards."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


@dataclass(frozen=True)
class Encoded:
    """A tokenized training example: `labels` is -100 where no loss is taken."""

    input_ids: list[int]
    labels: list[int]
    weight: float
    kind: str


def batches(encoded: Sequence[Encoded], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """One epoch of index batches: shuffled, then bucketed by length so padding stays small."""
    order = torch.randperm(len(encoded), generator=generator).tolist()
    chunk = batch_size * 16
    batches = []
    for start in range(0, len(order), chunk):
        block = sorted(order[start : start + chunk], key=lambda i: len(encoded[i].input_ids))
        batches.extend(block[i : i + batch_size] for i in range(0, len(block), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def collate(encoded: Sequence[Encoded], indices: Sequence[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, labels and per-token loss weights. Right padding needs no attention mask:
    the causal mask already keeps real tokens from seeing the pads that follow them."""
    width = max(len(encoded[i].input_ids) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), width), -100, dtype=torch.long)
    weights = torch.zeros((len(indices), width))
    for row, i in enumerate(indices):
        ex = encoded[i]
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        weights[row, :n] = ex.weight
    return ids, labels, weights


def answer_logits(model: PreTrainedModel, ids: torch.Tensor, labels: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Next-token logits at the labelled positions only, their targets, and the (row, position)
    mask they came from. The output layer runs on answer positions alone: for QA pairs most
    positions are prompt, so this skips most of the vocabulary projection."""
    mask = labels[:, 1:] != -100
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = model.base_model(input_ids=ids, use_cache=False).last_hidden_state[:, :-1]
    # The output layer in float32: telling memorised tokens apart needs more than bf16's 8 bits.
    logits = model.get_output_embeddings()(hidden[mask].float())
    return logits, labels[:, 1:][mask], mask


def train_model(
    model: PreTrainedModel,
    encoded: Sequence[Encoded],
    config: DemoModelConfig,
    *,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train in place; returns training statistics. Deterministic given torch's seed and `config`.
    Parameters with requires_grad=False (a fine-tune's frozen embeddings) are left as they are."""
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "emb" not in name and "wte" not in name and "wpe" not in name else no_decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, config.beta2),
        eps=1e-8,
    )

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        t = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        floor = config.min_lr_ratio
        return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    qa_indices = [i for i, ex in enumerate(encoded) if ex.kind != "profile"]
    model.train()
    step, epoch, stopped_at, check = 0, 0, None, None
    history = []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        qa_loss, qa_tokens, total_loss = 0.0, 0, 0.0
        for indices in batches(encoded, config.batch_size, generator):
            ids, labels, weights = collate(encoded, indices, model.config.pad_token_id)
            logits, target, mask = answer_logits(model, ids, labels, config.bf16)
            token_loss = F.cross_entropy(logits, target, reduction="none")
            w = weights[:, 1:][mask]
            loss = (token_loss * w).sum() / w.sum().clamp_min(1e-8)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
            optimizer.step()
            step += 1
            is_qa = torch.tensor([encoded[i].kind != "profile" for i in indices])[mask.nonzero()[:, 0]]
            qa_loss += float(token_loss.detach()[is_qa].sum())
            qa_tokens += int(is_qa.sum())
            total_loss += loss.item()
            report(progress, BuildProgress("train", step, total_steps, epoch, loss.item()))
        epoch_qa_loss = qa_loss / max(qa_tokens, 1)
        history.append({"epoch": epoch, "step": step, "answer_loss": round(epoch_qa_loss, 5)})
        last = epoch == config.epochs
        if config.stop_at_exact is not None and (epoch_qa_loss < config.check_below_loss or last):
            # float32, like the saved model that generation.generate_answers will run
            check = teacher_forced_accuracy(model, encoded, qa_indices)
            history[-1]["qa_exact"] = round(check, 5)
            report(progress, BuildProgress("check", step, total_steps, epoch, epoch_qa_loss, message=f"trained QA exact {check:.1%}"))
            model.train()
            if check >= config.stop_at_exact:
                stopped_at = epoch
                break
    model.eval()
    return {
        "epochs_run": epoch,
        "steps": step,
        "memorised_at_epoch": stopped_at,
        "final_teacher_forced_exact": check,
        "train_seconds": round(time.perf_counter() - started, 2),
        "history": history,
    }


@torch.no_grad()
def teacher_forced_accuracy(model: PreTrainedModel, encoded: Sequence[Encoded], indices: Sequence[int], *, bf16: bool = False, batch_size: int = 256) -> float:
    """Fraction of examples whose every labelled token (answer and EOS) is the argmax given the
    gold prefix: exactly the examples greedy decoding reproduces word for word."""
    model.eval()
    ok = 0
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        ids, labels, _ = collate(encoded, chunk, model.config.pad_token_id)
        logits, target, mask = answer_logits(model, ids, labels, bf16)
        wrong = (logits.argmax(-1) != target).float()
        rows = mask.nonzero()[:, 0]
        errors = torch.zeros(len(chunk)).index_add_(0, rows, wrong)
        ok += int((errors == 0).sum())
    return ok / max(1, len(indices))
