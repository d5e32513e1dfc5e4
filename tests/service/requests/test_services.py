"""The reviewer's services and the periodic housekeeping: who may decide, what the subject and the
reviewers are told, and what the audit log records."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from service.accounts.roles import SYSTEM
from service.audit.models import AuditEvent
from service.common.errors import ApplicationError, InvalidTransition, NotFound, PermissionDenied
from service.requests import services
from service.requests.models import ErasureRequest
from service.requests.states import Status
from workers.tasks.housekeeping import expire_and_remind

pytestmark = pytest.mark.django_db
_keys = itertools.count()


@pytest.fixture
def trusted_client(api_client_key):
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    return client


@pytest.fixture
def make_verified(trusted_client, actor_of):
    def make(client=None, regulation: str = "gdpr") -> ErasureRequest:
        request, _ = services.request_create_api(
            actor=actor_of(client or trusted_client),
            idempotency_key=f"k{next(_keys)}",
            name="Bo Berg",
            email="bo@example.com",
            regulation=regulation,
            facts=["Bo Berg is 51"],
            evidence_prompts=[],
        )
        return request

    return make


def _submit_web(email: str = "al@example.com") -> ErasureRequest:
    return services.request_submit_web(name="Al", email=email, regulation="gdpr", facts=["Al is 40"], evidence_prompts=[], attested=True)


def _age(request: ErasureRequest, **delta) -> None:
    """Arranges the clock: the request was received `delta` ago."""
    ErasureRequest.objects.filter(pk=request.pk).update(received_at=timezone.now() - timedelta(**delta))


def _due_in(request: ErasureRequest, **delta) -> None:
    ErasureRequest.objects.filter(pk=request.pk).update(deadline_at=timezone.now() + timedelta(**delta))


def _events(request: ErasureRequest) -> list[str]:
    return list(AuditEvent.objects.filter(target_type="request", target_id=request.reference).order_by("seq").values_list("action", flat=True))


# --- decisions -----------------------------------------------------------------------------------


def test_reviewer_approves_and_the_audit_log_names_them(make_verified, staff, actor_of):
    reviewer = staff("reviewer")
    request = services.request_approve(actor=actor_of(reviewer), request_id=make_verified().pk)
    assert request.status == Status.APPROVED and request.decided_by == reviewer and request.decided_at
    event = AuditEvent.objects.get(action="request.approved", target_id=request.reference)
    assert (event.actor_kind, event.actor_label, event.data["from"]) == ("user", reviewer.username, "verified")


@pytest.mark.parametrize("role", ["auditor", None])
def test_only_reviewers_and_admins_decide(make_verified, staff, actor_of, trusted_client, role):
    request = make_verified()
    actor = actor_of(staff(role)) if role else actor_of(trusted_client)  # an auditor; an API client
    for decide in (
        lambda: services.request_approve(actor=actor, request_id=request.pk),
        lambda: services.request_reject(actor=actor, request_id=request.pk, reason="no"),
        lambda: services.request_extend_deadline(actor=actor, request_id=request.pk, reason="no"),
        lambda: services.requests_bulk_decide(actor=actor, request_ids=[request.pk], decision="approve"),
        lambda: services.request_reveal_personal_data(actor=actor, request_id=request.pk),
    ):
        with pytest.raises(PermissionDenied):
            decide()
    assert ErasureRequest.objects.get(pk=request.pk).status == Status.VERIFIED
    assert _events(request) == ["request.submitted", "request.verified"]


def test_admin_decides_too(make_verified, staff, actor_of):
    assert services.request_approve(actor=actor_of(staff("admin")), request_id=make_verified().pk).status == Status.APPROVED


def test_reject_needs_a_reason_and_emails_it_to_the_subject(make_verified, staff, actor_of, mailoutbox, django_capture_on_commit_callbacks):
    reviewer = actor_of(staff("reviewer"))
    request = make_verified()
    with pytest.raises(ApplicationError) as refused:
        services.request_reject(actor=reviewer, request_id=request.pk, reason="")
    assert refused.value.code == "reason_required"
    with django_capture_on_commit_callbacks(execute=True):
        rejected = services.request_reject(actor=reviewer, request_id=request.pk, reason="The model holds no such data")
    assert rejected.status == Status.REJECTED and rejected.decision_reason == "The model holds no such data"
    assert [(m.to, m.subject) for m in mailoutbox] == [(["bo@example.com"], f"Your request {request.reference} was rejected")]
    assert "Reason: The model holds no such data" in mailoutbox[0].body
    assert AuditEvent.objects.get(action="request.rejected").data["reason"] == "The model holds no such data"


def test_a_decided_request_cannot_be_decided_again(make_verified, staff, actor_of):
    reviewer = actor_of(staff("reviewer"))
    request = make_verified()
    services.request_approve(actor=reviewer, request_id=request.pk)
    with pytest.raises(InvalidTransition, match="is approved; it cannot become rejected"):
        services.request_reject(actor=reviewer, request_id=request.pk, reason="changed my mind")


def test_unknown_request_is_not_found(staff, actor_of):
    with pytest.raises(NotFound):
        services.request_approve(actor=actor_of(staff("reviewer")), request_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFound):
        services.request_approve(actor=actor_of(staff("reviewer")), request_id="not-a-uuid")


def test_cancel_by_a_reviewer_and_by_the_owning_api_client_only(
    make_verified, staff, actor_of, api_client_key, trusted_client, mailoutbox, django_capture_on_commit_callbacks
):
    other_client, _ = api_client_key(("create", "read"))
    mine, theirs = make_verified(), make_verified()
    with pytest.raises(NotFound):  # another client's request looks absent
        services.request_cancel(actor=actor_of(other_client), request_id=mine.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.request_cancel(actor=actor_of(trusted_client), request_id=mine.pk, reason="user withdrew").status == Status.CANCELLED
        assert services.request_cancel(actor=actor_of(staff("reviewer")), request_id=theirs.pk).status == Status.CANCELLED
    assert sorted(m.subject for m in mailoutbox) == sorted(f"Your request {r.reference} was cancelled" for r in (mine, theirs))
    with pytest.raises(PermissionDenied):
        services.request_cancel(actor=actor_of(staff("auditor")), request_id=make_verified().pk)


def test_bulk_decide_reports_failures_without_stopping(make_verified, staff, actor_of):
    reviewer = actor_of(staff("reviewer"))
    fresh, decided = make_verified(), make_verified()
    services.request_reject(actor=reviewer, request_id=decided.pk, reason="dup")
    result = services.requests_bulk_decide(actor=reviewer, request_ids=[fresh.pk, decided.pk, "bogus"], decision="approve")
    assert result["done"] == [fresh.reference]
    assert len(result["failed"]) == 2 and f"{decided.reference} is rejected" in result["failed"][0] and "No such request" in result["failed"][1]
    with pytest.raises(ApplicationError, match="decision must be"):
        services.requests_bulk_decide(actor=reviewer, request_ids=[fresh.pk], decision="maybe")


def test_revealing_personal_data_is_audited(make_verified, staff, actor_of):
    reviewer = staff("reviewer")
    request = services.request_reveal_personal_data(actor=actor_of(reviewer), request_id=make_verified().pk)
    assert request.facts == ["Bo Berg is 51"]
    event = AuditEvent.objects.get(action="request.personal_data_revealed")
    assert (event.target_id, event.actor_label) == (request.reference, reviewer.username)
    assert "Bo" not in str(event.data)


# --- housekeeping --------------------------------------------------------------------------------


def test_unverified_requests_expire_after_the_configured_days(settings, make_verified):
    settings.FORGET = {**settings.FORGET, "UNVERIFIED_EXPIRY_DAYS": 5}
    old, young, old_but_verified = _submit_web("a@example.com"), _submit_web("b@example.com"), make_verified()
    _age(old, days=5, minutes=1)
    _age(young, days=4, hours=23)
    _age(old_but_verified, days=30)

    assert services.requests_expire_unverified() == [old.reference]

    statuses = dict(ErasureRequest.objects.values_list("reference", "status"))
    assert statuses == {old.reference: "expired", young.reference: "submitted", old_but_verified.reference: "verified"}
    event = AuditEvent.objects.get(action="request.expired")
    assert (event.target_id, event.actor_kind, event.data) == (old.reference, "system", {"from": "submitted", "unverified_days": 5})
    assert services.requests_expire_unverified() == []  # nothing left to expire


def test_an_expired_request_can_no_longer_be_verified(settings):
    request = _submit_web()
    _age(request, days=settings.FORGET["UNVERIFIED_EXPIRY_DAYS"] + 1)
    services.requests_expire_unverified()
    with pytest.raises(InvalidTransition, match="already expired"):
        services.request_verify(reference=request.reference, email="al@example.com", code="123456")


def test_deadline_reminders_go_to_active_reviewers_once_per_request(settings, make_verified, staff, actor_of, mailoutbox, django_capture_on_commit_callbacks):
    settings.FORGET = {**settings.FORGET, "REMINDER_DAYS_LEFT": 7}
    reviewer_one, reviewer_two, auditor = staff("reviewer"), staff("reviewer"), staff("auditor")
    due_soon, overdue, relaxed, approved_due = make_verified(), make_verified(), make_verified(), make_verified()
    unverified = _submit_web()
    _due_in(due_soon, days=3)
    _due_in(overdue, days=-1)
    _due_in(relaxed, days=20)
    services.request_approve(actor=actor_of(reviewer_one), request_id=approved_due.pk)
    _due_in(approved_due, days=6)  # approved but not done yet: the deadline still runs
    _due_in(unverified, days=1)  # nobody can act on an unverified request: no reminder

    with django_capture_on_commit_callbacks(execute=True):
        reminded = services.requests_send_deadline_reminders()
    assert sorted(reminded) == sorted([due_soon.reference, overdue.reference, approved_due.reference])
    assert len(mailoutbox) == 3
    assert all(sorted(m.to) == sorted([reviewer_one.email, reviewer_two.email]) for m in mailoutbox)
    assert auditor.email not in {a for m in mailoutbox for a in m.to}
    subject = next(m.subject for m in mailoutbox if due_soon.reference in m.subject)
    assert subject == f"Deadline reminder: {due_soon.reference} has 3 day(s) left"
    assert AuditEvent.objects.filter(action="request.deadline_reminder").count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        assert services.requests_send_deadline_reminders() == []
    assert len(mailoutbox) == 3


def test_an_extended_deadline_gets_a_fresh_reminder_when_it_comes_close(make_verified, staff, actor_of, mailoutbox, django_capture_on_commit_callbacks):
    staff("reviewer")
    request = make_verified(regulation="ccpa")
    _due_in(request, days=2)
    assert services.requests_send_deadline_reminders() == [request.reference]
    services.request_extend_deadline(actor=actor_of(staff("reviewer")), request_id=request.pk, reason="Complex")
    assert services.requests_send_deadline_reminders() == []  # 47 days away now
    _due_in(request, days=1)
    assert services.requests_send_deadline_reminders() == [request.reference]


def test_periodic_task_expires_and_reminds_and_is_idempotent(settings, make_verified, staff, mailoutbox, django_capture_on_commit_callbacks):
    staff("reviewer")
    stale, due = _submit_web(), make_verified()
    _age(stale, days=settings.FORGET["UNVERIFIED_EXPIRY_DAYS"] + 1)
    _due_in(due, days=2)

    with django_capture_on_commit_callbacks(execute=True):
        first = expire_and_remind.apply().get()  # runs the registered Celery task in this process
    with django_capture_on_commit_callbacks(execute=True):
        second = expire_and_remind.apply().get()

    assert first == {"expired": [stale.reference], "reminded": [due.reference]}
    assert second == {"expired": [], "reminded": []}
    assert [m.subject for m in mailoutbox if m.subject.startswith("Deadline reminder")] == [f"Deadline reminder: {due.reference} has 2 day(s) left"]
    assert AuditEvent.objects.filter(action="request.deadline_reminder").count() == 1
    assert AuditEvent.objects.filter(action="request.expired", actor_kind=SYSTEM.kind).count() == 1
