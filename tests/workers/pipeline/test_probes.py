"""Probe suites from the demo world and from bare forget facts: every family, determinism, the
certification phrasings, negatives that are really other people, and probe files."""

from __future__ import annotations

import json

import pytest

from workers.engine import phrasings as ph
from workers.engine.families import Fact, facts_of_person
from workers.engine.probes import POSITIVE_SETS, RESERVE_SETS, ProbeConfig, ProbeError, ProbeSuite, build_probes, facts_suite, load_probes


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world


@pytest.fixture(scope="module")
def suite(world):
    target, earlier = world.people[0], world.people[3]
    return build_probes(world, [target.name], earlier=[("req-0", [earlier.name])], unit_id="req-1")


def test_every_family_is_there_with_enough_probes_and_sampling_is_deterministic(world, suite):
    sizes = suite.sizes()
    config = ProbeConfig()
    for name in POSITIVE_SETS:
        expected = 8 if name in ("F", "F<t") else config.per_family  # F: the tiny world's 8 trained questions
        assert sizes[name] >= expected - 4, (name, sizes)  # statement and language: 60 distinct on 4 attributes
    assert sizes["R"] == config.retain and sizes["W"] >= 100 and sizes["O"] == config.holdout and sizes["N"] > 100
    again = build_probes(world, [world.people[0].name], earlier=[("req-0", [world.people[3].name])], unit_id="req-1")
    assert again.to_json() == suite.to_json()
    other = build_probes(world, [world.people[0].name], earlier=[("req-0", [world.people[3].name])], config=ProbeConfig(seed=1))
    assert [p.question for p in other.by_set("P")] != [p.question for p in suite.by_set("P")]
    assert suite.meta["split"] == "cert"


def test_positives_are_about_the_person_in_certification_phrasings_with_all_her_values(world, suite):
    target = world.people[0]
    assert {p.question for p in suite.by_set("F")} == {qa.question for qa in world.questions(target, "trained")}
    trained = {qa.question for qa in world.all_questions("trained")}
    dev_frames = [frame.split("{np}")[0] for frame in ph.FRAMES["dev"]]
    for probe in suite.by_set("P"):
        assert probe.question not in trained and not any(probe.question.startswith(f) for f in dev_frames if f)
        assert probe.person == target.name and probe.unit == "req-1"
    for name in POSITIVE_SETS:
        if name != "F<t":
            assert all(set(p.values) == set(target.attributes.values()) for p in suite.by_set(name)), name
    padding = ph.PADDING["cert"]
    assert all(sum(pad in p.question for pad in padding) >= 2 for p in suite.by_set("D"))  # padded, certification padding
    assert {p.shape for p in suite.by_set("chat")} == {"chat"} and {p.shape for p in suite.by_set("statement")} == {"raw", "question"}
    assert {p.detail for p in suite.by_set("name_forms")} <= set(ph.NAME_FORM_KINDS["cert"])


def test_the_reserve_holds_new_draws_of_the_drawn_families_only(world, suite, tmp_path):
    """Each reserve round is another seed's draw, none of it already drawn, of the families a pool
    can give more of (never F, F<t or O); it survives a probe file; reserve_rounds=0 has none."""
    assert len(suite.reserve) == ProbeConfig().reserve_rounds == len(suite.meta["reserve"])
    identity = lambda p: (p.set, p.shape, p.question, p.messages, p.person, p.attribute)  # noqa: E731
    seen = {identity(p) for p in suite.probes}
    for draw in suite.reserve:
        sets = {p.set for p in draw}
        assert sets <= set(RESERVE_SETS) and {"N", "R"} <= sets and sets & set(POSITIVE_SETS)  # a small pool (P here) may run dry
        assert not {identity(p) for p in draw} & seen
        seen |= {identity(p) for p in draw}
    assert ProbeSuite.from_json(json.loads(json.dumps(suite.to_json()))).reserve == suite.reserve
    bare = build_probes(world, [world.people[0].name], config=ProbeConfig(reserve_rounds=0))
    assert bare.reserve == [] and [p.question for p in bare.probes] == [p.question for p in build_probes(world, [world.people[0].name]).probes]
    bad = {**suite.to_json(), "reserve": [[suite.by_set("F")[0].to_json()]]}
    with pytest.raises(ProbeError, match="reserve probes must be of the drawn families"):
        ProbeSuite.from_json(bad)


def test_negatives_are_other_people_and_neighbours_are_labelled(world, suite):
    target, earlier = world.people[0], world.people[3]
    kinds = set()
    for probe in suite.by_set("N"):
        neighbour = world.person(probe.person)
        kind = probe.detail.split(":")[0]
        kinds.add(kind)
        related = [
            p
            for p in (target, earlier)
            if (kind == "surname" and p.surname == neighbour.surname)
            or (kind == "given_name" and p.first_name == neighbour.first_name)
            or (kind in ("city", "employer") and p.attributes[kind] == neighbour.attributes[kind])
        ]
        assert related and probe.person not in (target.name, earlier.name), probe
    assert "surname" in kinds and "given_name" in kinds
    for probe in suite.by_set("R") + suite.by_set("N"):
        assert target.name not in probe.spec.gate_text() and earlier.name not in probe.spec.gate_text()
        assert probe.answer and not probe.values
    assert {p.person for p in suite.by_set("O")} <= {p.name for p in world.holdout_people}
    assert {(p.person, p.unit) for p in suite.by_set("F<t")} == {(earlier.name, "req-0")}
    for probe in suite.by_set("F"):
        assert probe.alternatives and probe.answer not in probe.alternatives
    assert world.profile(target) in suite.members and world.profile(world.holdout_people[0]) in suite.non_members


