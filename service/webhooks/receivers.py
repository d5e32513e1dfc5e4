"""Turns request status changes into webhook deliveries (service.requests.signals)."""

from __future__ import annotations

from . import services
from .events import STATUS_EVENTS


def on_request_status_changed(sender, *, request, previous: str, **kwargs) -> None:
    event_type = STATUS_EVENTS.get(request.status)
    if event_type is None or not request.api_client_id:
        return  # not an event clients subscribe to, or a request no API client filed
    services.deliveries_create_for_event(event_type=event_type, request=request, previous=previous)
