"""The webhook API and admin: register (secret shown once), list, read deliveries with attempts,
replay, disable; only http(s); a client sees its own endpoints only."""

from __future__ import annotations

import json

import pytest

from service.audit.models import AuditEvent
from service.webhooks.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.services import webhook_delivery_attempt

pytestmark = pytest.mark.django_db


def call(client, method, path, key, body=None):
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return getattr(client, method)(path, **kwargs)


def test_register_an_endpoint_the_secret_is_shown_once(client, api_client_key):
    api, key = api_client_key(("read",))
    response = call(client, "post", "/api/v1/webhooks/endpoints", key, {"url": "https://product.example/hooks", "events": ["request.active", "request.failed"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["request.failed", "request.active"] and body["is_active"]
    assert response["Location"].endswith(f"/api/v1/webhooks/endpoints/{body['id']}")
    again = call(client, "get", f"/api/v1/webhooks/endpoints/{body['id']}", key).json()
    assert "secret" not in again and again["url"] == "https://product.example/hooks"
    assert [e["id"] for e in call(client, "get", "/api/v1/webhooks/endpoints", key).json()["results"]] == [body["id"]]
    stored = WebhookEndpoint.objects.get()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM webhooks_webhookendpoint")
        [(raw,)] = cursor.fetchall()
    assert body["secret"] not in raw and "whsec_" not in raw  # encrypted at rest
    assert stored.signing_secret == body["secret"]
    event = AuditEvent.objects.get(action="webhook.endpoint_created")
    assert event.target_id == body["id"] and body["secret"] not in json.dumps(event.data)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://product.example/hooks", "events": ["request.active"]}, "url"),
        ({"url": "file:///etc/passwd", "events": ["request.active"]}, "url"),
        ({"url": "https://user:pw@product.example/hooks", "events": ["request.active"]}, "url"),
        ({"url": "https://product.example/hooks", "events": ["request.eaten"]}, "events.0"),
        ({"url": "https://product.example/hooks", "events": []}, "events"),
        ({"url": "https://product.example/hooks", "events": ["request.active"], "secret": "mine"}, "secret"),
    ],
)
def test_only_http_endpoints_and_known_events(client, api_client_key, body, field):
    _, key = api_client_key(("read",))
    response = call(client, "post", "/api/v1/webhooks/endpoints", key, body)
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert not WebhookEndpoint.objects.exists()


def test_deliveries_with_their_attempts_replay_and_disable(client, api_client_key, actor_of, receiver, settings):
    from service.requests.services import request_create_api

    settings.FORGET = {**settings.FORGET, "WEBHOOK_TIMEOUT_SECONDS": 0.5}
    api, key = api_client_key(("create", "read", "trusted_identity"))
    endpoint = call(client, "post", "/api/v1/webhooks/endpoints", key, {"url": receiver.url, "events": ["request.verified"]}).json()
    request, _ = request_create_api(
        actor=actor_of(api), idempotency_key="api-1", name="Bo", email="bo@example.org", regulation="ccpa", facts=["Bo is 51"], evidence_prompts=[]
    )
    [delivery] = WebhookDelivery.objects.all()
    receiver.status = 500
    webhook_delivery_attempt(delivery_id=delivery.id)
    listed = call(client, "get", f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries", key).json()["results"]
    [one] = listed
    assert one["id"] == delivery.id and one["status"] == "pending" and one["last_status_code"] == 500
    assert one["attempts"][0]["status_code"] == 500 and one["attempts"][0]["latency_ms"] >= 0 and one["attempts"][0]["error"] == "HTTP 500"
    assert one["payload"]["data"]["reference"] == request.reference
    receiver.status = 204
    replay = call(client, "post", one["links"]["replay"].removeprefix("http://testserver"), key, {})
    assert replay.status_code == 202 and replay["Location"].endswith(f"/api/v1/webhooks/deliveries/{delivery.id}")
    webhook_delivery_attempt(delivery_id=delivery.id)
    detail = call(client, "get", f"/api/v1/webhooks/deliveries/{delivery.id}", key).json()
    assert detail["status"] == "delivered" and [a["status_code"] for a in detail["attempts"]] == [500, 204] and detail["attempts"][1]["replay"]
    disabled = call(client, "delete", f"/api/v1/webhooks/endpoints/{endpoint['id']}", key).json()
    assert not disabled["is_active"] and disabled["disabled_at"]
    assert call(client, "post", f"/api/v1/webhooks/deliveries/{delivery.id}/replay", key, {}).json()["code"] == "endpoint_disabled"


def test_a_client_sees_only_its_own_endpoints_and_deliveries(client, api_client_key, actor_of):
    from service.webhooks.services import webhook_endpoint_create

    owner, _ = api_client_key(("read",))
    endpoint, _ = webhook_endpoint_create(actor=actor_of(owner), url="https://a.example/h", events=["request.active"])
    _, other_key = api_client_key(("read",))
    assert call(client, "get", f"/api/v1/webhooks/endpoints/{endpoint.pk}", other_key).status_code == 404
    assert call(client, "delete", f"/api/v1/webhooks/endpoints/{endpoint.pk}", other_key).status_code == 404
    assert call(client, "get", "/api/v1/webhooks/endpoints", other_key).json()["results"] == []
    assert call(client, "get", "/api/v1/webhooks/deliveries/msg_nope", other_key).status_code == 404


def test_an_admin_registers_an_endpoint_in_the_django_admin_and_sees_the_secret_once(client, staff, api_client_key):
    api, _ = api_client_key(("read",))
    client.force_login(staff("admin"))
    response = client.post(
        "/admin/webhooks/webhookendpoint/add/",
        {"api_client": api.pk, "url": "https://product.example/h", "description": "", "events": ["request.active"]},
        follow=True,
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.api_client == api and endpoint.events == ["request.active"]
    assert endpoint.signing_secret in response.content.decode()
    assert endpoint.signing_secret not in client.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert AuditEvent.objects.filter(action="webhook.endpoint_created", actor_kind="user").exists()
