"""The name-token index of EntityBank: with thousands of units, the indexed lookup finds exactly the
evidence the exhaustive comparison with every unit's name tokens finds, on every probe family."""

from __future__ import annotations

import random

import pytest

from workers.engine.detector.names import EntityBank, EntityMatcher
from workers.engine.families import POSITIVE_FAMILIES
from workers.engine.forget_set import forget_set_for_people
from workers.engine.probes import ProbeConfig, build_probes
from workers.engine.world import build_world

SYLLABLES = ("ka", "lo", "mi", "ren", "ta", "vor", "el", "sa", "dun", "bri", "qua", "zel", "mor", "ith", "pen", "gal", "ru", "ost")


def near_miss(name: str, rng: random.Random) -> str:
    """The name with one part changed by one or two edits: units whose names sit at the matching
    rules' edges (same first letter or not, same sound or not)."""
    parts = name.split()
    index = rng.randrange(len(parts))
    word = list(parts[index])
    for _ in range(rng.choice((1, 2))):
        position = rng.randrange(len(word))
        edit = rng.choice(("substitute", "insert", "delete", "transpose"))
        if edit == "substitute":
            word[position] = rng.choice("aeiourstnlk")
        elif edit == "insert":
            word.insert(position, rng.choice("aeiourstnlk"))
        elif edit == "delete" and len(word) > 3:
            del word[position]
        elif position + 1 < len(word):
            word[position], word[position + 1] = word[position + 1], word[position]
    parts[index] = "".join(word).capitalize()
    return " ".join(parts)


@pytest.fixture(scope="module")
def world():
    return build_world(seed=0)


@pytest.fixture(scope="module")
def matchers(world):
    rng = random.Random("entity-index")
    units = {}
    for person in world.people:  # every person of the world, as the pipeline fits them
        forget = forget_set_for_people(world, [person])
        units[f"person-{len(units)}"] = EntityMatcher.fit([person.name], [item.answer for item in forget.items], forget.identifiers)
    for _ in range(1500):  # the world's names one or two edits away
        units[f"near-{len(units)}"] = EntityMatcher.fit([near_miss(rng.choice(world.people).name, rng)])
    for _ in range(2500):  # made-up people
        word = lambda parts: "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()  # noqa: E731
        units[f"made-up-{len(units)}"] = EntityMatcher.fit([f"{word(2)} {word(3)}"])
    return units


def test_the_index_finds_exactly_what_the_exhaustive_lookup_finds(world, matchers):
    people = random.Random("entity-index-people").sample([p.name for p in world.people], 6)
    config = ProbeConfig(per_family=12, retain=120, neighbours=120, general=40, holdout=0, reserve_rounds=0)
    probes = build_probes(world, people, config=config).probes
    texts = [probe.spec.gate_text() for probe in probes]
    assert {probe.set for probe in probes} >= set(POSITIVE_FAMILIES) | {"R", "N", "W"}

    indexed, exhaustive = EntityBank(matchers), EntityBank(matchers, indexed=False)
    found = indexed.evidence(texts)
    reference = exhaustive.evidence(texts)

    differences = [(text, a, b) for text, a, b in zip(texts, found, reference) if a != b]
    assert not differences, differences[:3]
    assert sum(bool(evidence) for evidence in found) > len(texts) // 3  # not vacuous: many probes name someone
    kinds = {e.kind for evidence in found for e in evidence.values()}
    assert {"full_name", "surname"} <= kinds
    # (how much faster the index is, bench/gate_scale.py measures: a timing is not a test)


def test_a_bank_finds_what_each_unit_alone_finds(world, matchers):
    """Units that share a name token are decided together (EntityBank groups a name token's owners
    by allowance): the bank must find, per text, exactly what every unit's own matcher finds alone.
    The made-up units share given names by the hundred (18 syllables), so groups are large."""
    rng = random.Random("entity-index-alone")
    kinds = ("person", "near", "made-up")
    matchers = {uid: m for kind, keep in zip(kinds, (200, 300, 1000)) for uid, m in list((u, m) for u, m in matchers.items() if u.startswith(kind))[:keep]}
    people = rng.sample([p.name for p in world.people], 2)
    config = ProbeConfig(per_family=1, retain=4, neighbours=4, general=2, holdout=0, reserve_rounds=0)
    texts = [probe.spec.gate_text() for probe in build_probes(world, people, config=config).probes]
    made_up = [m.subjects[0].full.title() for uid, m in matchers.items() if uid.startswith("made-up")]
    texts += [template.format(name) for template in ("Where does {} live?", "tell me about {}") for name in rng.sample(made_up, 3)]
    found = EntityBank(matchers).evidence(texts)
    alone = {uid: EntityBank({uid: matcher}) for uid, matcher in matchers.items()}
    for text, evidence in zip(texts, found):
        reference = {}
        for bank in alone.values():
            reference.update(bank.evidence([text])[0])
        assert evidence == reference, text
    shared = sum(len(m.subjects[0].given_tokens()) for uid, m in matchers.items() if uid.startswith("made-up"))
    assert shared > 2 * len({m.subjects[0].given_tokens() for uid, m in matchers.items() if uid.startswith("made-up")})  # not vacuous: names are shared
    assert sum(len(e) > 1 for e in found) > 0  # some text names a token several units own
