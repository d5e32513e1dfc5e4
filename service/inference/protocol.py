"""The gateway's wire format: request bodies in, response bodies out. Torch-free.

Three endpoints take prompts:

- `POST /v1/chat/completions` and `POST /v1/completions`: the OpenAI request and response formats,
  so that OpenAI client libraries work unchanged, streamed (`stream: true`, server-sent events of
  OpenAI's chunk objects) or not. Decoding is greedy: `temperature`, `top_p`, `seed` and the
  penalties are accepted (clients send them by default) and ignored; parameters that would change
  the shape of the answer and that the gateway cannot honour (`n` > 1, `logprobs`, `echo`,
  `best_of` > 1, `suffix`, `logit_bias`, tools, a JSON `response_format`) are refused with 400,
  never silently dropped. As with OpenAI, an unknown parameter is a 400 too.
- `POST /api/v1/generate`: this service's own format, which adds the gate decision per prompt.

Parsing turns a body into a GenerationRequest (or raises DRF's ValidationError, which the
exception handler answers as problem+json); the builders turn the engine's Completions into bodies.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rest_framework import serializers

from service.common.serializers import StrictCharField, StrictSerializer

DEFAULT_MAX_TOKENS = 32  # when the body names none
MAX_TOKENS_LIMIT = 256  # the most new tokens one prompt may ask for when the model's context is unknown; else context - 1
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
              else every turn in the question format (workers.engine.prompting.render)
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
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk with the usage
    param: str = "prompt"  # the body's name for the prompts, for errors about them (OpenAI's `param`)
    max_tokens_given: bool = True  # False: max_tokens is the default, not the caller's


@dataclass(frozen=True)
class Completion:
    """The engine's answer to one prompt, with the gate decision behind it."""

    text: str
    finish_reason: str  # "stop" (the answer ended, or hit a stop sequence) or "length" (max_tokens reached)
    prompt_tokens: int
    completion_tokens: int
    weights: dict[str, float] = field(default_factory=dict)  # unit id -> weight, units that fired only
    adapter_load_seconds: float = 0.0  # adapters on demand: loading the fired units' adapters for this batch (0: all resident)

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
    # The upper bound depends on the served model's context: checked in _validated (max_tokens_limit).
    return serializers.IntegerField(required=False, allow_null=True, min_value=1, **kwargs)


class StreamOptionsSerializer(StrictSerializer):
    include_usage = serializers.BooleanField(required=False, allow_null=True)


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
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    logit_bias = serializers.DictField(required=False, allow_null=True)

    def validate_n(self, value):
        if value not in (None, 1):
            raise _unsupported("Only n=1 is supported: send one request per answer.")
        return value

    def validate(self, data):
        if data.get("stream_options") and not data.get("stream"):
            raise serializers.ValidationError({"stream_options": ["stream_options is only allowed when stream is true."]}, code="invalid")
        return data

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
    max_tokens = serializers.IntegerField(required=False, default=DEFAULT_MAX_TOKENS, min_value=1)
    raw = serializers.BooleanField(required=False, default=False, help_text="Send the prompts to the model as they are instead of as questions.")


def max_tokens_limit(context_length: int | None) -> int:
    """The most new tokens a call may ask for: all of the model's context but one token for the
    prompt (whether a given prompt leaves that much room is checked once it is tokenized)."""
    return max(1, context_length - 1) if context_length else MAX_TOKENS_LIMIT


def _validated(serializer_class: type[serializers.Serializer], data: Any, limit: int) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    body = serializer.validated_data
    for name in ("max_tokens", "max_completion_tokens"):
        if (body.get(name) or 0) > limit:
            message = f"Ensure this value is less than or equal to {limit} (the model's context minus at least one prompt token)."
            raise serializers.ValidationError({name: [serializers.ErrorDetail(message, code="max_value")]})
    return body


def _stream_flags(body: dict[str, Any]) -> dict[str, bool]:
    return {"stream": bool(body.get("stream")), "include_usage": bool((body.get("stream_options") or {}).get("include_usage"))}


