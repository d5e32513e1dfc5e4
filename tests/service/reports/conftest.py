"""A known set of requests for the report tests, walked through the request services (approve,
mark active, reject, cancel, roll back, expire, extend); only their receipt times are set by hand,
so that the durations are known."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from service.accounts.roles import SYSTEM
from service.requests import services
from service.requests.deadlines import legal_deadline
from service.requests.models import ErasureRequest

PERIOD = ("2025-01-01", "2025-12-31")
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
_counter = itertools.count()


@dataclass(frozen=True)
class Filed:
    regulation: str
    received: datetime
    outcome: str  # completed, rolled_back, rejected, cancelled, expired, open
    days: float | None = None  # receipt to effective erasure, for completed ones
    extend: bool = False


# The expected figures are worked out in the tests from this table.
KNOWN = [
    Filed("gdpr", datetime(2025, 3, 1, tzinfo=UTC), "completed", days=10),  # on time
    Filed("gdpr", datetime(2025, 5, 1, tzinfo=UTC), "completed", days=40),  # deadline 2025-06-01: late
    Filed("gdpr", datetime(2025, 7, 1, tzinfo=UTC), "rolled_back", days=20),
    Filed("gdpr", datetime(2025, 8, 1, tzinfo=UTC), "rejected"),
    Filed("gdpr", datetime(2025, 9, 1, tzinfo=UTC), "open"),  # deadline 2025-10-01 passed by AS_OF: overdue
    Filed("gdpr", datetime(2024, 12, 31, 23, 0, tzinfo=UTC), "completed", days=5),  # before the period
    Filed("ccpa", datetime(2025, 2, 1, tzinfo=UTC), "completed", days=30),
    Filed("ccpa", datetime(2025, 12, 31, 12, 0, tzinfo=UTC), "open", extend=True),  # 45 + 45 days: 2026-03-31, not overdue
    Filed("ccpa", datetime(2025, 6, 15, tzinfo=UTC), "cancelled"),
    Filed("other", datetime(2025, 4, 1, tzinfo=UTC), "expired"),
    Filed("other", datetime(2026, 1, 1, tzinfo=UTC), "open"),  # after the period
]


@pytest.fixture
def file_requests(db, api_client_key, actor_of, staff):
    """file_requests(KNOWN) -> the ErasureRequests, each in its outcome."""
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    reviewer = actor_of(staff("reviewer"))

    def file(filed: Filed) -> ErasureRequest:
        number = next(_counter)
        if filed.outcome == "expired":
            request = services.request_submit_web(
                name=f"Person {number}", email=f"p{number}@example.org", regulation=filed.regulation, facts=["a fact"], evidence_prompts=[], attested=True
            )
        else:
            request, _ = services.request_create_api(
                actor=actor_of(client),
                idempotency_key=f"report-{number}",
                name=f"Person {number}",
                email=f"p{number}@example.org",
                regulation=filed.regulation,
                facts=["a fact"],
                evidence_prompts=[],
            )
        ErasureRequest.objects.filter(pk=request.pk).update(received_at=filed.received, deadline_at=legal_deadline(filed.regulation, filed.received))
        if filed.outcome == "expired":
            services.requests_expire_unverified(now=AS_OF)
        elif filed.outcome in ("completed", "rolled_back"):
            services.request_approve(actor=reviewer, request_id=request.pk)
            ErasureRequest.objects.filter(pk=request.pk).update(status="staged")  # the unlearning pipeline is not under test
            services.request_mark_active(request_id=request.pk, effective_at=filed.received + timedelta(days=filed.days), actor=SYSTEM, gateway_id="gw-test")
            if filed.outcome == "rolled_back":
                services.request_roll_back(actor=reviewer, request_id=request.pk, reason="the subject withdrew")
        elif filed.outcome == "rejected":
            services.request_reject(actor=reviewer, request_id=request.pk, reason="not about the requester")
        elif filed.outcome == "cancelled":
            services.request_cancel(actor=reviewer, request_id=request.pk, reason="duplicate")
        if filed.extend:
            services.request_extend_deadline(actor=reviewer, request_id=request.pk, reason="complex request")
        request.refresh_from_db()
        assert request.status == {"completed": "active", "open": "verified"}.get(filed.outcome, filed.outcome), request.status
        return request

    def make(items: list[Filed]) -> list[ErasureRequest]:
        return [file(item) for item in items]

    return make
