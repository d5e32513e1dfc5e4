"""Writes of the status webhooks: endpoints, the deliveries of events, their attempts, replays.

API views, the Django admin, the request-status receiver and the Celery tasks all call these.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from service.accounts.models import ApiClient
from service.accounts.roles import SYSTEM, Actor, Capability, Scope
from service.audit.services import audit_record
from service.common.celery_app import app as celery_app
from service.common.errors import ApplicationError, NotFound

from . import delivery as http_delivery
from .events import EVENT_TYPES, request_event_payload
from .models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

MAX_ENDPOINTS_PER_CLIENT = 10
CLAIM_SECONDS = 120  # an attempt in flight holds its delivery this long (longer than any timeout)


def retry_schedule() -> list[float]:
    """Seconds to wait before each retry after a failed attempt (FORGET_WEBHOOK_RETRY_SECONDS)."""
    return list(settings.FORGET["WEBHOOK_RETRY_SECONDS"])


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApplicationError(
            "The endpoint URL must be an http:// or https:// URL.",
            code="invalid_webhook_url",
            extra={"errors": [{"field": "url", "message": "Only http(s) URLs.", "code": "invalid"}]},
        )
    if parts.username or parts.password:
        raise ApplicationError(
            "The endpoint URL may not carry credentials; verify the signature instead.",
            code="invalid_webhook_url",
            extra={"errors": [{"field": "url", "message": "No user:password@ in the URL.", "code": "invalid"}]},
        )
    if not settings.FORGET["WEBHOOK_ALLOW_PRIVATE_NETWORKS"]:
        # Only what the URL says literally: a name is resolved, and judged, at each delivery.
        host = parts.hostname
        ip = http_delivery.literal_address(host)
        reason = "a loopback name" if http_delivery.is_local_name(host) else (http_delivery.non_global_reason(ip) if ip is not None else None)
        if reason:
            raise ApplicationError(
                f"The endpoint URL names {host}, {reason}: webhooks go to globally routable addresses only.",
                code="invalid_webhook_url",
                extra={"errors": [{"field": "url", "message": f"{host} is {reason}.", "code": "invalid"}]},
            )
    return url


def _check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        message = f"Unknown event types: {', '.join(unknown)}." if unknown else "Name at least one event type."
        raise ApplicationError(message, code="invalid_webhook_events", extra={"errors": [{"field": "events", "message": message, "code": "invalid"}]})
    return sorted(set(events), key=EVENT_TYPES.index)


def _client_actor(actor: Actor) -> int:
    actor.require_scope(Scope.READ)  # an endpoint tells a client about its own requests: the read scope
    return actor.client_pk


# --- endpoints -------------------------------------------------------------------------------------


def webhook_endpoint_create(
    *, actor: Actor, url: str, events: list[str], description: str = "", api_client_id: int | None = None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once: only its encrypted form is kept).
    An API client registers its own (read scope); an admin (Django admin) names the client."""
    if actor.kind == "api_client":
        api_client_id = _client_actor(actor)
    else:
        actor.require(Capability.ADMINISTER)
        if api_client_id is None:
            raise ApplicationError("Name the API client the endpoint belongs to.", code="api_client_required")
    url, events = _check_url(url), _check_events(events)
    with transaction.atomic():
        _lock_client(api_client_id)
        if WebhookEndpoint.objects.filter(api_client_id=api_client_id, is_active=True).count() >= MAX_ENDPOINTS_PER_CLIENT:
            raise ApplicationError(f"At most {MAX_ENDPOINTS_PER_CLIENT} active endpoints per client.", code="too_many_endpoints", status=409)
        secret = _new_secret()
        endpoint = WebhookEndpoint.objects.create(api_client_id=api_client_id, url=url, events=events, description=description, secret={"secret": secret})
        _client_events_refresh(api_client_id)
        audit_record(
            action="webhook.endpoint_created",
            actor=actor,
            target_type="webhook_endpoint",
            target_id=str(endpoint.pk),
            data={"events": events, "host": urlsplit(url).hostname, "api_client": api_client_id},
        )
    return endpoint, secret


