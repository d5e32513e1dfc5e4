"""The demo world: deterministic, well-formed, with held-out paraphrases kept out of training."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from workers.engine.prompting import format_qa, normalise
from workers.engine.world import ATTRIBUTE_KEYS, DemoWorld, build_world, load_world


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return build_world(seed=0)


def test_same_seed_gives_identical_world_and_other_seed_differs(world):
    again = build_world(seed=0)
    assert again.to_json() == world.to_json()
    assert again.digest() == world.digest()
    assert build_world(seed=1).digest() != world.digest()


def test_default_world_has_the_promised_size(world):
    assert len(world.people) >= 200
    assert len(world.holdout_people) == 20
    assert len(world.attributes) >= 9
    assert len(world.general_facts) >= 50
    names = [p.name for p in world.people + world.holdout_people]
    assert len(set(names)) == len(names)
    assert all(not p.holdout for p in world.people) and all(p.holdout for p in world.holdout_people)


def test_json_export_shape(world, tmp_path):
    data = json.loads(json.dumps(world.to_json()))
    person = data["people"][0]
    assert set(ATTRIBUTE_KEYS) <= set(person["attributes"])
    assert person["holdout"] is False
    splits = Counter(q["split"] for q in person["questions"])
    assert set(splits) == {"trained", "heldout"}
    assert splits["trained"] == 2 * len(ATTRIBUTE_KEYS) and splits["heldout"] >= 3 * len(ATTRIBUTE_KEYS)
    for q in person["questions"]:
        assert set(q) == {"question", "attribute", "answer", "split"}
        assert q["answer"] == person["attributes"][q["attribute"]]
        assert person["name"] in q["question"]
    assert len(data["holdout_people"]) == 20 and all(p["holdout"] is True for p in data["holdout_people"])
    assert all(f["general"] is True and f["questions"] for f in data["general_facts"])
    # round trip through a file
    path = world.save(tmp_path / "world.json")
    assert load_world(path).digest() == world.digest()


def test_heldout_templates_never_reach_the_training_corpus(world):
    corpus = "\n".join(ex.text for ex in world.training_examples())
    heldout = [qa for p in world.people for qa in world.questions(p, "heldout")] + world.fact_questions(split="heldout")
    assert heldout
    leaked = [qa.question for qa in heldout if qa.question in corpus]
    assert leaked == []
    for attr in world.attributes + world.fact_attributes:
        assert len(attr.trained_templates) >= 2 and len(attr.heldout_templates) >= 3
        assert not set(attr.trained_templates) & set(attr.heldout_templates)


def test_holdout_people_are_not_in_the_training_corpus(world):
    corpus = normalise(" ".join(ex.text for ex in world.training_examples()))
    for p in world.holdout_people:
        assert normalise(p.name) not in corpus
        assert normalise(p.attributes["email"]) not in corpus


def test_training_corpus_uses_the_shared_qa_format(world):
    examples = world.training_examples()
    kinds = Counter(ex.kind for ex in examples)
    assert kinds["profile"] == len(world.people)
    assert kinds["person_qa"] == len(world.people) * len(world.attributes) * 2
    assert kinds["fact_qa"] == len(world.general_facts) * 2
    qa = world.questions(world.people[0], "trained")[0]
    assert format_qa(qa.question, qa.answer) in [ex.text for ex in examples]
    profile = world.profile(world.people[0])
    assert all(v in profile for v in world.people[0].attributes.values())


def test_every_person_has_hard_neighbours_of_each_kind(world):
    kinds = Counter()
    for p in world.people:
        neighbours = world.neighbours(p)
        assert neighbours, p.name
        assert p not in neighbours
        for n in neighbours:
            shared = world.shared(p, n)
            assert shared
            kinds.update(shared)
    assert kinds["surname"] and kinds["city"] and kinds["employer"]
    families = [p for p in world.people if any("surname" in world.shared(p, n) and "city" in world.shared(p, n) for n in world.neighbours(p))]
    assert len(families) >= 20  # deliberate relatives: same surname and city


def test_values_never_contain_another_persons_value(world):
    """The leak check is a normalised substring test: no value may hide inside another."""
    people = world.people + world.holdout_people
    for key in ("address", "phone", "email", "account"):
        values = [normalise(p.attributes[key]) for p in people]
        assert len(set(values)) == len(values)
        for a in values:
            assert sum(a in b for b in values) == 1, (key, a)
    for key in ("city", "employer", "job", "condition"):
        vocab = sorted({normalise(p.attributes[key]) for p in people})
        for a in vocab:
            assert sum(a in b for b in vocab) == 1, (key, a)


def test_person_lookup_and_identifier_search(world):
    p = world.people[3]
    assert world.person(p.name) is p
    with pytest.raises(KeyError):
        world.person("Nobody Atall")
    assert world.find_people(f"Please forget me, {p.name.upper()}!") == [p]
    assert world.find_people(f"my phone is {p.attributes['phone']}") == [p]
    assert world.find_people(f"write to {p.attributes['email']} please") == [p]
    assert world.find_people(f"everyone called {p.surname}") == []
    docs = world.documents_about(p)
    assert len(docs) == 1 + 2 * len(world.attributes)
    assert all(d.subject == p.name for d in docs)
    holdout = world.holdout_people[0]
    assert world.find_people(holdout.name) == [holdout]
    assert world.find_people(holdout.name, include_holdout=False) == []


def test_attribute_selection_and_sizes():
    small = build_world(seed=0, n_people=24, n_holdout=4, attributes=("city", "phone"), n_countries=4)
    assert [a.key for a in small.attributes] == ["city", "phone"]
    assert all(set(p.attributes) == {"city", "phone"} for p in small.people)
    assert len(small.general_facts) == 12
    with pytest.raises(ValueError):
        build_world(attributes=("city", "shoe_size"))
