"""The micro-batcher: calls made together share one batch, a call's prompts are never split, and
overload, time-outs and failures come back to the right caller."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.inference.batcher import Batcher, BatcherClosed, Overloaded


class Recorder:
    """A batch function that records its batches and can be held until released."""

    def __init__(self):
        self.batches: list[tuple[list, object]] = []
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()

    def __call__(self, items, key):
        self.started.set()
        self.release.wait(10)
        self.batches.append((list(items), key))
        return [ValueError(f"bad {item}") if str(item).startswith("bad") else f"{item}!" for item in items]


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def batcher(recorder):
    batcher = Batcher(recorder, max_batch=4, max_queue=8)
    yield batcher
    recorder.release.set()
    batcher.close()


def test_results_come_back_in_order_with_per_item_errors(batcher):
    assert batcher.submit(["a", "bad b", "c"], key=16, timeout=5)[0::2] == ["a!", "c!"]
    assert isinstance(batcher.submit(["bad"], key=16, timeout=5)[0], ValueError)
    assert batcher.submit([], key=16) == []


def test_waiting_calls_with_the_same_key_share_a_batch_and_a_call_is_never_split(batcher, recorder):
    recorder.release.clear()
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(batcher.submit, ["hold"], 16, 5)
        assert recorder.started.wait(5)  # the batch thread is busy with "hold"
        calls = [pool.submit(batcher.submit, items, key, 5) for items, key in ((["a1", "a2"], 16), (["b1"], 32), (["c1", "c2"], 16), (["d1"], 16))]
        deadline = time.monotonic() + 5
        while batcher.queued < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        recorder.release.set()
        assert first.result() == ["hold!"]
        assert [call.result() for call in calls] == [["a1!", "a2!"], ["b1!"], ["c1!", "c2!"], ["d1!"]]
    batches = [(items, key) for items, key in recorder.batches[1:]]
    # a and c fill the batch of 4 (key 16); b (key 32) and d (no room left) come after.
    assert batches == [(["a1", "a2", "c1", "c2"], 16), (["b1"], 32), (["d1"], 16)]


def test_a_full_queue_refuses_and_a_late_call_times_out_without_running(batcher, recorder):
    recorder.release.clear()
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(batcher.submit, ["hold"], 16, 5)
        assert recorder.started.wait(5)
        queued = pool.submit(batcher.submit, ["q"] * 8, 16, 5)
        deadline = time.monotonic() + 5
        while batcher.queued < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(Overloaded):
            batcher.submit(["one more"], 16, 1)
        batcher.max_queue = 100  # room again, but the work ahead takes longer than the call may wait
        with pytest.raises(TimeoutError):
            batcher.submit(["late"], 32, 0.1)
        recorder.release.set()
        assert running.result() == ["hold!"] and queued.result() == ["q!"] * 8
    assert all("late" not in items for items, _ in recorder.batches)  # dropped from the queue, never run
    assert batcher.queued == 0


def test_close_cancels_waiting_calls(recorder):
    batcher = Batcher(recorder, max_batch=2, max_queue=8)
    recorder.release.clear()
    with ThreadPoolExecutor(2) as pool:
        pool.submit(batcher.submit, ["hold"], 1, 5)
        assert recorder.started.wait(5)
        waiting = pool.submit(batcher.submit, ["w"], 1, 5)
        time.sleep(0.1)
        closer = threading.Thread(target=batcher.close)
        closer.start()
        with pytest.raises(BatcherClosed):
            waiting.result(5)
        recorder.release.set()
        closer.join(5)
    with pytest.raises(BatcherClosed):
        batcher.submit(["after"], 1)


def test_a_failing_batch_fails_only_its_callers(batcher, recorder):
    calls = []

    def explode(items, key):
        calls.append(items)
        if key == "boom":
            raise RuntimeError("model crashed")
        return [f"{item}!" for item in items]

    batcher.run = explode
    with pytest.raises(RuntimeError, match="model crashed"):
        batcher.submit(["x"], "boom", 5)
    assert batcher.submit(["y"], 16, 5) == ["y!"]
