"""Reading the audit log: filtered listings and the chain check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from service.accounts.roles import Actor, Capability
from service.common.hashing import sha256_hex

from .models import AuditEvent
from .services import GENESIS_HASH, event_hash_payload


@dataclass(frozen=True)
class ChainStatus:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""


def audit_events(*, actor: Actor, target_type: str = "", target_id: str = "", action: str = "", actor_label: str = "", since: datetime | None = None, until: datetime | None = None, from_seq: int | None = None, before_seq: int | None = None) -> QuerySet[AuditEvent]:
    actor.require(Capability.READ_AUDIT)
    events = AuditEvent.objects.all()
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    if action:
        events = events.filter(action__startswith=action)
    if actor_label:
        events = events.filter(actor_label__icontains=actor_label)
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    if from_seq is not None:
        events = events.filter(seq__gte=from_seq)
    if before_seq is not None:  # an export holds the events before its own `audit.exported` event
        events = events.filter(seq__lt=before_seq)
    return events.order_by("seq")


def events_for_target(*, target_type: str, target_id: str) -> QuerySet[AuditEvent]:
    """A request's own timeline (callers check that the viewer may see the request)."""
    return AuditEvent.objects.filter(target_type=target_type, target_id=target_id).order_by("seq")


def _iter_chain(batch: int = 2000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = list(AuditEvent.objects.filter(seq__gt=last).order_by("seq")[:batch])
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def audit_chain_verify() -> ChainStatus:
    """Walks the whole chain: sequence without gaps, each row's hash, each link to the previous."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for event in _iter_chain():
        if event.seq != expected_seq:
            return ChainStatus(False, checked, expected_seq, f"event #{expected_seq} is missing (next is #{event.seq})")
        if event.prev_hash != prev_hash:
            return ChainStatus(False, checked, event.seq, f"event #{event.seq} does not link to the previous event's hash")
        recomputed = sha256_hex(
            event_hash_payload(
                seq=event.seq, created_at=event.created_at, actor_kind=event.actor_kind, actor_id=event.actor_id,
                actor_label=event.actor_label, action=event.action, target_type=event.target_type,
                target_id=event.target_id, data=event.data, request_id=event.request_id, prev_hash=event.prev_hash,
            )
        )
        if recomputed != event.hash:
            return ChainStatus(False, checked, event.seq, f"event #{event.seq} was altered (its hash does not match its content)")
        prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    return ChainStatus(True, checked)
