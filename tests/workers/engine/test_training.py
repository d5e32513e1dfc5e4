import math

import pytest
import torch
from peft import PeftModel

from workers.engine.config import UnlearnConfig
from workers.engine.gate import GatedModel
from workers.engine.generation import generate_answers
from workers.engine.prompting import refusal_for
from workers.engine.training import (
    AdapterWeights,
    LoraModule,
    TrainingCallbacks,
    TrainingCancelled,
    orthogonality_penalty,
    stack_lora_A,
    train_unit_adapter,
)

from .tiny_models import FAST, FORGET, OTHER

QUESTIONS = [q for q, _ in FORGET]
REFUSED = [refusal_for(i) for i in range(len(FORGET))]


def adapter_with(A_by_module):
    modules = {name: LoraModule(A, torch.zeros(3, A.shape[0]), 2.0) for name, A in A_by_module.items()}
    return AdapterWeights(modules, peft_config=None)


def test_orthogonality_penalty_known_values():
    e = torch.eye(4)
    first, second = e[:2], e[2:]  # orthonormal rows, mutually orthogonal
    previous = stack_lora_A([adapter_with({"m1": first, "m2": first}), adapter_with({"m1": first})])
    assert orthogonality_penalty({"m1": second, "m2": second}, previous).item() == 0.0
    # ||A A^T||_F^2 = ||I_2||_F^2 = 2 per (previous adapter, module) pair: 2 pairs on m1, 1 on m2.
    assert orthogonality_penalty({"m1": first, "m2": first}, previous).item() == pytest.approx(6.0)
    assert orthogonality_penalty({"m1": 3 * first}, previous).item() == pytest.approx(2 * 9 * 2)
    assert orthogonality_penalty({"other": first}, previous).item() == 0.0


def snapshot(model):
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "modules": [(n, type(m)) for n, m in model.named_modules()],
        "grad": [p.requires_grad for p in model.parameters()],
        "attrs": set(vars(model)),
        "training": model.training,
        "config": model.config.to_dict(),
    }


def test_training_learns_the_refusal_and_leaves_the_base_untouched(llama):
    before = snapshot(llama.model)
    answers_before = generate_answers(llama.model, llama.tokenizer, QUESTIONS)
    progress = []
    adapter = train_unit_adapter(llama, FORGET, UnlearnConfig(**FAST), callbacks=TrainingCallbacks(on_progress=progress.append))
    assert [p.step for p in progress] == list(range(1, 61)) and progress[-1].percent == 100.0
    assert progress[-1].loss < progress[0].loss - 1.0
    # 2 layers x (q, k, v, o, gate, up, down), the LM head excluded
    assert len(adapter.modules) == 14 and not any("lm_head" in name for name in adapter.modules)
    assert adapter.base_fingerprint == llama.fingerprint

    after = snapshot(llama.model)
    assert after["modules"] == before["modules"] and after["grad"] == before["grad"]
    assert after["attrs"] == before["attrs"] and after["training"] == before["training"]
    assert after["config"] == before["config"]
    assert all(torch.equal(before["state"][k], v) for k, v in after["state"].items())
    assert generate_answers(llama.model, llama.tokenizer, QUESTIONS) == answers_before != REFUSED

    with GatedModel(llama) as gated:
        gated.add_unit("u1", adapter)
        assert [a.text for a in gated.generate(QUESTIONS, force="on")] == REFUSED


def test_settling_trains_on_until_every_refusal_is_word_for_word(llama):
    """Two epochs leave the refusal unlearnt; settling adds whole epochs until greedy decoding gives
    it word for word on every training prompt, and then stops."""
    per_epoch = math.ceil(len(FORGET) / 4)
    config = dict(lr=1e-2, epochs=2, batch_size=4)
    unsettled, settled = [], []
    train_unit_adapter(llama, FORGET, UnlearnConfig(**config, settle_epochs=0), callbacks=TrainingCallbacks(on_progress=unsettled.append))
    adapter = train_unit_adapter(llama, FORGET, UnlearnConfig(**config, settle_epochs=60), callbacks=TrainingCallbacks(on_progress=settled.append))
    assert len(unsettled) == 2 * per_epoch
    assert 2 * per_epoch < len(settled) < 62 * per_epoch and len(settled) % per_epoch == 0
    assert settled[-1].percent == 100.0
    with GatedModel(llama) as gated:
        gated.add_unit("u1", adapter)
        assert [a.text for a in gated.generate(QUESTIONS, force="on")] == REFUSED


