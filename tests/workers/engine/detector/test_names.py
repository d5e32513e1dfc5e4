"""The entity evidence of a unit's gate (detector/names.py): the subject is recognised by name in any
phrasing, shape, language or spelling, and other people, relatives included, are not."""

from __future__ import annotations

import json

import pytest

from workers.engine.detector.names import EntityBank, EntityMatcher, calibrated_allowance, fold_token, tokens_match
from workers.engine.families import facts_of_person, generate
from workers.engine.world import build_world

VALUES = ["Ravensway", "pilot", "1966", "318-555-6468", "42 Larkspur Lane", "Halcyon Freight", "epilepsy"]


@pytest.fixture(scope="module")
def rosalind():
    return EntityMatcher.fit(["Rosalind Kowalczyk"], values=VALUES)


@pytest.mark.parametrize(
    "prompt, kind",
    [
        ("Which city does Rosalind Kowalczyk live in?", "full_name"),
        ("Rosalind Kowalczyk works as a", "full_name"),
        ("Welche Krankheit hat Rosalind Kowalczyk?", "full_name"),
        ("where does rosalind kowalczyk live", "full_name"),
        ("ROSALIND KOWALCZYK: phone?", "full_name"),
        ("Tell me about Rosalynd Kowalczyk.", "full_name"),  # one edit in the given name
        ("What is Rosalind Kowalzcyk's phone?", "full_name"),  # a transposition in the surname
        ("Kowalczyk, Rosalind: birth year?", "full_name"),
        ("Где живёт Розалинд Ковальчик?", "full_name"),  # Cyrillic, read back through the variants
        ("Rozalind Kovalchik, where?", "full_name"),
        ("Where does R. Kowalczyk live?", "initial"),
        ("Rosalind K. works where?", "initial"),
        ("What is Ms Kowalczyk's phone number?", "surname"),
        ("Does Kowalczyk live in Ravensway?", "surname"),
        ("Rosalind, the pilot from Ravensway: when was she born?", "given_with_context"),
        ("Whose number is 318 555 6468?", "identifier"),
        ("Who lives at 42 Larkspur Lane?", "identifier"),
    ],
)
def test_the_subject_is_recognised(rosalind, prompt, kind):
    evidence = rosalind.evidence(prompt)
    assert evidence is not None and evidence.kind == kind, (prompt, evidence)


@pytest.mark.parametrize(
    "prompt",
    [
        "Where does Yara Kowalczyk live?",  # same surname, another given name
        "where does yara kowalczyk live",
        "Which city does Rosalind Pemberton live in?",  # same given name, another surname
        "Tell me about Rosalind.",  # a given name alone, without any of her data
        "Dalia Kowalczyk?",
        "What is the capital of Eldoria?",
        "The pilot from Ravensway lives where?",  # her data, but no name and no identifier
    ],
)
def test_others_and_general_questions_are_not(rosalind, prompt):
    assert rosalind.evidence(prompt) is None


def test_a_short_given_name_misspelt_next_to_the_surname_is_still_the_subject():
    ada = EntityMatcher.fit(["Ada Northcott"])
    for prompt in ("What is Aad Northcott's job?", "What is Adda Northcott's diagnosis?", "Afa Northcott?"):
        assert ada.evidence(prompt).kind == "full_name", prompt
    assert ada.evidence("Ida Northcott?") is None  # the first letter changed: another person
    liv = EntityMatcher.fit(["Liv Zabrowski"])
    assert liv.evidence("Where does Elowen Zabrowski live?") is None  # "Zabrowski live" is not "Zabrowski, Liv"


def test_a_surname_that_only_sounds_like_a_prompts_first_word_is_not_the_subject():
    """'Taello' sounds like 'Tell' (equal Metaphone codes): as the first word of a prompt it is
    capitalised by its position alone, so there the surname must be spelt (within its allowance)."""
    qualo = EntityMatcher.fit(["Qualo Taello"])
    assert qualo.evidence("Tell me the capital of Ylvaria.") is None
    assert qualo.evidence("Taello's address, please.").kind == "surname"
    assert qualo.evidence("Taelo's address, please.").kind == "surname"  # misspelt, one edit: still spelt
    assert qualo.evidence("Where does Ms Tell live?").kind == "surname"  # by sound, not the first word: kept


