"""The general-knowledge sets (general_knowledge.py): disjoint, scored by the leak rule's matching."""

from __future__ import annotations

from workers.engine.general_knowledge import EVALUATION, TRAINING, answered


def _key(question: str) -> str:
    return " ".join(question.lower().replace("?", "").split())


def test_training_and_evaluation_never_share_a_question():
    evaluation = [_key(q) for q, _ in EVALUATION]
    training = [_key(q) for q in TRAINING]
    assert len(set(evaluation)) == len(evaluation), "a question appears twice in EVALUATION"
    assert len(set(training)) == len(training), "a question appears twice in TRAINING"
    assert not set(evaluation) & set(training)


def test_evaluation_is_large_enough_to_measure_a_five_percent_drop():
    # EVAL.md: W holds at least 100 questions the base model answers right; the base SmolLM2
    # answers 131 of these, so the set must stay well above 100.
    assert len(EVALUATION) >= 200
    assert all(words and all(w.strip() for w in words) for _, words in EVALUATION)


def test_an_answer_counts_when_it_holds_any_right_word():
    assert answered("The capital of France is Paris.", ("Paris",))
    assert answered("It is New Delhi, of course.", ("New Delhi", "Delhi"))
    assert answered("We breathe with them.", ("breathe", "breathing"))
    assert not answered("I don't know.", ("Paris",))
    assert not answered("Parisian food is great", ("Paris",))  # whole words only
