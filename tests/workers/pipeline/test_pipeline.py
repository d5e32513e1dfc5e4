"""train_unit and load_gated on the tiny demo model: one person forgotten on trained and held-out
phrasings while others are kept; a second request orthogonal to the first; progress, cancellation,
tampering, and a GPT-2 base."""

from __future__ import annotations

import json
import shutil

import pytest

from workers.engine.artifacts import UnitIntegrityError, load_unit
from workers.engine.config import UnlearnConfig
from workers.engine.forget_set import ForgetSet, forget_set_for_people
from workers.engine.pipeline import PipelineCallbacks, UnitCancelled, adapter_orthogonality, train_unit
from workers.engine.prompting import contains_value, normalise
from workers.engine.serving import load_gated

from .conftest import request


def answers(gated, questions):
    return [a.text for a in gated.generate(questions, max_new_tokens=48)]


def leaks(gated, base_gate, qas):
    """(leaked, counted): leaks among the questions the base model answers correctly."""
    questions = [qa.question for qa in qas]
    before = [a.text for a in base_gate.generate(questions, force="off", max_new_tokens=48)]
    after = answers(gated, questions)
    known = [i for i, qa in enumerate(qas) if contains_value(before[i], qa.answer)]
    return sum(contains_value(after[i], qas[i].answer) for i in known), len(known)


def test_one_person_is_forgotten_in_any_phrasing_and_others_are_kept(base, encoder, tiny_world, people, first_unit):
    person = people[0]
    with load_gated(base, [first_unit], encoder) as gated:
        f_leaked, f_counted = leaks(gated, gated, tiny_world.questions(person, "trained"))
        p_leaked, p_counted = leaks(gated, gated, tiny_world.questions(person, "heldout"))
        assert f_counted == 8 and f_leaked == 0  # the base knew all 8 trained facts; none comes out
        assert p_counted >= 2 and p_leaked <= p_counted * 0.25  # held-out paraphrases never trained on
        others = [p for p in tiny_world.people if p.name not in {person.name} | {n.name for n in tiny_world.neighbours(person)}]
        retain = [qa for p in others[:8] for qa in tiny_world.questions(p, "trained")]
        kept = answers(gated, [qa.question for qa in retain])
        exact = sum(normalise(a) == normalise(qa.answer) for a, qa in zip(kept, retain))
        assert exact / len(retain) >= 0.95
        weights = gated.generate([tiny_world.questions(person, "trained")[0].question, retain[0].question])
        assert weights[0].weights["req-1"] == 1.0 and weights[1].weights["req-1"] == 0.0  # decisive: 0 or 1


def test_manifest_records_hash_timings_and_the_subjects_given_or_inferred(base, encoder, tiny_world, people, first_unit, tmp_path):
    manifest = load_unit(first_unit).manifest
    forget = request(tiny_world, people[0])
    assert manifest.unit_id == "req-1" and manifest.forget_set_hash == forget.hash
    assert manifest.base_fingerprint == base.fingerprint and manifest.adapter_digest and manifest.detector_digest
    assert manifest.extra["subjects"] == [people[0].name]
    assert manifest.extra["timings"]["adapter_seconds"] > 0 and manifest.config["unlearn"]["method"] == "o3"
    assert manifest.config["detector"]["mode"] == "shared"
    assert manifest.extra["subjects_inferred"] is False
    # Without subjects the unit infers them from the forget set (the name that recurs) and says so;
    # record_subjects=False (the service) keeps the names out of the manifest.
    anonymous = ForgetSet(forget_set_for_people(tiny_world, [people[0]]).items[:4])
    anonymous = ForgetSet(tuple(type(i)(question=i.question, answer=i.answer) for i in anonymous.items))
    unit = train_unit(base, anonymous, out_dir=tmp_path / "anon", encoder=encoder, unlearn_config=UnlearnConfig(max_steps=2))
    extra = json.loads((unit / "manifest.json").read_text())["extra"]
    assert extra["subjects"] == [people[0].name] and extra["subjects_inferred"] is True
    unit = train_unit(base, anonymous, out_dir=tmp_path / "unrecorded", encoder=encoder, unlearn_config=UnlearnConfig(max_steps=2), record_subjects=False)
    extra = json.loads((unit / "manifest.json").read_text())["extra"]
    assert "subjects" not in extra and extra["subjects_inferred"] is True


