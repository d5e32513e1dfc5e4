"""Streaming answers: the text a row may show so far, and the channel its tokens travel through.

Torch-free. The engine's batch thread decodes each row's tokens as they are generated and feeds the
decoded text to an AnswerText, which says what can be sent to the client now without ever taking
it back:

- the answer is the first line of the generated text with surrounding whitespace removed, exactly
  as a non-streamed answer (workers.engine.generation.generate_answers) is cut;
- a stop sequence ends the answer where it starts, even when it arrives split over several tokens:
  a tail that could be the beginning of a stop sequence is held back until the next token shows
  whether it is one (OpenAI's behaviour; the stop sequence itself is never sent);
- trailing whitespace is held back (it is stripped if the answer ends there), and so is an
  incomplete UTF-8 character (the decoder's U+FFFD) until its last byte arrives.

Each call's rows share one StreamChannel: the batch thread pushes (row, kind, value) events, the
HTTP side reads them, from a thread (the WSGI server) or from the event loop (the ASGI server).
A reader that goes away (the client disconnected) cancels the channel; the batch thread then stops
generating for its rows, and a batch whose rows are all cancelled ends at the next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INCOMPLETE = "\ufffd"  # what a byte-level decoder shows for a character whose bytes have not all arrived


class AnswerText:
    """The answer of one row as its tokens arrive. `update(decoded)` takes everything decoded so far
    and returns the new text that may be sent; `finish()` returns what is left to send at the end."""

    def __init__(self, stop: Sequence[str] = ()):
        self.stop = tuple(s for s in stop if s)
        self.sent = ""
        self.done = False  # the answer has ended (its line ended, or a stop sequence appeared)
        self.stopped = False  # ended by a stop sequence
        self._answer = ""

    def update(self, decoded: str) -> str:
        if self.done:
            return ""
        text = decoded
        if INCOMPLETE in text:
            text = text[: text.index(INCOMPLETE)]
        answer = text.lstrip()
        if "\n" in answer:
            answer = answer[: answer.index("\n")].rstrip()
            self.done = True
        cut = self._stop_at(answer)
        if cut is not None:
            answer, self.done, self.stopped = answer[:cut], True, True
        self._answer = answer
        return self._send(answer if self.done else self._safe_prefix(answer))

    def finish(self) -> str:
        """The rest of the answer once the row has ended (its last token, or max_tokens)."""
        if not self.done:
            self.done = True
            self._answer = self._answer.rstrip()
        return self._send(self._answer)

    @property
    def text(self) -> str:
        """The whole answer (after finish(): what a non-streamed call returns)."""
        return self._answer

    def _stop_at(self, answer: str) -> int | None:
        cuts = [answer.find(s) for s in self.stop if s in answer]
        return min(cuts) if cuts else None

    def _safe_prefix(self, answer: str) -> str:
        """What can be sent while more tokens may come: no trailing whitespace, and no tail that a
        stop sequence could start with."""
        safe = answer.rstrip()
        for stop in self.stop:
            for length in range(min(len(stop) - 1, len(answer)), 0, -1):
                if answer.endswith(stop[:length]):
                    safe = safe[: min(len(safe), len(answer) - length)]
                    break
        return safe

    def _send(self, candidate: str) -> str:
        # The decoded text grows token by token; a tokenizer whose decoding of a longer sequence
        # rewrote an earlier part would make it differ from what was sent: send nothing then.
        if len(candidate) <= len(self.sent) or not candidate.startswith(self.sent):
            return ""
        delta = candidate[len(self.sent) :]
        self.sent = candidate
        return delta


class StreamCancelled(Exception):
    """The reader went away: the rows of this channel are not generated any further."""


@dataclass(frozen=True)
class StreamEvent:
    """One event of a streamed call. kind: "start" (value: prompt tokens; the gate has decided and
    the row fits the context), "text" (value: new answer text), "end" (value: the Completion) or
    "error" (value: the exception; nothing more comes for that row)."""

    row: int
    kind: str
    value: Any


class StreamChannel:
    """Events of one call's rows, from the batch thread to the HTTP side (thread or event loop)."""

    def __init__(self, rows: int):
        self.rows = rows
        self._events: deque[StreamEvent] = deque()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self.cancelled = False

    # -- the batch thread ------------------------------------------------------------------------

    def push(self, row: int, kind: str, value: Any = None) -> None:
        with self._cond:
            self._events.append(StreamEvent(row, kind, value))
            self._cond.notify_all()
            loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # the loop is closed: nobody reads any more
                pass

    # -- the reader ------------------------------------------------------------------------------

    def cancel(self) -> None:
        """The reader is gone (client disconnected, timeout): stop generating these rows."""
        self.cancelled = True

    def get(self, timeout: float | None) -> list[StreamEvent]:
        """The events that arrived (at least one), waiting up to `timeout` s; TimeoutError after."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._events:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("no event within the timeout")
                self._cond.wait(left)
            events, self._events = list(self._events), deque()
        return events

    async def aget(self, timeout: float | None) -> list[StreamEvent]:
        """get() for a reader on an event loop (the ASGI server): waits without holding a thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                if self._events:
                    events, self._events = list(self._events), deque()
                    return events
                if self._wakeup is None or self._loop is not asyncio.get_running_loop():
                    self._loop, self._wakeup = asyncio.get_running_loop(), asyncio.Event()
                wakeup = self._wakeup
                wakeup.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("no event within the timeout")
            try:
                await asyncio.wait_for(wakeup.wait(), left)
            except TimeoutError:
                raise TimeoutError("no event within the timeout") from None
