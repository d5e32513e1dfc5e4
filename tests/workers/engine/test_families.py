"""Probe families (families.py, phrasings.py): seeded generators from forget facts, in two disjoint splits."""

from __future__ import annotations

import random

import pytest

from workers.engine import phrasings as ph
from workers.engine.families import (
    POSITIVE_FAMILIES,
    Fact,
    FamilyError,
    classify_attribute,
    facts_of_person,
    generate,
    misspell,
    name_form,
    negatives_about,
    synthesise,
)
from workers.engine.world import PERSON_ATTRIBUTES, build_world


@pytest.fixture(scope="module")
def world():
    return build_world(0)


def test_every_family_gives_its_count_deterministically_in_every_shape_it_names(world):
    facts = facts_of_person(world, world.people[2])
    shapes = {
        "P": {"question"},
        "statement": {"raw", "question"},
        "open": {"question", "raw", "chat"},
        "chat": {"chat"},
        "wrapper": {"question", "chat"},
        "language": {"question", "chat"},
    }
    for family in POSITIVE_FAMILIES[1:]:
        first = generate(family, facts, 64, split="cert", seed=0, world=world)
        assert len(first) == 64 and len({g.spec for g in first}) == 64, family
        assert first == generate(family, facts, 64, split="cert", seed=0, world=world)
        assert first != generate(family, facts, 64, split="cert", seed=1, world=world)
        if family in shapes:
            assert {g.spec.shape for g in first} == shapes[family], family
        assert all(world.people[2].name in g.spec.gate_text() or family == "name_forms" for g in first)


def test_development_and_certification_phrasings_never_meet(world):
    facts = [f for p in world.people[:5] for f in facts_of_person(world, p)]
    for family in POSITIVE_FAMILIES[1:]:
        dev = {g.spec for g in generate(family, facts, 300, split="dev", seed=0, world=world)}
        cert = {g.spec for g in generate(family, facts, 300, split="cert", seed=0, world=world)}
        assert not dev & cert, family
    for table in (ph.FRAMES, ph.OPEN, ph.OPEN_RAW, ph.WRAPPERS, ph.PADDING, ph.CHAT_OPENERS, ph.LANGUAGE_OPEN):
        assert not set(table["dev"]) & set(table["cert"])
    for per_attribute in (ph.NOUN_PHRASES, ph.STATEMENTS, ph.LANGUAGE, ph.FOLLOW_UPS):
        for key, table in per_attribute.items():
            assert not set(table["dev"]) & set(table["cert"]), key


def test_name_forms_and_misspellings():
    rng = random.Random(0)
    for _ in range(50):
        word = misspell("Kowalczyk", rng)
        assert word != "Kowalczyk" and word[0] == "K" and abs(len(word) - 9) <= 1
    assert name_form("Rosalind Kowalczyk", "initial_surname", rng, "cert") == "R. Kowalczyk"
    assert name_form("Rosalind Kowalczyk", "reversed", rng, "cert") == "Kowalczyk, Rosalind"
    assert name_form("Rosalind Kowalczyk", "given_with_context", rng, "cert", "Ravensway") == "Rosalind (the one from Ravensway)"
    cert, dev = (name_form("Rosalind Kowalczyk", "transliterated", rng, split) for split in ("cert", "dev"))
    assert cert != dev and all(any("\u0400" <= ch <= "\u04ff" for ch in form) for form in (cert, dev))
    assert name_form("Madonna", "initial_surname", rng, "cert") is None
    with pytest.raises(FamilyError):
        name_form("A B", "nickname", rng, "cert")


def test_negatives_carry_their_gold_value_and_synthesis_uses_development_phrasings_only(world):
    others = [f for p in world.people[10:20] for f in facts_of_person(world, p)]
    negatives = negatives_about(others, 50, split="cert", seed=0, label="R", world=world)
    assert len(negatives) == 50 and all(g.value for g in negatives) and {g.family for g in negatives} == {"R"}
    facts = facts_of_person(world, world.people[0])
    training = synthesise(facts, per_family={"P": 1, "D": 1}, seed=0, world=world)
    cert = {g.spec for family in ("P", "D") for g in generate(family, facts, 500, split="cert", seed=0, world=world)}
    assert len(training) == 2 * len(facts) and not {g.spec for g in training} & cert


def test_attributes_are_classified_from_any_phrasing():
    for attribute in PERSON_ATTRIBUTES:
        for template in attribute.trained_templates + attribute.heldout_templates:
            assert classify_attribute(template.format(name="Ada Brightwell")) == attribute.key, template
    assert classify_attribute("What is Ada's favourite colour?") is None
    fact = Fact("Ada Brightwell", None, "blue", "What is Ada Brightwell's favourite colour?")
    assert len(generate("P", [fact], 2, split="cert", seed=0)) == 2  # a generic phrasing for an unknown attribute
    with pytest.raises(FamilyError):
        generate("X", [fact], 2, split="cert")
    with pytest.raises(FamilyError):
        generate("P", [fact], 2, split="test")
