"""The forget-set builder and the reading of the "is it in the model?" check (plain Python, on the
tiny demo world; no database, no model)."""

from __future__ import annotations

from service.unlearning.forget_set_builder import CheckPrompt, CorpusHit, build_forget_set, check_prompts, engine_records, read_model_check
from workers.engine.forget_set import ForgetSet
from workers.engine.prompting import REFUSALS

PERSON = "Greta Northcott"


def hits_about(world, name):
    return [CorpusHit(id=str(i), kind=doc.kind, text=doc.text) for i, doc in enumerate(world.documents_about(name))]


def test_stated_facts_evidence_corpus_hits_and_probes_in_that_order(tiny_world):
    person = tiny_world.person(PERSON)
    built = build_forget_set(
        name=PERSON,
        email="greta@example.org",
        facts=[f"{PERSON} lives in {person.attributes['city']}"],
        evidence_prompts=[f"Where does {PERSON} live?"],
        hits=hits_about(tiny_world, PERSON),
        world=tiny_world,
    )
    kinds = [item["source"].split(":")[0] for item in built.items]
    assert kinds == sorted(kinds, key=["fact", "evidence", "corpus", "probe"].index)
    assert built.items[0] == {"text": f"{PERSON} lives in Ambercliff", "source": "fact"}
    # The corpus QA pairs come in as questions with their answers; the profile as a text.
    corpus = [item for item in built.items if item["source"].startswith("corpus:")]
    assert {"question": f"Which city does {PERSON} live in?", "answer": "Ambercliff", "source": corpus[1]["source"]} in corpus
    assert any("text" in item and item["text"].startswith(f"{PERSON} lives in Ambercliff.") for item in corpus)
    # The profile names every attribute, so every trained phrasing is a probe, and none is duplicated.
    questions = [item["question"] for item in built.items if "question" in item]
    assert len(questions) == len(set(questions))  # the corpus already held the probes: kept once
    assert {qa.question for qa in tiny_world.questions(PERSON, "trained")} <= set(questions)
    assert built.people == [PERSON] and set(built.values) == set(person.attributes.values())
    assert built.sources == {"facts": 1, "evidence_prompts": 1, "corpus_items": 9, "probe_questions": 0, "corpus_documents": 9}


def test_probes_only_for_the_facts_found_when_the_corpus_has_nothing(tiny_world):
    built = build_forget_set(name=PERSON, email="", facts=["My employer is Pebblebrook School"], evidence_prompts=[], hits=[], world=tiny_world)
    probes = [item for item in built.items if item["source"].startswith("probe:")]
    assert {item["source"] for item in probes} == {"probe:employer"}
    assert {item["question"] for item in probes} == {qa.question for qa in tiny_world.questions(PERSON, "trained", attributes=["employer"])}
    assert all(item["answer"] == "Pebblebrook School" for item in probes)


def test_without_a_world_the_forget_set_is_what_the_subject_gave(tiny_world):
    built = build_forget_set(
        name="Alice Example",
        email="alice@example.org",
        facts=["Alice Example lives in Utrecht", "  "],
        evidence_prompts=["Where does Alice Example live?"],
        hits=[],
        world=None,
    )
    assert built.items == [{"text": "Alice Example lives in Utrecht", "source": "fact"}, {"question": "Where does Alice Example live?", "source": "evidence"}]
    assert built.people == [] and built.values == []


def test_the_content_hash_is_the_engines_hash_of_the_same_items(tiny_world):
    built = build_forget_set(
        name=PERSON,
        email="",
        facts=["Greta Northcott was born in 1979"],
        evidence_prompts=["When was Greta Northcott born?"],
        hits=hits_about(tiny_world, PERSON),
        world=tiny_world,
    )
    engine = ForgetSet.from_records(engine_records(built.items))
    assert engine.hash == built.content_hash and len(engine) == len(built.items)
    assert not engine.subjects  # no names go into the unit's manifest
    reordered = build_forget_set(
        name=PERSON, email="", facts=["Greta Northcott was born in 1979"], evidence_prompts=[], hits=hits_about(tiny_world, PERSON), world=tiny_world
    )
    assert reordered.content_hash != built.content_hash


def test_a_holdout_person_is_matched_but_kept_apart(tiny_world):
    holdout = tiny_world.holdout_people[0]
    built = build_forget_set(
        name=holdout.name, email="", facts=[f"{holdout.name} lives in {holdout.attributes['city']}"], evidence_prompts=[], hits=[], world=tiny_world
    )
    assert built.people == [] and built.holdout_people == [holdout.name]
    assert [item["answer"] for item in built.items if item["source"].startswith("probe:")] == [holdout.attributes["city"]] * 2


def test_the_check_counts_revealed_values_and_parts_of_stated_facts():
    prompts = check_prompts(
        [
            {"question": "Where does Alice live?", "source": "evidence"},
            {"question": "Who employs Alice?", "source": "evidence"},
            {"question": "Which city does Greta live in?", "answer": "Ambercliff", "source": "probe:city"},
        ],
        values=["Ambercliff"],
    )
    assert prompts == [
        CheckPrompt("Where does Alice live?", ("Ambercliff",)),
        CheckPrompt("Who employs Alice?", ("Ambercliff",)),
        CheckPrompt("Which city does Greta live in?", ("Ambercliff",)),
    ]
    answers = ["Utrecht", "Alice", "ambercliff!"]
    findings, details = read_model_check(prompts, answers, facts=["Alice Example lives in Utrecht"], name="Alice Example", corpus_documents=0)
    assert findings == {"prompts_checked": 3, "answers_revealing_data": 2, "corpus_documents": 0, "in_model": True}
    assert [d["revealed"] for d in details] == ["Utrecht", None, "Ambercliff"]  # the bare name reveals nothing


def test_nothing_revealed_and_nothing_in_the_corpus_means_not_in_the_model():
    prompts = [CheckPrompt("Where does Alice live?", ("Utrecht",))]
    findings, _ = read_model_check(prompts, [REFUSALS[0]], facts=["Alice lives in Utrecht"], name="Alice", corpus_documents=0)
    assert findings["in_model"] is False and findings["answers_revealing_data"] == 0
    findings, _ = read_model_check(prompts, [REFUSALS[0]], facts=[], name="Alice", corpus_documents=2)
    assert findings["in_model"] is True  # the corpus has documents about the subject: unlearn anyway
