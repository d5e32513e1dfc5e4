"""Splitting prompts into windows, so that padding a question with unrelated text cannot hide it.

Mean pooling dilutes a question inside a longer prompt. Every prompt is scored as one or more
windows and the caller takes the maximum score over a prompt's windows:

- a prompt of one sentence and at most `window_words` words is one window: itself;
- a prompt of several sentences (or lines) also gets each sentence as a window of its own, even
  when it is short: one unrelated sentence before and one after a 10-word question already halves
  the question's share of the pooled embedding (measured on the demo world: half of such padded
  questions fell under the gate when they were scored whole);
- a prompt longer than `window_words` words also gets overlapping word spans (for text without
  punctuation); the whole prompt is then not a window of its own (the spans cover it).

Windows are whole words; no tokenizer is needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The sentences (and lines) of a text, whitespace-normalised, empty pieces dropped."""
    return [" ".join(s.split()) for s in _SENTENCE_END.split(text) if s.strip()]


def split_windows(text: str, window_words: int, stride: int, sentence_windows: bool = True) -> list[str]:
    """The windows of one prompt, in order of appearance, without duplicates.

    sentence_windows=False restores the earlier rule (a prompt of at most `window_words` words is
    one window whatever its sentences), kept for comparisons."""
    words = text.split()
    pieces = sentences(text)
    if len(words) <= window_words:
        whole = " ".join(words)
        return list(dict.fromkeys([whole, *pieces])) if sentence_windows and len(pieces) > 1 else [whole]
    windows = list(pieces)
    last_start = max(len(words) - window_words, 0)
    starts = list(range(0, last_start + 1, stride))
    if starts[-1] != last_start:
        starts.append(last_start)  # the tail is always covered by a full-length span
    windows += [" ".join(words[start : start + window_words]) for start in starts]
    return list(dict.fromkeys(windows))


def split_all(texts: Sequence[str], window_words: int, stride: int, sentence_windows: bool = True) -> tuple[list[str], list[int]]:
    """Windows of every text, flattened, and for each window the index of its text."""
    windows: list[str] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        pieces = split_windows(text, window_words, stride, sentence_windows)
        windows += pieces
        owner += [index] * len(pieces)
    return windows, owner
