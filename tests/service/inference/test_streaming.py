"""Streaming (`stream: true`): the answer text a row may show as its tokens come, the SSE chunks of
both OpenAI endpoints through Django's test client (the threaded WSGI path), and the `openai`
package itself, sync and async, against the production server (uvicorn) on a real socket."""

from __future__ import annotations

import asyncio
import http.client
import json
import time

import pytest

from service.inference.gateway import Gateway, install
from service.inference.streaming import AnswerText, StreamChannel
from workers.engine.prompting import REFUSALS, contains_value

# --- AnswerText: what may be sent so far ---------------------------------------------------------


def feed(answer: AnswerText, pieces: list[str]) -> list[str]:
    """Feeds the decoded text growing piece by piece; returns the deltas sent (the last: finish())."""
    decoded, sent = "", []
    for piece in pieces:
        decoded += piece
        sent.append(answer.update(decoded))
        if answer.done:
            break
    sent.append(answer.finish())
    return sent


def test_the_answer_is_its_first_line_stripped_like_a_non_streamed_one():
    answer = AnswerText()
    sent = feed(answer, [" Par", "is", " ", " \n", "Rome"])
    assert "".join(sent) == "Paris" == answer.text and answer.done and not answer.stopped
    assert sent[:2] == ["Par", "is"]  # sent as it comes, the trailing spaces held back and dropped


def test_a_stop_sequence_split_over_tokens_is_never_sent():
    answer = AnswerText(stop=["can't"])
    sent = feed(answer, [" I", " ca", "n", "'t share", " that"])
    assert "".join(sent) == "I " and answer.stopped and answer.text == "I "
    assert sent[1] == " "  # "ca" could begin the stop sequence: held back (the space is the answer's either way)


def test_a_held_back_prefix_that_is_not_a_stop_sequence_is_sent_later():
    answer = AnswerText(stop=["Halt"])
    sent = feed(answer, [" The", " Hal", "cyon", " Freight"])
    assert sent[1] == " " and sent[2] == "Halcyon" and "".join(sent) == "The Halcyon Freight" and not answer.stopped


def test_an_incomplete_character_waits_for_its_last_byte():
    answer = AnswerText()
    assert answer.update(" Zo\ufffd") == "Zo"
    assert answer.update(" Zoë") == "ë"


def test_the_channel_hands_events_to_a_thread_and_to_an_event_loop():
    channel = StreamChannel(1)
    channel.push(0, "text", "a")
    assert [e.value for e in channel.get(1)] == ["a"]
    with pytest.raises(TimeoutError):
        channel.get(0.05)

    async def read():
        task = asyncio.ensure_future(channel.aget(5))
        await asyncio.sleep(0.05)
        import threading

        threading.Thread(target=channel.push, args=(0, "end", "done")).start()
        return await task

    assert [e.kind for e in asyncio.run(read())] == ["end"]


# --- SSE through the test client -----------------------------------------------------------------


@pytest.fixture
def gateway(engine, gateway_urls):
    gateway = Gateway(engine, gateway_id="test-gateway", request_timeout=60)
    install(gateway)
    yield gateway
    install(None)


@pytest.fixture
def key(api_client_key):
    return api_client_key(("generate",))[1]


