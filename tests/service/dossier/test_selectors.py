"""Deadline compliance as the dossier reports it: when the request was answered, against the
deadline in force, for each way a request can end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from service.dossier.selectors import deadline_compliance, in_set_order
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_received(owner, actor_of):
    """request_received(days_ago, regulation, **fields) -> a request received that long ago, with fields set."""
    counter = iter(range(1000))

    def make(days_ago: float, regulation: str = "gdpr", **fields) -> ErasureRequest:
        request, _ = request_create_api(
            actor=actor_of(owner[0]),
            idempotency_key=f"c{next(counter)}",
            name="Ada",
            email="ada@example.org",
            regulation=regulation,
            facts=["Ada is 40"],
            evidence_prompts=[],
        )
        received = timezone.now() - timedelta(days=days_ago)
        limit = timedelta(days=45) if regulation == "ccpa" else timedelta(days=30)
        values = {"received_at": received, "deadline_at": received + limit}
        values.update({key: (received + value if isinstance(value, timedelta) else value) for key, value in fields.items()})
        ErasureRequest.objects.filter(pk=request.pk).update(**values)
        return ErasureRequest.objects.get(pk=request.pk)

    return make


def test_an_erasure_after_the_deadline_is_late_and_says_by_how_much(request_received):
    late = deadline_compliance(request_received(60, status="active", effective_at=timedelta(days=33, hours=12)))
    assert late.verdict == "late" and late.outcome == "erased" and late.days_used == 33.5 and late.limit_days == 30.0
    on_time = deadline_compliance(request_received(60, status="active", effective_at=timedelta(days=29)))
    assert on_time.verdict == "on time" and on_time.share_used == pytest.approx(29 / 30)


def test_an_extension_moves_the_limit_and_a_rollback_keeps_the_erasure_time(request_received):
    extended = request_received(
        80, status="rolled_back", deadline_extended=True, extension_reason="complex", deadline_at=timedelta(days=90), effective_at=timedelta(days=50)
    )
    compliance = deadline_compliance(extended)
    assert compliance.verdict == "on time" and compliance.limit_days == 90.0 and compliance.outcome == "erased, then rolled back"
    assert compliance.legal_deadline_at < compliance.deadline_at  # the regulation's own month is still shown


def test_refusals_count_their_decision_open_requests_run_and_expired_ones_do_not_apply(request_received):
    rejected = deadline_compliance(request_received(20, status="rejected", decided_at=timedelta(days=5)))
    assert rejected.verdict == "on time" and rejected.outcome == "rejected" and rejected.days_used == 5.0
    running = deadline_compliance(request_received(10, "ccpa", status="training"))
    assert running.verdict == "in progress" and running.completed_at is None and running.limit_days == 45.0
    overdue = deadline_compliance(request_received(40, status="failed"))
    assert overdue.verdict == "overdue" and overdue.days_used == 40.0
    expired = deadline_compliance(request_received(40, status="expired"))
    assert expired.verdict == "not applicable"


def test_probe_sets_come_in_their_own_order_whatever_the_database_did():
    assert list(in_set_order({"W": 1, "F<t": 2, "D": 3, "F": 4, "R": 5, "P": 6, "N": 7})) == ["F", "P", "D", "F<t", "R", "N", "W"]