def test_a_suite_from_bare_facts_knows_when_it_has_no_negatives(world):
    person = world.people[1]
    facts = [Fact(f.subject, f.attribute, f.value, f"What is the {f.attribute} of {person.name}?") for f in facts_of_person(world, person)]
    bare = facts_suite(facts)
    assert bare.meta["negatives"] is False and not bare.by_set("R") and len(bare.by_set("language")) >= 59  # 0 leaks of 59 bound the rate at 4.9%
    others = [f for p in world.people[5:9] for f in facts_of_person(world, p)]
    with_negatives = facts_suite(facts, others=others, neighbours=[("surname", others[0])])
    assert with_negatives.meta["negatives"] is True and with_negatives.by_set("R") and with_negatives.by_set("N")
    with pytest.raises(ProbeError, match="no forget facts"):
        facts_suite([])


def test_fitting_prompts_only(world):
    short = build_probes(world, [world.people[0].name], fits=lambda spec: len(spec.gate_text().split()) <= 30)
    assert short.by_set("D") and all(len(p.spec.gate_text().split()) <= 30 for p in short.probes if p.set not in ("W", "O"))


def test_forgetting_a_holdout_or_unknown_person_is_refused(world):
    with pytest.raises(ProbeError, match="holdout person"):
        build_probes(world, [world.holdout_people[0].name])
    with pytest.raises(ProbeError, match="no person named"):
        build_probes(world, ["Nobody Atall"])


def test_probe_files_round_trip_and_bad_files_are_named(tmp_path, suite):
    path = suite.save(tmp_path / "probes.json")
    loaded = load_probes(path)
    assert loaded.probes == suite.probes and loaded.members == suite.members
    minimal = {"probes": [{"question": "Where does X live?", "answer": "Y", "set": "F"}]}  # a version 1 file
    assert ProbeSuite.from_json(minimal).sizes()["F"] == 1
    chat = {
        "probes": [
            {
                "question": "Where?",
                "answer": "Y",
                "set": "chat",
                "shape": "chat",
                "messages": [{"role": "user", "content": "About X."}, {"role": "user", "content": "Where?"}],
            }
        ]
    }
    assert ProbeSuite.from_json(chat).probes[0].spec.gate_text() == "About X.\nWhere?"
    cases = [
        ({"probes": [{"question": "Q?", "answer": "A", "set": "Z"}]}, "unknown probe set 'Z'"),
        ({"probes": [{"question": "Q?", "set": "R"}]}, "probes[0]: probe answer must be a non-empty string"),
        ({"probes": [{"question": "Q?", "answer": "A", "set": "F", "gold": 1}]}, "unknown key 'gold'"),
        ({"probes": [{"question": "Q?", "answer": "A", "set": "chat", "shape": "chat"}]}, "a chat prompt needs messages"),
        ({"probes": []}, "non-empty list"),
    ]
    for data, message in cases:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(data))
        with pytest.raises(ProbeError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_probes(bad)
    bad.write_text("{not json")
    with pytest.raises(ProbeError, match="not valid JSON"):
        load_probes(bad)


def test_a_pretrained_model_is_certified_on_general_knowledge_too(world, tiny_demo_model, tmp_path):
    """W holds real-world questions for any model but a demo model trained from scratch (which knows
    nothing else): a unit must keep a pretrained model's own abilities."""
    from workers.engine.general_knowledge import EVALUATION
    from workers.engine.probes import probe_config_for

    assert probe_config_for(tiny_demo_model).general_knowledge == 0
    (tmp_path / "config.json").write_text("{}")  # any other model directory
    assert probe_config_for(tmp_path).general_knowledge == len(EVALUATION)
    assert probe_config_for(tmp_path, general_knowledge=3, seed=2).general_knowledge == 3

    suite = build_probes(world, [world.people[0].name], config=ProbeConfig(general_knowledge=len(EVALUATION)))
    general = [p for p in suite.by_set("W") if p.detail == "general knowledge"]
    assert len(general) == len(EVALUATION)
    delhi = next(p for p in general if "India" in p.question)
    assert delhi.values == ("New Delhi", "Delhi") and delhi.person is None


def test_a_general_answer_is_right_with_any_accepted_word():
    import numpy as np

    from workers.engine.certificate import _leak_and_retain
    from workers.engine.probes import Probe
    from workers.engine.serving import GateScores

    probes = [
        Probe("What is the capital of India?", "New Delhi", "W", values=("New Delhi", "Delhi"), detail="general knowledge"),
        Probe("What is the capital of France?", "Paris", "W"),
    ]
    gate = GateScores((), np.zeros((2, 0)), np.zeros((2, 0)), np.zeros((2, 0)), ({}, {}))
    _, retain, rows = _leak_and_retain(probes, ["It is Delhi.", "Paris."], ["It is Delhi.", "Lyon."], [None, None], gate, [])
    assert [row["base_correct"] for row in rows] == [True, True]
    assert retain["W"]["gated"]["correct"] == 1 and retain["W"]["gated"]["base_correct"] == 2
