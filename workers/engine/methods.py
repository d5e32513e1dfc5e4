"""Unlearning methods: a small registry where each method overrides only its loss.

- 'o3': next-token cross-entropy on a refusal answer (O3.md section 2). The orthogonality term is
  added by the training loop, for every method, so the baselines differ from O3 only here.
- 'ga': gradient ascent on the forget answers.
- 'gd': gradient difference: ascent on the forget answers plus cross-entropy on retain data.
- 'npo': negative preference optimisation (Zhang et al. 2024) against the base model, i.e. the same
  network with its adapter disabled.

Forget items are (prompt, answer) pairs, where the prompt is a question string or a
prompting.PromptSpec (question, raw completion or chat), or objects with `question` and `answer`
attributes, or raw texts. A pair becomes prompt = prompting.render(prompt) in the model's own
format (its chat template where it has one) and target = the answer (or a refusal from
prompting.REFUSALS for 'o3'), exactly as the gateway will serve it. A raw text has no answer: for
the answer-based methods the whole text is the target; for 'o3' the text is the prompt and the
refusal follows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from .config import UnlearnConfig
from .prompting import PromptSpec, answer_continuation, prompt_ids, refusal_for, render

IGNORE_INDEX = -100


class MissingRetainDataError(ValueError):
    """The method needs retain examples and none were given."""


@dataclass(frozen=True)
class Example:
    """One training sequence: the loss is taken on `target` only; `prompt` is context."""

    prompt: str
    target: str


def as_examples(items: Iterable[Any], target: str = "answer", tokenizer: PreTrainedTokenizerBase | None = None) -> list[Example]:
    """Turn forget or retain items into examples whose target is the answer or a refusal, rendered
    in the shapes the gateway serves (prompting.render with `tokenizer`'s chat template, if any)."""
    if target not in ("answer", "refusal"):
        raise ValueError(f"target must be 'answer' or 'refusal', got {target!r}")
    examples = []
    for index, item in enumerate(items):
        prompt, answer = _split_item(item)
        if target == "refusal":
            if prompt is None:  # a raw text: the text is the prompt, the refusal follows it
                prompt = PromptSpec.raw(answer)
            refusal = refusal_for(index)
            examples.append(Example(render(prompt, tokenizer), answer_continuation(prompt, refusal, tokenizer)))
        elif prompt is None:
            examples.append(Example("", answer))
        else:
            examples.append(Example(render(prompt, tokenizer), answer_continuation(prompt, answer, tokenizer)))
    return examples


def _split_item(item: Any) -> tuple[PromptSpec | str | None, str]:
    if isinstance(item, str):
        if not item.strip():
            raise ValueError("empty text in forget/retain data")
        return None, item
    if hasattr(item, "question") and hasattr(item, "answer"):
        return str(item.question), str(item.answer)
    if isinstance(item, Sequence) and len(item) == 2 and isinstance(item[0], (str, PromptSpec)) and isinstance(item[1], str):
        return item[0], item[1]
    raise TypeError(f"expected a (prompt, answer) pair or a text, got {type(item).__name__}: {item!r}")


@dataclass
class Batch:
    """Right-padded token ids; labels are -100 on prompt and padding positions."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def encode(tokenizer: PreTrainedTokenizerBase, example: Example, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + target + EOS, and how many leading ids are prompt.

    Prompt and target are tokenised separately, like at inference where the prompt is tokenised on
    its own and the answer is generated after it. Over-long prompts are cut from the left.
    """
    prompt = prompt_ids(tokenizer, example.prompt) if example.prompt else []
    if not prompt and tokenizer.bos_token_id is not None:
        prompt = [tokenizer.bos_token_id]  # a raw text needs a first token to condition on
    target = tokenizer(example.target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(target) >= max_length:
        raise ValueError(f"target of {len(target)} tokens does not fit max_length={max_length}")
    prompt = prompt[-(max_length - len(target)) :]
    return prompt + target, len(prompt)


def collate(encoded: Sequence[tuple[list[int], int]], pad_token_id: int, device: torch.device | str) -> Batch:
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, n_prompt) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return Batch(input_ids.to(device), attention_mask.to(device), labels.to(device))


def token_logprobs(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of every next token, and the mask of positions that are targets."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    labels = batch.labels[:, 1:]
    mask = labels != IGNORE_INDEX
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def mean_nll(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Next-token cross-entropy averaged over the target tokens of the batch."""
    picked, mask = token_logprobs(model, batch)
    return -picked.sum() / mask.sum().clamp(min=1)


def sequence_logprob(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """log p(target | prompt) per row: the sum of its target-token log-probabilities."""
    picked, _ = token_logprobs(model, batch)
    return picked.sum(dim=-1)


class UnlearningMethod:
    """Base class: subclasses set `name` (and `target`, `needs_retain`) and override `loss`."""

    name: ClassVar[str]
    target: ClassVar[str] = "answer"  # what the forget examples are trained towards: "answer" | "refusal"
    needs_retain: ClassVar[bool] = False

    def __init__(self, config: UnlearnConfig):
        self.config = config

    def loss(self, model: torch.nn.Module, forget: Batch, retain: Batch | None) -> torch.Tensor:
        """The task loss for one step; `model` is the PEFT-wrapped model being trained."""
        raise NotImplementedError


METHODS: dict[str, type[UnlearningMethod]] = {}


def register(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
    METHODS[cls.name] = cls
    return cls


def get_method(config: UnlearnConfig) -> UnlearningMethod:
    try:
        return METHODS[config.method](config)
    except KeyError:
        raise ValueError(f"unknown unlearning method {config.method!r}; known: {sorted(METHODS)}") from None


@register
class O3(UnlearningMethod):
    """Teach a refusal: cross-entropy on the refusal answer, prompt masked out."""

    name = "o3"
    target = "refusal"

    def loss(self, model, forget, retain):
        return mean_nll(model, forget)


@register
class GradientAscent(UnlearningMethod):
    """Maximise the forget answers' cross-entropy (unbounded: stop it by steps)."""

    name = "ga"

    def loss(self, model, forget, retain):
        return -mean_nll(model, forget)


@register
class GradientDifference(UnlearningMethod):
    """Gradient ascent on forget answers plus ordinary cross-entropy on retain answers."""

    name = "gd"
    needs_retain = True

    def loss(self, model, forget, retain):
        if retain is None:
            raise MissingRetainDataError("'gd' needs retain examples for every step")
        return -mean_nll(model, forget) + self.config.retain_weight * mean_nll(model, retain)


@register
class NPO(UnlearningMethod):
    """-(2/beta) * logsigmoid(-beta * (log p_theta(y|x) - log p_ref(y|x))), ref = adapter disabled."""

    name = "npo"

    def loss(self, model, forget, retain):
        beta = self.config.npo_beta
        with torch.no_grad(), model.disable_adapter():
            reference = sequence_logprob(model, forget)
        log_ratio = sequence_logprob(model, forget) - reference
        return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()
