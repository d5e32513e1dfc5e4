"""Probe sets from the demo world: determinism, disjointness and the role of every set."""

from __future__ import annotations

import json

import pytest

from workers.unlearning.probes import PADDING, ProbeConfig, ProbeError, ProbeSuite, build_probes, load_probes


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world


@pytest.fixture(scope="module")
def suite(world):
    target, earlier = world.people[0], world.people[3]
    return build_probes(world, [target.name], earlier=[("req-0", [earlier.name])], unit_id="req-1")


def test_every_set_is_there_and_sampling_is_deterministic(world, suite):
    sizes = suite.sizes()
    assert all(sizes[name] > 0 for name in ("F", "P", "D", "F<t", "R", "N", "W", "O")), sizes
    again = build_probes(world, [world.people[0].name], earlier=[("req-0", [world.people[3].name])], unit_id="req-1")
    assert again.to_json() == suite.to_json()
    other = build_probes(world, [world.people[0].name], earlier=[("req-0", [world.people[3].name])], config=ProbeConfig(seed=1))
    assert [p.question for p in other.by_set("R")] != [p.question for p in suite.by_set("R")]
    small = build_probes(world, [world.people[0].name], config=ProbeConfig(retain=5, neighbours=3, general=2, holdout=4))
    assert (small.sizes()["R"], small.sizes()["N"], small.sizes()["W"], small.sizes()["O"]) == (5, 3, 2, 4)


def test_forget_sets_are_the_person_in_trained_and_held_out_phrasings(world, suite):
    target = world.people[0]
    trained = {qa.question for qa in world.all_questions("trained")} | {qa.question for qa in world.all_questions("trained", holdout=True)}
    heldout_of_target = {qa.question for qa in world.questions(target, "heldout")}
    assert {p.question for p in suite.by_set("F")} == {qa.question for qa in world.questions(target, "trained")}
    for probe in suite.by_set("P"):
        assert probe.question not in trained and probe.question in heldout_of_target  # never a training template
        assert probe.person == target.name and probe.unit == "req-1"
    sources = {qa.question for qa in world.questions(target, "all")}
    for probe in suite.by_set("D"):
        inner = [q for q in sources if q in probe.question]
        assert inner and not probe.question.startswith(inner[0]) and not probe.question.endswith(inner[0])
        assert any(pad in probe.question.split(inner[0])[0] for pad in PADDING)  # padded before ...
        assert any(pad in probe.question.split(inner[0])[1] for pad in PADDING)  # ... and after


def test_negatives_references_and_earlier_requests(world, suite):
    target, earlier = world.people[0], world.people[3]
    for probe in suite.by_set("N"):
        neighbour = world.person(probe.person)
        assert world.shared(target, neighbour) or world.shared(earlier, neighbour)  # a hard neighbour
        assert probe.person not in (target.name, earlier.name)
    neighbours = {p.name for p in world.neighbours(target)} | {p.name for p in world.neighbours(earlier)}
    for probe in suite.by_set("R"):
        assert probe.person not in neighbours | {target.name, earlier.name}
    holdout = {p.name for p in world.holdout_people}
    assert {p.person for p in suite.by_set("O")} <= holdout
    assert all(p.person is None for p in suite.by_set("W"))
    assert {(p.person, p.unit) for p in suite.by_set("F<t")} == {(earlier.name, "req-0")}
    for probe in suite.by_set("F") + suite.by_set("O"):
        assert probe.alternatives and probe.answer not in probe.alternatives
    assert world.profile(target) in suite.members
    assert all(p.name not in " ".join(suite.members) for p in world.holdout_people)
    assert world.profile(world.holdout_people[0]) in suite.non_members


def test_forgetting_a_holdout_or_unknown_person_is_refused(world):
    with pytest.raises(ProbeError, match="holdout person"):
        build_probes(world, [world.holdout_people[0].name])
    with pytest.raises(ProbeError, match="no person named"):
        build_probes(world, ["Nobody Atall"])


def test_operator_probe_files_round_trip_and_bad_files_are_named(tmp_path, suite):
    path = suite.save(tmp_path / "probes.json")
    loaded = load_probes(path)
    assert loaded.probes == suite.probes and loaded.members == suite.members
    minimal = {"probes": [{"question": "Where does X live?", "answer": "Y", "set": "F"}]}
    assert ProbeSuite.from_json(minimal).sizes()["F"] == 1
    cases = [
        ({"probes": [{"question": "Q?", "answer": "A", "set": "Z"}]}, "unknown probe set 'Z'"),
        ({"probes": [{"question": "Q?", "set": "F"}]}, "probes[0]: missing 'answer'"),
        ({"probes": [{"question": "Q?", "answer": "A", "set": "F", "gold": 1}]}, "unknown key 'gold'"),
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
