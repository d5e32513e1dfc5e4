"""The database goes away mid-request: the API answers 503 `service_unavailable` problem+json with
Retry-After, the pages the static maintenance page (503, Retry-After, rendered without the
database), never a 500; and a connection lost right after an intake commit never turns the
accepted request into an error when the commit is confirmed on a new connection.

The database "goes away" through tests/cuttable_proxy.py: the test's connection runs through a TCP
proxy on loopback that the test cuts (open connections reset, new ones refused).
"""

from __future__ import annotations

import json

import psycopg
import pytest
from django.db import connection
from django.test import Client

from service.audit import services as audit_services
from service.audit.models import AuditEvent
from service.requests import selectors as request_selectors
from service.requests.models import ErasureRequest
from tests.cuttable_proxy import CuttableProxy
from tests.integration.processes import require_postgresql

pytestmark = pytest.mark.django_db(transaction=True)

PROBLEM = "application/problem+json"
BODY = {"subject_name": "Bo Test", "subject_email": "bo@example.com", "regulation": "ccpa", "facts": ["Bo lives in Rome"]}


@pytest.fixture
def through_proxy():
    """The test's database connection runs through a proxy the test can cut; put back after."""
    require_postgresql("proxy")
    original = dict(connection.settings_dict)
    proxy = CuttableProxy(original["HOST"] or "127.0.0.1", int(original["PORT"] or 5432))
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        yield proxy
    finally:
        proxy.stop()
        connection.close()
        connection.settings_dict.update(HOST=original["HOST"], PORT=original["PORT"])


@pytest.fixture
def key(api_client_key):
    return api_client_key(("create", "read", "trusted_identity"))[1]


def _cut_during(monkeypatch, proxy: CuttableProxy, module, name: str) -> None:
    """The database goes away when `module.name` is called, in the middle of the request."""
    real = getattr(module, name)

    def cut_then_call(*args, **kwargs):
        proxy.cut()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, cut_then_call)


def test_the_database_going_away_mid_request_is_503_problem_json_with_retry_after(through_proxy, key, monkeypatch, settings):
    http = Client(headers={"Authorization": f"Bearer {key}"}, raise_request_exception=False)
    assert http.get("/api/v1/requests").status_code == 200  # through the proxy, before the outage

    _cut_during(monkeypatch, through_proxy, request_selectors, "request_list")  # after authentication succeeded
    response = http.get("/api/v1/requests")
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == PROBLEM
    assert response["Retry-After"] == str(settings.FORGET["OUTAGE_RETRY_AFTER_SECONDS"])
    problem = response.json()
    assert problem["code"] == "service_unavailable" and problem["request_id"] == response["X-Request-ID"]

    # While it stays away, every call (authentication itself needs the database) is 503 too.
    for answer in (http.get("/api/v1/requests"), http.post("/api/v1/requests", BODY, content_type="application/json")):
        assert answer.status_code == 503 and answer["Content-Type"] == PROBLEM and answer["Retry-After"]

    monkeypatch.undo()
    through_proxy.restore()  # it comes back: the next call is served again
    connection.close()  # what request_finished does in a server (the test client keeps connections)
    assert http.get("/api/v1/requests").status_code == 200


def test_pages_show_the_static_maintenance_page_during_an_outage(through_proxy, staff):
    reviewer = Client(raise_request_exception=False)
    reviewer.force_login(staff("reviewer"))
    subject = Client(raise_request_exception=False)
    assert reviewer.get("/staff/").status_code == 200

    through_proxy.cut()
    lookup = {"reference": "RTBF-AAAAAA", "email": "al@example.com"}
    for http, method, path in (
        (reviewer, "GET", "/staff/"),
        (subject, "POST", "/request/status/"),
        (reviewer, "GET", "/audit/"),
        (reviewer, "GET", "/no-such-page/"),
    ):
        page = http.post(path, lookup) if method == "POST" else http.get(path)
        assert page.status_code == 503, (path, page.status_code)
        assert page["Retry-After"] and page["Content-Type"].startswith("text/html")
        assert "Down for maintenance" in page.content.decode() and "Nothing you sent was changed or lost" in page.content.decode()
    form = subject.post("/request/new/", {"name": "Al", "email": "al@example.com", "regulation": "gdpr", "facts": "Al is 40", "attested": "on"})
    assert form.status_code == 503
    assert subject.get("/").status_code == 200  # a page that needs no database is still served


def _terminate(backend_pid: int) -> None:
    params = connection.get_connection_params()
    with psycopg.connect(
        host=params.get("host") or "127.0.0.1",
        port=params.get("port") or 5432,
        user=params["user"],
        password=params.get("password"),
        dbname=params["dbname"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend_pid])


def test_a_connection_lost_right_after_the_intake_commit_still_answers_202(key, monkeypatch):
    """The commit went through; the wait for the disk lost its connection (the attack run saw
    this once: the client got 500 though the row existed). Now the commit is confirmed on a new
    connection and the client gets its 202."""
    require_postgresql("pg_terminate_backend")
    real_flush = audit_services._flush_wal
    calls = []

    def flush_on_a_dead_connection():
        calls.append(1)
        if len(calls) == 1:
            _terminate(connection.connection.info.backend_pid)  # the connection dies right after the commit
        return real_flush()

    monkeypatch.setattr(audit_services, "_flush_wal", flush_on_a_dead_connection)
    http = Client(headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "after-commit"}, raise_request_exception=False)
    response = http.post("/api/v1/requests", json.dumps(BODY), content_type="application/json")

    assert response.status_code == 202, response.content
    assert len(calls) == 2  # the first wait failed, the second ran on a new connection
    assert ErasureRequest.objects.filter(pk=response.json()["id"]).exists()
    assert AuditEvent.objects.filter(target_id=response.json()["reference"], action="request.verified").exists()


def test_a_commit_that_cannot_be_confirmed_is_503_and_a_replay_returns_the_request(key, through_proxy, monkeypatch):
    """The database goes away right after the commit and stays away for the whole wait: the
    client is told 503 (retry), not 500 and not 202; the retry with the same key, once the
    database is back, returns the one request that was kept."""
    monkeypatch.setattr(audit_services, "DURABILITY_RECONNECT_SECONDS", (0.05, 0.05))
    real_flush = audit_services._flush_wal
    monkeypatch.setattr(audit_services, "_flush_wal", lambda: (through_proxy.cut(), real_flush()))
    http = Client(headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "unconfirmed"}, raise_request_exception=False)

    response = http.post("/api/v1/requests", json.dumps(BODY), content_type="application/json")
    assert response.status_code == 503 and response["Content-Type"] == PROBLEM and response["Retry-After"], response.content
    assert response.json()["code"] == "service_unavailable"

    monkeypatch.setattr(audit_services, "_flush_wal", real_flush)
    through_proxy.restore()
    replay = http.post("/api/v1/requests", json.dumps(BODY), content_type="application/json")
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert ErasureRequest.objects.count() == 1
