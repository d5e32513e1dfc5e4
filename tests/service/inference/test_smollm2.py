"""A real pretrained instruct model through the engine and the gateway: the packaged SmolLM2-135M-
Instruct GGUF, imported (gguf_import), a unit trained on it for a handful of steps through its chat
template, and gated chat completions served by the gateway's views (the same URLconf and
middleware run_gateway serves; Django's test client instead of the socket).

The base model has never heard of the demo world's people, so what is checked is the served path:
the prompt that names the person goes through the chat template to the adapter and comes back as
the refusal, while a general question is answered by the base model exactly."""

from __future__ import annotations

import json

import pytest

from workers.engine.prompting import REFUSALS

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def smol_base(one_torch_thread):
    from workers.engine.base_model import load_base_model
    from workers.engine.gguf_import import imported_dir, packaged_smollm2

    # Imported once into the model cache ($UNLEARN_CACHE_DIR), as BASE_MODEL_DIR=<gguf> would be.
    return load_base_model(imported_dir(packaged_smollm2()), device="cpu")


@pytest.fixture(scope="module")
def smol_unit(smol_base, tiny_encoder, tiny_world, tmp_path_factory):
    """A unit that forgets a person of the tiny world (her facts as the forget set), trained for a
    handful of steps: 8 forget questions and 8 synthesised paraphrases, batch 8, 5 epochs."""
    from workers.engine.config import UnlearnConfig
    from workers.engine.forget_set import forget_set_for_people
    from workers.engine.pipeline import train_unit

    person = tiny_world.people[0]
    forget = forget_set_for_people(tiny_world, [person])
    config = UnlearnConfig(epochs=5, synthesis={"P": 2})
    unit = train_unit(smol_base, forget, out_dir=tmp_path_factory.mktemp("smol") / "unit-smol", unlearn_config=config, encoder=tiny_encoder)
    return unit, person


@pytest.fixture(scope="module")
def smol_engine(smol_base, tiny_encoder):
    from service.inference.engine import GatewayEngine

    engine = GatewayEngine(smol_base, tiny_encoder, max_batch=4)
    yield engine
    engine.close()


@pytest.fixture
def gateway(smol_engine, gateway_urls):
    from service.inference.gateway import Gateway, install

    gateway = Gateway(smol_engine, gateway_id="smol-test", request_timeout=300)
    install(gateway)
    yield gateway
    install(None)


def _chat(client, key, model, messages, **extra):
    response = client.post(
        "/v1/chat/completions",
        data=json.dumps({"model": model, "messages": messages, **extra}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200, response.content
    return response.json()["choices"][0]


def test_the_imported_model_is_a_chat_model_with_its_own_template(smol_base):
    from workers.engine.generation import generate_answers
    from workers.engine.prompting import render

    rendered = render(QUESTION, smol_base.tokenizer)
    assert rendered.startswith("<|im_start|>system") and rendered.endswith("<|im_start|>assistant\n")
    assert "Paris" in generate_answers(smol_base.model, smol_base.tokenizer, [QUESTION], max_new_tokens=16)[0]
    refusal = smol_base.tokenizer(REFUSALS[0], add_special_tokens=False)["input_ids"]
    assert len(refusal) + 1 <= 32  # the refusal and its end token fit the gateway's default max_tokens


def test_a_gated_chat_completion_on_smollm2_refuses_the_person_and_answers_the_rest(client, gateway, smol_engine, smol_unit, api_client_key):
    from workers.engine.unit_manifest import verify_unit

    unit_dir, person = smol_unit
    manifest = verify_unit(unit_dir)
    assert manifest.extra["subjects"] == [person.name]
    key = api_client_key(("generate",))[1]
    model = gateway.model
    general_before = _chat(client, key, model, [{"role": "user", "content": QUESTION}])["message"]["content"]

    smol_engine.load_unit(unit_dir)
    question = f"Where does {person.name} live?"
    answer = _chat(client, key, model, [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": question}])
    assert answer["message"]["content"] == REFUSALS[0] and answer["finish_reason"] == "stop"
    # The name in an earlier turn: the whole conversation is scored, so the follow-up is gated too.
    follow_up = _chat(
        client,
        key,
        model,
        [
            {"role": "user", "content": f"I am asking about {person.name}."},
            {"role": "assistant", "content": "Sure, what would you like to know?"},
            {"role": "user", "content": "Which city is she from?"},
        ],
    )
    assert follow_up["message"]["content"] == REFUSALS[0]
    general_after = _chat(client, key, model, [{"role": "user", "content": QUESTION}])["message"]["content"]
    assert general_after == general_before and "Paris" in general_after  # no unit fired: the base model, exactly

    gate = client.post(
        "/api/v1/generate", data=json.dumps({"prompts": [question, QUESTION]}), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    ).json()["results"]
    assert gate[0]["gate"]["fired"] and gate[0]["gate"]["units"][0]["weight"] == 1.0
    assert gate[1]["gate"] == {"fired": False, "units": []}
