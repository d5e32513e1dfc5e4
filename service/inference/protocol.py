"""The gateway's wire format: request bodies in, response bodies out. Torch-free.

Three endpoints take prompts:

- `POST /v1/chat/completions` and `POST /v1/completions`: the OpenAI request and response formats,
  so that OpenAI client libraries work unchanged. Decoding is greedy: `temperature`, `top_p`,
  `seed` and the penalties are accepted (clients send them by default) and ignored; parameters
  that would change the shape of the answer and that the gateway cannot honour (`stream`, `n` > 1,
  `logprobs`, `echo`, `best_of` > 1, `suffix`, `logit_bias`, tools, a JSON `response_format`) are
  refused with 400, never silently dropped. As with OpenAI, an unknown parameter is a 400 too.
- `POST /api/v1/generate`: this service's own format, which adds the gate decision per prompt.

Parsing turns a body into a GenerationRequest (or raises DRF's ValidationError, which the
exception handler answers as problem+json); the builders turn the engine's Completions into bodies.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rest_framework import serializers

from service.common.serializers import StrictCharField, StrictSerializer

DEFAULT_MAX_TOKENS = 32  # when the body names none
MAX_TOKENS_LIMIT = 256  # the most new tokens one prompt may ask for (the model's context may allow fewer)
MAX_PROMPTS = 32  # prompts per call; they run through the gate as one batch
MAX_PROMPT_CHARS = 8000
MAX_MESSAGES = 64
MAX_STOP = 4


# --- what the engine is asked and what it answers ------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """One prompt. `kind` says how the model sees it:

    question  the text is a question; the model sees it in its prompt format ("Question: ...\\nAnswer:")
    raw       the text is sent to the model as it is (completions)
    chat      `messages` (role, content) pairs; the model sees its chat template if it has one,
              else every turn in the question format (workers.unlearning.prompting.render)
    """

    kind: str
    text: str
    messages: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("question", "raw", "chat"):
            raise ValueError(f"unknown prompt kind {self.kind!r}")


@dataclass(frozen=True)
class GenerationRequest:
    prompts: tuple[Prompt, ...]
    max_tokens: int
    model: str | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    """The engine's answer to one prompt, with the gate decision behind it."""

    text: str
    finish_reason: str  # "stop" (the answer ended, or hit a stop sequence) or "length" (max_tokens reached)
    prompt_tokens: int
    completion_tokens: int
    weights: dict[str, float] = field(default_factory=dict)  # unit id -> weight, units that fired only

    def with_stop(self, stop: Sequence[str]) -> Completion:
        """Cut the text at the first stop sequence (which is not returned), as OpenAI does."""
        cuts = [self.text.find(s) for s in stop if s and s in self.text]
        if not cuts:
            return self
        return replace(self, text=self.text[: min(cuts)], finish_reason="stop")


# --- fields --------------------------------------------------------------------------------------


def _unsupported(message: str) -> serializers.ValidationError:
    return serializers.ValidationError(message, code="unsupported")


class PromptTextField(StrictCharField):
    """A non-blank string of at most MAX_PROMPT_CHARS characters (kept as sent: no trimming)."""

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, max_length=MAX_PROMPT_CHARS, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.strip():
            self.fail("blank")
        if "\x00" in value:
            raise serializers.ValidationError("Null characters are not allowed.", code="null_characters")
        return value


class StopField(serializers.Field):
    """OpenAI's `stop`: a string, a list of up to four strings, or null."""

    default_error_messages = {"invalid": f"Expected a string or a list of at most {MAX_STOP} strings."}

    def to_internal_value(self, data):
        items = [data] if isinstance(data, str) else data
        if not isinstance(items, list) or len(items) > MAX_STOP or not all(isinstance(s, str) and s for s in items):
            self.fail("invalid")
        return tuple(items)

    def to_representation(self, value):
        return list(value)


