"""The deployment-wide named lock (service/common/locks.py) on PostgreSQL: another connection cannot
take it while it is held, it is re-entrant in its holder, and it is free again afterwards."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from service.common.locks import advisory_lock, lock_key

pytestmark = pytest.mark.django_db(transaction=True)


def _taken_elsewhere(name: str) -> bool:
    """Whether another database connection (another thread's) finds the lock held."""
    result = {}

    def probe() -> None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(name)])
                got = cursor.fetchone()[0]
                if got:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key(name)])
                result["taken"] = not got
        finally:
            connections["default"].close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(timeout=30)
    return result["taken"]


def test_the_key_is_stable_and_names_differ():
    assert lock_key("unit-registration:abc") == lock_key("unit-registration:abc")
    assert lock_key("unit-registration:abc") != lock_key("unit-registration:abd")
    assert -(2**63) <= lock_key("x") < 2**63


def test_a_held_lock_keeps_other_connections_out_until_released():
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's (bin/test runs on it)")
    name = "unit-registration:test-base"
    assert not _taken_elsewhere(name)
    with advisory_lock(name):
        assert _taken_elsewhere(name)
        with advisory_lock(name):  # re-entrant in the holder
            assert _taken_elsewhere(name)
        assert _taken_elsewhere(name)  # still held: one release per acquisition
    assert not _taken_elsewhere(name)


def test_an_error_inside_releases_the_lock():
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's (bin/test runs on it)")
    name = "unit-registration:failing"
    with pytest.raises(RuntimeError), advisory_lock(name):
        raise RuntimeError("the certificate failed")
    assert not _taken_elsewhere(name)
