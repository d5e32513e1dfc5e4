"""The API intake's fast path (request_create_api, docs/bench-intake.md): one transaction without
savepoints, the trusted-identity request inserted `verified` at once. What a product, a subject or
an auditor can observe must be exactly what the INSERT + compare-and-set UPDATE wrote before."""

from __future__ import annotations

import json

import pytest
from django.test import Client as DjangoClient
from django.test import TestCase

from service.audit.models import AuditEvent
from service.audit.selectors import audit_chain_verify
from service.requests import services
from service.requests.models import ErasureRequest

pytestmark = pytest.mark.django_db

BODY = {"subject_name": "Dana Example", "subject_email": "dana@example.org", "regulation": "gdpr", "facts": ["Dana Example lives in Leiden"]}


class Client(DjangoClient):
    def request(self, **request):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(**request)


def create(key: str, **headers):
    return Client(headers={"Authorization": f"Bearer {key}"}).post("/api/v1/requests", json.dumps(BODY), content_type="application/json", headers=headers)


def test_trusted_request_is_stored_verified_with_both_events_in_order(api_client_key, mailoutbox):
    _, key = api_client_key(("create", "read", "trusted_identity"))
    response = create(key, **{"Idempotency-Key": "t-1"})
    assert response.status_code == 202
    body = response.json()

    stored = ErasureRequest.objects.get(pk=body["id"])
    assert stored.status == "verified" and body["status"] == "verified"
    assert stored.verified_at is not None and body["verified_at"] is not None
    assert stored.subject == {"name": "Dana Example", "email": "dana@example.org"}  # encrypted at rest, readable back
    events = list(AuditEvent.objects.filter(target_id=stored.reference).order_by("seq"))
    assert [event.action for event in events] == ["request.submitted", "request.verified"]
    assert events[1].seq == events[0].seq + 1
    assert events[1].data == {"from": "submitted", "method": "trusted_identity"}
    assert audit_chain_verify().ok
    assert mailoutbox == []


def test_a_taken_reference_is_retried_without_leaving_a_trace(api_client_key, monkeypatch):
    _, key = api_client_key(("create", "read", "trusted_identity"))
    first = create(key).json()
    # The next request draws the first one's reference once, then a fresh one: the INSERT fails on
    # the unique reference, the whole attempt rolls back and a second attempt succeeds.
    real = services._new_reference
    draws = iter([first["reference"]])
    monkeypatch.setattr(services, "_new_reference", lambda: next(draws, None) or real())

    second = create(key, **{"Idempotency-Key": "t-2"})

    assert second.status_code == 202
    assert second.json()["reference"] != first["reference"]
    assert ErasureRequest.objects.count() == 2
    # No event from the rolled-back attempt; the chain has no gap and verifies.
    assert AuditEvent.objects.filter(action="request.submitted").count() == 2
    assert audit_chain_verify().ok


def test_replay_after_the_fast_path_answers_the_stored_request(api_client_key):
    _, key = api_client_key(("create", "read", "trusted_identity"))
    first = create(key, **{"Idempotency-Key": "t-3"})
    again = create(key, **{"Idempotency-Key": "t-3"})
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert ErasureRequest.objects.count() == 1
    assert AuditEvent.objects.filter(action="request.submitted").count() == 1
