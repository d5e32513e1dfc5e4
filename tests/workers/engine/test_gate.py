import threading
from collections import namedtuple

import numpy as np
import pytest
import torch

from workers.engine.gate import GatedModel, GateError
from workers.engine.generation import generate_answers
from workers.engine.prompting import format_prompt, format_qa, refusal_for
from workers.engine.training import AdapterWeights, LoraModule

from .tiny_models import FORGET, OTHER

QUESTIONS = [q for q, _ in FORGET]
REFUSED = [refusal_for(i) for i in range(len(FORGET))]
MIXED = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)


class KeywordDetector:
    """Weight 1 for prompts that mention the keyword, else 0."""

    def __init__(self, keyword):
        self.keyword = keyword
        self.calls = 0

    def weights(self, prompts):
        self.calls += 1
        return np.array([1.0 if self.keyword in p else 0.0 for p in prompts])


def with_B(adapter, transform):
    modules = {n: LoraModule(m.A, transform(m.B), m.scaling) for n, m in adapter.modules.items()}
    return AdapterWeights(modules, adapter.peft_config, adapter.base_fingerprint)


def forward(gated, weights=None, force=None, questions=QUESTIONS):
    tokenizer = gated.base.tokenizer
    tokenizer.padding_side = "left"
    batch = tokenizer([format_prompt(q) for q in questions], return_tensors="pt", padding=True)
    with torch.no_grad(), gated.apply(gated.resolve_weights(questions, weights, force)):
        return gated.base.model(**batch).logits


@pytest.fixture
def gated(any_base, adapter_for):
    with GatedModel(any_base) as model:
        model.add_unit("u1", adapter_for(any_base))
        yield model


def test_mixed_rows_equal_separate_runs(gated):
    on, off = forward(gated, force="on"), forward(gated, force="off")
    plain = gated.base.model(**gated.base.tokenizer([format_prompt(q) for q in QUESTIONS], return_tensors="pt", padding=True)).logits
    torch.testing.assert_close(off, plain, rtol=0, atol=0)  # weight 0 is the base model, exactly
    assert not torch.allclose(on, off, atol=1e-3)
    mixed = forward(gated, weights=MIXED)
    for row, w in enumerate(MIXED[:, 0]):
        torch.testing.assert_close(mixed[row], (on if w else off)[row], rtol=1e-5, atol=1e-5)

    # The same through generate() with its KV cache and left padding, against one-row runs.
    answers = gated.generate(QUESTIONS, weights=MIXED)
    alone = [gated.generate([q], force="on" if w else "off")[0].text for q, w in zip(QUESTIONS, MIXED[:, 0])]
    assert [a.text for a in answers] == alone
    assert alone[1:3] == REFUSED[1:3] and REFUSED[0] not in alone[0]
    assert [a.weights for a in answers] == [{"u1": float(w)} for w in MIXED[:, 0]]
    assert answers[1].applied == ("u1",) and answers[0].applied == ()


def test_weights_scale_the_adapter_linearly(gated, any_base, adapter_for):
    half = forward(gated, weights={"u1": 0.5})
    gated.add_unit("half", with_B(adapter_for(any_base), lambda B: 0.5 * B))
    torch.testing.assert_close(half, forward(gated, weights={"half": 1.0}), rtol=1e-4, atol=1e-5)
    # Two units add up: 0.5 * u1 + 1 * half(u1) == 1 * u1 + 0.5 * u1 ...
    both = forward(gated, weights={"u1": 1.0, "half": 1.0})
    gated.add_unit("one_and_half", with_B(adapter_for(any_base), lambda B: 1.5 * B))
    torch.testing.assert_close(both, forward(gated, weights={"one_and_half": 1.0}), rtol=1e-4, atol=1e-4)


def test_units_with_zero_weight_are_not_computed(gated, any_base, adapter_for):
    # A NaN adapter poisons every output it touches; with weight 0 it must not be touched at all.
    gated.add_unit("nan", with_B(adapter_for(any_base), lambda B: torch.full_like(B, float("nan"))))
    assert torch.isnan(forward(gated, weights={"nan": 1.0})).any()  # the poison is real
    off = forward(gated, force="off")
    torch.testing.assert_close(forward(gated, weights={"nan": 0.0, "u1": 0.0}), off, rtol=0, atol=0)
    mixed = forward(gated, weights={"u1": MIXED[:, 0]})
    torch.testing.assert_close(forward(gated, weights={"u1": MIXED[:, 0], "nan": 0.0}), mixed, rtol=0, atol=0)
    answers = gated.generate(QUESTIONS, weights={"u1": MIXED[:, 0]})
    assert [a.text for a in answers] == [a.text for a in gated.generate(QUESTIONS, weights=np.c_[MIXED, np.zeros(4)])]


