"""Writes on erasure requests. Views, API classes, admin actions and tasks all call these.

Every status change goes through `_transition`: a compare-and-set UPDATE guarded by the transition
table, which writes its audit event in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from service.accounts.models import ApiClient
from service.accounts.roles import SYSTEM, Actor, Capability, Scope, subject_actor
from service.audit.services import audit_deferred, audit_record
from service.common import ratelimits
from service.common.errors import ApplicationError, Conflict, InvalidTransition, NotFound, RateLimited
from service.common.hashing import canonical_json, pii_hash, sha256_hex
from service.common.reasons import require_reason
from service.common.rows import insert_rows

from . import notifications
from .deadlines import extended_deadline, legal_deadline
from .models import Channel, ErasureRequest
from .selectors import request_for_subject
from .signals import request_approved, request_status_changed
from .states import Status, sources_for

_REFERENCE_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "0O1IL")


# --- helpers -------------------------------------------------------------------------------------


def _new_reference() -> str:
    return "RTBF-" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(6))


def _code_hash(request_id, code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"{request_id}:{code}".encode(), hashlib.sha256).hexdigest()


def submitted_content_hash(*, name: str, email: str, facts: list[str], evidence_prompts: list[str], regulation: str) -> str:
    return sha256_hex(canonical_json({"name": name, "email": email.lower(), "facts": facts, "evidence_prompts": evidence_prompts, "regulation": regulation}))


def _transition(request: ErasureRequest, to: Status, *, actor: Actor, data: dict[str, Any] | None = None, **fields: Any) -> ErasureRequest:
    """Compare-and-set from any allowed source to `to`, plus its audit row, atomically.

    Raises InvalidTransition when the request is not in a state that allows it (including a lost
    race); the row is never changed in that case.
    """
    sources = sources_for(to)
    with transaction.atomic():
        now = timezone.now()
        updated = ErasureRequest.objects.filter(pk=request.pk, status__in=[s.value for s in sources]).update(status=to.value, updated_at=now, **fields)
        if not updated:
            current = ErasureRequest.objects.filter(pk=request.pk).values_list("status", flat=True).first()
            raise InvalidTransition(
                f"Request {request.reference} is {current or 'gone'}; it cannot become {to.value}.",
                extra={"current_status": current, "requested_status": to.value},
            )
        audit_record(
            action=f"request.{to.value}", actor=actor, target_type="request", target_id=request.reference, data={"from": request.status, **(data or {})}
        )
        # The row now holds exactly what the compare-and-set wrote: set it here instead of re-reading
        # (and decrypting) the whole row; only database expressions need the round trip.
        previous = request.status
        request.status, request.updated_at = to.value, now
        expressions = [name for name, value in fields.items() if hasattr(value, "resolve_expression")]
        for name, value in fields.items():
            if name not in expressions:
                setattr(request, name, value)
        if expressions:
            request.refresh_from_db(fields=expressions)
        # In the same transaction: the status webhooks' deliveries commit with the change (service.webhooks).
        request_status_changed.send(sender=ErasureRequest, request=request, previous=previous)
    return request


def _guesses_left(request: ErasureRequest) -> int:
    """Guesses this request may still have checked, over all its codes (FORGET['CODE_MAX_GUESSES'])."""
    return max(settings.FORGET["CODE_MAX_GUESSES"] - request.code_guesses_used, 0)


def _guesses_exhausted(request: ErasureRequest) -> Conflict:
    return Conflict(
        f"Request {request.reference} has used all {settings.FORGET['CODE_MAX_GUESSES']} attempts at a code; it can no longer "
        "be confirmed by email. File a new request.",
        code="code_guesses_exhausted",
    )


def _issue_code(request: ErasureRequest, *, actor: Actor) -> None:
    """A new code replaces the old one. It gets CODE_MAX_ATTEMPTS attempts, or fewer when the
    request's total budget of guesses (CODE_MAX_GUESSES, over every code it was sent) is nearly
    spent: a resend is a new code, not new guesses."""
    cfg = settings.FORGET
    left = _guesses_left(request)
    if left <= 0:
        raise _guesses_exhausted(request)
    ratelimits.hit("code_mails_per_email", request.subject_email_hash)  # mails to one address, whoever asks
    code = f"{secrets.randbelow(10**6):06d}"
    now = timezone.now()
    ErasureRequest.objects.filter(pk=request.pk).update(
        code_hash=_code_hash(request.pk, code),
        code_expires_at=now + timedelta(seconds=cfg["CODE_TTL_SECONDS"]),
        code_attempts_left=min(cfg["CODE_MAX_ATTEMPTS"], left),
        code_sent_at=now,
    )
    audit_record(
        action="request.verification_sent", actor=actor, target_type="request", target_id=request.reference, data={"email": request.subject_email_hash}
    )
    notifications.send_verification_code(email=request.subject["email"], reference=request.reference, code=code, ttl_minutes=cfg["CODE_TTL_SECONDS"] // 60)


def _insert(
    *,
    channel: str,
    name: str,
    email: str,
    regulation: str,
    facts: list[str],
    evidence_prompts: list[str],
    attested: bool,
    actor: Actor,
    received,
    api_client: ApiClient | None = None,
    api_client_id: int | None = None,
    idempotency_key: str = "",
    body_hash: str = "",
    **initial: Any,
) -> ErasureRequest:
    """The INSERT and its `request.submitted` event, in the caller's transaction (no retry here).
    `initial`: more column values for the INSERT (request_create_api's trusted-identity fold).
    `api_client`: a loaded client row (then cached on the request), else `api_client_id` alone."""
    owner = {"api_client": api_client} if api_client is not None else {"api_client_id": api_client_id}
    request = ErasureRequest(
        reference=_new_reference(),
        channel=channel,
        **owner,
        idempotency_key=idempotency_key,
        idempotency_body_hash=body_hash,
        subject={"name": name, "email": email},
        subject_email_hash=pii_hash(email),
        facts=facts,
        evidence_prompts=evidence_prompts,
        content_hash=submitted_content_hash(name=name, email=email, facts=facts, evidence_prompts=evidence_prompts, regulation=regulation),
        attested=attested,
        regulation=regulation,
        received_at=received,
        deadline_at=legal_deadline(regulation, received),
        **initial,
    )
    insert_rows([request])  # ErasureRequest.objects.create() without compiling an InsertQuery (the intake's CPU)
    audit_record(
        action="request.submitted",
        actor=actor,
        target_type="request",
        target_id=request.reference,
        data={
            "channel": channel,
            "regulation": regulation,
            "content_hash": request.content_hash,
            "email": request.subject_email_hash,
            "facts": len(facts),
            "evidence_prompts": len(evidence_prompts),
        },
    )
    return request


T = TypeVar("T")

_REFERENCE_TRIES = 5  # a reference collision is astronomically rare; retry rather than fail


def _with_fresh_reference(attempt: Callable[[], T], *, replayed: Callable[[], T | None] | None = None) -> T:
    """Runs `attempt()`, one transaction (or savepoint) that inserts a request under a new random
    reference, until it commits. An IntegrityError is a replay when `replayed()` finds the stored
    answer (an Idempotency-Key used before), else a reference collision: the attempt was rolled back
    whole, and the next one draws another reference."""
    for _ in range(_REFERENCE_TRIES):
        try:
            return attempt()
        except IntegrityError:
            if replayed is not None and (hit := replayed()) is not None:
                return hit
    raise ApplicationError("Could not allocate a request reference; try again.", code="reference_exhausted", status=503)


# --- intake --------------------------------------------------------------------------------------


@transaction.atomic
def request_submit_web(*, name: str, email: str, regulation: str, facts: list[str], evidence_prompts: list[str], attested: bool) -> ErasureRequest:
    """A subject's request from the public form: created `submitted`, and a code is emailed."""
    if not attested:
        raise ApplicationError("You must confirm that the data is about you.", code="attestation_required")
    ratelimits.hit("submit_per_email", pii_hash(email))  # one victim's address flooded from many places
    received = timezone.now()

    def attempt() -> ErasureRequest:
        with transaction.atomic():  # a savepoint: a collision rolls back this attempt only
            return _insert(
                channel=Channel.WEB,
                name=name,
                email=email,
                regulation=regulation,
                facts=facts,
                evidence_prompts=evidence_prompts,
                attested=True,
                actor=subject_actor("new request"),
                received=received,
            )

    request = _with_fresh_reference(attempt)
    _issue_code(request, actor=subject_actor(request.reference))
    request.refresh_from_db()
    return request


def request_create_api(
    *,
    actor: Actor,
    idempotency_key: str,
    name: str,
    email: str,
    regulation: str,
    facts: list[str],
    evidence_prompts: list[str],
    client: ApiClient | None = None,
) -> tuple[ErasureRequest, bool]:
    """A product's request. Returns (request, created).

    Same Idempotency-Key and body: the existing request back (created=False). Same key, another
    body: Conflict. Clients with `trusted_identity` verified the subject themselves, so the request
    goes straight to `verified`; others get the emailed code like the web form.

    `client`: the actor's ApiClient row as authentication loaded it this call, if the caller has it;
    the status-change receivers read it from the new request (the webhooks: whether any endpoint of
    the client takes the event) instead of querying again.
    """
    actor.require_scope(Scope.CREATE)
    if client is not None and client.pk != actor.client_pk:
        raise ValueError("client is not the actor's API client")
    client_pk = actor.client_pk
    body_hash = sha256_hex(canonical_json({"name": name, "email": email, "regulation": regulation, "facts": facts, "evidence_prompts": evidence_prompts}))

    def existing() -> tuple[ErasureRequest, bool] | None:
        found = ErasureRequest.objects.filter(api_client_id=client_pk, idempotency_key=idempotency_key).first()
        if found is None:
            return None
        if found.idempotency_body_hash != body_hash:
            raise Conflict("This Idempotency-Key was already used with a different body.", code="idempotency_key_reused")
        return found, False

    # No look-up first: a new key (the usual case) costs one INSERT; a replayed key fails on the
    # unique (api_client, idempotency_key) constraint and is answered below.
    #
    # The hot path is one transaction with no savepoints (each costs two round trips and Django
    # bookkeeping): an IntegrityError rolls the whole attempt back and _with_fresh_reference decides,
    # outside any transaction, whether it was a replay (answered from the stored row) or a reference
    # collision (astronomically rare: a new attempt with a new reference).
    trusted = actor.has_scope(Scope.TRUSTED_IDENTITY)
    fields = dict(
        channel=Channel.API,
        name=name,
        email=email,
        regulation=regulation,
        facts=facts,
        evidence_prompts=evidence_prompts,
        attested=True,
        actor=actor,
        api_client=client,
        api_client_id=client_pk,
        idempotency_key=idempotency_key,
        body_hash=body_hash,
    )

    def attempt() -> tuple[ErasureRequest, bool]:
        with transaction.atomic(), audit_deferred():  # audit events appended last, chain lock held briefly
            received = timezone.now()
            if trusted:
                # The client verified the subject: the row is inserted `verified` at once instead of
                # INSERT `submitted` + compare-and-set UPDATE to `verified` in the same transaction
                # (nobody else can see or change the row in between, so the CAS can never fail). Same
                # committed row, same two audit events in the same order as _transition wrote them;
                # one statement and one savepoint less.
                request = _insert(**fields, received=received, status=Status.VERIFIED.value, verified_at=received)
                audit_record(
                    action=f"request.{Status.VERIFIED.value}",
                    actor=actor,
                    target_type="request",
                    target_id=request.reference,
                    data={"from": Status.SUBMITTED.value, "method": "trusted_identity"},
                )
                request_status_changed.send(sender=ErasureRequest, request=request, previous=Status.SUBMITTED.value)
                _maybe_auto_approve(request)
            else:
                request = _insert(**fields, received=received)
                _issue_code(request, actor=actor)
                request.refresh_from_db()  # _issue_code updates the row behind this object
        return request, True

    # A replay, or two concurrent calls with the same key (the other one won): answer with its request.
    return _with_fresh_reference(attempt, replayed=existing if idempotency_key else None)


# --- verification --------------------------------------------------------------------------------


def request_verify(*, reference: str, email: str, code: str) -> ErasureRequest:
    """Checks the emailed code: 10 minutes, 3 attempts, compared in constant time.

    The request's row is locked while a guess is checked and counted, so concurrent guesses take
    turns: however many arrive at once, at most CODE_MAX_ATTEMPTS are checked against one code and
    CODE_MAX_GUESSES against all the codes of a request; the others are refused unchecked.
    """
    with transaction.atomic():
        request = request_for_subject(reference=reference, email=email, lock=True)
        actor = subject_actor(request.reference)
        if request.status != Status.SUBMITTED:
            raise InvalidTransition(f"Request {request.reference} is already {request.status}.")
        now = timezone.now()
        if _guesses_left(request) <= 0:
            raise _guesses_exhausted(request)
        if not request.code_hash or request.code_attempts_left <= 0:
            raise ApplicationError("No attempts left for this code; ask for a new one.", code="code_attempts_exhausted")
        if request.code_expires_at is None or request.code_expires_at < now:
            raise ApplicationError("This code has expired; ask for a new one.", code="code_expired")
        if not hmac.compare_digest(request.code_hash, _code_hash(request.pk, code.strip())):
            left = request.code_attempts_left - 1
            ErasureRequest.objects.filter(pk=request.pk).update(code_attempts_left=left, code_guesses_used=F("code_guesses_used") + 1)
            audit_record(action="request.verification_failed", actor=actor, target_type="request", target_id=request.reference, data={"attempts_left": left})
            wrong = ApplicationError(
                f"Wrong code. {left} attempt(s) left." if left else "Wrong code. No attempts left; ask for a new code.",
                code="code_invalid",
                extra={"attempts_left": left},
            )
        else:
            wrong = None
            request = _transition(
                request,
                Status.VERIFIED,
                actor=actor,
                data={"method": "email_code"},
                verified_at=now,
                code_hash="",
                code_attempts_left=0,
                code_guesses_used=F("code_guesses_used") + 1,
            )
            _maybe_auto_approve(request)
    if wrong:  # raised outside the atomic block so the failed attempt is committed
        raise wrong
    request.refresh_from_db()
    return request


def request_resend_code(*, reference: str, email: str) -> ErasureRequest:
    with transaction.atomic():
        request = request_for_subject(reference=reference, email=email, lock=True)
        if request.status != Status.SUBMITTED:
            raise InvalidTransition(f"Request {request.reference} is already {request.status}.")
        wait = settings.FORGET["CODE_RESEND_SECONDS"]
        if request.code_sent_at and (timezone.now() - request.code_sent_at).total_seconds() < wait:
            retry_after = max(1, int(wait - (timezone.now() - request.code_sent_at).total_seconds()))
            raise RateLimited(f"A code was sent less than {wait} seconds ago; please wait before asking again.", retry_after=retry_after)
        _issue_code(request, actor=subject_actor(request.reference))
    return request


def _maybe_auto_approve(request: ErasureRequest) -> None:
    if settings.FORGET["AUTO_APPROVE"]:
        _transition(request, Status.APPROVED, actor=SYSTEM, data={"policy": "auto_approve"}, decided_at=timezone.now())
        _queue_unlearning_after_commit(request)


def _queue_unlearning_after_commit(request: ErasureRequest) -> None:
    """Once the approval is committed, `request_approved` tells the pipeline, which queues the
    request and sends its job (service.unlearning, docs/pipeline.md). A failure there leaves the
    approval in place (robust: logged); the periodic send_unsent_jobs task picks the request up again."""

    def announce_approval() -> None:  # a named function: Django logs a robust callback's failure by its name
        request_approved.send(sender=ErasureRequest, request_id=request.pk)

    transaction.on_commit(announce_approval, robust=True)


# --- review --------------------------------------------------------------------------------------


def _get(request_id) -> ErasureRequest:
    try:
        return ErasureRequest.objects.get(pk=request_id)
    except (ErasureRequest.DoesNotExist, ValidationError, ValueError, TypeError):  # ValidationError: not a UUID
        raise NotFound("No such request.") from None


def request_approve(*, actor: Actor, request_id) -> ErasureRequest:
    actor.require(Capability.REVIEW)
    request = _get(request_id)
    request = _transition(request, Status.APPROVED, actor=actor, decided_at=timezone.now(), decided_by_id=actor.user_pk)
    _queue_unlearning_after_commit(request)
    if not transaction.get_connection().in_atomic_block:  # already queued just now: answer with that
        request.refresh_from_db(fields=["status", "updated_at"])
    return request


def request_reject(*, actor: Actor, request_id, reason: str) -> ErasureRequest:
    actor.require(Capability.REVIEW)
    reason = require_reason(reason, "reject a request")
    request = _get(request_id)
    with transaction.atomic():
        request = _transition(
            request, Status.REJECTED, actor=actor, data={"reason": reason}, decided_at=timezone.now(), decided_by_id=actor.user_pk, decision_reason=reason
        )
        notifications.send_rejection(email=request.subject["email"], reference=request.reference, reason=reason)
    return request


def request_cancel(*, actor: Actor, request_id, reason: str = "") -> ErasureRequest:
    """Reviewers cancel any open request; an API client only its own."""
    request = _get(request_id)
    if actor.kind == "api_client":
        actor.require_scope(Scope.CREATE)
        if request.api_client_id != actor.client_pk:
            raise NotFound("No such request.")
    else:
        actor.require(Capability.REVIEW)
    with transaction.atomic():
        request = _transition(
            request, Status.CANCELLED, actor=actor, data={"reason": reason}, decision_reason=reason, decided_at=timezone.now(), decided_by_id=actor.user_pk
        )
        notifications.send_cancellation(email=request.subject["email"], reference=request.reference, reason=reason)
    return request


def request_roll_back(*, actor: Actor, request_id, reason: str) -> ErasureRequest:
    """An active request whose unit was taken off the gateway (adapters_store's adapter_rollback
    calls this in its own transaction): the erasure no longer holds, and the reason says why."""
    actor.require(Capability.REVIEW)
    reason = require_reason(reason, "roll back a request")
    return _transition(_get(request_id), Status.ROLLED_BACK, actor=actor, data={"reason": reason})


def request_mark_active(*, request_id, effective_at, actor: Actor, gateway_id: str = "") -> ErasureRequest:
    """staged -> active once an inference gateway confirms that it serves the request's unit.

    `effective_at` is that confirmation time: the effective erasure time shown to the subject and
    the auditor. The subject is emailed after the commit. The gateway (the system) calls this; of
    people, only admins. When several gateways confirm, the first wins and the others' calls raise
    InvalidTransition without changing anything.
    """
    if actor.kind != "system":
        actor.require(Capability.ADMINISTER)
    data = {"effective_at": effective_at.isoformat(), **({"gateway_id": gateway_id} if gateway_id else {})}
    with transaction.atomic():
        request = _transition(_get(request_id), Status.ACTIVE, actor=actor, data=data, effective_at=effective_at)
        notifications.send_erasure_confirmed(email=request.subject["email"], reference=request.reference, effective_at=effective_at)
    return request


# Statuses the unlearning pipeline moves a request into (service.unlearning.services).
PIPELINE_TARGETS = frozenset({Status.QUEUED, Status.TRAINING, Status.EVALUATING, Status.STAGED, Status.FAILED, Status.NEEDS_REVIEW, Status.VERIFIED})


def request_mark_pipeline(*, request_id, to: Status, actor: Actor = SYSTEM, data: dict[str, Any] | None = None, **fields: Any) -> ErasureRequest:
    """The unlearning pipeline's status changes (queued, training, evaluating, staged, failed, and
    back to verified when the data is not in the model): the same compare-and-set and audit row as
    every transition. Raises InvalidTransition when the request is elsewhere (e.g. cancelled)."""
    if to not in PIPELINE_TARGETS:
        raise ValueError(f"the pipeline does not move requests to {to}")
    return _transition(_get(request_id), to, actor=actor, data=data, **fields)


def request_extend_deadline(*, actor: Actor, request_id, reason: str) -> ErasureRequest:
    """Once per request, with a reason (GDPR: +2 months; CCPA: +45 days)."""
    actor.require(Capability.REVIEW)
    reason = require_reason(reason, "extend a deadline")
    with transaction.atomic():
        request = _get(request_id)
        if not request.is_open:
            raise InvalidTransition(f"Request {request.reference} is {request.status}; its deadline no longer runs.")
        new_deadline = extended_deadline(request.regulation, request.deadline_at)
        updated = ErasureRequest.objects.filter(pk=request.pk, deadline_extended=False).update(
            deadline_at=new_deadline, deadline_extended=True, extension_reason=reason, reminder_sent_at=None
        )
        if not updated:
            raise Conflict(f"The deadline of {request.reference} was already extended once.", code="already_extended")
        audit_record(
            action="request.deadline_extended",
            actor=actor,
            target_type="request",
            target_id=request.reference,
            data={"reason": reason, "deadline": new_deadline.isoformat()},
        )
    request.refresh_from_db()
    return request


def request_reveal_personal_data(*, actor: Actor, request_id) -> ErasureRequest:
    """The request with its personal data for one unmasked viewing; every reveal is audited."""
    actor.require(Capability.REVEAL_PERSONAL_DATA)
    request = _get(request_id)
    audit_record(action="request.personal_data_revealed", actor=actor, target_type="request", target_id=request.reference)
    return request


def requests_bulk_decide(*, actor: Actor, request_ids: list, decision: str, reason: str = "") -> dict[str, list[str]]:
    """Approve or reject many; each request is its own transaction, failures are reported, not fatal."""
    actor.require(Capability.REVIEW)
    if decision not in ("approve", "reject"):
        raise ApplicationError("decision must be 'approve' or 'reject'.", code="invalid_decision")
    if decision == "reject":
        reason = require_reason(reason, "reject requests")
    done, failed = [], []
    for request_id in request_ids:
        try:
            if decision == "approve":
                request = request_approve(actor=actor, request_id=request_id)
            else:
                request = request_reject(actor=actor, request_id=request_id, reason=reason)
            done.append(request.reference)
        except ApplicationError as exc:
            failed.append(f"{request_id}: {exc.detail}")
    return {"done": done, "failed": failed}


# --- housekeeping (periodic task) ----------------------------------------------------------------


def requests_expire_unverified(*, now=None) -> list[str]:
    """Submitted requests older than FORGET['UNVERIFIED_EXPIRY_DAYS'] become `expired`."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.FORGET["UNVERIFIED_EXPIRY_DAYS"])
    expired = []
    for request in ErasureRequest.objects.filter(status=Status.SUBMITTED, received_at__lt=cutoff):
        try:
            _transition(request, Status.EXPIRED, actor=SYSTEM, data={"unverified_days": settings.FORGET["UNVERIFIED_EXPIRY_DAYS"]})
            expired.append(request.reference)
        except InvalidTransition:
            continue  # verified meanwhile
    return expired


def requests_send_deadline_reminders(*, now=None) -> list[str]:
    """One reminder per request whose deadline is within FORGET['REMINDER_DAYS_LEFT'] days."""
    from .states import OPEN

    now = now or timezone.now()
    horizon = now + timedelta(days=settings.FORGET["REMINDER_DAYS_LEFT"])
    reminded = []
    for request in ErasureRequest.objects.filter(
        status__in=[s.value for s in OPEN if s != Status.SUBMITTED], deadline_at__lte=horizon, reminder_sent_at__isnull=True
    ):
        with transaction.atomic():
            if not ErasureRequest.objects.filter(pk=request.pk, reminder_sent_at__isnull=True).update(reminder_sent_at=now):
                continue
            left = request.days_left(now)
            audit_record(action="request.deadline_reminder", actor=SYSTEM, target_type="request", target_id=request.reference, data={"days_left": left})
            notifications.send_deadline_reminder(reference=request.reference, days_left=left)
        reminded.append(request.reference)
    return reminded
