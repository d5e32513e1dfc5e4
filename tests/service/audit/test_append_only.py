"""No update or delete path exists for audit rows: the model layer refuses, and underneath it the
PostgreSQL trigger refuses raw SQL too."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from service.accounts.roles import SYSTEM
from service.audit.models import AppendOnlyError, AuditEvent
from service.audit.selectors import audit_chain_verify
from service.audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    audit_record(action="request.submitted", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA", data={"channel": "web"})
    return audit_record(action="request.verified", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA", data={"method": "email_code"})


def _unchanged(event: AuditEvent) -> None:
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.data, stored.hash) == (event.action, event.data, event.hash)
    assert AuditEvent.objects.count() == 2
    assert audit_chain_verify().ok


# --- the model layer -----------------------------------------------------------------------------


def test_saving_an_existing_row_is_refused(event):
    event.action = "request.rejected"
    with pytest.raises(AppendOnlyError, match="update is refused"):
        event.save()
    fetched = AuditEvent.objects.get(pk=event.pk)
    fetched.data = {"method": "forged"}
    with pytest.raises(AppendOnlyError):
        fetched.save(update_fields=["data"])
    event.action = "request.verified"
    _unchanged(event)


def test_deleting_a_row_is_refused(event):
    with pytest.raises(AppendOnlyError, match="delete is refused"):
        event.delete()
    _unchanged(event)


def test_queryset_update_and_delete_are_refused(event):
    with pytest.raises(AppendOnlyError, match="update is refused"):
        AuditEvent.objects.filter(pk=event.pk).update(action="request.rejected")
    with pytest.raises(AppendOnlyError, match="delete is refused"):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update_or_create(pk=event.pk, defaults={"action": "request.rejected"})
    _unchanged(event)


def test_bulk_create_and_bulk_update_are_refused(event):
    forged = AuditEvent(
        seq=99,
        created_at=event.created_at,
        actor_kind="system",
        actor_id="system",
        actor_label="system",
        action="request.approved",
        prev_hash=event.hash,
        hash="f" * 64,
    )
    with pytest.raises(AppendOnlyError, match="one by one"):
        AuditEvent.objects.bulk_create([forged])
    event.action = "request.rejected"
    with pytest.raises(AppendOnlyError), transaction.atomic():  # bulk_update's own atomic block has no savepoint
        AuditEvent.objects.bulk_update([event], ["action"])
    event.action = "request.verified"
    _unchanged(event)


# --- the PostgreSQL trigger, for code that bypasses the model ----------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'request.rejected' WHERE id = %s",
        "UPDATE audit_auditevent SET data = '{}'::jsonb",
        "DELETE FROM audit_auditevent WHERE id = %s",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
    ],
    ids=["update-row", "update-all", "delete-row", "delete-all", "truncate"],
)
def test_the_database_refuses_raw_sql_changes(event, sql):
    assert connection.vendor == "postgresql", "bin/test runs the suite on PostgreSQL"
    with pytest.raises(DatabaseError, match="audit_auditevent is append-only: (UPDATE|DELETE|TRUNCATE) refused"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk] if "%s" in sql else [])
    _unchanged(event)


def test_appending_still_works_under_the_trigger(event):
    """The trigger must not block appends (audit_record itself inserts)."""
    audit_record(action="request.approved", actor=SYSTEM, target_type="request", target_id="RTBF-AAAAAA")
    assert AuditEvent.objects.count() == 3
    assert audit_chain_verify().ok
