"""One intra-op torch thread for the tests that run models on the CPU: the one implementation that
the `one_torch_thread` fixtures (each with its own scope) delegate to.

The CI box's two cores are shared with other test runs; torch's intra-op threads spin-wait when the
cores are oversubscribed (LoRA steps were 15x slower), and one thread is the fastest there for the
tiny models these tests run. OMP_WAIT_POLICY=PASSIVE, set before torch loads OpenMP, is the other
half (tests/workers/conftest.py, tests/service/inference/conftest.py).

torch is imported only when the context is entered: web tests never import torch, and they load
tests/ modules too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """torch runs on one intra-op thread inside; the caller's thread count is restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