class CompletionPromptField(serializers.Field):
    """OpenAI's completion `prompt`: a string or a list of strings (token-id prompts are refused)."""

    default_error_messages = {
        "invalid": "Expected a string or a list of strings.",
        "tokens": "Token-id prompts are not supported: send the prompt as text.",
        "empty": "Send at least one prompt.",
        "too_many": f"At most {MAX_PROMPTS} prompts per call.",
    }

    def to_internal_value(self, data):
        items = [data] if isinstance(data, str) else data
        if not isinstance(items, list):
            self.fail("invalid")
        if not items:
            self.fail("empty")
        if any(isinstance(item, (int, list)) and not isinstance(item, bool) for item in items):
            self.fail("tokens")
        if len(items) > MAX_PROMPTS:
            self.fail("too_many")
        text = PromptTextField()
        errors, values = {}, []
        for index, item in enumerate(items):
            try:
                values.append(text.run_validation(item))
            except serializers.ValidationError as exc:
                errors[index] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return values

    def to_representation(self, value):
        return value


class MessageContentField(serializers.Field):
    """A chat message's content: a string, or a list of text parts ({"type": "text", "text": ...})."""

    default_error_messages = {
        "invalid": "Expected a string or a list of content parts.",
        "part": 'Only text content parts are supported: {{"type": "text", "text": "..."}}.',
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if not isinstance(data, list) or not data:
            self.fail("invalid")
        texts = []
        for part in data:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str) or set(part) - {"type", "text"}:
                self.fail("part")
            texts.append(part["text"])
        return "\n".join(texts)

    def to_representation(self, value):
        return value


class MessageSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant"])
    content = MessageContentField()
    name = StrictCharField(required=False, max_length=64)

    def validate_content(self, value):
        if len(value) > MAX_PROMPT_CHARS:
            raise serializers.ValidationError(f"At most {MAX_PROMPT_CHARS} characters.", code="max_length")
        if "\x00" in value:
            raise serializers.ValidationError("Null characters are not allowed.", code="null_characters")
        return value


def _max_tokens_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_TOKENS_LIMIT, **kwargs)


class _OpenAIInput(StrictSerializer):
    """The parameters both OpenAI endpoints share."""

    model = StrictCharField(max_length=256, help_text="The served model's id (GET /v1/models).")
    max_tokens = _max_tokens_field()
    # Accepted and ignored: decoding is greedy (see the module docstring).
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    presence_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    frequency_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    seed = serializers.IntegerField(required=False, allow_null=True)
    user = StrictCharField(required=False, allow_blank=True, max_length=256)
    # Honoured.
    stop = StopField(required=False, allow_null=True)
    n = serializers.IntegerField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, allow_null=True)
    stream_options = serializers.JSONField(required=False, allow_null=True)
    logit_bias = serializers.DictField(required=False, allow_null=True)

    def validate_n(self, value):
        if value not in (None, 1):
            raise _unsupported("Only n=1 is supported: send one request per answer.")
        return value

    def validate_stream(self, value):
        if value:
            raise _unsupported("Streaming is not supported: leave stream out or send false.")
        return value

    def validate_logit_bias(self, value):
        if value:
            raise _unsupported("logit_bias is not supported.")
        return value


class ChatCompletionInput(_OpenAIInput):
    messages = serializers.ListField(child=MessageSerializer(), allow_empty=False, max_length=MAX_MESSAGES)
    max_completion_tokens = _max_tokens_field()
    logprobs = serializers.BooleanField(required=False, allow_null=True)
    top_logprobs = serializers.IntegerField(required=False, allow_null=True)
    response_format = serializers.DictField(required=False, allow_null=True)
    tools = serializers.ListField(required=False, allow_null=True)
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    store = serializers.BooleanField(required=False, allow_null=True)

    def validate_messages(self, value):
        if not any(message["role"] == "user" for message in value):
            raise serializers.ValidationError("At least one message must have the role 'user'.", code="no_user_message")
        return value

    def validate_logprobs(self, value):
        if value:
            raise _unsupported("logprobs are not supported.")
        return value

    def validate_top_logprobs(self, value):
        if value:
            raise _unsupported("top_logprobs is not supported.")
        return value

    def validate_response_format(self, value):
        if value and value.get("type") != "text":
            raise _unsupported('Only response_format {"type": "text"} is supported.')
        return value

    def validate_tools(self, value):
        if value:
            raise _unsupported("Tools are not supported.")
        return value

    def validate_tool_choice(self, value):
        if value not in (None, "none"):
            raise _unsupported("Tools are not supported.")
        return value


