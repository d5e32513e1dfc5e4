"""Reading forget sets: the two item kinds, the content hash, and one-line errors naming the line."""

from __future__ import annotations

import json
import re

import pytest

from workers.engine.forget_set import ForgetItem, ForgetSet, ForgetSetError, forget_set_for_people, read_prompts, read_questions
from workers.engine.unit_manifest import hash_forget_set


def write(tmp_path, *lines: str, name: str = "forget.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_questions_texts_subjects_and_hash(tmp_path):
    path = write(
        tmp_path,
        json.dumps({"question": "Where does Ada Brightwell live?", "answer": "Varnholm", "subject": "Ada Brightwell"}),
        "",
        json.dumps({"question": "Who employs Ada Brightwell?"}),
        json.dumps({"text": "Ada Brightwell lives in Varnholm. She works for Larkmoor Bank!  She was born in 1970."}),
    )
    forget = ForgetSet.from_jsonl(path)
    assert [item.kind for item in forget] == ["question", "question", "text"]
    assert forget.subjects == ("Ada Brightwell",)
    assert forget.hash == hash_forget_set(
        [
            ("Where does Ada Brightwell live?", "Varnholm"),
            ("Who employs Ada Brightwell?",),
            "Ada Brightwell lives in Varnholm. She works for Larkmoor Bank!  She was born in 1970.",
        ]
    )
    # The detector sees the questions and the text as they are, never the gold answers.
    assert forget.detector_texts() == ["Where does Ada Brightwell live?", "Who employs Ada Brightwell?", forget.items[2].text]
    # O3: every sentence of a raw text becomes a prompt paired with a refusal.
    assert forget.training_items("refusal") == [
        ("Where does Ada Brightwell live?", "Varnholm"),
        ("Who employs Ada Brightwell?", ""),
        ("Ada Brightwell lives in Varnholm.", ""),
        ("She works for Larkmoor Bank!", ""),
        ("She was born in 1970.", ""),
    ]
    # Answer-based methods need every answer; the text is their target as a whole.
    with pytest.raises(ForgetSetError, match="no answer"):
        forget.training_items("answer")


def test_hash_ignores_subjects_but_not_content(tmp_path):
    a = ForgetSet((ForgetItem(question="Q?", answer="A"),), subjects=("Someone",))
    b = ForgetSet((ForgetItem(question="Q?", answer="A"),))
    c = ForgetSet((ForgetItem(question="Q?", answer="B"),))
    assert a.hash == b.hash != c.hash
    assert ForgetSet.from_jsonl(b.save(tmp_path / "round.jsonl")).hash == b.hash


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            [
                '{"question": "Q?", "answer": "A"}',
                '{"question": "Q2?"',
            ],
            "line 2: not valid JSON",
        ),
        (['{"answer": "A"}'], 'line 1: needs "question"'),
        (['{"question": "Q?", "text": "T"}'], "line 1: an item needs either"),
        (['{"text": "T", "answer": "A"}'], 'line 1: "answer" goes with "question"'),
        (['{"question": "Q?", "answr": "A"}'], "line 1: unknown key 'answr'"),
        (['{"question": 3}'], 'line 1: "question" must be a non-empty string'),
        (['{"question": "   "}'], 'line 1: "question" must be a non-empty string'),
        (['["Q?", "A"]'], "line 1: expected a JSON object"),
        (["", "   "], "no forget items (the file is empty)"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_line(tmp_path, lines, message):
    path = write(tmp_path, *lines)
    with pytest.raises(ForgetSetError) as info:
        ForgetSet.from_jsonl(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_question_files(tmp_path):
    with pytest.raises(ForgetSetError, match="file not found"):
        ForgetSet.from_jsonl(tmp_path / "absent.jsonl")
    assert read_questions(write(tmp_path, '{"question": "A?", "extra": 1}', '{"question": "B?"}')) == ["A?", "B?"]
    with pytest.raises(ForgetSetError, match='line 2: needs exactly one of "question", "prompt" or "messages"'):
        read_questions(write(tmp_path, '{"question": "A?"}', '{"text": "B"}', name="q.jsonl"))


def test_prompt_files_hold_questions_raw_prompts_and_chats(tmp_path):
    path = write(
        tmp_path,
        '{"question": "Where does Ada live?"}',
        '{"prompt": "Ada Brightwell works as a"}',
        '{"messages": [{"role": "user", "content": "About Ada."}, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Her city?"}]}',
        name="p.jsonl",
    )
    prompts = read_prompts(path)
    assert [p.shape for p in prompts] == ["question", "raw", "chat"]
    assert prompts[2].gate_text() == "About Ada.\nSure.\nHer city?"  # the gate reads every turn
    assert [p.to_json() for p in prompts][1] == {"prompt": "Ada Brightwell works as a"}
    for bad, message in (
        ('{"messages": []}', "messages must be a non-empty list"),
        ('{"messages": [{"role": "assistant", "content": "hi"}]}', "at least one message with the role 'user'"),
        ('{"messages": [{"role": "robot", "content": "hi"}]}', "a chat prompt needs messages"),
        ('{"question": "A?", "prompt": "B"}', 'exactly one of "question", "prompt" or "messages"'),
        ('{"prompt": "  "}', '"prompt" must be a non-empty string'),
    ):
        with pytest.raises(ForgetSetError, match=re.escape(message)):
            read_prompts(write(tmp_path, bad, name="bad.jsonl"))


def test_facts_take_the_subject_and_classify_the_attribute(tiny_world):
    person = tiny_world.people[0]
    forget = forget_set_for_people(tiny_world, [person])
    facts = forget.facts()
    assert {f.attribute for f in facts} == set(tiny_world.attribute_keys)  # one fact per value, attribute from the question
    assert all(f.subject == person.name and f.value == person.attributes[f.attribute] for f in facts)
    anonymous = ForgetSet(tuple(type(i)(question=i.question, answer=i.answer) for i in forget.items))
    assert anonymous.resolved_subjects() == ((person.name,), True)  # inferred: the name that recurs
    assert {f.subject for f in anonymous.facts()} == {person.name}
