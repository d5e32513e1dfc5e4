"""Micro-batching: one thread runs every model call, many HTTP threads wait for their share.

Why one thread: the model and the detector encoder share Hugging Face fast tokenizers, which raise
"RuntimeError: Already borrowed" when two threads use one at the same time (huggingface/tokenizers
#537); and on a CPU or a single GPU, one batch of k prompts is much cheaper than k calls of one.
So the HTTP threads enqueue *groups* (the prompts of one call, which always run together, in one
batch), and the batch thread takes the oldest group plus the following groups with the same key
(the same max_tokens) while they fit in `max_batch` prompts, and runs them as one batch through the
gate, where each row gets its own unit weights.

Torch-free: `run(items, key)` is given by the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class Overloaded(Exception):
    """More prompts are waiting than the queue holds: the caller should retry shortly."""


class BatcherClosed(Exception):
    """The gateway is shutting down."""


@dataclass
class _Group:
    items: list[Any]
    key: Hashable
    future: Future = field(default_factory=Future)


# run(items, key) -> one result per item: a value, or an Exception instance for that item alone.
RunBatch = Callable[[list[Any], Hashable], Sequence[Any]]


class Batcher:
    def __init__(self, run: RunBatch, *, max_batch: int = 16, max_queue: int = 256, name: str = "gateway-batch"):
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self.run, self.max_batch, self.max_queue = run, max_batch, max_queue
        self._pending: deque[_Group] = deque()
        self._waiting_items = 0
        self._cond = threading.Condition()
        self._closed = False
        self.batches_run = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Prompts waiting for the batch thread."""
        return self._waiting_items

    def submit(self, items: Sequence[Any], key: Hashable, timeout: float | None = None) -> list[Any]:
        """Runs `items` (together, in one batch) and returns their results, in order.

        Raises Overloaded when the queue is full, TimeoutError after `timeout` seconds (the group is
        dropped if it has not started), BatcherClosed on shutdown, or what `run` raised.
        """
        if not items:
            return []
        group = self.enqueue(items, key)
        try:
            return group.future.result(timeout=timeout)
        except FutureTimeout:
            self.withdraw(group)
            raise TimeoutError(f"no answer within {timeout} s") from None
        except CancelledError:
            raise BatcherClosed("the gateway is shutting down") from None

    def enqueue(self, items: Sequence[Any], key: Hashable) -> _Group:
        """Queues `items` as one group without waiting: its `future` resolves with their results.
        For streamed calls, whose rows report through their own channel while the batch runs.
        Raises Overloaded or BatcherClosed like submit()."""
        group = _Group(list(items), key)
        with self._cond:
            if self._closed:
                raise BatcherClosed("the gateway is shutting down")
            if self._waiting_items + len(group.items) > self.max_queue and self._waiting_items:
                raise Overloaded(f"{self._waiting_items} prompts are already waiting")
            self._pending.append(group)
            self._waiting_items += len(group.items)
            self._cond.notify()
        return group

    def withdraw(self, group: _Group) -> bool:
        """Takes a group that has not started off the queue (its caller gave up). False when it is
        already running or done."""
        if not group.future.cancel():
            return False
        with self._cond:
            if group in self._pending:
                self._pending.remove(group)
                self._waiting_items -= len(group.items)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stops taking work; groups still queued are cancelled, the running batch finishes."""
        with self._cond:
            self._closed = True
            pending, self._pending = list(self._pending), deque()
            self._waiting_items = 0
            self._cond.notify_all()
        for group in pending:
            group.future.cancel()
        self._thread.join(timeout)

    # -- the batch thread ------------------------------------------------------------------------

    def _next_batch(self) -> list[_Group] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._pending.popleft()
            batch, size = [first], len(first.items)
            for group in list(self._pending):
                if group.key == first.key and size + len(group.items) <= self.max_batch:
                    self._pending.remove(group)
                    batch.append(group)
                    size += len(group.items)
            self._waiting_items -= size
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            batch = [group for group in batch if group.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            items = [item for group in batch for item in group.items]
            started = time.perf_counter()
            try:
                results = list(self.run(items, batch[0].key))
                if len(results) != len(items):
                    raise RuntimeError(f"batch run returned {len(results)} results for {len(items)} items")
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                logger.exception("batch of %d prompts failed", len(items))
                for group in batch:
                    group.future.set_exception(exc)
                continue
            self.batches_run += 1
            logger.debug("batch of %d prompts in %d groups took %.3f s", len(items), len(batch), time.perf_counter() - started)
            offset = 0
            for group in batch:
                group.future.set_result(results[offset : offset + len(group.items)])
                offset += len(group.items)