def parse_chat_completion(data: Any, *, max_tokens_limit: int = MAX_TOKENS_LIMIT) -> GenerationRequest:
    body = _validated(ChatCompletionInput, data, max_tokens_limit)
    messages = tuple((m["role"], m["content"]) for m in body["messages"])
    last_user = next(content for role, content in reversed(messages) if role == "user")
    given = body.get("max_completion_tokens") or body.get("max_tokens")
    return GenerationRequest(
        (Prompt("chat", last_user, messages),),
        given or DEFAULT_MAX_TOKENS,
        body["model"],
        tuple(body.get("stop") or ()),
        param="messages",
        max_tokens_given=bool(given),
        **_stream_flags(body),
    )


def parse_completion(data: Any, *, max_tokens_limit: int = MAX_TOKENS_LIMIT) -> GenerationRequest:
    body = _validated(CompletionInput, data, max_tokens_limit)
    prompts = tuple(Prompt("raw", text) for text in body["prompt"])
    given = body.get("max_tokens")
    return GenerationRequest(
        prompts, given or DEFAULT_MAX_TOKENS, body["model"], tuple(body.get("stop") or ()), param="prompt", max_tokens_given=bool(given), **_stream_flags(body)
    )


def parse_generate(data: Any, *, max_tokens_limit: int = MAX_TOKENS_LIMIT) -> GenerationRequest:
    body = _validated(GenerateInput, data, max_tokens_limit)
    kind = "raw" if body["raw"] else "question"
    return GenerationRequest(tuple(Prompt(kind, text) for text in body["prompts"]), body["max_tokens"], param="prompts")


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


def gate_decision(weights: dict[str, float], unit_requests: dict[str, str | None], adapter_load_seconds: float = 0.0) -> dict[str, Any]:
    """Which units fired for one prompt, strongest first, each with its request's reference; with
    `adapter_load_ms` when the gateway loaded a fired unit's adapter for it (adapters on demand)."""
    fired = sorted(((unit_id, w) for unit_id, w in weights.items() if w > 0), key=lambda item: (-item[1], item[0]))
    decision: dict[str, Any] = {
        "fired": bool(fired),
        "units": [{"unit_id": unit_id, "request": unit_requests.get(unit_id), "weight": round(float(w), 4)} for unit_id, w in fired],
    }
    if fired and adapter_load_seconds > 0:
        decision["adapter_load_ms"] = round(1000.0 * adapter_load_seconds, 2)
    return decision


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
                "gate": gate_decision(c.weights, unit_requests, c.adapter_load_seconds),
            }
            for i, (prompt, c) in enumerate(zip(request.prompts, completions))
        ],
        "usage": _usage(completions),
    }


# --- streamed responses (server-sent events of OpenAI's chunk objects) -----------------------------

SSE_DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying a JSON object."""
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


class ChunkWriter:
    """The chunk objects of one streamed call, all with the same id, created time and model
    (OpenAI's `chat.completion.chunk` or `text_completion` objects)."""

    def __init__(self, *, chat: bool, model: str, system_fingerprint: str, include_usage: bool):
        self.chat, self.include_usage = chat, include_usage
        self.id = _response_id("chatcmpl" if chat else "cmpl")
        self.created = int(time.time())
        self.model, self.system_fingerprint = model, system_fingerprint

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            "choices": choices,
        }
        if self.include_usage:
            body["usage"] = None  # as OpenAI: null on every chunk but the last
        return body

    def _choice(self, index: int, content: str | None, finish_reason: str | None, *, role: bool = False) -> dict[str, Any]:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else ({} if content is None else {"content": content})
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"index": index, "text": content or "", "logprobs": None, "finish_reason": finish_reason}

    def start(self, index: int) -> bytes | None:
        """Chat streams open each choice with the role; completions have no such chunk."""
        return sse(self._chunk([self._choice(index, "", None, role=True)])) if self.chat else None

    def text(self, index: int, delta: str) -> bytes:
        return sse(self._chunk([self._choice(index, delta, None)]))

    def end(self, index: int, finish_reason: str) -> bytes:
        return sse(self._chunk([self._choice(index, None, finish_reason)]))

    def usage(self, completions: Sequence[Completion]) -> bytes | None:
        if not self.include_usage:
            return None
        body = self._chunk([])
        body["usage"] = _usage(completions)
        return sse(body)

    @staticmethod
    def error(error: dict[str, Any]) -> bytes:
        """An error after the stream began (OpenAI's clients raise it): {"error": {...}}."""
        return sse({"error": error})
