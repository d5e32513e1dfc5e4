"""ApiClient.webhook_events: the event types a client's active endpoints take, kept with every
endpoint change, so that the API intake (whose client authentication has just loaded) writes no
endpoints query for a client without webhooks, and still writes the delivery for one with them."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from service.accounts.models import ApiClient
from service.webhooks.models import WebhookDelivery
from service.webhooks.services import webhook_endpoint_create, webhook_endpoint_disable

pytestmark = pytest.mark.django_db

BODY = {"subject_name": "Ada Lovelace", "subject_email": "ada@example.org", "regulation": "gdpr", "facts": ["Ada Lovelace lives in Marylebone"]}


def file_over_http(client, key: str) -> tuple[dict, list[str]]:
    """POST /api/v1/requests as the product does; returns the 202 body and the SQL it ran."""
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/requests", json.dumps(BODY), content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 202, response.content
    return response.json(), [query["sql"] for query in queries.captured_queries]


def endpoint_queries(sql: list[str]) -> list[str]:
    return [statement for statement in sql if "webhooks_webhookendpoint" in statement]


def test_the_intake_of_a_client_without_endpoints_reads_no_endpoints(client, api_client_key):
    _, key = api_client_key(("create", "read", "trusted_identity"))
    _, sql = file_over_http(client, key)
    assert not endpoint_queries(sql)
    assert not WebhookDelivery.objects.exists()


def test_endpoint_changes_keep_the_clients_event_types_and_the_intake_delivers(client, receiver, api_client_key, actor_of, settings):
    settings.FORGET = {**settings.FORGET, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": True}
    api_client, key = api_client_key(("create", "read", "trusted_identity"))
    actor = actor_of(api_client)
    first, _ = webhook_endpoint_create(actor=actor, url=receiver.url, events=["request.active", "request.verified"])
    second, _ = webhook_endpoint_create(actor=actor, url=receiver.url, events=["request.rejected", "request.verified"])
    assert ApiClient.objects.get(pk=api_client.pk).webhook_events == ["request.verified", "request.rejected", "request.active"]  # EVENT_TYPES order

    body, sql = file_over_http(client, key)  # trusted identity: verified at once, both endpoints take it
    assert endpoint_queries(sql)
    assert sorted(d.endpoint_id for d in WebhookDelivery.objects.filter(request_id=body["id"])) == sorted([first.pk, second.pk])

    webhook_endpoint_disable(actor=actor, endpoint_id=second.pk)
    assert ApiClient.objects.get(pk=api_client.pk).webhook_events == ["request.verified", "request.active"]
    body, _ = file_over_http(client, key)
    assert [d.endpoint_id for d in WebhookDelivery.objects.filter(request_id=body["id"])] == [first.pk]

    webhook_endpoint_disable(actor=actor, endpoint_id=first.pk)
    assert ApiClient.objects.get(pk=api_client.pk).webhook_events == []
    body, sql = file_over_http(client, key)
    assert not endpoint_queries(sql)
    assert not WebhookDelivery.objects.filter(request_id=body["id"]).exists()


def test_an_event_no_endpoint_takes_is_decided_without_the_endpoints(client, receiver, api_client_key, actor_of, settings):
    settings.FORGET = {**settings.FORGET, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": True}
    api_client, key = api_client_key(("create", "read", "trusted_identity"))
    webhook_endpoint_create(actor=actor_of(api_client), url=receiver.url, events=["request.active"])
    body, sql = file_over_http(client, key)  # request.verified: not taken
    assert not endpoint_queries(sql)
    assert not WebhookDelivery.objects.filter(request_id=body["id"]).exists()
