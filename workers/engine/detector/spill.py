"""Tensors kept in a temporary file rather than in memory, read back when needed (issue 12).

The prefiltered gate (bank.py with prefilter=True) needs a unit's negative centroids only when the
unit is a candidate for a prompt (the name test only lowers u, and the prefilter rules a unit out
on its stored windows alone). They are the largest part of a demo unit's scorer (54 centroids x
384 floats, 81 KiB of its 111 KiB), so the gateway's bank keeps them here: written once when the
unit is added, read with one pread per candidate (the operating system's page cache keeps the hot
ones; nothing is mapped into the process), dropped when the unit leaves. The file is anonymous
(tempfile.TemporaryFile): it disappears with the process and holds only derived centroids, no
text of the forget set.
"""

from __future__ import annotations

import os
import tempfile
import threading

import numpy as np
import torch

COMPACT_MIN_BYTES = 64 << 20  # rewrite the file once at least this much of it is dropped entries...
COMPACT_SHARE = 0.5  # ...and they are at least this share of it


class SpillFile:
    """Tensors by key in an anonymous temporary file. Thread-safe."""

    def __init__(self, directory: str | None = None):
        self._directory = directory
        self._file = tempfile.TemporaryFile(dir=directory)
        self._entries: dict[object, tuple[int, tuple[int, ...], np.dtype]] = {}  # key -> (offset, shape, dtype)
        self._end = 0  # bytes written
        self._dropped = 0  # bytes of dropped entries still in the file
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def file_bytes(self) -> int:
        return self._end

    def put(self, key: object, tensor: torch.Tensor) -> None:
        """Write `tensor` under `key` (replacing what the key held)."""
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        with self._lock:
            self._drop(key)
            os.pwrite(self._file.fileno(), array.tobytes(), self._end)
            self._entries[key] = (self._end, array.shape, array.dtype)
            self._end += array.nbytes

    def get(self, key: object, device: torch.device | str = "cpu") -> torch.Tensor:
        """The tensor written under `key`; KeyError if it was dropped."""
        with self._lock:
            offset, shape, dtype = self._entries[key]
            size = int(np.prod(shape)) * dtype.itemsize
            data = bytearray(os.pread(self._file.fileno(), size, offset))
        return torch.from_numpy(np.frombuffer(data, dtype=dtype).reshape(shape)).to(device)

    def drop(self, key: object) -> None:
        """Forget `key` (no error if absent); the file is compacted when dropped bytes pile up."""
        with self._lock:
            self._drop(key)
            if self._dropped >= COMPACT_MIN_BYTES and self._dropped >= COMPACT_SHARE * self._end:
                self._compact()

    def _drop(self, key: object) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._dropped += int(np.prod(entry[1])) * entry[2].itemsize

    def _compact(self) -> None:
        """Rewrite the live entries into a new file (under the lock)."""
        fresh, end, entries = tempfile.TemporaryFile(dir=self._directory), 0, {}
        for key, (offset, shape, dtype) in self._entries.items():
            size = int(np.prod(shape)) * dtype.itemsize
            os.pwrite(fresh.fileno(), os.pread(self._file.fileno(), size, offset), end)
            entries[key] = (end, shape, dtype)
            end += size
        self._file.close()
        self._file, self._entries, self._end, self._dropped = fresh, entries, end, 0

    def close(self) -> None:
        with self._lock:
            self._file.close()
            self._entries.clear()
