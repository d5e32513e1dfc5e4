"""request_mark_active (service/requests/services.py), which the gateway calls when it confirms a
request's unit: staged -> active at the confirmation time, audited, and the subject emailed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from service.accounts.roles import SYSTEM
from service.audit.models import AuditEvent
from service.common.errors import InvalidTransition, PermissionDenied
from service.requests.services import request_mark_active

pytestmark = pytest.mark.django_db


def test_staged_becomes_active_at_the_confirmation_time_and_the_subject_is_told(erasure_request, mailoutbox, django_capture_on_commit_callbacks):
    erasure = erasure_request("staged", email="elowen@example.org")
    confirmed = timezone.now() - timedelta(seconds=3)
    with django_capture_on_commit_callbacks(execute=True):
        request_mark_active(request_id=erasure.pk, effective_at=confirmed, actor=SYSTEM, gateway_id="gw-1")
    erasure.refresh_from_db()
    assert erasure.status == "active" and erasure.effective_at == confirmed
    event = AuditEvent.objects.get(action="request.active", target_id=erasure.reference)
    assert event.data == {"from": "staged", "effective_at": confirmed.isoformat(), "gateway_id": "gw-1"}
    [mail] = mailoutbox
    assert mail.to == ["elowen@example.org"] and erasure.reference in mail.subject
    assert f"Since {confirmed:%Y-%m-%d %H:%M} UTC the model no longer reveals" in mail.body


@pytest.mark.parametrize("status", ["approved", "training", "evaluating", "active", "cancelled"])
def test_only_a_staged_request_can_become_active(erasure_request, mailoutbox, django_capture_on_commit_callbacks, status):
    erasure = erasure_request(status)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidTransition):
        request_mark_active(request_id=erasure.pk, effective_at=timezone.now(), actor=SYSTEM)
    erasure.refresh_from_db()
    assert erasure.status == status and not mailoutbox and not AuditEvent.objects.filter(action="request.active").exists()


def test_people_other_than_admins_cannot_confirm_an_erasure(erasure_request, staff, actor_of):
    erasure = erasure_request("staged")
    for role in ("reviewer", "auditor"):
        with pytest.raises(PermissionDenied):
            request_mark_active(request_id=erasure.pk, effective_at=timezone.now(), actor=actor_of(staff(role)))
    request_mark_active(request_id=erasure.pk, effective_at=timezone.now(), actor=actor_of(staff("admin")))
    erasure.refresh_from_db()
    assert erasure.status == "active"
