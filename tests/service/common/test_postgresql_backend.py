"""service.common.postgresql: Django's PostgreSQL backend with its per-request health check
(`SELECT 1` before a reused connection's first query) at most once per HEALTH_CHECK_SECONDS: a
connection checked or opened just now is used as it is; one idle for longer is checked, and a
connection the server ended is replaced before the request uses it."""

from __future__ import annotations

import pytest
from django.db import connection, connections

from service.common.postgresql import base

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wrapper():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    extra = connections.create_connection("default")
    extra.ensure_connection()
    yield extra
    extra.close()


@pytest.fixture
def checks(wrapper, monkeypatch):
    sent = []
    real = type(wrapper).is_usable
    monkeypatch.setattr(type(wrapper), "is_usable", lambda self: sent.append(1) or real(self))
    return sent


def new_request(wrapper) -> None:
    """What Django does at the start of a request and before its first query."""
    wrapper.close_if_unusable_or_obsolete()
    wrapper.close_if_health_check_failed()


def test_settings_select_the_backend():
    assert isinstance(connections["default"], base.DatabaseWrapper) and connection.health_check_enabled


def test_a_connection_checked_within_the_second_is_not_checked_again(wrapper, checks):
    for _ in range(5):
        new_request(wrapper)
    assert checks == []  # opened just now: no SELECT 1 on any of the five requests


def test_an_idle_connection_the_server_ended_is_replaced_before_use(wrapper, checks, monkeypatch):
    pid = wrapper.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    monkeypatch.setattr(base, "HEALTH_CHECK_SECONDS", 0.0)  # as if idle for longer than the window
    new_request(wrapper)
    assert checks == [1] and wrapper.connection is None  # checked, found dead, closed
    with wrapper.cursor() as cursor:  # the request's first query connects afresh
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
    new_request(wrapper)
    assert checks == [1, 1]  # window 0: every request is checked, as stock Django does
