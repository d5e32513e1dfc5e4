"""The gateway's endpoints against a gateway object on the tiny demo model (the same views, URLconf
and middleware that run_gateway serves; Django's test client instead of the socket)."""

from __future__ import annotations

import json

import pytest

from service.inference.gateway import Gateway, install
from workers.engine.prompting import contains_value

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def gateway(engine, gateway_urls):
    gateway = Gateway(engine, gateway_id="test-gateway", request_timeout=60)
    install(gateway)
    yield gateway
    install(None)


@pytest.fixture
def key(api_client_key):
    return api_client_key(("generate",))[1]


def post(client, path, body, key=None, **headers):
    if key:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type=headers.pop("content_type", "application/json"), **headers)


def test_healthz_shows_model_fingerprint_and_units_without_credentials(client, gateway, engine, trained_unit):
    engine.load_unit(trained_unit)
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["gateway_id"] == "test-gateway"
    assert body["model"] == engine.model_name and body["base_fingerprint"] == engine.fingerprint
    assert body["units"] == ["unit-forget-first"] and body["generation"] is None


def test_models_lists_the_served_model(client, gateway, key):
    body = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == [gateway.model]


def test_chat_completion_in_the_openai_format(client, gateway, key, tiny_world, people):
    qa = tiny_world.questions(people[1], "trained")[0]
    response = post(client, "/v1/chat/completions", {"model": gateway.model, "messages": [{"role": "user", "content": qa.question}], "temperature": 0.7}, key)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion" and body["model"] == gateway.model
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant" and contains_value(choice["message"]["content"], qa.answer)
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5 and usage["completion_tokens"] >= 1 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["system_fingerprint"].startswith("fp_" + gateway.engine.fingerprint[:12])


def test_completions_answer_each_prompt_of_a_list_in_order(client, gateway, key, tiny_world, people):
    qas = tiny_world.questions(people[1], "trained")[:3]
    prompts = [f"Question: {qa.question}\nAnswer:" for qa in qas]
    body = post(client, "/v1/completions", {"model": gateway.model, "prompt": prompts, "max_tokens": 24}, key).json()
    assert body["object"] == "text_completion" and [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert all(contains_value(c["text"], qa.answer) for c, qa in zip(body["choices"], qas))
    usage = body["usage"]
    assert usage["prompt_tokens"] >= 3 * 10 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    short = post(client, "/v1/completions", {"model": gateway.model, "prompt": prompts[0], "max_tokens": 1}, key).json()
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] == 1


def test_a_batch_mixing_a_forgotten_and_a_kept_person_gets_different_weights_per_row(client, gateway, engine, key, trained_unit, tiny_world, people):
    engine.load_unit(trained_unit)
    forgotten = tiny_world.questions(people[0], "trained")[0]
    kept = tiny_world.questions(people[1], "trained")[0]
    response = post(client, "/api/v1/generate", {"prompts": [forgotten.question, kept.question, forgotten.question]}, key)
    assert response.status_code == 200, response.content
    first, second, third = response.json()["results"]
    assert first["gate"]["fired"] and first["gate"]["units"][0]["unit_id"] == "unit-forget-first" and first["gate"]["units"][0]["weight"] > 0.5
    assert not contains_value(first["text"], forgotten.answer) and third["text"] == first["text"]
    assert second["gate"] == {"fired": False, "units": []} and contains_value(second["text"], kept.answer)
    assert response.json()["units_loaded"] == 1


def test_stop_sequences_are_honoured(client, gateway, key, tiny_world, people):
    qa = tiny_world.questions(people[1], "trained")[0]
    stop = qa.answer[1:3]
    body = post(client, "/v1/chat/completions", {"model": gateway.model, "messages": [{"role": "user", "content": qa.question}], "stop": [stop]}, key).json()
    assert stop not in body["choices"][0]["message"]["content"] and body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "path, body, status, code",
    [
        ("/v1/chat/completions", {}, 400, "validation_error"),
        (
            "/v1/chat/completions",
            {"model": "MODEL", "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": True}},
            400,
            "validation_error",
        ),
        ("/v1/chat/completions", {"model": "MODEL", "messages": [{"role": "user", "content": "x " * 300}], "stream": True}, 400, "context_length_exceeded"),
        ("/v1/completions", {"model": "MODEL", "prompt": "hello", "max_tokens": 128}, 400, "validation_error"),
        ("/v1/completions", {"model": "MODEL", "prompt": "hello", "max_tokens": 127, "stream": True}, 400, "context_length_exceeded"),
        ("/v1/chat/completions", {"model": "MODEL", "messages": [{"role": "user", "content": "hi"}], "n": 3}, 400, "validation_error"),
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found"),
        ("/v1/chat/completions", "{not json", 400, "malformed_body"),
        ("/v1/chat/completions", "x" * 300_000, 413, "body_too_large"),
        ("/v1/chat/completions", "[[[[[[" * 2000 + "]]]]]]" * 2000, 400, "malformed_body"),
        ("/v1/chat/completions", [1, 2], 400, "validation_error"),
        ("/v1/completions", {"model": "MODEL", "prompt": [1, 2, 3]}, 400, "validation_error"),
        ("/v1/completions", {"model": "MODEL", "prompt": "x " * 300}, 400, "context_length_exceeded"),
        ("/v1/completions", {"model": "MODEL", "prompt": "hello", "max_tokens": "many"}, 400, "validation_error"),
        ("/api/v1/generate", {"prompts": ["ok", "x " * 300]}, 400, "context_length_exceeded"),
        ("/api/v1/generate", {"prompts": []}, 400, "validation_error"),
        ("/api/v1/generate", {"prompts": [None]}, 400, "validation_error"),
    ],
)
def test_bad_input_is_a_problem_never_a_500(client, gateway, key, path, body, status, code):
    if isinstance(body, dict) and body.get("model") == "MODEL":
        body = {**body, "model": gateway.model}
    response = post(client, path, body, key)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code and problem["status"] == status and problem["request_id"]
    if status != 413:  # answered by the shared middleware before any view; run_gateway's handler adds `error` (tests/integration)
        assert problem["error"]["code"] == code and problem["error"]["message"]  # what OpenAI client libraries read


