"""A named lock shared by every process and host of a deployment: PostgreSQL's session advisory lock.

    with advisory_lock(f"unit-registration:{fingerprint}"):
        ...  # no other holder of the same name runs this at the same time

It is held on this process's database connection, so a process that dies releases it with its
connection, and it is re-entrant within one process (PostgreSQL counts the acquisitions). The
name is hashed to the lock's 64-bit key. On SQLite (the embedded mode: one worker, whose writes the
database serialises anyway) it is a no-op, and says so in the log once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

logger = logging.getLogger(__name__)
_warned = False


def lock_key(name: str) -> int:
    """The signed 64-bit key of pg_advisory_lock for `name` (stable across processes and hosts)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(name: str) -> Iterator[None]:
    global _warned
    if connection.vendor != "postgresql":
        if not _warned:
            logger.info("advisory locks need PostgreSQL; on %s, %r is not locked across processes", connection.vendor, name)
            _warned = True
        yield
        return
    key = lock_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        except Exception:  # noqa: BLE001 - the connection is gone, and the lock went with it
            logger.warning("could not release advisory lock %r; its connection is gone, and with it the lock", name, exc_info=True)