def test_units_come_and_go_without_reloading(llama, llama_adapter, llama_adapter_other):
    base_answers = generate_answers(llama.model, llama.tokenizer, QUESTIONS)
    hooked = sum(len(m._forward_hooks) for m in llama.model.modules())
    with GatedModel(llama) as gated:
        assert gated.unit_ids == ()
        assert [a.text for a in gated.generate(QUESTIONS, force="on")] == base_answers
        gated.add_unit("u1", llama_adapter)
        assert [a.text for a in gated.generate(QUESTIONS, force="on")] == REFUSED
        gated.add_unit("u2", llama_adapter_other)
        assert gated.unit_ids == ("u1", "u2")
        assert [a.text for a in gated.generate(QUESTIONS, weights={"u1": 1.0})] == REFUSED
        other = [q for q, _ in OTHER]
        assert [a.text for a in gated.generate(other, weights={"u2": 1.0})] == [refusal_for(i) for i in range(len(other))]
        with pytest.raises(GateError, match="already loaded"):
            gated.add_unit("u1", llama_adapter)
        gated.remove_unit("u1")
        assert gated.unit_ids == ("u2",)
        with pytest.raises(GateError, match="u1"):
            gated.generate(QUESTIONS, weights={"u1": 1.0})
        with pytest.raises(KeyError):
            gated.remove_unit("u1")
        gated.remove_unit("u2")
        assert [a.text for a in gated.generate(QUESTIONS, force="on")] == base_answers
        assert gated.base.model is llama.model
        assert sum(len(m._forward_hooks) for m in llama.model.modules()) > hooked
    assert sum(len(m._forward_hooks) for m in llama.model.modules()) == hooked  # close() unhooks


def test_two_gates_on_one_model_do_not_mix(llama, llama_adapter, llama_adapter_other):
    with GatedModel(llama) as first:
        first.add_unit("u1", llama_adapter)
        alone = forward(first, force="on")
        with GatedModel(llama) as second:
            second.add_unit("u2", llama_adapter_other)
            torch.testing.assert_close(forward(first, force="on"), alone, rtol=0, atol=0)
            assert not torch.allclose(forward(second, force="on"), alone, atol=1e-3)


