"""The hash chain: it verifies after many events, `audit_verify` names the first tampered event,
and what the database stores is exactly what was hashed."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from service.accounts.roles import SYSTEM, Actor
from service.audit.chain import GENESIS_HASH, event_hash_payload
from service.audit.models import AuditEvent
from service.audit.selectors import audit_chain_verify
from service.audit.services import audit_record
from service.common.hashing import sha256_hex
from tests.service.audit.tampering import tamper as _tamper

pytestmark = pytest.mark.django_db

REVIEWER = Actor(kind="user", id="7", label="rita")


def _record_many(count: int) -> None:
    for index in range(count):
        audit_record(
            action="request.approved",
            actor=REVIEWER if index % 2 else SYSTEM,
            target_type="request",
            target_id=f"RTBF-{index:06d}",
            data={"from": "verified", "n": index},
        )


def test_an_empty_log_verifies():
    status = audit_chain_verify()
    assert status.ok and status.checked == 0


def test_chain_of_many_events_verifies_and_links():
    _record_many(250)
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, 251))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(events, events[1:]))
    assert len({e.hash for e in events}) == 250
    status = audit_chain_verify()
    assert status.ok and status.checked == 250


def test_chain_spanning_several_verification_batches_verifies(monkeypatch):
    # The verifier reads in batches of 2000; make the batch small so the test crosses boundaries.
    import service.audit.selectors as selectors

    original = selectors._iter_chain
    monkeypatch.setattr(selectors, "_iter_chain", lambda batch=2000, after=0: original(batch=7, after=after))
    _record_many(30)
    assert audit_chain_verify() == selectors.ChainStatus(True, 30)


def test_audit_verify_command_reports_a_good_chain(capsys):
    _record_many(20)
    call_command("audit_verify")
    assert "audit chain OK: 20 events verified" in capsys.readouterr().out


def test_audit_verify_names_the_first_altered_event():
    _record_many(20)
    victim = AuditEvent.objects.get(seq=8)
    _tamper("UPDATE audit_auditevent SET data = %s::jsonb WHERE seq = 8", ['{"from": "rejected", "n": 7}'])
    # A later row is altered too: the command must name the first one.
    _tamper("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE seq = 15", [])
    assert AuditEvent.objects.get(seq=8).hash == victim.hash  # the stored hash no longer matches
    with pytest.raises(CommandError, match=r"BROKEN at event #8: event #8 was altered .*\(7 events verified before it\)"):
        call_command("audit_verify")


def test_audit_verify_exits_non_zero_from_the_shell(capsys):
    """The exit status seen by a cron job or CI, not only the exception."""
    from django.core.management import ManagementUtility

    _record_many(5)
    _tamper("UPDATE audit_auditevent SET target_id = 'RTBF-OTHER' WHERE seq = 3", [])
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "audit_verify"]).execute()
    assert exited.value.code != 0
    assert "audit chain BROKEN at event #3" in capsys.readouterr().err


def test_a_rehashed_row_still_breaks_the_link_to_the_next_one():
    """An attacker who recomputes the altered row's own hash is caught by the next row's prev_hash."""
    _record_many(10)
    row = AuditEvent.objects.get(seq=4)
    forged_data = {"from": "rejected", "n": 3}
    forged_hash = sha256_hex(
        event_hash_payload(
            seq=row.seq,
            created_at=row.created_at,
            actor_kind=row.actor_kind,
            actor_id=row.actor_id,
            actor_label=row.actor_label,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            data=forged_data,
            request_id=row.request_id,
            prev_hash=row.prev_hash,
        )
    )
    _tamper("UPDATE audit_auditevent SET data = %s::jsonb, hash = %s WHERE seq = 4", ['{"from": "rejected", "n": 3}', forged_hash])
    status = audit_chain_verify()
    assert not status.ok
    assert status.first_broken_seq == 5
    assert "does not link" in status.reason


def test_a_deleted_row_is_reported_as_missing():
    _record_many(6)
    _tamper("DELETE FROM audit_auditevent WHERE seq = 4", [])
    status = audit_chain_verify()
    assert (status.ok, status.first_broken_seq, status.checked) == (False, 4, 3)
    assert "event #4 is missing" in status.reason


def test_unregistered_action_codes_are_refused():
    with pytest.raises(ValueError, match="unregistered audit action 'request.aproved'"):
        audit_record(action="request.aproved", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA")
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"ratio": 0.1, "tiny": 1e-7, "huge": 1e20, "vast": 1.5e300, "whole": 2.0, "negative_zero": -0.0, "third": 1 / 3},
        {"nested": {"b": [1, {"c": [True, None, "x"]}], "a": {"z": {}, "y": []}}},
        {"name_hash": "hmac-sha256:ab", "city": "Zürich", "script": "東京 · Ελλάδα · \U0001f600", "quote": '"\\'},
        {"big_int": 2**63 + 11, "negative": -(2**40), "zero": 0},
    ],
    ids=["floats", "nested", "unicode", "integers"],
)
def test_what_is_stored_is_what_was_hashed(data):
    recorded = audit_record(action="request.submitted", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA", data=data)
    stored = AuditEvent.objects.get(pk=recorded.pk)  # as the database gives it back
    assert stored.data == recorded.data
    recomputed = sha256_hex(
        event_hash_payload(
            seq=stored.seq,
            created_at=stored.created_at,
            actor_kind=stored.actor_kind,
            actor_id=stored.actor_id,
            actor_label=stored.actor_label,
            action=stored.action,
            target_type=stored.target_type,
            target_id=stored.target_id,
            data=stored.data,
            request_id=stored.request_id,
            prev_hash=stored.prev_hash,
        )
    )
    assert recomputed == stored.hash
    assert audit_chain_verify().ok


def test_values_the_database_cannot_store_are_refused_before_writing():
    with pytest.raises(ValueError, match="cannot hold nan"):
        audit_record(action="request.submitted", actor=SYSTEM, data={"score": float("nan")})
    with pytest.raises(ValueError, match="cannot hold inf"):
        audit_record(action="request.submitted", actor=SYSTEM, data={"score": [float("inf")]})
    assert not AuditEvent.objects.exists()


def test_each_event_carries_the_http_request_id():
    from service.common.request_context import reset_request_id, set_request_id

    token = set_request_id("req-abc-123")
    try:
        event = audit_record(action="request.verified", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA")
    finally:
        reset_request_id(token)
    assert AuditEvent.objects.get(pk=event.pk).request_id == "req-abc-123"


def test_an_append_releases_the_chain_lock_at_commit_without_waiting_for_the_disk_but_waits_before_returning(django_capture_on_commit_callbacks):
    """The chain lock is held until commit; the commit is asynchronous so the lock does not wait
    for the WAL flush, and exactly one durability wait runs after the commit, per transaction."""
    from django.db import transaction

    from service.audit.services import _wait_until_durable

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            audit_record(action="request.submitted", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA")
            audit_record(action="request.verified", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA")
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                assert cursor.fetchone()[0] == "off"
                cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
                assert cursor.fetchone()[0] == 1
    assert callbacks.count(_wait_until_durable) == 1
    assert audit_chain_verify().ok


# --- deferred appends (the intake path) --------------------------------------------------------


def test_deferred_events_are_appended_in_order_when_the_block_ends():
    from django.db import transaction

    from service.audit.services import audit_deferred

    audit_record(action="request.approved", actor=SYSTEM, target_type="request", target_id="RTBF-BEFORE")
    with transaction.atomic(), audit_deferred():
        first = audit_record(action="request.submitted", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA", data={"channel": "api"})
        audit_record(action="request.verified", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA")
        assert first.pk is None  # queued, not written yet
        assert AuditEvent.objects.count() == 1
    assert list(AuditEvent.objects.values_list("seq", "action")) == [(1, "request.approved"), (2, "request.submitted"), (3, "request.verified")]
    assert audit_chain_verify().ok


def test_deferred_events_of_a_rolled_back_savepoint_are_dropped_with_it():
    from django.db import transaction

    from service.audit.services import audit_deferred

    with transaction.atomic(), audit_deferred():
        audit_record(action="request.submitted", actor=SYSTEM, target_type="request", target_id="RTBF-KEPT01")
        try:
            with transaction.atomic():
                audit_record(action="request.approved", actor=SYSTEM, target_type="request", target_id="RTBF-GONE01")
                raise RuntimeError("the approval failed")
        except RuntimeError:
            pass
        audit_record(action="request.cancelled", actor=SYSTEM, target_type="request", target_id="RTBF-KEPT01")
    assert list(AuditEvent.objects.values_list("target_id", "action")) == [("RTBF-KEPT01", "request.submitted"), ("RTBF-KEPT01", "request.cancelled")]
    assert audit_chain_verify().ok


def test_a_failing_deferred_block_appends_nothing():
    from django.db import transaction

    from service.audit.services import audit_deferred

    with pytest.raises(RuntimeError), transaction.atomic(), audit_deferred():
        audit_record(action="request.submitted", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA")
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.exists()
    audit_record(action="request.approved", actor=SYSTEM)  # the next append is unaffected
    assert AuditEvent.objects.get().seq == 1


@pytest.mark.django_db(transaction=True)
def test_deferred_appends_need_a_transaction():
    from service.audit.services import audit_deferred

    with pytest.raises(RuntimeError, match=r"inside transaction.atomic\(\)"), audit_deferred():
        audit_record(action="request.submitted", actor=SYSTEM)
    assert not AuditEvent.objects.exists()
