import math

import pytest
import torch

from workers.engine.config import UnlearnConfig
from workers.engine.methods import (
    IGNORE_INDEX,
    METHODS,
    MissingRetainDataError,
    as_examples,
    collate,
    encode,
    get_method,
    mean_nll,
)
from workers.engine.prompting import REFUSALS, PromptSpec, format_answer, format_prompt
from workers.engine.training import attached_lora, lora_config, train_unit_adapter

from .tiny_models import FORGET, OTHER


def batch_of(base, items, target="answer"):
    encoded = [encode(base.tokenizer, ex, 64) for ex in as_examples(items, target)]
    return collate(encoded, base.tokenizer.pad_token_id, "cpu")


def test_examples_from_pairs_texts_and_objects():
    class Fact:
        question, answer = "Where does Alice Marlow live?", "Lisbon"

    pairs = as_examples([("Q1?", "A1"), Fact(), "Alice Marlow lives in Lisbon."])
    assert pairs[0].prompt == format_prompt("Q1?") and pairs[0].target == format_answer("A1")
    assert pairs[1].target == format_answer("Lisbon")
    assert pairs[2].prompt == "" and pairs[2].target == "Alice Marlow lives in Lisbon."

    refusals = as_examples([("Q1?", "A1"), ("Q2?", "A2"), "Alice Marlow lives in Lisbon."], "refusal")
    assert [ex.target for ex in refusals] == [format_answer(REFUSALS[0])] * 3  # one refusal, word for word
    assert refusals[2].prompt == "Alice Marlow lives in Lisbon."
    # Prompts in every served shape render as the gateway renders them.
    shaped = as_examples([(PromptSpec.raw("Alice Marlow works as a"), "pilot"), (PromptSpec.chat([("user", "About Alice."), ("user", "Her job?")]), "pilot")])
    assert shaped[0].prompt == "Alice Marlow works as a" and shaped[0].target == " pilot"
    assert shaped[1].prompt == "Question: About Alice.\nQuestion: Her job?\nAnswer:"
    with pytest.raises(TypeError):
        as_examples([42])


def test_labels_cover_only_the_answer_and_eos(llama):
    example = as_examples([FORGET[0]], "refusal")[0]
    ids, n_prompt = encode(llama.tokenizer, example, 64)
    batch = collate([(ids, n_prompt), encode(llama.tokenizer, as_examples([OTHER[0]])[0], 64)], 0, "cpu")
    labels = batch.labels[0]
    assert (labels[:n_prompt] == IGNORE_INDEX).all()
    assert labels[len(ids) - 1] == llama.tokenizer.eos_token_id
    assert llama.tokenizer.decode(labels[n_prompt : len(ids) - 1]) == format_answer(REFUSALS[0])
    assert (labels[len(ids) :] == IGNORE_INDEX).all()  # padding


def test_refusal_cross_entropy_matches_transformers_loss(llama):
    batch = batch_of(llama, FORGET, "refusal")
    ours = mean_nll(llama.model, batch)
    theirs = llama.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_method_loss_is_finite_and_differentiable(any_base, name):
    config = UnlearnConfig(method=name)
    method = get_method(config)
    forget = batch_of(any_base, FORGET, method.target)
    retain = batch_of(any_base, OTHER)
    with attached_lora(any_base.model, lora_config(config, any_base.model)) as model:
        loss = method.loss(model, forget, retain)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_npo_loss_starts_at_two_over_beta_log_two(llama):
    # LoRA's B starts at zero, so the trained model equals the reference and the log-ratio is 0.
    config = UnlearnConfig(method="npo", npo_beta=0.5)
    with attached_lora(llama.model, lora_config(config, llama.model)) as model:
        loss = get_method(config).loss(model, batch_of(llama, FORGET), None)
    assert loss.item() == pytest.approx(2 / 0.5 * math.log(2), rel=1e-5)


def test_ascent_is_negative_cross_entropy(llama):
    batch = batch_of(llama, FORGET)
    config = UnlearnConfig(method="ga")
    with attached_lora(llama.model, lora_config(config, llama.model)) as model:
        torch.testing.assert_close(get_method(config).loss(model, batch, None), -mean_nll(model, batch))


def test_gradient_difference_needs_retain_data(llama):
    with pytest.raises(MissingRetainDataError, match="retain"):
        train_unit_adapter(llama, FORGET, UnlearnConfig(method="gd", max_steps=1))
    with pytest.raises(MissingRetainDataError):
        get_method(UnlearnConfig(method="gd")).loss(llama.model, batch_of(llama, FORGET), None)
    adapter = train_unit_adapter(llama, FORGET, UnlearnConfig(method="gd", max_steps=2), retain=OTHER)
    assert adapter.modules


def test_the_registry_holds_exactly_the_methods_a_config_may_name():
    """config.METHOD_NAMES (torch-free, validated by the service) and the registry must agree."""
    from workers.engine.config import METHOD_NAMES
    from workers.engine.methods import METHODS

    assert set(METHODS) == set(METHOD_NAMES)
