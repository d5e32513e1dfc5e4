"""Reading the audit log: filtered and searched listings, pages by cursor, and the chain check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from service.accounts.roles import Actor, Capability
from service.common.hashing import sha256_hex

from .chain import GENESIS_HASH, event_hash_payload
from .cursors import Cursor, Page, keyset_page
from .models import AuditEvent
from .search import search_condition, with_search_document


@dataclass(frozen=True)
class ChainStatus:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""


def audit_events(
    *,
    actor: Actor,
    target_type: str = "",
    target_id: str = "",
    action: str = "",
    actor_label: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    from_seq: int | None = None,
    before_seq: int | None = None,
    search: str = "",
) -> QuerySet[AuditEvent]:
    """The events matching every given filter, in chain order. `search` is full text over action
    codes and the strings in `data` (service/audit/search.py); `until` is exclusive."""
    actor.require(Capability.READ_AUDIT)
    events = AuditEvent.objects.all()
    if search.strip():
        events = with_search_document(events).filter(search_condition(search))
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


def audit_filter_criteria(
    *,
    actor: Actor,
    request: str = "",
    actor_contains: str = "",
    action: str = "",
    since: date | None = None,
    until: date | None = None,
    from_seq: int | None = None,
    search: str = "",
) -> dict[str, Any]:
    """audit_events() keyword filters from what an auditor types (the page's form, the API's query):
    `request` is a reference (any case), a request's id or any target id; `since` and `until` are
    days in UTC, both included."""
    tz = timezone.get_current_timezone()
    return {
        "target_id": _target_id(actor, request.strip()),
        "actor_label": actor_contains.strip(),
        "action": action.strip(),
        "since": datetime.combine(since, time.min, tzinfo=tz) if since else None,
        "until": datetime.combine(until + timedelta(days=1), time.min, tzinfo=tz) if until else None,
        "from_seq": from_seq,
        "search": " ".join(search.split()),
    }


def audit_filter_criteria_from(*, actor: Actor, fields: dict[str, Any]) -> dict[str, Any]:
    """audit_filter_criteria() from the filter fields of the page's form or the API's query (both
    name them alike: q, request, actor, action, since, until, from_seq; missing ones are unset)."""
    return audit_filter_criteria(
        actor=actor,
        request=fields.get("request") or "",
        actor_contains=fields.get("actor") or "",
        action=fields.get("action") or "",
        since=fields.get("since"),
        until=fields.get("until"),
        from_seq=fields.get("from_seq"),
        search=fields.get("q") or "",
    )


# Resolvers of the names a filter may give a target by (a request's id for its reference, ...), each
# registered by the app that owns the target type in its apps.py: the audit log is the lower layer
# and imports none of them.
_TARGET_RESOLVERS: list[Callable[[Actor, str], str | None]] = []


def register_target_resolver(resolver: Callable[[Actor, str], str | None]) -> None:
    """`resolver(actor, value)` answers the target id that `value` names, or None."""
    if resolver not in _TARGET_RESOLVERS:
        _TARGET_RESOLVERS.append(resolver)


def _target_id(actor: Actor, value: str) -> str:
    for resolver in _TARGET_RESOLVERS:
        target_id = resolver(actor, value)
        if target_id is not None:
            return target_id
    return value


def audit_events_page(*, actor: Actor, criteria: dict[str, Any], cursor: str = "", size: int = 50) -> Page[AuditEvent]:
    """One page of the matching events in chain order, from an opaque cursor token ("" for the
    first page). Raises InvalidCursor (400) for a token that is not one of ours."""
    events = audit_events(actor=actor, **criteria)
    return keyset_page(events, cursor=Cursor.decode(cursor) if cursor else None, size=size)


def events_for_target(*, target_type: str, target_id: str) -> QuerySet[AuditEvent]:
    """A request's own timeline (callers check that the viewer may see the request)."""
    return AuditEvent.objects.filter(target_type=target_type, target_id=target_id).order_by("seq")


def _iter_chain(batch: int = 2000, after: int = 0) -> Iterator[AuditEvent]:
    last = after
    while True:
        rows = list(AuditEvent.objects.filter(seq__gt=last).order_by("seq")[:batch])
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def _recomputed_hash(event: AuditEvent) -> str:
    return sha256_hex(
        event_hash_payload(
            seq=event.seq,
            created_at=event.created_at,
            actor_kind=event.actor_kind,
            actor_id=event.actor_id,
            actor_label=event.actor_label,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            data=event.data,
            request_id=event.request_id,
            prev_hash=event.prev_hash,
        )
    )


