"""Concurrent writers never fork the audit chain.

Each writer runs in its own thread with its own PostgreSQL connection and its own transactions, as
gunicorn workers and Celery tasks do. Without the chain lock, two writers read the same head and
one of them fails on the unique `seq` (or, without that constraint, the chain forks); with it,
every event lands, the sequence has no gaps, and every row links to the one before.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from urllib.parse import urlsplit

import pytest
from django.db import connection, transaction

from service.accounts.roles import SYSTEM, Actor
from service.audit.chain import GENESIS_HASH
from service.audit.models import AuditEvent
from service.audit.selectors import audit_chain_verify
from service.audit.services import audit_deferred, audit_record

pytestmark = pytest.mark.timeout(300)

THREADS = 8


def _run_in_threads(work: Callable[[int], None], threads: int = THREADS) -> list[BaseException]:
    """Runs work(i) in `threads` threads that start together; returns what they raised."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            start.wait(timeout=30)
            work(index)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    workers = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert not any(worker.is_alive() for worker in workers), "a writer is stuck"
    return errors


def assert_unforked_chain(expected: int) -> None:
    rows = list(AuditEvent.objects.order_by("seq").values_list("seq", "prev_hash", "hash"))
    assert [seq for seq, _, _ in rows] == list(range(1, expected + 1)), "sequence numbers have gaps or duplicates"
    previous = GENESIS_HASH
    for seq, prev_hash, own_hash in rows:
        assert prev_hash == previous, f"event #{seq} does not link to event #{seq - 1}"
        previous = own_hash
    status = audit_chain_verify()
    assert status.ok, status.reason
    assert status.checked == expected


def test_threads_appending_in_their_own_transactions_never_fork_the_chain(transactional_db):
    per_thread = 30

    def work(index: int) -> None:
        actor = Actor(kind="user", id=str(index), label=f"writer{index}")
        for n in range(per_thread):
            # odd writers queue their events and append them at the end of the transaction
            with transaction.atomic(), audit_deferred() if index % 2 else nullcontext():
                audit_record(action="request.approved", actor=actor, target_type="request", target_id=f"RTBF-T{index}N{n}", data={"thread": index, "n": n})
                if n % 5 == 0:  # some transactions append two events
                    audit_record(action="request.queued", actor=actor, target_type="request", target_id=f"RTBF-T{index}N{n}")

    errors = _run_in_threads(work)
    assert errors == []
    expected = THREADS * (per_thread + per_thread // 5)
    assert_unforked_chain(expected)
    # every writer's events are all there, in its own order
    for index in range(THREADS):
        ns = [
            data["n"]
            for data in AuditEvent.objects.filter(actor_label=f"writer{index}", action="request.approved").order_by("seq").values_list("data", flat=True)
        ]
        assert ns == list(range(per_thread))


def test_a_rolled_back_transaction_leaves_no_gap(transactional_db):
    """A writer whose transaction fails after appending must not leave a hole in the sequence."""
    per_thread = 15

    def work(index: int) -> None:
        for n in range(per_thread):
            try:
                with transaction.atomic():
                    audit_record(action="request.approved", actor=SYSTEM, target_type="request", target_id=f"RTBF-R{index}N{n}")
                    if n % 3 == 0:
                        raise RuntimeError("the change this event recorded failed")
            except RuntimeError:
                pass

    assert _run_in_threads(work) == []
    assert_unforked_chain(THREADS * (per_thread - 5))


def test_concurrent_request_submissions_through_the_services(transactional_db, mailoutbox):
    """The real intake path (request row, audit events, emailed code) from parallel threads."""
    from service.requests.models import ErasureRequest
    from service.requests.services import request_submit_web

    per_thread = 6

    def work(index: int) -> None:
        for n in range(per_thread):
            request_submit_web(
                name=f"Person {index}-{n}",
                email=f"p{index}-{n}@example.com",
                regulation="gdpr",
                facts=[f"lives at {n} Main St"],
                evidence_prompts=[],
                attested=True,
            )

    assert _run_in_threads(work) == []
    assert ErasureRequest.objects.count() == THREADS * per_thread
    events = AuditEvent.objects.count()
    assert events >= 2 * THREADS * per_thread  # submitted + verification_sent, at least
    assert_unforked_chain(events)


# --- parallel HTTP requests against the running app --------------------------------------------


def _post_requests(base_url: str, key: str, count: int, prefix: str) -> list[int]:
    """One keep-alive connection, `count` POST /api/v1/requests; returns the status codes."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    statuses = []
    try:
        for n in range(count):
            body = json.dumps(
                {
                    "subject_name": f"Subject {prefix}-{n}",
                    "subject_email": f"{prefix}-{n}@example.com",
                    "regulation": "gdpr",
                    "facts": [f"{prefix} fact {n}"],
                    "evidence_prompts": [],
                }
            )
            conn.request(
                "POST",
                "/api/v1/requests",
                body=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Idempotency-Key": f"{prefix}-{n}-{uuid.uuid4().hex}"},
            )
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()
    return statuses


def test_parallel_api_requests_never_fork_the_chain(live_server, api_client_key):
    from service.requests.models import ErasureRequest

    _, trusted_key = api_client_key(scopes=("create", "read", "trusted_identity"))
    _, plain_key = api_client_key(scopes=("create", "read"))
    per_thread = 10
    statuses: list[list[int]] = [[] for _ in range(THREADS)]

    def work(index: int) -> None:
        key = trusted_key if index % 2 else plain_key  # two paths: straight to verified, or emailed code
        statuses[index] = _post_requests(live_server.url, key, per_thread, f"t{index}")

    assert _run_in_threads(work) == []
    assert [s for thread in statuses for s in thread] == [202] * (THREADS * per_thread)
    assert ErasureRequest.objects.count() == THREADS * per_thread
    assert ErasureRequest.objects.filter(status="verified").count() == THREADS // 2 * per_thread
    assert_unforked_chain(AuditEvent.objects.count())
    assert AuditEvent.objects.filter(action="request.submitted").count() == THREADS * per_thread


def test_a_returned_append_is_already_on_disk(transactional_db):
    """Asynchronous commit releases the chain lock early; the caller still gets control back only
    once the WAL holding the append has been flushed."""
    with transaction.atomic():
        audit_record(action="request.approved", actor=SYSTEM, target_type="request", target_id="RTBF-DURABL")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_insert_lsn()")
            written = cursor.fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"  # the setting was for that one transaction
        cursor.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", [written])
        assert cursor.fetchone()[0]
