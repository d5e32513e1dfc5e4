"""Legal deadlines: GDPR one calendar month (month ends), CCPA 45 days, one extension, days left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from service.common.errors import ApplicationError, Conflict, InvalidTransition
from service.requests.deadlines import days_left, extended_deadline, legal_deadline
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api, request_extend_deadline, request_reject


def at(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "received, due",
    [
        (at(2025, 3, 10), at(2025, 4, 10)),  # the same day of the next month
        (at(2025, 1, 31), at(2025, 2, 28)),  # no 31 February: the month's last day
        (at(2024, 1, 31), at(2024, 2, 29)),  # leap year
        (at(2025, 1, 29), at(2025, 2, 28)),
        (at(2025, 3, 31), at(2025, 4, 30)),
        (at(2025, 8, 31), at(2025, 9, 30)),
        (at(2025, 12, 31), at(2026, 1, 31)),  # across the year end
        (at(2025, 12, 15), at(2026, 1, 15)),
        (at(2025, 2, 28), at(2025, 3, 28)),  # not the end of March: a month from the 28th is the 28th
    ],
)
def test_gdpr_deadline_is_one_calendar_month(received, due):
    assert legal_deadline("gdpr", received) == due


def test_gdpr_deadline_keeps_the_time_of_receipt():
    assert legal_deadline("gdpr", datetime(2025, 1, 31, 23, 59, 59, tzinfo=UTC)) == datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "received, due",
    [
        (at(2025, 1, 1), at(2025, 2, 15)),
        (at(2025, 12, 1), at(2026, 1, 15)),
        (at(2024, 2, 1), at(2024, 3, 17)),  # 29 days in February 2024
    ],
)
def test_ccpa_deadline_is_45_days(received, due):
    assert legal_deadline("ccpa", received) == due
    assert due - received == timedelta(days=45)


def test_other_regimes_get_a_month():
    assert legal_deadline("other", at(2025, 5, 31)) == at(2025, 6, 30)


def test_extension_gdpr_two_months_ccpa_45_days():
    assert extended_deadline("gdpr", at(2025, 4, 10)) == at(2025, 6, 10)
    assert extended_deadline("gdpr", at(2025, 12, 31)) == at(2026, 2, 28)
    assert extended_deadline("ccpa", at(2025, 2, 15)) == at(2025, 4, 1)


@pytest.mark.parametrize(
    "delta, expected",
    [
        (timedelta(days=3), 3),
        (timedelta(days=2, hours=1), 3),  # a part day counts as a day left
        (timedelta(minutes=5), 1),
        (timedelta(0), 0),
        (-timedelta(minutes=5), -1),  # overdue as soon as the deadline passes
        (-timedelta(days=2), -2),
        (-timedelta(days=2, hours=1), -3),
    ],
)
def test_days_left(delta, expected):
    now = at(2025, 6, 1)
    assert days_left(now + delta, now) == expected


# --- on the request ------------------------------------------------------------------------------


@pytest.fixture
def trusted(api_client_key, actor_of):
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    return actor_of(client)


def _verified(trusted, regulation: str, key: str) -> ErasureRequest:
    request, _ = request_create_api(
        actor=trusted, idempotency_key=key, name="Bo", email="bo@example.com", regulation=regulation, facts=["Bo is 51"], evidence_prompts=[]
    )
    return request


@pytest.mark.django_db
@pytest.mark.parametrize("regulation, window", [("gdpr", None), ("ccpa", timedelta(days=45))])
def test_a_new_request_gets_its_regulations_deadline(trusted, regulation, window):
    request = _verified(trusted, regulation, "a")
    assert request.deadline_at == legal_deadline(regulation, request.received_at)
    if window:
        assert request.deadline_at - request.received_at == window
    assert request.days_left() in (30, 31, 28, 29, 45)
    assert not request.is_overdue


@pytest.mark.django_db
def test_overdue_request_and_closed_request_have_no_days_left(trusted, staff, actor_of):
    request = _verified(trusted, "gdpr", "a")
    ErasureRequest.objects.filter(pk=request.pk).update(deadline_at=timezone.now() - timedelta(hours=1))
    request.refresh_from_db()
    assert request.days_left() == -1 and request.is_overdue
    request_reject(actor=actor_of(staff("reviewer")), request_id=request.pk, reason="Not personal data")
    request.refresh_from_db()
    assert request.days_left() is None and not request.is_overdue  # a decided request no longer runs late


@pytest.mark.django_db
@pytest.mark.parametrize("regulation", ["gdpr", "ccpa"])
def test_extend_once_with_a_reason(trusted, staff, actor_of, regulation):
    reviewer = actor_of(staff("reviewer"))
    request = _verified(trusted, regulation, "a")
    original = request.deadline_at

    with pytest.raises(ApplicationError, match="A reason is required to extend a deadline"):
        request_extend_deadline(actor=reviewer, request_id=request.pk, reason="   ")

    extended = request_extend_deadline(actor=reviewer, request_id=request.pk, reason="Many sources to check")
    assert extended.deadline_extended and extended.extension_reason == "Many sources to check"
    assert extended.deadline_at == extended_deadline(regulation, original)
    if regulation == "ccpa":
        assert extended.deadline_at - original == timedelta(days=45)
    else:
        assert (extended.deadline_at.month - original.month) % 12 == 2

    with pytest.raises(Conflict, match="already extended once"):
        request_extend_deadline(actor=reviewer, request_id=request.pk, reason="Still busy")
    assert ErasureRequest.objects.get(pk=request.pk).deadline_at == extended.deadline_at


@pytest.mark.django_db
def test_a_closed_request_cannot_be_extended(trusted, staff, actor_of):
    reviewer = actor_of(staff("reviewer"))
    request = _verified(trusted, "gdpr", "a")
    request_reject(actor=reviewer, request_id=request.pk, reason="Duplicate")
    with pytest.raises(InvalidTransition, match="its deadline no longer runs"):
        request_extend_deadline(actor=reviewer, request_id=request.pk, reason="Why not")