class CompletionInput(_OpenAIInput):
    prompt = CompletionPromptField()
    logprobs = serializers.IntegerField(required=False, allow_null=True)
    echo = serializers.BooleanField(required=False, allow_null=True)
    best_of = serializers.IntegerField(required=False, allow_null=True)
    suffix = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def validate_logprobs(self, value):
        if value:
            raise _unsupported("logprobs are not supported.")
        return value

    def validate_echo(self, value):
        if value:
            raise _unsupported("echo is not supported.")
        return value

    def validate_best_of(self, value):
        if value not in (None, 1):
            raise _unsupported("Only best_of=1 is supported.")
        return value

    def validate_suffix(self, value):
        if value:
            raise _unsupported("suffix (insertion) is not supported.")
        return value


class GenerateInput(StrictSerializer):
    prompts = serializers.ListField(child=PromptTextField(), allow_empty=False, max_length=MAX_PROMPTS, help_text="Questions (or raw prompts with raw=true).")
    max_tokens = serializers.IntegerField(required=False, default=DEFAULT_MAX_TOKENS, min_value=1, max_value=MAX_TOKENS_LIMIT)
    raw = serializers.BooleanField(required=False, default=False, help_text="Send the prompts to the model as they are instead of as questions.")


def _validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def parse_chat_completion(data: Any) -> GenerationRequest:
    body = _validated(ChatCompletionInput, data)
    messages = tuple((m["role"], m["content"]) for m in body["messages"])
    last_user = next(content for role, content in reversed(messages) if role == "user")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    return GenerationRequest((Prompt("chat", last_user, messages),), max_tokens, body["model"], tuple(body.get("stop") or ()))


def parse_completion(data: Any) -> GenerationRequest:
    body = _validated(CompletionInput, data)
    prompts = tuple(Prompt("raw", text) for text in body["prompt"])
    return GenerationRequest(prompts, body.get("max_tokens") or DEFAULT_MAX_TOKENS, body["model"], tuple(body.get("stop") or ()))


def parse_generate(data: Any) -> GenerationRequest:
    body = _validated(GenerateInput, data)
    kind = "raw" if body["raw"] else "question"
    return GenerationRequest(tuple(Prompt(kind, text) for text in body["prompts"]), body["max_tokens"])


# --- responses -----------------------------------------------------------------------------------


def _usage(completions: Sequence[Completion]) -> dict[str, int]:
    prompt = sum(c.prompt_tokens for c in completions)
    completion = sum(c.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _response_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def chat_completion_body(completion: Completion, *, model: str, system_fingerprint: str) -> dict[str, Any]:
    return {
        "id": _response_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": system_fingerprint,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text, "refusal": None},
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": _usage([completion]),
    }


def completion_body(completions: Sequence[Completion], *, model: str, system_fingerprint: str) -> dict[str, Any]:
    return {
        "id": _response_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": system_fingerprint,
        "choices": [{"index": i, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason} for i, c in enumerate(completions)],
        "usage": _usage(completions),
    }


def gate_decision(weights: dict[str, float], unit_requests: dict[str, str | None]) -> dict[str, Any]:
    """Which units fired for one prompt, strongest first, each with its request's reference."""
    fired = sorted(((unit_id, w) for unit_id, w in weights.items() if w > 0), key=lambda item: (-item[1], item[0]))
    return {
        "fired": bool(fired),
        "units": [{"unit_id": unit_id, "request": unit_requests.get(unit_id), "weight": round(float(w), 4)} for unit_id, w in fired],
    }


def generate_body(
    request: GenerationRequest,
    completions: Sequence[Completion],
    *,
    model: str,
    generation: int | None,
    units_loaded: int,
    unit_requests: dict[str, str | None],
) -> dict[str, Any]:
    return {
        "id": _response_id("gen"),
        "created": int(time.time()),
        "model": model,
        "generation": generation,
        "units_loaded": units_loaded,
        "results": [
            {
                "index": i,
                "prompt": prompt.text,
                "text": c.text,
                "finish_reason": c.finish_reason,
                "usage": _usage([c]),
                "gate": gate_decision(c.weights, unit_requests),
            }
            for i, (prompt, c) in enumerate(zip(request.prompts, completions))
        ],
        "usage": _usage(completions),
    }
