"""The prompt shapes the gateway serves, rendered the same way for training, probing and serving.

Three shapes (`PromptSpec`): a question, a raw completion prompt, and a chat. What the model reads:

| shape    | model with a chat template (an instruct model)    | model without one (the demo model)        |
|----------|---------------------------------------------------|-------------------------------------------|
| question | the template with the question as one user turn   | `Question: {q}\nAnswer:`                  |
| raw      | the text as it is                                  | the text as it is                         |
| chat     | the template over every message                    | every turn kept: `Question: {user}\nAnswer: {assistant}` per exchange, system text first |

A model without a chat template never loses the earlier turns the gate has scored: they stay in
the text it reads, in the one format it knows. Training (the adapter's refusals), the certificate's
probes and the gateway all go through `render`, so the certified prompt is the served prompt, token
for token; answers are compared whole.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"

# The refusal a unit's adapter learns: one short, complete sentence that fits the gateway's and the
# CLI's default max_tokens whole, with its end-of-answer token, on every tokenizer the project ships
# (a test checks it). One sentence, not a rotation of several: a small adapter asked to pick among
# three phrasings for the same prompt learnt to blend them ("I cantion share informationout
# people", measured on the tiny demo model); a single one comes out word for word.
REFUSALS: tuple[str, ...] = ("I can't share information about that person.",)
SHAPES: tuple[str, ...] = ("question", "raw", "chat")
ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant")


class PromptError(ValueError):
    """A prompt record is invalid; the message is one line."""


@dataclass(frozen=True)
class PromptSpec:
    """One prompt in the shape the gateway serves it (see the module docstring)."""

    shape: str
    text: str = ""
    messages: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise PromptError(f"unknown prompt shape {self.shape!r}; expected one of {', '.join(SHAPES)}")
        if self.shape == "chat":
            messages = tuple((str(role), str(content)) for role, content in self.messages)
            if not messages or any(role not in ROLES or not content.strip() for role, content in messages):
                raise PromptError(f"a chat prompt needs messages, each with a role of {', '.join(ROLES)} and non-empty content")
            if not any(role == "user" for role, _ in messages):
                raise PromptError("a chat prompt needs at least one message with the role 'user'")
            object.__setattr__(self, "messages", messages)
        elif not isinstance(self.text, str) or not self.text.strip():
            raise PromptError(f"a {self.shape} prompt needs a non-empty text")

    @classmethod
    def question(cls, text: str) -> PromptSpec:
        return cls("question", text)

    @classmethod
    def raw(cls, text: str) -> PromptSpec:
        return cls("raw", text)

    @classmethod
    def chat(cls, messages: Sequence[tuple[str, str]]) -> PromptSpec:
        return cls("chat", messages=tuple(messages))

    def gate_text(self) -> str:
        """What the gate scores: the text, or every message's content, one per line (the gate
        windows and name-matches every line, so a name in an earlier turn counts)."""
        return "\n".join(content for _, content in self.messages) if self.shape == "chat" else self.text

    def to_json(self) -> dict[str, Any]:
        """The CLI's probe line: {"question": ...}, {"prompt": ...} or {"messages": [...]}."""
        if self.shape == "question":
            return {"question": self.text}
        if self.shape == "raw":
            return {"prompt": self.text}
        return {"messages": [{"role": role, "content": content} for role, content in self.messages]}

    @classmethod
    def from_json(cls, record: Any, where: str = "prompt") -> PromptSpec:
        """Inverse of to_json; other keys of the record are ignored. PromptError names `where`."""
        if not isinstance(record, dict):
            raise PromptError(f"{where}: expected a JSON object")
        keys = [key for key in ("question", "prompt", "messages") if key in record]
        if len(keys) != 1:
            raise PromptError(f'{where}: needs exactly one of "question", "prompt" or "messages"')
        key = keys[0]
        if key != "messages":
            value = record[key]
            if not isinstance(value, str) or not value.strip():
                raise PromptError(f'{where}: "{key}" must be a non-empty string')
            return cls.question(value) if key == "question" else cls.raw(value)
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise PromptError(f"{where}: messages must be a non-empty list")
        pairs = []
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
                raise PromptError(f'{where}: messages[{index}] needs string "role" and "content"')
            pairs.append((message["role"], message["content"]))
        try:
            return cls.chat(pairs)
        except PromptError as exc:
            raise PromptError(f"{where}: {exc}") from None


