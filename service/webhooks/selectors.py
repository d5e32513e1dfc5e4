"""Reads of the status webhooks: an API client sees its own endpoints and deliveries only."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from service.accounts.roles import Actor, Scope
from service.common.errors import NotFound

from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def _client_pk(actor: Actor) -> int:
    actor.require_scope(Scope.READ)
    return actor.client_pk


def webhook_endpoint_list(*, actor: Actor) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(api_client_id=_client_pk(actor)).order_by("-created_at")


def webhook_endpoint_get(*, actor: Actor, endpoint_id) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, api_client_id=_client_pk(actor)).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def webhook_delivery_list(*, actor: Actor, endpoint_id) -> QuerySet[WebhookDelivery]:
    endpoint = webhook_endpoint_get(actor=actor, endpoint_id=endpoint_id)
    return endpoint.deliveries.order_by("-created_at").prefetch_related(Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("number")))


def webhook_delivery_get(*, actor: Actor, delivery_id: str) -> WebhookDelivery:
    delivery = (
        WebhookDelivery.objects.filter(pk=delivery_id, endpoint__api_client_id=_client_pk(actor))
        .prefetch_related(Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("number")))
        .first()
    )
    if delivery is None:
        raise NotFound("No such webhook delivery.")
    return delivery
