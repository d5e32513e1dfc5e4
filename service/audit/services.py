"""Writing the audit log. `audit_record` appends one event to the chain (queued until the end of the
block inside `audit_deferred()`); `audit_export_record` records an export of the log."""

from __future__ import annotations

import contextvars
import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.utils import timezone

from service.accounts.roles import Actor, Capability
from service.common.errors import ServiceUnavailable
from service.common.hashing import canonical_json, pii_hash, sha256_hex
from service.common.request_context import get_request_id
from service.common.rows import insert_rows

from .chain import GENESIS_HASH, event_hash_payload
from .events import EVENTS
from .models import AuditEvent
from .selectors import audit_events

logger = logging.getLogger(__name__)
# Any constant: the key of the PostgreSQL advisory lock that serialises appends to the chain.
_CHAIN_LOCK_KEY = 7_301_964_211


def _storable(value: Any) -> Any:
    """The JSON value in the form the database gives back, so that re-hashing a stored row matches.

    PostgreSQL's jsonb keeps numbers as `numeric`: 1e+20 comes back as the integer
    100000000000000000000 and -0.0 as 0.0, and NaN/Infinity cannot be stored at all.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit data cannot hold {value!r}")
        if value == 0:
            return 0.0
        if value.is_integer() and "e" in repr(value):
            return int(value)
        return value
    if isinstance(value, dict):
        return {key: _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _lock_chain() -> tuple[int, str]:
    """Only one transaction at a time may read the chain's head and append to it. Takes the lock
    (unless this transaction holds it already) and returns the head: (seq, hash), (0, GENESIS_HASH)
    for an empty log.

    PostgreSQL: a transaction-scoped advisory lock, held until the transaction ends. That would
    include the commit's WAL flush (an fsync, milliseconds on ordinary disks), which would cap
    every write that audits at one fsync at a time. So the transaction commits asynchronously
    (synchronous_commit off, for this transaction only), which releases the lock without waiting
    for the disk, and _wait_until_durable runs right after the commit, before the caller goes on:
    nothing is acknowledged before it is on disk. After a crash, the WAL is replayed in order, so
    an append that was lost takes every later append with it: the chain never has a hole.
    The lock and the head read travel in one round trip (two statements, so that the head is read
    after the lock is granted), since every round trip here is time the other writers wait.

    SQLite: transactions are IMMEDIATE (settings), so the database write lock is already held.
    """
    head_sql = f"SELECT seq, hash FROM {AuditEvent._meta.db_table} ORDER BY seq DESC LIMIT 1"
    if connection.vendor != "postgresql":
        row = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        return row or (0, GENESIS_HASH)
    # An earlier append in this transaction (not rolled back) already holds the lock.
    held = any(hook[1] is _wait_until_durable for hook in connection.run_on_commit)
    lock_sql = "SELECT pg_advisory_xact_lock(%s), set_config('synchronous_commit', 'off', true)"
    with connection.cursor() as cursor:
        if held:
            cursor.execute(head_sql)
        elif not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
            cursor.execute(f"{lock_sql}; {head_sql}", [_CHAIN_LOCK_KEY])  # client-side binding: one round trip
            cursor.nextset()
        else:
            cursor.execute(lock_sql, [_CHAIN_LOCK_KEY])
            cursor.execute(head_sql)
        row = cursor.fetchone()
    if not held:
        transaction.on_commit(_wait_until_durable)
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def _flush_wal() -> None:
    """A tiny transaction that writes one WAL record and commits synchronously, so PostgreSQL
    flushes the WAL up to it, and with it every commit before it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_logical_emit_message(true, 'forget.audit', '')")


# Seconds spent on reconnecting when the connection is lost right after a commit.
DURABILITY_RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0)


def _wait_until_durable() -> None:
    """After an asynchronous commit: wait until it is on disk (_flush_wal). Concurrent ones share
    a flush (group commit), and no lock is held while they wait.

    The connection can be lost between the commit and this wait (the database restarts, a proxy
    drops the connection). The commit may then be on disk or not, and the caller must not be told
    either way without knowing: a new connection flushes the WAL again (which covers the earlier
    commit if the server kept it) and looks for the last event this transaction appended. Found:
    durable, the caller goes on (an accepted request is answered 202, not 500). Not found, or no
    connection within a few seconds: ServiceUnavailable (503): nothing is acknowledged, and a
    retry with the same Idempotency-Key returns the request if it was kept after all.
    """
    try:
        _flush_wal()
        return
    except (OperationalError, InterfaceError) as exc:
        logger.warning("connection lost right after a commit (%s); confirming the commit on a new connection", exc)
    tail = getattr(connection, "_forget_chain_tail", None)
    for pause in DURABILITY_RECONNECT_SECONDS:
        try:
            connection.close()
            _flush_wal()
            if tail is None or AuditEvent.objects.filter(seq=tail[0], hash=tail[1]).exists():
                return
            raise ServiceUnavailable("The database lost this change when it went away; nothing was kept. Retry (with the same Idempotency-Key).")
        except (OperationalError, InterfaceError):
            time.sleep(pause)
    raise ServiceUnavailable(
        "The database went away just after this change was committed, and it could not be confirmed. "
        "Retry (with the same Idempotency-Key: a request that was kept is returned, not filed twice)."
    )