def _walk_chain(*, after_seq: int = 0, prev_hash: str = GENESIS_HASH, checked: int = 0) -> tuple[ChainStatus, int, str]:
    """Verifies the events after `after_seq`, which must link to `prev_hash`. Returns the status and
    the last verified event's seq and hash."""
    expected_seq = after_seq + 1
    for event in _iter_chain(after=after_seq):
        if event.seq != expected_seq:
            return ChainStatus(False, checked, expected_seq, f"event #{expected_seq} is missing (next is #{event.seq})"), expected_seq - 1, prev_hash
        if event.prev_hash != prev_hash:
            return ChainStatus(False, checked, event.seq, f"event #{event.seq} does not link to the previous event's hash"), expected_seq - 1, prev_hash
        if _recomputed_hash(event) != event.hash:
            return ChainStatus(False, checked, event.seq, f"event #{event.seq} was altered (its hash does not match its content)"), expected_seq - 1, prev_hash
        prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    return ChainStatus(True, checked), expected_seq - 1, prev_hash


def audit_chain_verify() -> ChainStatus:
    """Walks the whole chain: sequence without gaps, each row's hash, each link to the previous."""
    return _walk_chain()[0]


# --- the chain status the auditor's page shows -------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    """audit_chain_status(): the check's result and how far and how recently it reached."""

    status: ChainStatus
    verified_through: int  # the last event verified (0: none)
    checked_at: datetime  # when this report was made
    full_check_at: datetime  # when the whole chain was last walked from event #1
    resumed_after: int | None  # this visit verified only the events after this one (None: a full walk)

    @property
    def ok(self) -> bool:
        return self.status.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.status.ok,
            "checked": self.status.checked,
            "verified_through_seq": self.verified_through,
            "first_broken_seq": self.status.first_broken_seq,
            "reason": self.status.reason,
            "checked_at": self.checked_at.isoformat(),
            "full_check_at": self.full_check_at.isoformat(),
        }


@dataclass(frozen=True)
class _Checkpoint:
    seq: int
    hash: str
    checked: int
    full_check_at: datetime


def _checkpoint_key() -> str:
    # Per database: the test suites of several checkouts share one cache server.
    return f"audit:chain-checkpoint:{connection.vendor}:{connection.settings_dict['NAME']}"


def _checkpoint_holds(checkpoint: _Checkpoint) -> bool:
    """The event the last check ended at is still there, unaltered: the walk can resume after it."""
    if checkpoint.seq == 0:
        return checkpoint.hash == GENESIS_HASH
    event = AuditEvent.objects.filter(seq=checkpoint.seq).first()
    return event is not None and event.hash == checkpoint.hash and _recomputed_hash(event) == event.hash


def audit_chain_status(*, actor: Actor, full: bool = False) -> ChainReport:
    """The same check as `audit_verify`, made affordable on every page view.

    The whole chain is walked from event #1 when asked (`full`), when this process has not walked
    it in the last AUDIT_CHAIN_FULL_CHECK_SECONDS (default 300), or when the event the last check
    ended at has changed. Otherwise only the events appended since are verified, linked to that
    last verified event. So an event appended later is checked at once, and an older event altered
    after a check shows up at the next full walk (at most that many seconds later); `audit_verify`
    always walks everything. The checkpoint lives in Django's cache (this process's memory unless a
    shared cache is configured), not in the database, so write access to the database is not enough
    to hold back the next full walk.
    """
    actor.require(Capability.READ_AUDIT)
    now = timezone.now()
    max_age = timedelta(seconds=getattr(settings, "AUDIT_CHAIN_FULL_CHECK_SECONDS", 300))
    key = _checkpoint_key()
    checkpoint: _Checkpoint | None = cache.get(key)
    resume = not full and checkpoint is not None and now - checkpoint.full_check_at < max_age and _checkpoint_holds(checkpoint)
    if resume:
        status, last_seq, last_hash = _walk_chain(after_seq=checkpoint.seq, prev_hash=checkpoint.hash, checked=checkpoint.checked)
        full_check_at, resumed_after = checkpoint.full_check_at, checkpoint.seq
    else:
        status, last_seq, last_hash = _walk_chain()
        full_check_at, resumed_after = now, None
    if status.ok:
        cache.set(key, _Checkpoint(last_seq, last_hash, status.checked, full_check_at), timeout=max_age.total_seconds())
    else:
        cache.delete(key)
    return ChainReport(status, last_seq, now, full_check_at, resumed_after)
