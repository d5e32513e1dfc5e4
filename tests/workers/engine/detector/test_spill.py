"""The spill file (spill.py): tensors written out and read back bit for bit, replaced, dropped and
compacted without losing the live ones."""

from __future__ import annotations

import pytest
import torch

from workers.engine.detector import spill
from workers.engine.detector.spill import SpillFile


def test_tensors_come_back_bit_for_bit_and_survive_compaction(monkeypatch):
    monkeypatch.setattr(spill, "COMPACT_MIN_BYTES", 1)
    monkeypatch.setattr(spill, "COMPACT_SHARE", 0.4)
    generator = torch.Generator().manual_seed(0)
    store = SpillFile()
    tensors = {key: torch.randn(1, 3 + key, 8, generator=generator) for key in range(6)}
    for key, tensor in tensors.items():
        store.put(key, tensor)
    store.put(2, tensors[2] * 2)  # replaced: the old bytes become dropped space
    tensors[2] = tensors[2] * 2
    for key in (0, 1, 3):
        store.drop(key)  # the third drop passes 40% of the file: compacted
        del tensors[key]
    assert store.file_bytes == sum(t.numel() * 4 for t in tensors.values())
    for key, tensor in tensors.items():
        assert torch.equal(store.get(key), tensor)
    with pytest.raises(KeyError):
        store.get(0)
    store.drop(0)  # absent: no error
    assert len(store) == 3 and 4 in store
    store.close()
