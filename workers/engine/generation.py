"""Greedy, batched answer generation: the one way every part of the engine asks the model, and
how many tokens the model's context holds (context_length)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .prompting import PromptSpec, prompt_ids, render


def context_length(model: Any) -> int | None:
    """The model's context in tokens (max_position_embeddings / n_positions), or None."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def pad_left(rows: Sequence[list[int]], pad_id: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask (generation appends on the right)."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids) :] = 1
    return input_ids.to(device), mask.to(device)


@torch.no_grad()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[PromptSpec | str],
    *,
    max_new_tokens: int = 24,
    batch_size: int = 64,
    raw_prompts: bool = False,
) -> list[str]:
    """Greedy answers, one per prompt, whole (every generated line, special tokens removed).

    A prompt is a PromptSpec (question, raw completion or chat) or a question string, rendered as
    prompting.render does for this tokenizer (its chat template where it has one).
    `raw_prompts=True` sends strings as they are (text the caller has rendered already).
    """
    texts = [p if raw_prompts and isinstance(p, str) else render(p, tokenizer) for p in prompts]
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    for start in range(0, len(texts), batch_size):
        input_ids, mask = pad_left([prompt_ids(tokenizer, text) for text in texts[start : start + batch_size]], pad_id, device)
        output = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = output[:, input_ids.shape[1] :]
        answers += [row.strip() for row in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers
