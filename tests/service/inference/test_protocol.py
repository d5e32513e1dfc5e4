"""Parsing and shaping the gateway's bodies (protocol.py): no model, no database."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from service.inference.protocol import (
    DEFAULT_MAX_TOKENS,
    MAX_PROMPTS,
    Completion,
    GenerationRequest,
    Prompt,
    chat_completion_body,
    completion_body,
    gate_decision,
    generate_body,
    parse_chat_completion,
    parse_completion,
    parse_generate,
)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Where does Ada live?"}]}
COMPLETION = {"model": "m", "prompt": "Question: Where does Ada live?\nAnswer:"}


def errors_of(parse, body) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        parse(body)
    from service.common.problems import flatten_validation_errors

    return {e["field"]: e["message"] for e in flatten_validation_errors(info.value.detail)}


def test_chat_takes_the_last_user_message_and_keeps_the_conversation():
    parsed = parse_chat_completion(
        {
            **CHAT,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": [{"type": "text", "text": "Where does"}, {"type": "text", "text": "Ada live?"}]},
            ],
            "max_completion_tokens": 12,
            "stop": "\n",
        }
    )
    [prompt] = parsed.prompts
    assert prompt.kind == "chat" and prompt.text == "Where does\nAda live?"
    assert [role for role, _ in prompt.messages] == ["system", "user", "assistant", "user"]
    assert parsed.max_tokens == 12 and parsed.stop == ("\n",) and parsed.model == "m"


def test_openai_sampling_parameters_are_accepted_and_decoding_stays_greedy():
    parsed = parse_chat_completion(
        {**CHAT, "temperature": 0.7, "top_p": 0.9, "seed": 4, "presence_penalty": 0.5, "user": "u-1", "n": 1, "stream": False, "max_tokens": None}
    )
    assert parsed.max_tokens == DEFAULT_MAX_TOKENS


@pytest.mark.parametrize(
    "extra, field, words",
    [
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed when stream is true"),
        ({"stream": True, "stream_options": {"include_everything": True}}, "stream_options.include_everything", "Unknown field"),
        ({"n": 2}, "n", "Only n=1"),
        ({"logprobs": True}, "logprobs", "not supported"),
        ({"tools": [{"type": "function"}]}, "tools", "Tools are not supported"),
        ({"response_format": {"type": "json_object"}}, "response_format", "text"),
        ({"logit_bias": {"50256": -100}}, "logit_bias", "not supported"),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"max_tokens": 100000}, "max_tokens", "less than or equal to 256 (the model's context minus"),
        ({"temperature": 3}, "temperature", "less than or equal to 2"),
        ({"frobnicate": 1}, "frobnicate", "Unknown field"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"messages": []}, "messages", "not be empty"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages", "role 'user'"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages.0.content", "Only text content"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role", "not a valid choice"),
        ({"messages": [{"role": "user", "content": None}]}, "messages.0.content", "may not be null"),
        ({"messages": [{"role": "user", "content": "hi", "tool_calls": []}]}, "messages.0.tool_calls", "Unknown field"),
        ({"messages": "hello"}, "messages", "list"),
        ({"model": 7}, "model", "Expected a string"),
    ],
)
def test_chat_refusals_name_the_field_and_say_why(extra, field, words):
    errors = errors_of(parse_chat_completion, {**CHAT, **extra})
    assert field in errors and words in errors[field], errors


def test_chat_requires_a_model_and_messages():
    assert set(errors_of(parse_chat_completion, {})) == {"model", "messages"}
    assert errors_of(parse_chat_completion, [1, 2]) == {"": "Expected a JSON object."}


def test_completion_prompt_is_a_string_or_a_list_of_strings_run_as_they_are():
    single = parse_completion(COMPLETION)
    assert single.prompts == (Prompt("raw", COMPLETION["prompt"]),)
    several = parse_completion({**COMPLETION, "prompt": ["one", "two"], "max_tokens": 5})
    assert [p.text for p in several.prompts] == ["one", "two"] and several.max_tokens == 5


@pytest.mark.parametrize(
    "prompt, words",
    [
        ([1, 2, 3], "Token-id prompts are not supported"),
        ([[1, 2]], "Token-id prompts are not supported"),
        ([], "at least one prompt"),
        (["fine", "   "], "may not be blank"),
        ("", "may not be blank"),
        (["x"] * (MAX_PROMPTS + 1), f"At most {MAX_PROMPTS} prompts"),
        ({"text": "x"}, "a string or a list of strings"),
        (["a\x00b"], "Null characters"),
        (["x" * 9000], "no more than 8000 characters"),
    ],
)
def test_completion_prompt_refusals(prompt, words):
    errors = errors_of(parse_completion, {**COMPLETION, "prompt": prompt})
    assert any(words in message for message in errors.values()), errors


@pytest.mark.parametrize("extra", [{"echo": True}, {"best_of": 3}, {"suffix": "end"}, {"logprobs": 5}, {"stream_options": {"include_usage": True}}])
def test_completion_refuses_what_it_cannot_honour(extra):
    [field] = extra
    assert field in errors_of(parse_completion, {**COMPLETION, **extra})


def test_generate_takes_questions_or_raw_prompts():
    parsed = parse_generate({"prompts": ["Where does Ada live?", "Who employs Bo?"]})
    assert [p.kind for p in parsed.prompts] == ["question", "question"] and parsed.max_tokens == DEFAULT_MAX_TOKENS
    assert parse_generate({"prompts": ["Question: x\nAnswer:"], "raw": True, "max_tokens": 8}).prompts[0].kind == "raw"
    assert set(errors_of(parse_generate, {"prompts": []})) == {"prompts"}
    assert set(errors_of(parse_generate, {"prompts": ["ok"], "model": "m"})) == {"model"}
    assert set(errors_of(parse_generate, {"prompts": "one string"})) == {"prompts"}


def test_stop_sequences_cut_the_answer_and_finish_it():
    completion = Completion("Lisbon. Next question", "length", 5, 6)
    cut = completion.with_stop([".", "Next"])
    assert cut.text == "Lisbon" and cut.finish_reason == "stop"
    assert completion.with_stop(["zzz"]) is completion


def test_openai_response_shapes():
    a = Completion("Lisbon", "stop", 14, 2, {"u1": 0.9})
    b = Completion("I can't share that", "length", 13, 8)
    chat = chat_completion_body(a, model="m", system_fingerprint="fp_x")
    assert chat["id"].startswith("chatcmpl-") and chat["object"] == "chat.completion" and isinstance(chat["created"], int)
    assert chat["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Lisbon", "refusal": None}, "logprobs": None, "finish_reason": "stop"}]
    assert chat["usage"] == {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16}
    text = completion_body([a, b], model="m", system_fingerprint="fp_x")
    assert text["object"] == "text_completion" and text["id"].startswith("cmpl-")
    assert [(c["index"], c["text"], c["finish_reason"]) for c in text["choices"]] == [(0, "Lisbon", "stop"), (1, "I can't share that", "length")]
    assert text["usage"] == {"prompt_tokens": 27, "completion_tokens": 10, "total_tokens": 37}


def test_the_gate_decision_lists_fired_units_strongest_first_with_their_requests():
    decision = gate_decision({"b": 0.5, "a": 0.98765, "c": 0.0}, {"a": "RTBF-AAAAAA", "b": None, "c": "RTBF-CCCCCC"})
    assert decision == {
        "fired": True,
        "units": [{"unit_id": "a", "request": "RTBF-AAAAAA", "weight": 0.9877}, {"unit_id": "b", "request": None, "weight": 0.5}],
    }
    assert gate_decision({}, {}) == {"fired": False, "units": []}
    request = GenerationRequest((Prompt("question", "q1"), Prompt("question", "q2")), 8)
    body = generate_body(
        request, [Completion("x", "stop", 3, 1, {"a": 1.0}), Completion("y", "stop", 3, 1)], model="m", generation=7, units_loaded=1, unit_requests={"a": "R"}
    )
    assert body["generation"] == 7 and [r["prompt"] for r in body["results"]] == ["q1", "q2"]
    assert [r["gate"]["fired"] for r in body["results"]] == [True, False] and body["usage"]["total_tokens"] == 8


def test_streaming_and_its_usage_option_are_parsed():
    parsed = parse_chat_completion({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert parsed.stream and parsed.include_usage and parsed.param == "messages"
    plain = parse_completion({**COMPLETION, "stream": True})
    assert plain.stream and not plain.include_usage and plain.param == "prompt"
    assert not parse_completion(COMPLETION).stream


def test_max_tokens_limit_follows_the_model_context():
    from service.inference.protocol import max_tokens_limit

    assert max_tokens_limit(256) == 255 and max_tokens_limit(None) == 256
    assert parse_completion({**COMPLETION, "max_tokens": 255}, max_tokens_limit=255).max_tokens == 255
    errors = errors_of(lambda body: parse_completion(body, max_tokens_limit=255), {**COMPLETION, "max_tokens": 256})
    assert "less than or equal to 255" in errors["max_tokens"]
    assert not parse_completion(COMPLETION).max_tokens_given and parse_completion({**COMPLETION, "max_tokens": 4}).max_tokens_given