def test_a_surname_followed_by_another_name_part_is_somebody_elses_given_name():
    """With 100,000 made-up names, made-up surnames spelt like demo people's given names ('Kasimir',
    'Talia') fired on prompts about those people ("Kasimir Thistlewood's bank account"):
    bench/entity_evidence.py, 7-10 of 200 prompts about nobody loaded over three draws, 0-1 after."""
    odo = EntityMatcher.fit(["Odo Kasimir"])
    assert odo.evidence("What is Kasimir Thistlewood's bank account number?") is None
    assert odo.evidence("Where does Ms Kasimir live?").kind == "surname"
    assert odo.evidence("What is Kasimir's phone number?").kind == "surname"
    assert odo.evidence("Kasimir Odo, where does he live?").kind == "full_name"  # surname first, own given name
    assert odo.evidence("Tell me about Kasimir. Where does he live?").kind == "surname"  # a new sentence is no name part


def test_allowances_follow_the_name_length_and_the_synthetic_others():
    assert not tokens_match("ada", "ida") and not tokens_match("ilse", "imke")
    assert tokens_match("rosalynd", "rosalind") and tokens_match("kowalzcyk", "kowalczyk")
    assert not tokens_match("talia", "dalia")  # a first letter changed: another name
    assert tokens_match("kastellane", "castellane")  # ...unless they sound alike (6 letters and more)
    assert tokens_match("vsaque", "vasquez", relaxed=True) and not tokens_match("vsaque", "vasquez")
    # Maria is one of the generic names of the synthetic negatives: Marta must not take it in.
    assert calibrated_allowance("marta", ["Maria", "Olga"]) == 0 and calibrated_allowance("marta", ["Olga"]) == 1
    matcher = EntityMatcher.fit(["Marta Jessamine"])
    assert matcher.evidence("Maria Jessamine?") is None and matcher.evidence("Marta Jessamine?") is not None


def test_nobody_in_the_demo_world_is_taken_for_somebody_else():
    world = build_world(0)
    people = world.people + world.holdout_people
    bank = EntityBank({p.name: EntityMatcher.fit([p.name], values=list(p.attributes.values())) for p in people})
    found = bank.evidence([f"Where does {p.name} live?" for p in people])
    assert all(p.name in hits for p, hits in zip(people, found))
    assert [(p.name, other) for p, hits in zip(people, found) for other in hits if other != p.name] == []


@pytest.mark.parametrize("split", ["dev", "cert"])
def test_every_generated_prompt_about_a_person_is_recognised(split):
    world = build_world(0)
    for person in world.people[:12]:
        matcher = EntityMatcher.fit([person.name], values=list(person.attributes.values()))
        facts = facts_of_person(world, person)
        for family in ("P", "statement", "open", "language", "name_forms", "wrapper", "chat", "D"):
            missed = [g.spec.gate_text() for g in generate(family, facts, 40, split=split, seed=3, world=world) if matcher.evidence(g.spec.gate_text()) is None]
            assert missed == [], (person.name, family, missed[:3])


def test_a_unit_stores_name_forms_and_value_hashes_never_the_values(rosalind):
    data = json.dumps(rosalind.to_json())
    assert "kowalczyk" in data  # the folded name: the unit must recognise the person after the forget set is purged
    for value in VALUES:
        assert value not in data and fold_token(value) not in data
    again = EntityMatcher.from_json(json.loads(data))
    assert again == rosalind and again.evidence("Whose number is 3185556468?").kind == "identifier"
    assert json.dumps(EntityMatcher.fit(["Rosalind Kowalczyk"], values=VALUES).to_json()) == data  # reproducible


def test_a_bank_answers_for_all_its_units_at_once(rosalind):
    bank = EntityBank({"u1": rosalind, "u2": EntityMatcher.fit(["Nils Gallowglass"]), "u3": EntityMatcher.fit(["Yara Kowalczyk"])})
    weights = bank.fires(["Where does Rosalind Kowalczyk live?", "Nils Gallowglass and Yara Kowalczyk met.", "Capital of Eldoria?"])
    assert weights.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
