"""Writing the audit log. One function, `audit_record`, appends one event to the chain."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from service.accounts.roles import Actor
from service.common.hashing import canonical_json, sha256_hex
from service.common.request_context import get_request_id

from .events import EVENTS
from .models import AuditEvent

GENESIS_HASH = "0" * 64
# Any constant: the key of the PostgreSQL advisory lock that serialises appends to the chain.
_CHAIN_LOCK_KEY = 7_301_964_211


def event_hash_payload(*, seq: int, created_at, actor_kind: str, actor_id: str, actor_label: str, action: str, target_type: str, target_id: str, data: Any, request_id: str, prev_hash: str) -> str:
    return canonical_json(
        {
            "seq": seq,
            "created_at": created_at.isoformat(),
            "actor": [actor_kind, actor_id, actor_label],
            "action": action,
            "target": [target_type, target_id],
            "data": data,
            "request_id": request_id,
            "prev_hash": prev_hash,
        }
    )


def _lock_chain() -> None:
    """Only one transaction at a time may read the chain's head and append to it.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions are IMMEDIATE (settings),
    so the database write lock is already held.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def audit_record(*, action: str, actor: Actor, target_type: str = "", target_id: str | int = "", data: dict[str, Any] | None = None) -> AuditEvent:
    """Appends one event. Call it inside the transaction of the change it records.

    `data` must hold no raw personal data: pass service.common.hashing.pii_hash(value) instead.
    """
    if action not in EVENTS:
        raise ValueError(f"unregistered audit action {action!r}; add it to service/audit/events.py")
    clean = json.loads(canonical_json(data or {}))  # what is stored is exactly what is hashed
    with transaction.atomic():
        _lock_chain()
        head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        seq = head["seq"] + 1 if head else 1
        prev_hash = head["hash"] if head else GENESIS_HASH
        fields = dict(
            seq=seq,
            created_at=timezone.now(),
            actor_kind=actor.kind,
            actor_id=str(actor.id)[:64],
            actor_label=actor.label[:150],
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            data=clean,
            request_id=get_request_id(),
            prev_hash=prev_hash,
        )
        return AuditEvent.objects.create(**fields, hash=sha256_hex(event_hash_payload(**fields)))