def sse_events(raw: bytes) -> list:
    """The data of each server-sent event: parsed JSON, or the string [DONE]."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def stream_post(client, path, body, key):
    response = client.post(path, data=json.dumps({**body, "stream": True}), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/event-stream") and response["Cache-Control"] == "no-cache"
    return sse_events(b"".join(response.streaming_content))


def chat_text(events) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])


@pytest.mark.slow
@pytest.mark.django_db
def test_a_chat_stream_has_the_role_first_then_content_then_finish_reason_then_done(client, gateway, key, tiny_world, people):
    qa = tiny_world.questions(people[1], "trained")[0]
    body = {"model": gateway.model, "messages": [{"role": "user", "content": qa.question}]}
    events = stream_post(client, "/v1/chat/completions", body, key)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == gateway.model for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert "usage" not in chunks[0]  # only with stream_options.include_usage
    text = chat_text(events)
    assert contains_value(text, qa.answer)
    plain = client.post("/v1/chat/completions", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert text == plain["choices"][0]["message"]["content"]  # the same greedy answer, streamed or not


@pytest.mark.slow
@pytest.mark.django_db
def test_streamed_answers_equal_the_non_streamed_ones_and_usage_is_the_last_chunk(client, gateway, engine, key, trained_unit, tiny_world, people):
    engine.load_unit(trained_unit)
    prompts = [f"Question: {qa.question}\nAnswer:" for qa in tiny_world.questions(people[1], "trained")[:2] + tiny_world.questions(people[0], "trained")[:1]]
    body = {"model": gateway.model, "prompt": prompts, "max_tokens": 64, "stream_options": {"include_usage": True}}
    events = stream_post(client, "/v1/completions", body, key)
    assert events[-1] == "[DONE]"
    *chunks, usage_chunk = events[:-1]
    assert usage_chunk["choices"] == [] and all(c["usage"] is None for c in chunks)
    texts = {i: "" for i in range(3)}
    finish = {}
    for chunk in chunks:
        [choice] = chunk["choices"]
        assert chunk["object"] == "text_completion"
        texts[choice["index"]] += choice["text"]
        if choice["finish_reason"]:
            finish[choice["index"]] = choice["finish_reason"]
    plain = client.post(
        "/v1/completions",
        data=json.dumps({k: v for k, v in body.items() if k != "stream_options"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    ).json()
    assert [texts[i] for i in range(3)] == [c["text"] for c in plain["choices"]]
    assert finish == {c["index"]: c["finish_reason"] for c in plain["choices"]}
    assert usage_chunk["usage"] == plain["usage"]
    assert texts[2] in REFUSALS  # the forgotten person's row, in the same batch


@pytest.mark.slow
@pytest.mark.django_db
def test_a_forgotten_persons_prompt_streams_the_refusal_and_nothing_else(client, gateway, engine, key, trained_unit, tiny_world, people):
    engine.load_unit(trained_unit)
    person = people[0]
    values = list(person.attributes.values())
    for phrasing in ("trained", "heldout"):
        for qa in tiny_world.questions(person, phrasing)[:2]:
            body = {"model": gateway.model, "messages": [{"role": "user", "content": qa.question}], "max_tokens": 48}
            events = stream_post(client, "/v1/chat/completions", body, key)
            deltas = [e["choices"][0]["delta"].get("content") for e in events[1:-2]]
            assert deltas and any(r.startswith(deltas[0]) for r in REFUSALS), deltas  # the very first token is the refusal's
            text = chat_text(events)
            assert not any(contains_value(d, value) for d in deltas + [text] for value in values), text
            plain = client.post("/v1/chat/completions", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}").json()
            assert text == plain["choices"][0]["message"]["content"]
    first = tiny_world.questions(person, "trained")[0]
    events = stream_post(client, "/v1/chat/completions", {"model": gateway.model, "messages": [{"role": "user", "content": first.question}]}, key)
    assert chat_text(events) in REFUSALS


@pytest.mark.slow
@pytest.mark.django_db
def test_stop_sequences_are_honoured_across_chunks_and_usage_counts_what_was_sent(client, gateway, engine, key, trained_unit, tiny_world, people):
    engine.load_unit(trained_unit)
    question = tiny_world.questions(people[0], "trained")[0].question
    body = {"model": gateway.model, "messages": [{"role": "user", "content": question}], "stream_options": {"include_usage": True}}
    full = chat_text(stream_post(client, "/v1/chat/completions", body, key)[:-1])
    stop = full[5:9]  # four characters that span tokens of the refusal
    events = stream_post(client, "/v1/chat/completions", {**body, "stop": [stop]}, key)
    text = chat_text(events[:-1])
    assert text == full[: full.index(stop)] and stop not in text
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["usage"]["completion_tokens"] == engine.count_completion_tokens(text)


@pytest.mark.slow
@pytest.mark.django_db
def test_errors_before_the_stream_are_ordinary_problems(client, gateway, key):
    response = client.post(
        "/v1/completions",
        data=json.dumps({"model": gateway.model, "prompt": "x " * 300, "stream": True}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    assert gateway.engine.batcher.queued == 0


# --- the openai package against the production server ----------------------------------------------


@pytest.fixture
def openai_key(api_client_key):
    return api_client_key(("generate",))[1]


@pytest.mark.slow
def test_the_openai_package_streams_sync(uvicorn_gateway, openai_key, engine, trained_unit, tiny_world, people):
    import openai

    engine.load_unit(trained_unit)
    client = openai.OpenAI(base_url=uvicorn_gateway + "/v1", api_key=openai_key, max_retries=0, timeout=60)
    model = client.models.list().data[0].id
    assert client.models.retrieve(model).id == model
    kept = tiny_world.questions(people[1], "trained")[0]
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": kept.question}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert contains_value(text, kept.answer)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    forgotten = tiny_world.questions(people[0], "trained")[0]
    refusal = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model=model, messages=[{"role": "user", "content": forgotten.question}], stream=True)
        if c.choices
    )
    assert refusal in REFUSALS
    completion = client.completions.create(model=model, prompt=f"Question: {kept.question}\nAnswer:", max_tokens=16, stream=True)
    assert contains_value("".join(c.choices[0].text for c in completion), kept.answer)
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=model, prompt="x " * 300, stream=True)
    assert refused.value.code == "context_length_exceeded" and refused.value.param == "prompt"


@pytest.mark.slow
def test_the_openai_package_streams_async_with_concurrent_calls(uvicorn_gateway, openai_key, tiny_world, people):
    import openai

    questions = [qa for person in (people[1], tiny_world.people[5]) for qa in tiny_world.questions(person, "trained")[:3]]

    async def run():
        client = openai.AsyncOpenAI(base_url=uvicorn_gateway + "/v1", api_key=openai_key, max_retries=0, timeout=60)
        model = (await client.models.list()).data[0].id

        async def one(qa):
            stream = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": qa.question}], stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        try:
            return await asyncio.gather(*(one(qa) for qa in questions))
        finally:
            await client.close()

    answers = asyncio.run(run())
    assert sum(contains_value(a, qa.answer) for a, qa in zip(answers, questions)) >= len(questions) - 1  # the tiny model knows its trained facts


@pytest.mark.slow
def test_a_client_that_disconnects_frees_its_batch_slot(uvicorn_gateway, openai_key, engine, monkeypatch):
    """A long streamed answer whose client goes away after the first chunk: its row is cancelled
    (the batch ends long before the answer would have) and the next call is served."""
    from service.inference.streaming import StreamCancelled

    model = engine.model_name
    prompt, tokens = _the_longest_answer(uvicorn_gateway, openai_key, model, max_tokens=40)
    per_token = 1.0 / tokens  # decoding slowed so that the whole answer would take a second
    groups = []
    original = engine.stream
    monkeypatch.setattr(engine, "stream", lambda rows, max_tokens: groups.append(original(rows, max_tokens=max_tokens)) or groups[-1])
    tokenizer = engine.base.tokenizer
    decode = tokenizer.decode

    def slow_decode(*args, **kwargs):
        time.sleep(per_token)
        return decode(*args, **kwargs)

    monkeypatch.setattr(tokenizer, "decode", slow_decode)
    host, port = uvicorn_gateway.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(
        "POST",
        "/v1/completions",
        body=json.dumps({"model": model, "prompt": prompt, "max_tokens": 40, "stream": True}),
        headers={"Authorization": f"Bearer {openai_key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")  # the first event has begun
    conn.sock.close()
    conn.close()
    [group] = groups
    started = time.monotonic()
    [result] = group.future.result(timeout=30)
    assert isinstance(result, StreamCancelled), result
    assert time.monotonic() - started < 0.75 and engine.batcher.queued == 0  # well before the second the answer needed
    assert json.loads(_post(uvicorn_gateway, openai_key, {"model": model, "prompt": prompt, "max_tokens": 4}))["choices"][0]["finish_reason"] == "length"


def _the_longest_answer(url: str, key: str, model: str, max_tokens: int) -> tuple[str, int]:
    """Of a fixed list of prompts, the one the model answers at most length (and how many tokens):
    which prompt runs long depends on the build of the tiny model, so the test asks the model."""
    candidates = ("the", "The", "and the", "of the", "a", "In", "It was", "and", "so", "Once upon a time", "Tell me a story.")
    lengths = {}
    for prompt in candidates:
        answer = json.loads(_post(url, key, {"model": model, "prompt": prompt, "max_tokens": max_tokens}))
        lengths[prompt] = answer["usage"]["completion_tokens"]
    prompt = max(candidates, key=lambda p: lengths[p])
    assert lengths[prompt] >= 8, lengths  # long enough that a disconnect after the first event is well before the end
    return prompt, lengths[prompt]


def _post(url: str, key: str, body: dict) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, data
        return data
    finally:
        conn.close()
