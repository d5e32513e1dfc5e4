"""Greedy, batched answer generation: the one way every part of the engine asks the model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .prompting import format_prompt


@torch.no_grad()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    *,
    max_new_tokens: int = 24,
    batch_size: int = 64,
    raw_prompts: bool = False,
) -> list[str]:
    """Greedy answers, one per question, with the shared prompt format.

    `raw_prompts=True` sends the strings as they are (for completion-style use).
    """
    tokenizer.padding_side = "left"
    answers: list[str] = []
    device = next(model.parameters()).device
    for start in range(0, len(questions), batch_size):
        chunk = list(questions[start : start + batch_size])
        prompts = chunk if raw_prompts else [format_prompt(q) for q in chunk]
        batch = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        for row in tokenizer.batch_decode(new_tokens, skip_special_tokens=True):
            answers.append(row.split("\n")[0].strip())
    return answers