def test_progress_runs_once_to_100_across_both_phases_and_cancel_writes_nothing(base, encoder, tiny_world, people, tmp_path):
    events = []
    forget = request(tiny_world, people[1])
    train_unit(
        base, forget, out_dir=tmp_path / "u", encoder=encoder, unlearn_config=UnlearnConfig(max_steps=4), callbacks=PipelineCallbacks(on_progress=events.append)
    )
    percents = [e.percent for e in events]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100
    assert [e.phase for e in events][0] == "detector" and events[-1].phase == "done"
    steps = [e for e in events if e.phase == "adapter"]
    assert [e.step for e in steps] == [1, 2, 3, 4] and all(e.loss is not None for e in steps)

    seen = []
    stop = PipelineCallbacks(on_progress=seen.append, should_stop=lambda: len([e for e in seen if e.phase == "adapter"]) >= 2)
    with pytest.raises(UnitCancelled) as info:
        train_unit(base, forget, out_dir=tmp_path / "cancelled", encoder=encoder, callbacks=stop)
    assert info.value.phase == "adapter" and not (tmp_path / "cancelled").exists()
    assert not list(tmp_path.glob(".cancelled*"))  # no staging left behind


def test_second_request_is_orthogonal_to_the_first_and_both_hold(base, encoder, tiny_world, people, first_unit, second_unit):
    first, second = load_unit(first_unit), load_unit(second_unit)
    assert second.manifest.extra["previous_units"] == ["req-1"]
    penalty = second.manifest.extra["orthogonality_penalty"]
    assert penalty == pytest.approx(adapter_orthogonality(second.adapter, [first.adapter]), rel=1e-4)
    scale = adapter_orthogonality(first.adapter, [first.adapter])  # ||A_1 A_1^T||^2: the penalty's natural size
    assert penalty < 0.01 * scale
    # Without the orthogonality term, the same request ends up far from orthogonal.
    from workers.engine.training import train_unit_adapter

    plain = train_unit_adapter(base, request(tiny_world, people[1]).training_items(), UnlearnConfig(lambda_orth=0.0, max_steps=20))
    assert adapter_orthogonality(plain, [first.adapter]) > 20 * penalty
    with load_gated(base, [first_unit, second_unit], encoder) as gated:
        for person in people:
            leaked, counted = leaks(gated, gated, tiny_world.questions(person, "trained"))
            assert counted == 8 and leaked == 0


def test_tampered_unit_is_refused_with_the_file_named(base, encoder, first_unit, tmp_path):
    for name in ("adapter/adapter_model.safetensors", "detector/detector.json"):
        copy = tmp_path / name.split("/")[0]
        shutil.copytree(first_unit, copy)
        target = copy / name
        data = bytearray(target.read_bytes())
        data[-2] ^= 0xFF
        target.write_bytes(bytes(data))
        with pytest.raises(UnitIntegrityError, match=name):
            load_gated(base, [copy], encoder)
    with pytest.raises(UnitIntegrityError, match="not found"):
        load_gated(base, [tmp_path / "absent"], encoder)


def test_gpt2_base_runs_through_train_unit_and_load_gated(encoder, tiny_world, people, tmp_path):
    from workers.engine.base_model import load_base_model
    from workers.engine.demo_config import DemoModelConfig
    from workers.engine.demo_model import build_demo_model

    gpt2 = load_base_model(build_demo_model(DemoModelConfig.preset_config("tiny", arch="gpt2")), device="cpu")
    assert gpt2.model.config.model_type == "gpt2"
    unit = train_unit(gpt2, request(tiny_world, people[0]), out_dir=tmp_path / "gpt2-unit", encoder=encoder)
    with load_gated(gpt2, [unit], encoder) as gated:
        leaked, counted = leaks(gated, gated, tiny_world.questions(people[0], "trained"))
        assert counted >= 6 and leaked == 0
        other = tiny_world.questions(people[1], "trained")
        kept = answers(gated, [qa.question for qa in other])
        assert sum(contains_value(a, qa.answer) for a, qa in zip(kept, other)) >= 6
