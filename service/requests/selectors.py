"""Reads of erasure requests, filtered by who is asking."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from service.accounts.roles import Actor, Capability, Scope
from service.common.errors import NotFound
from service.common.hashing import pii_hash

from .models import ErasureRequest
from .states import OPEN, Status


@dataclass(frozen=True)
class RequestFilters:
    status: str = ""
    regulation: str = ""
    channel: str = ""
    overdue: bool = False
    due_within_days: int | None = None
    q: str = ""  # reference search


def requests_visible_to(actor: Actor) -> QuerySet[ErasureRequest]:
    """Staff with READ_ALL see everything; an API client with `read` sees its own; others nothing."""
    if actor.kind == "api_client":
        actor.require_scope(Scope.READ)
        return ErasureRequest.objects.filter(api_client_id=actor.client_pk)
    actor.require(Capability.READ_ALL_REQUESTS)
    return ErasureRequest.objects.all()


def request_list(*, actor: Actor, filters: RequestFilters = RequestFilters()) -> QuerySet[ErasureRequest]:
    requests = requests_visible_to(actor)
    if filters.status:
        requests = requests.filter(status__in=filters.status.split(","))
    if filters.regulation:
        requests = requests.filter(regulation=filters.regulation)
    if filters.channel:
        requests = requests.filter(channel=filters.channel)
    now = timezone.now()
    if filters.overdue:
        requests = requests.filter(status__in=[s.value for s in OPEN], deadline_at__lt=now)
    if filters.due_within_days is not None:
        requests = requests.filter(status__in=[s.value for s in OPEN], deadline_at__lt=now + timedelta(days=filters.due_within_days))
    if filters.q:
        requests = requests.filter(Q(reference__icontains=filters.q.strip()))
    return requests.order_by("deadline_at", "received_at")


# "Needs action": the requests a reviewer must do something about, the queue's default view. The
# one place to extend it: requests whose certificate verdict is INCONCLUSIVE join here once the
# pipeline records verdicts (a condition on the latest unlearning job, OR-ed with these statuses).
NEEDS_ACTION_STATUSES: tuple[Status, ...] = (Status.VERIFIED, Status.FAILED, Status.NEEDS_REVIEW)


def needs_action(*, actor: Actor, filters: RequestFilters = RequestFilters()) -> QuerySet[ErasureRequest]:
    """Requests waiting for a reviewer: to decide (verified), to retry or close (failed), most urgent first."""
    statuses = ",".join(s.value for s in NEEDS_ACTION_STATUSES)
    return request_list(actor=actor, filters=RequestFilters(**{**filters.__dict__, "status": statuses}))


def review_queue(*, actor: Actor, filters: RequestFilters = RequestFilters()) -> QuerySet[ErasureRequest]:
    """The reviewer's queue: by default, the requests that need action, most urgent first."""
    if not filters.status:
        return needs_action(actor=actor, filters=filters)
    return request_list(actor=actor, filters=filters)


def request_get(*, actor: Actor, request_id) -> ErasureRequest:
    try:
        return requests_visible_to(actor).get(pk=request_id)
    except (ErasureRequest.DoesNotExist, ValidationError, ValueError, TypeError):  # ValidationError: not a UUID
        # The same answer for "absent" and "not yours": no probing other clients' ids.
        raise NotFound("No such request.") from None


def request_for_subject(*, reference: str, email: str, lock: bool = False) -> ErasureRequest:
    """The subject sees their own request only, found by reference AND email. `lock`: the row is
    locked until the caller's transaction ends (SELECT ... FOR UPDATE), so concurrent callers take turns."""
    requests = ErasureRequest.objects.select_for_update() if lock else ErasureRequest.objects
    request = requests.filter(reference=reference.strip().upper(), subject_email_hash=pii_hash(email)).first()
    if request is None:
        raise NotFound("No request with this reference and email address.")
    return request


def audit_target_for(actor: Actor, value: str) -> str | None:
    """The audit log's target id of a request named by its reference (any case) or its id (UUID):
    requests are audited under their public reference. None when `value` names no request the
    actor may see. Registered with the audit log's filters in apps.py (the audit app is the lower layer)."""
    if value.upper().startswith("RTBF-"):
        return value.upper()
    try:
        request_id = uuid.UUID(value)
    except ValueError:
        return None
    try:
        return request_get(actor=actor, request_id=request_id).reference
    except NotFound:
        return None
