"""RequestRepresentationSerializer writes its fields out by hand (the intake's CPU, docs/bench-intake.md):
it must answer exactly what DRF's generic walk over the declared fields answers, in every status, for
every kind of caller, with and without an unlearning job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework import serializers

from service.accounts.roles import actor_for_client, actor_for_user
from service.requests import services
from service.requests.api import RequestRepresentationSerializer
from service.requests.models import ErasureRequest
from service.requests.states import Status
from service.unlearning.models import JobStatus, UnlearningJob

pytestmark = pytest.mark.django_db


def generic(erasure: ErasureRequest, context: dict) -> dict:
    """DRF's own to_representation over the declared fields (what the hand-written one replaces)."""
    return serializers.Serializer.to_representation(RequestRepresentationSerializer(erasure, context=context), erasure)


@pytest.mark.parametrize("status", [status.value for status in Status])
def test_hand_written_representation_equals_the_generic_walk(status, api_client_key, staff):
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    erasure, _ = services.request_create_api(
        actor=actor_for_client(client),
        idempotency_key="",
        name="Dana Example",
        email="dana@example.org",
        regulation="ccpa",
        facts=["Dana Example lives in Leiden", "Dana Example was born in 1980"],
        evidence_prompts=["Where does Dana Example live?"],
    )
    now = timezone.now()
    # Every column the representation reads, set as the status would have it (None where the
    # request never got there), so that each branch of the hand-written copy is taken somewhere.
    ErasureRequest.objects.filter(pk=erasure.pk).update(
        status=status,
        decided_at=now if status not in ("submitted", "verified") else None,
        decision_reason="Not about the subject." if status in ("rejected", "cancelled") else "",
        effective_at=now - timedelta(microseconds=1) if status == "active" else None,
        deadline_extended=status == "approved",
    )
    erasure.refresh_from_db()
    http = RequestFactory().get("/api/v1/requests")
    callers = [actor_for_client(client), actor_for_user(staff("reviewer")), actor_for_user(staff("auditor"))]
    for job in (None, "passed", "failed"):
        if job is not None:
            UnlearningJob.objects.create(
                request=erasure,
                attempt=UnlearningJob.objects.filter(request=erasure).count() + 1,
                status=JobStatus.SUCCEEDED,
                certificate_passed=job == "passed",
            )
        for actor in callers:
            fast = RequestRepresentationSerializer(erasure, context={"request": http, "actor": actor}).data
            assert dict(fast) == generic(erasure, {"request": http, "actor": actor})
            assert list(fast) == list(RequestRepresentationSerializer().fields)  # same keys, same order
