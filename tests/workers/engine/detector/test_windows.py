"""Long prompts are scored in windows so that padding cannot hide a question."""

from __future__ import annotations

from workers.engine.detector.windows import split_all, split_windows


def test_short_prompt_is_a_single_window():
    assert split_windows("  Where does   Orla live? ", 24, 12) == ["Where does Orla live?"]


def test_long_prompt_has_each_sentence_and_overlapping_spans_covering_the_tail():
    filler = "The weather was mild and the gardens along the river were full of tulips this spring."
    question = "Where does Orla Vantrees live?"
    text = f"{filler} {filler}\n{question} {filler}"
    windows = split_windows(text, 10, 5)
    assert question in windows
    words = text.split()
    assert " ".join(words[:10]) in windows and " ".join(words[-10:]) in windows
    assert len(windows) == len(set(windows))


def test_unpunctuated_padding_still_yields_a_span_around_the_question():
    text = " ".join(["lorem"] * 30 + "where does orla vantrees live".split() + ["ipsum"] * 30)
    windows = split_windows(text, 12, 4)
    assert any("where does orla vantrees live" in window for window in windows)


def test_split_all_maps_windows_to_their_prompt():
    windows, owner = split_all(["short one", "A. B. " + "word " * 30], 24, 12)
    assert windows[0] == "short one" and owner[0] == 0
    assert set(owner[1:]) == {1} and "A." in windows


def test_short_prompt_of_several_sentences_also_scores_each_sentence():
    text = "It rained all morning. Where does Orla Vantrees live? The train was quiet."
    assert split_windows(text, 24, 12) == [text, "It rained all morning.", "Where does Orla Vantrees live?", "The train was quiet."]
    assert split_windows(text, 24, 12, sentence_windows=False) == [text]  # the earlier rule
