"""The status events an API client can subscribe to, and what their payload holds.

Payloads follow the Standard Webhooks shape ({"type", "timestamp", "data"}) and carry no personal
data: the request's id and reference, its status (and the one before), its regulation and times,
and links to the API. The client reads anything else through the API with its key.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from service.requests.states import Status

# event type -> the request status that raises it
EVENT_STATUSES: dict[str, Status] = {
    "request.verified": Status.VERIFIED,
    "request.approved": Status.APPROVED,
    "request.rejected": Status.REJECTED,
    "request.failed": Status.FAILED,
    "request.active": Status.ACTIVE,
    "request.rolled_back": Status.ROLLED_BACK,
    "request.cancelled": Status.CANCELLED,
    "request.expired": Status.EXPIRED,
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_STATUSES)
STATUS_EVENTS: dict[str, str] = {status.value: event for event, status in EVENT_STATUSES.items()}

AUDIT_EVENTS: dict[str, str] = {
    "webhook.endpoint_created": "Webhook endpoint {target} created for {events}",
    "webhook.endpoint_disabled": "Webhook endpoint {target} disabled",
    "webhook.delivered": "Webhook {event_type} {message_id} delivered to {target} (attempt {attempt}, HTTP {status_code})",
    "webhook.delivery_failed": "Webhook {event_type} {message_id} to {target} failed after {attempts} attempts: {error}",
    "webhook.replayed": "Webhook {event_type} {message_id} to {target} replayed",
}


def _time(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def request_links(request_id) -> dict[str, str]:
    base = settings.FORGET_PUBLIC_URL.rstrip("/") + f"/api/v1/requests/{request_id}"
    return {"self": base, "certificate": f"{base}/certificate/signed"}


def request_event_payload(event_type: str, request, *, previous: str, at) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(request.pk),
        "reference": request.reference,
        "status": request.status,
        "previous_status": previous,
        "regulation": request.regulation,
        "received_at": _time(request.received_at),
        "deadline_at": _time(request.deadline_at),
        "changed_at": _time(at),
        "links": request_links(request.pk),
    }
    if event_type == "request.active":
        data["effective_at"] = _time(request.effective_at)  # when the model stopped serving the data
    if event_type != "request.active":
        data["links"].pop("certificate")
    return {"type": event_type, "timestamp": _time(at), "data": data}
