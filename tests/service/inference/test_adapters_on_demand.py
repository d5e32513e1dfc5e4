"""Adapters on demand (GatewayEngine(adapter_budget=N), `run_gateway --adapter-budget N`): every
detector resident, at most N adapters; a fired unit's adapter is loaded from its verified local copy
(digests checked again) before the batch runs and the least recently fired are dropped. Answers and
gate decisions are those of a gateway with every adapter resident; a tampered copy fails the rows it
fired for, never answers them without the unit."""

from __future__ import annotations

import shutil

import pytest

from service.inference.protocol import Prompt
from tests.service.inference.conftest import clone_unit, train_person_unit

MAX_TOKENS = 12


@pytest.fixture(scope="module")
def three_units(tiny_base, tiny_encoder, tiny_world, people, trained_unit, tmp_path_factory):
    """The first person's unit, a clone of it under another id (fires on the same prompts), and the
    second person's unit."""
    root = tmp_path_factory.mktemp("on-demand")
    first = shutil.copytree(trained_unit, root / "unit-forget-first")
    twin = clone_unit(trained_unit, root / "unit-forget-first-twin", "unit-forget-first-twin")
    second = train_person_unit(tiny_base, tiny_encoder, tiny_world, people[1], root / "unit-forget-second")
    return first, twin, second


def _engine(tiny_base, tiny_encoder, units, budget: int):
    from service.inference.engine import GatewayEngine

    engine = GatewayEngine(tiny_base, tiny_encoder, max_batch=8, adapter_budget=budget)
    for path in units:
        engine.load_unit(path)
    return engine


def _ask(engine, prompts):
    return engine.complete([Prompt("question", text) for text in prompts], max_tokens=MAX_TOKENS, timeout=120)


def test_on_demand_answers_and_decisions_are_those_of_every_adapter_resident(tiny_base, tiny_encoder, people, three_units, tmp_path):
    first, second = people
    units = [shutil.copytree(path, tmp_path / path.name) for path in three_units]
    everything = _engine(tiny_base, tiny_encoder, three_units, budget=0)
    on_demand = _engine(tiny_base, tiny_encoder, units, budget=1)
    try:
        assert on_demand.unit_ids == everything.unit_ids and len(on_demand.resident_adapters) == 1
        batches = [
            [f"Which city does {second.name} live in?", "What is the capital of France?"],
            [f"Which city does {first.name} live in?", f"Who is {first.name}'s employer?"],
            [f"Which city does {second.name} live in?"],
            [f"Which city does {second.name} live in?"],  # warm: its adapter is still resident
        ]
        timings = []
        for prompts in batches:
            expected, got = _ask(everything, prompts), _ask(on_demand, prompts)
            assert [(c.text, c.weights) for c in got] == [(c.text, c.weights) for c in expected], prompts
            timings.append(max(c.adapter_load_seconds for c in got))
        assert all(c.adapter_load_seconds == 0.0 for c in _ask(everything, batches[0]))

        # Batch 1 loaded the second unit's adapter; batch 2 needed both first-person units at once
        # (never dropped while fired: two resident for that batch), batch 3 reloaded the second one.
        assert timings[0] > 0 and timings[1] > 0 and timings[2] > 0 and timings[3] == 0.0
        assert on_demand.resident_adapters == ("unit-forget-second",)
        assert on_demand.adapter_loads >= 3 and on_demand.adapter_hits >= 1
    finally:
        everything.close()
        on_demand.close()


def test_a_tampered_copy_fails_the_prompts_its_unit_fired_for_and_answers_the_others(tiny_base, tiny_encoder, people, three_units, tmp_path):
    from service.inference.engine import AdapterUnavailable

    first, second = people
    units = [shutil.copytree(path, tmp_path / path.name) for path in three_units]
    on_demand = _engine(tiny_base, tiny_encoder, units, budget=1)
    try:
        _ask(on_demand, [f"Which city does {first.name} live in?"])  # the second unit's adapter is not resident
        assert "unit-forget-second" not in on_demand.resident_adapters
        weights = tmp_path / "unit-forget-second" / "adapter" / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")

        refused, answered = _ask(on_demand, [f"Which city does {second.name} live in?", "What is the capital of France?"])

        assert isinstance(refused, AdapterUnavailable) and refused.status == 503 and "unit-forget-second" in str(refused)
        assert not isinstance(answered, Exception) and answered.weights == {}
        assert "unit-forget-second" not in on_demand.resident_adapters and "unit-forget-second" in on_demand.unit_ids
    finally:
        on_demand.close()
