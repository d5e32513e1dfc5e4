"""Splitting prompts into windows, so that padding a question with unrelated text cannot hide it.

Mean pooling dilutes a question inside a long prompt. A prompt longer than `window_words` words is
scored as several windows: each sentence (or line) and overlapping word spans (for text without
punctuation); the caller takes the maximum score over a prompt's windows. A short prompt (at most
`window_words` words) is one window: itself. Windows are whole words; no tokenizer is needed.
"""

from __future__ import annotations

import re
from typing import Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_windows(text: str, window_words: int, stride: int) -> list[str]:
    """The windows of one prompt, in order of appearance, without duplicates."""
    words = text.split()
    if len(words) <= window_words:
        return [" ".join(words)]
    windows = [" ".join(s.split()) for s in _SENTENCE_END.split(text) if s.strip()]
    last_start = max(len(words) - window_words, 0)
    starts = list(range(0, last_start + 1, stride))
    if starts[-1] != last_start:
        starts.append(last_start)  # the tail is always covered by a full-length span
    windows += [" ".join(words[start : start + window_words]) for start in starts]
    return list(dict.fromkeys(windows))


def split_all(texts: Sequence[str], window_words: int, stride: int) -> tuple[list[str], list[int]]:
    """Windows of every text, flattened, and for each window the index of its text."""
    windows: list[str] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        pieces = split_windows(text, window_words, stride)
        windows += pieces
        owner += [index] * len(pieces)
    return windows, owner