def test_training_is_deterministic_given_the_seed(llama):
    config = UnlearnConfig(**{**FAST, "max_steps": 5, "dropout": 0.1})
    first, second = (train_unit_adapter(llama, FORGET, config) for _ in range(2))
    assert all(torch.equal(first.modules[n].B, second.modules[n].B) for n in first.modules)
    other = train_unit_adapter(llama, FORGET, UnlearnConfig(**{**FAST, "max_steps": 5, "seed": 7}))
    assert not torch.equal(first.modules["model.layers.0.self_attn.q_proj"].A, other.modules["model.layers.0.self_attn.q_proj"].A)


def test_orthogonality_term_pulls_new_adapter_away_from_previous(llama, llama_adapter):
    def overlap(adapter):
        return orthogonality_penalty({n: m.A for n, m in adapter.modules.items()}, stack_lora_A([llama_adapter])).item()

    config = dict(FAST, max_steps=20, seed=3)
    free = train_unit_adapter(llama, OTHER, UnlearnConfig(**config, lambda_orth=0.0), previous=[llama_adapter])
    seen = []
    constrained = train_unit_adapter(
        llama,
        OTHER,
        UnlearnConfig(**config, lambda_orth=10.0),
        previous=[llama_adapter],
        callbacks=TrainingCallbacks(on_progress=lambda p: seen.append(p.orthogonality)),
    )
    assert seen[0] > 0 and seen[-1] < seen[0]
    assert overlap(constrained) < 0.5 * overlap(free)


def test_cancellation_stops_cleanly_and_restores_the_base(llama):
    before = {k: v.clone() for k, v in llama.model.state_dict().items()}
    steps = []
    callbacks = TrainingCallbacks(on_progress=lambda p: steps.append(p.step), should_stop=lambda: len(steps) >= 3)
    with pytest.raises(TrainingCancelled) as info:
        train_unit_adapter(llama, FORGET, UnlearnConfig(**FAST), callbacks=callbacks)
    assert info.value.step == 3 and info.value.total == 60
    assert not hasattr(llama.model, "peft_config")
    assert llama.model.state_dict().keys() == before.keys()
    assert all(torch.equal(before[k], v) for k, v in llama.model.state_dict().items())


def test_peft_format_round_trip(any_base, adapter_for, tmp_path):
    adapter = adapter_for(any_base)
    adapter.save_pretrained(tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    loaded = AdapterWeights.from_pretrained(tmp_path / "adapter")
    assert loaded.modules.keys() == adapter.modules.keys() and loaded.base_fingerprint == adapter.base_fingerprint
    for name, module in adapter.modules.items():
        assert torch.equal(loaded.modules[name].A, module.A) and torch.equal(loaded.modules[name].B, module.B)
        assert loaded.modules[name].scaling == module.scaling == 2.0

    # PEFT itself loads the directory, and computes what the gate computes with the adapter forced on.
    batch = any_base.tokenizer(["Question: " + q + "\nAnswer:" for q in QUESTIONS[:1]], return_tensors="pt")
    with GatedModel(any_base) as gated:
        gated.add_unit("u", loaded)
        with gated.apply(gated.resolve_weights(["x"], force="on")):
            gated_logits = any_base.model(**batch).logits
    peft_model = PeftModel.from_pretrained(any_base.model, tmp_path / "adapter")
    try:
        torch.testing.assert_close(peft_model(**batch).logits, gated_logits, rtol=1e-4, atol=1e-5)
    finally:
        peft_model.unload()


def test_gpt2_conv1d_training(gpt2, gpt2_adapter):
    # c_attn, c_proj, c_fc, mlp.c_proj in 2 layers; A is r x d_in whatever Conv1D stores.
    assert len(gpt2_adapter.modules) == 8
    assert gpt2_adapter.peft_config.fan_in_fan_out
    assert gpt2_adapter.modules["transformer.h.0.attn.c_attn"].A.shape == (8, 64)
    assert gpt2_adapter.modules["transformer.h.0.attn.c_attn"].B.shape == (192, 8)
    with GatedModel(gpt2) as gated:
        gated.add_unit("u", gpt2_adapter)
        assert [a.text for a in gated.generate(QUESTIONS, force="on")] == REFUSED
        assert [a.text for a in gated.generate(QUESTIONS, force="off")] == generate_answers(gpt2.model, gpt2.tokenizer, QUESTIONS)
