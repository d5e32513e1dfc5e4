"""insert_rows writes what the ORM writes: the same stored row (defaults, auto_now, encrypted and
JSON columns, time zones), the database's own id set where the model has one, Django's errors."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from service.accounts.models import ApiClient
from service.audit.models import AuditEvent
from service.common.rows import insert_rows
from service.requests.models import ErasureRequest

pytestmark = pytest.mark.django_db


def stored(model, pk) -> dict:
    """The row as the database has it (raw column values: the ciphertext, not the decrypted JSON)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {model._meta.db_table} WHERE {model._meta.pk.column} = %s", [pk])
        columns = [column.name for column in cursor.description]
        return dict(zip(columns, cursor.fetchone(), strict=True))


NOW = timezone.now()


def a_request(**fields) -> ErasureRequest:
    now = NOW
    fields.setdefault("reference", f"RTBF-{uuid.uuid4().hex[:6].upper()}")
    return ErasureRequest(
        channel="api",
        subject={"name": "Ada Lovelace", "email": "ada@example.org"},
        subject_email_hash="hmac-sha256:ab",
        facts=["Ada Lovelace lives in Marylebone"],
        content_hash="c" * 64,
        regulation="gdpr",
        received_at=now,
        deadline_at=now,
        **fields,
    )


def test_a_request_row_is_the_one_the_orm_writes():
    client = ApiClient.objects.create(name="rows", key_prefix="rows", key_hash="h")
    ours, theirs = a_request(api_client=client, idempotency_key="k1"), a_request(api_client=client, idempotency_key="k2")
    insert_rows([ours])
    theirs.save(force_insert=True)
    assert not ours._state.adding and ours._state.db == "default"
    mine, orm = stored(ErasureRequest, ours.pk), stored(ErasureRequest, theirs.pk)
    differ = {"id", "reference", "idempotency_key", "subject", "facts", "evidence_prompts", "updated_at"}  # own values; ciphertexts have fresh IVs
    assert {k: v for k, v in mine.items() if k not in differ} == {k: v for k, v in orm.items() if k not in differ}
    assert mine["updated_at"] is not None  # auto_now set by pre_save, as the ORM does
    again = ErasureRequest.objects.get(pk=ours.pk)
    assert (again.subject, again.facts, again.evidence_prompts) == (ours.subject, ours.facts, [])  # encrypted, readable back
    assert again.api_client_id == client.pk and again.received_at == ours.received_at


def test_an_auto_id_comes_back_in_order_and_a_violated_constraint_is_djangos_integrity_error():
    events = [
        AuditEvent(
            seq=10_000 + n,
            created_at=timezone.now(),
            actor_kind="system",
            actor_id="s",
            action="x",
            target_type="t",
            target_id=str(n),
            data={},
            prev_hash=f"p{n}",
            hash=f"h{n}",
        )
        for n in range(3)
    ]
    insert_rows(events)
    assert [AuditEvent.objects.get(pk=event.pk).target_id for event in events] == ["0", "1", "2"]
    one = a_request()
    insert_rows([one])
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows([a_request(reference=one.reference)])  # unique reference