def webhook_endpoint_disable(*, actor: Actor, endpoint_id) -> WebhookEndpoint:
    """Stops deliveries to an endpoint (pending ones are not sent); the history stays."""
    endpoint = _endpoint_for(actor, endpoint_id)
    with transaction.atomic():
        _lock_client(endpoint.api_client_id)
        if WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).update(is_active=False, disabled_at=timezone.now()):
            _client_events_refresh(endpoint.api_client_id)
            audit_record(action="webhook.endpoint_disabled", actor=actor, target_type="webhook_endpoint", target_id=str(endpoint.pk))
    endpoint.refresh_from_db()
    return endpoint


def _lock_client(api_client_id: int) -> None:
    """Endpoint changes of one client take turns (its row lock, to the end of the transaction): the
    active-endpoint limit and the client's webhook_events are then decided on what the others
    committed, and two registrations at once cannot each write only their own event types."""
    if not ApiClient.objects.select_for_update().filter(pk=api_client_id).exists():
        raise NotFound("No such API client.")


def _client_events_refresh(api_client_id: int) -> None:
    """ApiClient.webhook_events := the event types of the client's active endpoints (under _lock_client)."""
    subscribed = set()
    for events in WebhookEndpoint.objects.filter(api_client_id=api_client_id, is_active=True).values_list("events", flat=True):
        subscribed.update(events)
    ApiClient.objects.filter(pk=api_client_id).update(webhook_events=[event for event in EVENT_TYPES if event in subscribed])


def _endpoint_for(actor: Actor, endpoint_id) -> WebhookEndpoint:
    query = WebhookEndpoint.objects.filter(pk=endpoint_id)
    if actor.kind == "api_client":
        query = query.filter(api_client_id=_client_actor(actor))
    else:
        actor.require(Capability.ADMINISTER)
    endpoint = query.first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


# --- deliveries --------------------------------------------------------------------------------------


def deliveries_create_for_event(*, event_type: str, request, previous: str) -> list[WebhookDelivery]:
    """One delivery per active endpoint of the request's client subscribed to `event_type`, in the
    caller's transaction (the status change's): sent by a task once that commits."""
    client = request.api_client if type(request).api_client.is_cached(request) else None
    if client is not None and event_type not in client.webhook_events:
        # The caller loaded the client (the intake: authentication did, this very call), and none of
        # its active endpoints takes this event: no endpoints query, the usual case on every intake.
        # An endpoint registered while the request is being filed may miss its event, as it could
        # when the endpoints were read inside the filing's transaction: the window is the filing itself.
        return []
    # Only ids and event lists: this runs in every API intake's transaction, and most clients have no
    # endpoint; loading whole endpoints (and decrypting their secrets) would be paid on each one.
    subscribed = WebhookEndpoint.objects.filter(api_client_id=request.api_client_id, is_active=True).values_list("pk", "events")
    endpoint_ids = [pk for pk, events in subscribed if event_type in events]
    if not endpoint_ids:
        return []
    now = timezone.now()
    payload = request_event_payload(event_type, request, previous=previous, at=now)
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                id=_new_message_id(),
                endpoint_id=endpoint_id,
                event_type=event_type,
                request_id=request.pk,
                payload=payload,
                next_attempt_at=now,
                created_at=now,
            )
            for endpoint_id in endpoint_ids
        ]
    )
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: _enqueue(ids), robust=True)
    return deliveries


DELIVER_TASK = "service.webhooks.tasks.deliver_webhook"  # service/webhooks/tasks.py


def _enqueue(delivery_ids: list[str], countdown: float | None = None) -> None:
    """Hands deliveries to the Celery worker (by task name: the tasks module calls this one).
    Fails fast (no publish retries) when the broker is down: the periodic send_due_webhooks task
    sends them later; nothing waits on this."""
    for delivery_id in delivery_ids:
        try:
            celery_app.send_task(DELIVER_TASK, args=[delivery_id], countdown=countdown, retry=False)
        except Exception:  # noqa: BLE001 - logged; the periodic task picks the delivery up
            logger.warning("could not enqueue webhook delivery %s; the periodic task will send it", delivery_id, exc_info=True)