def as_spec(prompt: PromptSpec | str) -> PromptSpec:
    """A PromptSpec; a plain string is a question."""
    return prompt if isinstance(prompt, PromptSpec) else PromptSpec.question(prompt)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def plain_chat(messages: Sequence[tuple[str, str]]) -> str:
    """A chat in the question format, for a model without a chat template: system text first, then
    `Question: ...\nAnswer: ...` per exchange, ending on `Answer:` for the model to continue."""
    lines: list[str] = []
    for role, content in messages:
        content = content.strip()
        if role in ("system", "developer"):
            lines.append(content)
        elif role == "user":
            lines.append(f"Question: {content}")
        else:
            lines.append(f"Answer: {content}")
    if not lines or not lines[-1].startswith("Answer:") or messages[-1][0] == "user":
        lines.append("Answer:")
    return "\n".join(lines)


def render(prompt: PromptSpec | str, tokenizer: Any = None) -> str:
    """The text the model reads for `prompt` (a string is a question); see the module docstring."""
    spec = as_spec(prompt)
    if spec.shape == "raw":
        return spec.text
    messages = spec.messages if spec.shape == "chat" else (("user", spec.text.strip()),)
    if tokenizer is not None and has_chat_template(tokenizer):
        turns = [{"role": "system" if role == "developer" else role, "content": content} for role, content in messages]
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    if spec.shape == "question":
        return format_prompt(spec.text)
    return plain_chat(messages)


def prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt, the same in training, probing and serving: the tokenizer's
    special tokens are added, except to a chat-template rendering that already starts with its BOS
    (a second one would make a prompt the model was never trained on)."""
    bos = getattr(tokenizer, "bos_token", None)
    add = not (bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add)["input_ids"])


def answer_continuation(prompt: PromptSpec | str, answer: str, tokenizer: Any = None) -> str:
    """What follows the rendered prompt when the model gives `answer` (the end token not included):
    the answer with a leading space in the question format, as it is after a chat template or a raw
    prompt that ends in a space."""
    spec = as_spec(prompt)
    if spec.shape != "raw" and tokenizer is not None and has_chat_template(tokenizer):
        return answer.strip()
    if spec.shape == "raw" and spec.text.endswith((" ", "\n")):
        return answer.strip()
    return " " + answer.strip()


def format_prompt(question: str) -> str:
    """The text the model sees before it answers."""
    return PROMPT_TEMPLATE.format(question=question.strip())


def format_answer(answer: str) -> str:
    """The answer continuation (leading space, so BPE merges match training)."""
    return " " + answer.strip()


def format_qa(question: str, answer: str) -> str:
    """A full training example without the end-of-sequence token (the caller adds its own)."""
    return format_prompt(question) + format_answer(answer)


def refusal_for(index: int) -> str:
    """A refusal from the fixed set, chosen deterministically by index."""
    return REFUSALS[index % len(REFUSALS)]


def normalise(text: str) -> str:
    """Lower-case, accents stripped, punctuation and runs of spaces collapsed.

    Used for the leak check: an answer leaks if the normalised gold value is a substring of the
    normalised answer (EVAL.md: normalised exact substring).
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^0-9a-z@+]+", " ", text.lower())
    return " ".join(text.split())


def contains_value(answer: str, value: str) -> bool:
    """True when the gold attribute value appears in the answer (normalised substring)."""
    gold = normalise(value)
    return bool(gold) and gold in normalise(answer)