def test_context_length_error_names_the_prompt(client, gateway, key):
    problem = post(client, "/api/v1/generate", {"prompts": ["ok", "x " * 300]}, key).json()
    assert problem["errors"][0]["field"] == "prompts.1" and "maximum context length is 128 tokens" in problem["errors"][0]["message"]
    assert problem["error"]["param"] == "prompts"


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/v1/completions", {"prompt": ["ok", "x " * 300]}, "prompt"),
        ("/v1/completions", {"prompt": ["ok", 7]}, "prompt"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x " * 300}]}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 500}, "max_tokens"),
    ],
)
def test_errors_name_the_openai_parameter(client, gateway, key, path, body, param):
    """OpenAI's `param` is the request parameter (`prompt`), not a path inside it (`prompts.0`)."""
    problem = post(client, path, {"model": gateway.model, **body}, key).json()
    assert problem["error"]["param"] == param, problem


def test_a_prompt_that_leaves_no_room_is_context_length_exceeded_and_one_that_does_fits(client, gateway, key):
    """The tiny model's context is 128 tokens: max_tokens may be 1 to 127, and prompt + max_tokens must fit."""
    limit = gateway.context_length
    assert gateway.max_tokens_limit == limit - 1
    prompt = "Question: Where does Ada live?\nAnswer:"
    prompt_tokens = post(client, "/v1/completions", {"model": gateway.model, "prompt": prompt, "max_tokens": 1}, key).json()["usage"]["prompt_tokens"]
    fits = post(client, "/v1/completions", {"model": gateway.model, "prompt": prompt, "max_tokens": limit - prompt_tokens}, key)
    assert fits.status_code == 200, fits.content
    over = post(client, "/v1/completions", {"model": gateway.model, "prompt": prompt, "max_tokens": limit - prompt_tokens + 1}, key).json()
    assert over["code"] == "context_length_exceeded" and over["error"]["param"] == "prompt"
    assert f"maximum context length is {limit} tokens" in over["detail"] and f"at most {limit - prompt_tokens}" in over["detail"]


def test_models_retrieve_answers_the_served_model_and_404_for_others(client, gateway, key):
    body = client.get(f"/v1/models/{gateway.model}", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert body["id"] == gateway.model and body["object"] == "model" and body["context_length"] == gateway.context_length
    missing = client.get("/v1/models/gpt-4o", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_usage_is_recounted_after_a_stop_cut(client, gateway, engine, key, trained_unit, tiny_world, people):
    engine.load_unit(trained_unit)
    question = tiny_world.questions(people[0], "trained")[0].question
    messages = [{"role": "user", "content": question}]
    full = post(client, "/v1/chat/completions", {"model": gateway.model, "messages": messages}, key).json()
    text = full["choices"][0]["message"]["content"]
    word = text.split()[2]
    cut = post(client, "/v1/chat/completions", {"model": gateway.model, "messages": messages, "stop": [word]}, key).json()
    returned = cut["choices"][0]["message"]["content"]
    assert returned == text[: text.index(word)] and cut["choices"][0]["finish_reason"] == "stop"
    assert cut["usage"]["completion_tokens"] == engine.count_completion_tokens(returned) < full["usage"]["completion_tokens"]


def test_wrong_content_type_and_method_and_path(client, gateway, key):
    response = post(client, "/v1/completions", "prompt=hi", key, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response["Content-Type"] == "application/problem+json"
    assert client.get("/v1/completions", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 405
    missing = client.get("/v1/embeddings")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_who_may_generate(client, gateway, api_client_key, staff):
    from service.inference.auth import staff_token_for

    body = {"prompts": ["Where does anyone live?"], "max_tokens": 4}
    anonymous = post(client, "/api/v1/generate", body)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert post(client, "/api/v1/generate", body, "fk_000000000000_not-a-real-key-at-all").status_code == 401
    assert post(client, "/api/v1/generate", body, HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz").status_code == 401
    _, read_only = api_client_key(("create", "read"))
    refused = post(client, "/api/v1/generate", body, read_only)
    assert refused.status_code == 403 and "'generate' scope" in refused.json()["detail"]
    for role, status in (("reviewer", 200), ("admin", 200), ("auditor", 403)):
        token = staff_token_for(staff(role))
        assert post(client, "/api/v1/generate", body, HTTP_AUTHORIZATION=f"Staff {token}").status_code == status, role
    forged = staff_token_for(staff("reviewer"))[:-2] + "xx"
    assert post(client, "/api/v1/generate", body, HTTP_AUTHORIZATION=f"Staff {forged}").status_code == 401


def test_an_expired_staff_token_is_refused(client, gateway, staff, monkeypatch):
    from service.inference import auth

    token = auth.staff_token_for(staff("reviewer"))
    monkeypatch.setattr(auth, "STAFF_TOKEN_MAX_AGE", -1)  # any token is older than that
    response = post(client, "/api/v1/generate", {"prompts": ["hi"]}, HTTP_AUTHORIZATION=f"Staff {token}")
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_no_gateway_installed_answers_503(client, gateway_urls):
    install(None)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["code"] == "not_ready"