def webhook_delivery_attempt(*, delivery_id: str) -> WebhookDelivery | None:
    """One attempt of a due delivery (the task's work). Claimed first with a compare-and-set, so
    that two workers (a retry and the periodic sweep) never send it twice at once. Returns None
    when it was not due (sent already, being sent, or not yet time)."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    if not due.update(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS)):
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="endpoint disabled")
        return delivery
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    result = http_delivery.post(
        endpoint.url,
        secret=endpoint.signing_secret,
        message_id=delivery.pk,
        body=body,
        timeout=settings.FORGET["WEBHOOK_TIMEOUT_SECONDS"],
        allow_private=settings.FORGET["WEBHOOK_ALLOW_PRIVATE_NETWORKS"],
    )
    return _record_attempt(delivery, result)


def _record_attempt(delivery: WebhookDelivery, result: http_delivery.AttemptResult) -> WebhookDelivery:
    now = timezone.now()
    schedule = retry_schedule()
    number = delivery.attempt_count + 1
    target = str(delivery.endpoint_id)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            attempted_at=now,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            replay=delivery.replay_pending,
        )
        fields = dict(attempt_count=number, last_status_code=result.status_code, last_error=result.error, replay_pending=False)
        common = {"event_type": delivery.event_type, "message_id": delivery.pk}
        if result.ok:
            fields.update(status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
            audit_record(
                action="webhook.delivered",
                actor=SYSTEM,
                target_type="webhook_endpoint",
                target_id=target,
                data={**common, "attempt": number, "status_code": result.status_code, "latency_ms": result.latency_ms},
            )
        elif delivery.retries_used < len(schedule):
            wait = schedule[delivery.retries_used]
            fields.update(retries_used=delivery.retries_used + 1, next_attempt_at=now + timedelta(seconds=wait))
        else:
            fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
            audit_record(
                action="webhook.delivery_failed",
                actor=SYSTEM,
                target_type="webhook_endpoint",
                target_id=target,
                data={**common, "attempts": number, "error": result.error[:200]},
            )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
        if fields.get("next_attempt_at") and wait <= settings.FORGET["WEBHOOK_COUNTDOWN_MAX_SECONDS"]:
            # Short waits as a task countdown; longer ones (hours) are left to the periodic sweep
            # (an ETA that long would sit in a worker's memory past the broker's visibility timeout).
            transaction.on_commit(lambda: _enqueue([delivery.pk], countdown=wait), robust=True)
    if not result.ok:
        logger.info("webhook %s to %s: attempt %d failed (%s)", delivery.pk, delivery.endpoint.url, number, result.error)
    delivery.refresh_from_db()
    return delivery


def webhook_delivery_replay(*, actor: Actor, delivery_id: str) -> WebhookDelivery:
    """Sends a delivery again, delivered or failed (the same webhook-id: receivers deduplicate),
    with a fresh retry schedule."""
    query = WebhookDelivery.objects.filter(pk=delivery_id)
    if actor.kind == "api_client":
        query = query.filter(endpoint__api_client_id=_client_actor(actor))
    else:
        actor.require(Capability.ADMINISTER)
    delivery = query.select_related("endpoint").first()
    if delivery is None:
        raise NotFound("No such webhook delivery.")
    if not delivery.endpoint.is_active:
        raise ApplicationError("The endpoint is disabled; register it again to receive events.", code="endpoint_disabled", status=409)
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now(), retries_used=0, replay_pending=True
        )
        audit_record(
            action="webhook.replayed",
            actor=actor,
            target_type="webhook_endpoint",
            target_id=str(delivery.endpoint_id),
            data={"event_type": delivery.event_type, "message_id": delivery.pk},
        )
        transaction.on_commit(lambda: _enqueue([delivery.pk]), robust=True)
    delivery.refresh_from_db()
    return delivery


def webhooks_send_due(*, now=None, limit: int = 500) -> list[str]:
    """The periodic sweep: hands every due delivery to the worker (retries past the countdown
    limit, and deliveries whose first enqueue failed). The attempt itself claims it."""
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    _enqueue(due)
    return due