def audit_record(*, action: str, actor: Actor, target_type: str = "", target_id: str | int = "", data: dict[str, Any] | None = None) -> AuditEvent:
    """Appends one event. Call it inside the transaction of the change it records.

    `data` must hold no raw personal data: pass service.common.hashing.pii_hash(value) instead.
    Inside `audit_deferred()` the event is queued and appended at the end of that block (the
    returned event is then not saved yet).
    """
    if action not in EVENTS:
        raise ValueError(f"unregistered audit action {action!r}; add it to service/audit/events.py")
    fields = dict(
        actor_kind=actor.kind,
        actor_id=str(actor.id)[:64],
        actor_label=actor.label[:150],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        data=_storable(json.loads(canonical_json(data or {}))),  # what is stored is exactly what is hashed
        request_id=get_request_id(),
    )
    queue = _deferred.get()
    if queue is not None:
        # Django drops on-commit hooks registered inside a savepoint that rolls back: this marker
        # tells the flush whether the change this event records still stands.
        marker = _EventMarker()
        transaction.on_commit(marker)
        queue.append((marker, fields))
        return AuditEvent(**fields)
    return _append([fields])[0]


def _append(pending: list[dict[str, Any]]) -> list[AuditEvent]:
    """Appends events to the chain, in order, holding the chain lock for as few statements as possible."""
    # No savepoint: an event that cannot be written fails the change it records, and the two
    # round trips a savepoint costs would be spent while the chain lock is held.
    with transaction.atomic(savepoint=False):
        seq, prev_hash = _lock_chain()
        now = timezone.now()
        events = []
        for fields in pending:
            seq += 1
            full = dict(fields, seq=seq, created_at=now, prev_hash=prev_hash)
            prev_hash = sha256_hex(event_hash_payload(**full))
            events.append(AuditEvent(**full, hash=prev_hash))
        # One INSERT for all of them. AuditEvent.objects refuses bulk_create to everyone else, so
        # that nothing writes around the chain; this is the chain's own writer.
        # The last event of this transaction, for _wait_until_durable's check after a lost connection.
        connection._forget_chain_tail = (seq, prev_hash)
        if connection.vendor != "postgresql":
            return models.QuerySet(AuditEvent).bulk_create(events)
        # bulk_create's statement (one multi-row INSERT ... RETURNING id) without compiling an
        # InsertQuery: in the intake profile the whole append, lock and head read included, now
        # uses half the CPU it did. The fields prepare the values, so the re-computed hash is the same.
        return insert_rows(events)


class _EventMarker:
    def __call__(self) -> None:
        pass


_deferred: contextvars.ContextVar[list | None] = contextvars.ContextVar("audit_deferred", default=None)


@contextmanager
def audit_deferred() -> Iterator[None]:
    """Queues the events recorded inside and appends them together when the block ends.

    The chain lock is held from the first append to the commit, so a transaction that appends
    early and then goes on working makes every other writer wait. Wrap the body of a short,
    hot transaction in this (`with transaction.atomic(), audit_deferred():`) and its events are
    appended at its very end, with one head read. Events recorded inside a savepoint that rolls
    back are dropped with it. Nested blocks join the outermost one.
    """
    if _deferred.get() is not None:
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("audit_deferred() must run inside transaction.atomic(), so its events commit with the change")
    queue: list = []
    token = _deferred.set(queue)
    try:
        yield
    finally:
        _deferred.reset(token)
    # Which markers still stand: Django keeps on-commit callbacks in connection.run_on_commit (a
    # private list of (savepoint ids, callback, robust)) and drops those of a savepoint that rolls
    # back. Private, so pinned by a test: tests/service/audit/test_chain.py
    # test_deferred_events_of_a_rolled_back_savepoint_are_dropped_with_it fails if Django changes it.
    live = {id(hook[1]) for hook in connection.run_on_commit}
    standing = [fields for marker, fields in queue if id(marker) in live]
    if standing:
        _append(standing)


def audit_export_record(*, actor: Actor, export_format: str, criteria: dict[str, Any]) -> AuditEvent:
    """Records that `actor` exports the events matching `criteria` (audit_events' keyword filters).

    The export then holds exactly the matching events before this one (before_seq=event.seq). The
    chain lock is taken before counting them, so the row count recorded here is the one exported.
    """
    actor.require(Capability.READ_AUDIT)
    with transaction.atomic():
        _lock_chain()
        rows = audit_events(actor=actor, **criteria).count()
        filters = {name: value for name, value in criteria.items() if value not in ("", None)}
        if "search" in filters:  # free text an auditor typed: it could name a person, so only its hash
            filters["search"] = pii_hash(filters["search"])
        return audit_record(action="audit.exported", actor=actor, target_type="audit_log", data={"format": export_format, "filters": filters, "rows": rows})
