"""Status webhooks: deliveries written with the status change, signed per Standard Webhooks,
retried on failure without ever holding up the change, recorded per attempt, replayed, audited."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from service.accounts.roles import SYSTEM
from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api, request_mark_active, request_reject
from service.webhooks.models import DeliveryStatus, WebhookDelivery
from service.webhooks.services import retry_schedule, webhook_delivery_attempt, webhook_delivery_replay, webhooks_send_due
from tests.integration.processes import free_port

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"
pytestmark = pytest.mark.django_db


def file_request(client, actor_of, key_suffix="1", **extra):
    request, _ = request_create_api(
        actor=actor_of(client),
        idempotency_key=f"wh-{key_suffix}",
        name="Ada Lovelace",
        email="ada@example.org",
        regulation="gdpr",
        facts=["Ada Lovelace lives in Marylebone"],
        evidence_prompts=[],
    )
    return request


def test_a_status_change_writes_its_delivery_in_the_same_transaction_and_it_is_sent_signed(subscribed, receiver, actor_of):
    client, _, endpoint, secret = subscribed(receiver.url)
    request = file_request(client, actor_of)  # trusted identity: verified at once
    [delivery] = WebhookDelivery.objects.filter(request_id=request.pk)
    assert delivery.event_type == "request.verified" and delivery.status == DeliveryStatus.PENDING and delivery.id.startswith("msg_")
    sent = webhook_delivery_attempt(delivery_id=delivery.id)
    assert sent.status == DeliveryStatus.DELIVERED and sent.attempt_count == 1 and sent.last_status_code == 204
    [received] = receiver.received
    headers = {k.lower(): v for k, v in received["headers"].items()}
    assert headers["webhook-id"] == delivery.id and received["path"] == "/hooks/forget"
    event = Webhook(secret).verify(received["body"], received["headers"])  # the reference library accepts it
    assert event["type"] == "request.verified" and event["data"]["reference"] == request.reference and event["data"]["previous_status"] == "submitted"
    [attempt] = sent.attempts.all()
    assert attempt.status_code == 204 and attempt.latency_ms >= 0 and not attempt.error
    assert AuditEvent.objects.filter(action="webhook.delivered", target_id=str(endpoint.pk)).exists()


def test_the_active_event_carries_the_effective_erasure_time_and_no_personal_data(subscribed, receiver, actor_of):
    client, _, _, secret = subscribed(receiver.url, events=["request.active"])
    request = file_request(client, actor_of)
    assert not WebhookDelivery.objects.exists()  # not subscribed to request.verified
    ErasureRequest.objects.filter(pk=request.pk).update(status="staged")
    effective = timezone.now().replace(microsecond=0)
    request_mark_active(request_id=request.pk, effective_at=effective, actor=SYSTEM)
    [delivery] = WebhookDelivery.objects.all()
    webhook_delivery_attempt(delivery_id=delivery.id)
    body = receiver.received[0]["body"].decode()
    event = json.loads(body)
    assert event["type"] == "request.active" and event["data"]["status"] == "active"
    assert event["data"]["effective_at"] == effective.isoformat().replace("+00:00", "Z")
    assert event["data"]["links"]["self"].endswith(f"/api/v1/requests/{request.pk}") and "certificate" in event["data"]["links"]
    for personal in ("Ada", "Lovelace", "ada@example.org", "Marylebone", request.subject_email_hash):
        assert personal not in body


@pytest.mark.parametrize("failure", ["closed port", "slow server", "500"])
def test_closed_port_slow_server_and_500_are_retried_and_recorded(failure, subscribed, receiver, actor_of):
    url = {"closed port": f"http://127.0.0.1:{free_port()}/hook", "slow server": receiver.url, "500": receiver.url}[failure]
    receiver.delay = 2.0 if failure == "slow server" else 0.0  # the timeout is 0.5 s here
    receiver.status = 500 if failure == "500" else 204
    client, _, _, _ = subscribed(url)
    request = file_request(client, actor_of)
    [delivery] = WebhookDelivery.objects.all()
    started = time.monotonic()
    after = webhook_delivery_attempt(delivery_id=delivery.id)
    assert time.monotonic() - started < 1.5  # a slow server is cut at the timeout
    assert after.status == DeliveryStatus.PENDING and after.retries_used == 1 and after.attempt_count == 1
    assert after.next_attempt_at - timezone.now() > timedelta(seconds=retry_schedule()[0] - 2)
    [attempt] = after.attempts.all()
    expected = {"closed port": (None, "ConnectionRefusedError"), "slow server": (None, "timed out"), "500": (500, "HTTP 500")}[failure]
    assert attempt.status_code == expected[0] and expected[1] in attempt.error
    request.refresh_from_db()
    assert request.status == "verified"  # the change stands, whatever the endpoint does
    # Due again: the next attempt is made (and succeeds once the endpoint is fixed).
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    if failure == "closed port":
        WebhookDelivery.objects.filter(pk=delivery.pk).update(endpoint=subscribed(receiver.url)[2])
    receiver.delay, receiver.status = 0.0, 204
    done = webhook_delivery_attempt(delivery_id=delivery.id)
    assert done.status == DeliveryStatus.DELIVERED and [a.number for a in done.attempts.all()] == [1, 2]


def test_retries_back_off_over_more_than_a_day_then_the_delivery_fails_audited(subscribed, actor_of, settings):
    schedule = retry_schedule()
    assert sum(schedule) >= 24 * 3600 and schedule == sorted(schedule)
    client, _, endpoint, _ = subscribed(f"http://127.0.0.1:{free_port()}/hook")
    file_request(client, actor_of)
    [delivery] = WebhookDelivery.objects.all()
    for _ in range(len(schedule) + 1):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        delivery = webhook_delivery_attempt(delivery_id=delivery.id)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempt_count == len(schedule) + 1 and delivery.next_attempt_at is None
    assert AuditEvent.objects.filter(action="webhook.delivery_failed", target_id=str(endpoint.pk)).count() == 1
    assert webhook_delivery_attempt(delivery_id=delivery.id) is None  # nothing more is sent


def test_an_attempt_is_claimed_once_and_not_before_it_is_due(subscribed, receiver, actor_of):
    client, _, _, _ = subscribed(receiver.url)
    file_request(client, actor_of)
    [delivery] = WebhookDelivery.objects.all()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert webhook_delivery_attempt(delivery_id=delivery.id) is None and not receiver.received


def test_the_periodic_sweep_hands_over_due_deliveries_only(subscribed, receiver, actor_of, monkeypatch):
    from service.webhooks import services

    sent = []
    monkeypatch.setattr(services, "_enqueue", lambda ids, countdown=None: sent.extend(ids))
    client, _, _, _ = subscribed(receiver.url)
    file_request(client, actor_of, "a")
    file_request(client, actor_of, "b")
    first, second = WebhookDelivery.objects.order_by("created_at")
    WebhookDelivery.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now() + timedelta(hours=2))
    assert webhooks_send_due() == [first.pk] and sent == [first.pk]


def test_replay_sends_the_same_message_again_with_a_fresh_schedule(subscribed, receiver, actor_of):
    client, _, endpoint, secret = subscribed(receiver.url)
    file_request(client, actor_of)
    [delivery] = WebhookDelivery.objects.all()
    webhook_delivery_attempt(delivery_id=delivery.id)
    replayed = webhook_delivery_replay(actor=actor_of(client), delivery_id=delivery.id)
    assert replayed.status == DeliveryStatus.PENDING and replayed.replay_pending
    again = webhook_delivery_attempt(delivery_id=delivery.id)
    assert again.status == DeliveryStatus.DELIVERED and [a.replay for a in again.attempts.all()] == [False, True]
    ids = [{k.lower(): v for k, v in r["headers"].items()}["webhook-id"] for r in receiver.received]
    assert ids == [delivery.id, delivery.id]
    assert AuditEvent.objects.filter(action="webhook.replayed", target_id=str(endpoint.pk)).exists()


def test_a_request_of_another_client_or_the_web_form_sends_nothing(subscribed, receiver, actor_of, api_client_key):
    subscribed(receiver.url)
    other, _ = api_client_key(("create", "read", "trusted_identity"))
    file_request(other, actor_of, "other")
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_state_change_commits_at_once_while_the_endpoint_is_slow(subscribed, receiver, actor_of, staff):
    """A real commit: the delivery is enqueued after it (to the test broker), and the reviewer's
    rejection returns without waiting for the endpoint, which takes 3 s to answer."""
    receiver.delay = 3.0
    client, _, _, _ = subscribed(receiver.url)
    request = file_request(client, actor_of)
    started = time.monotonic()
    request_reject(actor=actor_of(staff("reviewer")), request_id=request.pk, reason="Not about the requester.")
    assert time.monotonic() - started < 1.0
    assert ErasureRequest.objects.get(pk=request.pk).status == "rejected"
    assert set(WebhookDelivery.objects.values_list("event_type", flat=True)) == {"request.verified", "request.rejected"}


def _documented_receiver() -> str:
    doc = DOCS.read_text()
    block = re.search(r"<!-- webhook-receiver:start -->\n```python\n(.*?)```\n<!-- webhook-receiver:end -->", doc, re.S)
    assert block, "docs/api.md lost its receiver snippet"
    return block.group(1)


def test_the_receiver_in_the_docs_verifies_a_real_delivery_and_refuses_a_forged_one(subscribed, actor_of, monkeypatch, capsys):
    """The copy-paste receiver of docs/api.md, run as it is, receives a signed request.active."""
    client, _, _, secret = subscribed("http://placeholder.invalid/", events=["request.active"])
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    namespace: dict = {"__name__": "documented_receiver"}
    exec(compile(_documented_receiver(), "docs/api.md receiver", "exec"), namespace)  # noqa: S102 - our own docs
    server = ThreadingHTTPServer(("127.0.0.1", 0), namespace["Receiver"])
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        from service.webhooks.models import WebhookEndpoint

        WebhookEndpoint.objects.update(url=url)
        request = file_request(client, actor_of)
        ErasureRequest.objects.filter(pk=request.pk).update(status="staged")
        request_mark_active(request_id=request.pk, effective_at=timezone.now(), actor=SYSTEM)
        [delivery] = WebhookDelivery.objects.all()
        done = webhook_delivery_attempt(delivery_id=delivery.id)
        assert done.status == DeliveryStatus.DELIVERED and done.last_status_code == 204
        assert f"request.active {request.reference} active" in capsys.readouterr().out
        # A forged message (wrong secret) is refused with 401, and retried like any failure.
        from service.webhooks import delivery as http_delivery

        forged = http_delivery.post(url, secret="whsec_" + "A" * 32, message_id="msg_forged", body='{"type": "request.active"}', timeout=2, allow_private=True)
        assert forged.status_code == 401 and not forged.ok
    finally:
        server.shutdown()
        server.server_close()