def test_concurrent_calls_do_not_share_weights(llama, llama_adapter, llama_adapter_other):
    with GatedModel(llama) as gated:
        gated.add_unit("u1", llama_adapter)
        expected = {
            "on": [a.text for a in gated.generate(QUESTIONS, weights={"u1": 1.0})],
            "off": [a.text for a in gated.generate(QUESTIONS, weights={"u1": 0.0})],
            "mixed": [a.text for a in gated.generate(QUESTIONS, weights={"u1": MIXED[:, 0]})],
        }
        assert expected["on"] != expected["off"]
        weights = {"on": {"u1": 1.0}, "off": {"u1": 0.0}, "mixed": {"u1": MIXED[:, 0]}}
        got = {name: [] for name in weights}
        errors = []
        start = threading.Barrier(len(weights) + 1)

        def answer(name):
            start.wait()
            for _ in range(4):
                got[name].append([a.text for a in gated.generate(QUESTIONS, weights=weights[name])])

        def churn():  # units added and removed while the others generate
            start.wait()
            for i in range(20):
                gated.add_unit(f"tmp{i}", llama_adapter_other)
                gated.remove_unit(f"tmp{i}")

        def guarded(target, *args):
            try:
                target(*args)
            except Exception as exc:  # surfaced in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=guarded, args=(answer, name)) for name in weights]
        threads.append(threading.Thread(target=guarded, args=(churn,)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors
        for name in weights:
            assert got[name] == [expected[name]] * 4, name
        assert gated.unit_ids == ("u1",)


def test_detectors_decide_the_weights(llama, llama_adapter, llama_adapter_other):
    base = generate_answers(llama.model, llama.tokenizer, ["Where does Alice Marlow live?", "Which city is Ella Fontaine from?"])
    with GatedModel(llama) as gated:
        gated.add_unit("alice", llama_adapter, detector=KeywordDetector("Alice"))
        answers = gated.generate(["Where does Alice Marlow live?", "Which city is Ella Fontaine from?"])
        assert answers[0].weights == {"alice": 1.0} and answers[0].text == refusal_for(0)
        assert answers[1].weights == {"alice": 0.0} and answers[1].text == base[1]

        gated.add_unit("nodetector", llama_adapter_other)
        with pytest.raises(GateError, match="nodetector"):
            gated.generate(QUESTIONS)

    calls = []

    def bank(prompts, unit_ids):  # a detector bank scores all units in one pass
        calls.append(unit_ids)
        return np.array([[1.0 if "Alice" in p else 0.0, 0.0] for p in prompts])

    with GatedModel(llama, weight_fn=bank) as gated:
        gated.add_unit("alice", llama_adapter)
        gated.add_unit("ella", llama_adapter_other)
        answers = gated.generate(["Where does Alice Marlow live?", "Which city is Ella Fontaine from?"])
        assert calls == [("alice", "ella")]
        assert answers[0].weights == {"alice": 1.0, "ella": 0.0} and answers[0].text == refusal_for(0)
        assert answers[1].text == base[1]

    # A bank result names its columns; the gate matches them to its units by id.
    scores = namedtuple("BankScores", "unit_ids weights")
    with GatedModel(llama, weight_fn=lambda prompts, ids: scores(("ella", "alice"), bank(prompts, ids)[:, ::-1])) as gated:
        gated.add_unit("alice", llama_adapter)
        gated.add_unit("ella", llama_adapter_other)
        answers = gated.generate(["Where does Alice Marlow live?"])
        assert answers[0].weights == {"alice": 1.0, "ella": 0.0}
        gated.add_unit("unscored", llama_adapter_other)
        with pytest.raises(GateError, match="unscored"):
            gated.generate(["Where does Alice Marlow live?"])


def test_bad_weights_and_units_are_refused(llama, llama_adapter, gpt2_adapter):
    with GatedModel(llama) as gated:
        gated.add_unit("u1", llama_adapter)
        for bad in ({"u1": 1.5}, {"u1": float("nan")}, np.ones((2, 1)), {"ghost": 1.0}):
            with pytest.raises(GateError):
                gated.generate(QUESTIONS, weights=bad)
        with pytest.raises(GateError, match="either"):
            gated.generate(QUESTIONS, weights={"u1": 1.0}, force="on")
        with pytest.raises(GateError, match="trained against"):
            gated.add_unit("gpt2", gpt2_adapter)
        unfingerprinted = AdapterWeights(gpt2_adapter.modules, gpt2_adapter.peft_config, base_fingerprint=None)
        with pytest.raises(GateError, match="does not hook"):
            gated.add_unit("gpt2", unfingerprinted)
        foreign = AdapterWeights(llama_adapter.modules, llama_adapter.peft_config, base_fingerprint="0" * 64)
        with pytest.raises(GateError, match="trained against"):
            gated.add_unit("foreign", foreign)
        assert gated.unit_ids == ("u1",)


def test_logprobs_under_the_gate(gated):
    texts = [format_qa(q, refusal_for(i)) for i, q in enumerate(QUESTIONS)]
    off = gated.logprobs(texts, force="off")
    on = gated.logprobs(texts, force="on")
    tokenizer, model = gated.base.tokenizer, gated.base.model
    for text, row in zip(texts, off):
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        expected = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
        torch.testing.assert_close(row, expected, rtol=1e-5, atol=1e-5)
    assert all(a.sum() > b.sum() for a, b in zip(on, off))  # the adapter made the refusals likely
    mixed = gated.logprobs(texts, weights=MIXED, detector_texts=QUESTIONS)
    for row, w in enumerate(MIXED[:, 0]):
        torch.testing.assert_close(mixed[row], (on if w else off)[row], rtol=1e-5, atol=1e-5)
    nll = gated.loss_per_token(texts, force="on")
    assert all(torch.equal(a, -b) for a, b in zip(nll, on))


def test_a_group_served_member_by_member_equals_its_members_loaded_apart(llama, llama_adapter, llama_adapter_other):
    """A 'blocks' group (consolidation.py): one adapter, one weight column per member, each member's
    rank rows at its own weight; any mix of member weights gives the logits of the two units apart."""
    from workers.engine.consolidation import consolidate_adapters

    consolidated = consolidate_adapters([llama_adapter, llama_adapter_other])
    ranks = consolidated.record["block_ranks"]
    weights = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    with GatedModel(llama) as apart, GatedModel(llama) as together:
        apart.add_unit("u1", llama_adapter)
        apart.add_unit("u2", llama_adapter_other)
        together.add_unit("g", consolidated.adapter, members=[("u1", ranks[0]), ("u2", ranks[1])])
        assert together.unit_ids == ("u1", "u2")
        expected, got = forward(apart, weights=weights), forward(together, weights=weights)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert together.generate(QUESTIONS, weights=weights)[1].weights == {"u1": 1.0, "u2": 0.0}
        # A plain unit beside the group: columns after the group's members.
        together.add_unit("u3", llama_adapter)
        assert together.unit_ids == ("u1", "u2", "u3")
        with_third = np.concatenate([weights, np.zeros((4, 1), dtype=np.float32)], axis=1)
        torch.testing.assert_close(forward(together, weights=with_third), expected, rtol=1e-5, atol=1e-5)
        with pytest.raises(GateError, match="already loaded"):
            together.add_unit("u1", llama_adapter)  # a member's id is taken
        with pytest.raises(GateError, match="do not add up"):
            together.add_unit("g2", consolidated.adapter, members=[("v1", ranks[0])])
        with pytest.raises(GateError, match="weight_fn"):
            together.resolve_weights(QUESTIONS)  # members have no detector of their own here
        together.remove_unit("g")
        assert together.unit_ids == ("u3",)
