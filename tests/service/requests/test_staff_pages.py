"""The staff pages as a reviewer and an auditor use them: the queue, a request's page, the actions."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api, request_submit_web
from service.requests.states import Status

pytestmark = pytest.mark.django_db

_keys = itertools.count()
FACT = "Bo Berg lives at 12 Rue Lepic, Paris"


@pytest.fixture
def trusted(api_client_key, actor_of):
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    return actor_of(client)


@pytest.fixture
def make_verified(trusted):
    """make_verified(regulation='gdpr', days_left=None) -> a verified request awaiting review."""

    def make(regulation: str = "gdpr", days_left: float | None = None, name: str = "Bo Berg", facts=(FACT,)) -> ErasureRequest:
        request, _ = request_create_api(
            actor=trusted,
            idempotency_key=f"k{next(_keys)}",
            name=name,
            email="bo@example.com",
            regulation=regulation,
            facts=list(facts),
            evidence_prompts=["Where does Bo Berg live?"],
        )
        if days_left is not None:  # arrange the clock: this request is due in `days_left` days
            ErasureRequest.objects.filter(pk=request.pk).update(deadline_at=timezone.now() + timedelta(days=days_left))
        return ErasureRequest.objects.get(pk=request.pk)

    return make


@pytest.fixture
def reviewer_client(client, staff):
    client.force_login(staff("reviewer"))
    return client


@pytest.fixture
def auditor_client(client, staff):
    client.force_login(staff("auditor"))
    return client


def _rows(html: str) -> list[tuple[str, str]]:
    """(row CSS class, reference) of each queue row, in page order."""
    return re.findall(r'<tr class="([^"]*)">\s*(?:<td><input[^>]*></td>\s*)?<td><a href="[^"]*" class="mono">(RTBF-\w+)</a>', html)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- the queue -----------------------------------------------------------------------------------


def test_queue_needs_a_login(client):
    response = client.get("/staff/?regulation=gdpr")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=/staff/")


def test_a_user_without_a_staff_role_is_refused(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="x" * 12))
    assert client.get("/staff/").status_code == 403


def test_queue_lists_requests_awaiting_review_most_urgent_first_with_overdue_highlighted(reviewer_client, make_verified):
    relaxed = make_verified(days_left=25)
    overdue = make_verified(days_left=-2.5)  # days left round away from zero: -3
    soon = make_verified(regulation="ccpa", days_left=2)
    unverified = request_submit_web(name="Al", email="al@example.com", regulation="gdpr", facts=["Al is 40"], evidence_prompts=[], attested=True)

    html = reviewer_client.get("/staff/").content.decode()

    assert _rows(html) == [("overdue", overdue.reference), ("due-soon", soon.reference), ("", relaxed.reference)]
    assert unverified.reference not in html  # still waiting for its email code, not for a reviewer
    for column in ("Reference", "Status", "Regulation", "Channel", "Received", "Deadline", "Days left"):
        assert f'<th scope="col">{column}</th>' in html
    assert "CCPA (California)" in html and "REST API" in html
    assert re.search(r"-3 <span class=\"badge bad\">overdue</span>", html)


def test_queue_filters(reviewer_client, make_verified):
    gdpr = make_verified(regulation="gdpr", days_left=20)
    ccpa = make_verified(regulation="ccpa", days_left=40)
    late = make_verified(regulation="gdpr", days_left=-1)
    web = request_submit_web(name="Al", email="al@example.com", regulation="gdpr", facts=["Al is 40"], evidence_prompts=[], attested=True)

    def refs(query: str) -> set[str]:
        return {ref for _, ref in _rows(reviewer_client.get("/staff/?" + query).content.decode())}

    assert refs("regulation=ccpa") == {ccpa.reference}
    assert refs("overdue=on") == {late.reference}
    assert refs("due_within_days=30") == {gdpr.reference, late.reference}
    assert refs(f"q={gdpr.reference.lower()}") == {gdpr.reference}
    assert refs("status=submitted") == {web.reference}
    assert refs("status=all&channel=web") == {web.reference}
    assert refs("status=open") == {gdpr.reference, ccpa.reference, late.reference, web.reference}


def test_a_bad_filter_value_is_shown_as_an_error_and_the_other_filters_still_apply(reviewer_client, make_verified):
    make_verified(regulation="gdpr")
    ccpa = make_verified(regulation="ccpa")
    response = reviewer_client.get("/staff/?regulation=ccpa&due_within_days=soon")
    assert response.status_code == 200
    assert "Due within (days): Enter a whole number." in response.content.decode()
    assert [ref for _, ref in _rows(response.content.decode())] == [ccpa.reference]


def test_queue_is_paginated_and_page_links_keep_the_filters(reviewer_client, make_verified):
    for index in range(27):
        make_verified(regulation="ccpa", days_left=10 + index)
    first = reviewer_client.get("/staff/?regulation=ccpa").content.decode()
    assert len(_rows(first)) == 25
    assert 'href="?regulation=ccpa&amp;page=2"' in first and "Page 1 of 2" in first
    second = reviewer_client.get("/staff/?regulation=ccpa&page=2").content.decode()
    assert len(_rows(second)) == 2


def test_reviewer_bulk_approves(reviewer_client, make_verified):
    one, two, untouched = make_verified(), make_verified(), make_verified()
    response = reviewer_client.post("/staff/bulk/", {"request_ids": [one.pk, two.pk], "decision": "approve", "next": "/staff/?regulation=gdpr"})
    assert response.status_code == 302 and response["Location"] == "/staff/?regulation=gdpr"
    page = reviewer_client.get(response["Location"])
    assert any(m.startswith("Approved 2 request(s)") for m in _messages(page))
    statuses = dict(ErasureRequest.objects.values_list("reference", "status"))
    assert statuses == {one.reference: "approved", two.reference: "approved", untouched.reference: "verified"}


def test_bulk_reject_needs_a_reason_and_then_emails_each_subject(reviewer_client, make_verified, mailoutbox, django_capture_on_commit_callbacks):
    one, two = make_verified(), make_verified()
    page = reviewer_client.post("/staff/bulk/", {"request_ids": [one.pk, two.pk], "decision": "reject", "reason": "  "}, follow=True)
    assert "A reason is required to reject requests." in _messages(page)
    assert set(ErasureRequest.objects.values_list("status", flat=True)) == {"verified"}

    with django_capture_on_commit_callbacks(execute=True):
        page = reviewer_client.post("/staff/bulk/", {"request_ids": [one.pk, two.pk], "decision": "reject", "reason": "Not about you"}, follow=True)
    assert any(m.startswith("Rejected 2 request(s)") for m in _messages(page))
    assert set(ErasureRequest.objects.values_list("status", flat=True)) == {"rejected"}
    assert sorted(mail.subject for mail in mailoutbox) == sorted(f"Your request {r.reference} was rejected" for r in (one, two))
    assert all("Reason: Not about you" in mail.body for mail in mailoutbox)


def test_bulk_reports_the_requests_it_could_not_change(reviewer_client, make_verified):
    fresh, decided = make_verified(), make_verified()
    reviewer_client.post(reverse("staff-request-approve", args=[decided.pk]))
    page = reviewer_client.post("/staff/bulk/", {"request_ids": [fresh.pk, decided.pk, "tampered-id"], "decision": "approve"}, follow=True)
    msgs = _messages(page)
    assert f"Approved 1 request(s): {fresh.reference}." in msgs
    assert any(m.startswith("Not changed:") and f"{decided.reference} is approved" in m for m in msgs)
    assert "Not changed: tampered-id: No such request." in msgs


def test_bulk_with_nothing_selected_says_so(reviewer_client):
    page = reviewer_client.post("/staff/bulk/", {"decision": "approve"}, follow=True)
    assert "Select at least one request first." in _messages(page)


def test_bulk_ignores_an_offsite_next(reviewer_client, make_verified):
    response = reviewer_client.post("/staff/bulk/", {"request_ids": [make_verified().pk], "decision": "approve", "next": "https://evil.example/"})
    assert response["Location"] == "/staff/"


def test_auditor_reads_the_queue_without_any_action(auditor_client, make_verified):
    request = make_verified()
    html = auditor_client.get("/staff/").content.decode()
    assert request.reference in html
    assert 'type="checkbox" name="request_ids"' not in html and "Approve selected" not in html
    response = auditor_client.post("/staff/bulk/", {"request_ids": [request.pk], "decision": "approve"})
    assert response.status_code == 403
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"


# --- one request ---------------------------------------------------------------------------------


def test_request_page_shows_the_request_with_personal_data_masked(reviewer_client, make_verified):
    request = make_verified(regulation="ccpa", days_left=5)
    html = reviewer_client.get(reverse("staff-request", args=[request.pk])).content.decode()
    assert request.reference in html and "CCPA (California)" in html
    assert FACT not in html and "Bo Berg" not in html and "bo@example.com" not in html
    assert "Bo•••" in html and "Facts (1)" in html and "Evidence prompts (1)" in html
    assert re.search(r"Days left</th>\s*<td>5 <span class=\"badge warn\">due soon</span>", html)
    for button in ("Approve", "Reject", "Extend deadline", "Cancel request", "Reveal personal data"):
        assert f">{button}</button>" in html
    assert 'for="reject-reason"' in html and 'id="reject-reason"' in html


def test_reviewer_reveals_personal_data_and_the_reveal_is_audited(reviewer_client, make_verified):
    request = make_verified()
    response = reviewer_client.post(reverse("staff-request-reveal", args=[request.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert FACT in html and "bo@example.com" in html and "Where does Bo Berg live?" in html
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="request.personal_data_revealed", target_id=request.reference)
    assert event.actor_kind == "user" and event.actor_label.startswith("reviewer")
    # The next plain viewing is masked again.
    assert FACT not in reviewer_client.get(reverse("staff-request", args=[request.pk])).content.decode()


def test_auditor_sees_the_request_but_cannot_reveal_or_act(auditor_client, make_verified):
    request = make_verified()
    html = auditor_client.get(reverse("staff-request", args=[request.pk])).content.decode()
    assert request.reference in html and FACT not in html
    assert "<button" not in html.split("<main", 1)[1]  # no action at all (the logout button is in the header)
    for name in ("staff-request-reveal", "staff-request-approve", "staff-request-reject", "staff-request-cancel", "staff-request-extend"):
        assert auditor_client.post(reverse(name, args=[request.pk]), {"reason": "because"}).status_code == 403
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    assert not AuditEvent.objects.filter(action="request.personal_data_revealed").exists()


def test_approve_from_the_request_page(reviewer_client, make_verified):
    request = make_verified()
    response = reviewer_client.post(reverse("staff-request-approve", args=[request.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("staff-request", args=[request.pk])
    page = reviewer_client.get(response["Location"])
    assert f"Request {request.reference} approved." in _messages(page)
    assert ErasureRequest.objects.get(pk=request.pk).status == "approved"
    html = page.content.decode()
    assert ">Approve</button>" not in html and ">Reject</button>" not in html  # decided: no longer offered
    assert re.search(r"<td>reviewer\d+ <span class=\"muted\">\(user\)</span></td>\s*<td>Request " + request.reference + " approved</td>", html)


def test_reject_needs_a_reason_then_emails_the_subject_and_shows_it_in_the_timeline(
    reviewer_client, make_verified, mailoutbox, django_capture_on_commit_callbacks
):
    request = make_verified()
    url = reverse("staff-request-reject", args=[request.pk])
    page = reviewer_client.post(url, {"reason": ""}, follow=True)
    assert "A reason is required to reject a request." in _messages(page)
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"

    with django_capture_on_commit_callbacks(execute=True):
        page = reviewer_client.post(url, {"reason": "Identity could not be confirmed"}, follow=True)
    assert f"Request {request.reference} rejected; the subject was emailed the reason." in _messages(page)
    assert [m.to for m in mailoutbox] == [["bo@example.com"]]
    assert "<td>Identity could not be confirmed</td>" in page.content.decode()  # the timeline's reason column


def test_an_illegal_action_is_a_message_not_an_error_page(reviewer_client, make_verified):
    request = make_verified()
    reviewer_client.post(reverse("staff-request-reject", args=[request.pk]), {"reason": "No"})
    page = reviewer_client.post(reverse("staff-request-approve", args=[request.pk]), follow=True)
    assert page.status_code == 200
    assert f"Request {request.reference} is rejected; it cannot become approved." in _messages(page)


def test_extend_deadline_once_with_a_reason(reviewer_client, make_verified):
    request = make_verified(regulation="ccpa")
    url = reverse("staff-request-extend", args=[request.pk])
    page = reviewer_client.post(url, {"reason": ""}, follow=True)
    assert "A reason is required to extend a deadline." in _messages(page)

    page = reviewer_client.post(url, {"reason": "Complex request"}, follow=True)
    extended = ErasureRequest.objects.get(pk=request.pk)
    assert extended.deadline_at == request.deadline_at + timedelta(days=45)
    assert f"Deadline of {request.reference} extended to {extended.deadline_at:%Y-%m-%d %H:%M} UTC." in _messages(page)
    html = page.content.decode()
    assert "Extended once: Complex request" in html and ">Extend deadline</button>" not in html

    page = reviewer_client.post(url, {"reason": "Again"}, follow=True)
    assert f"The deadline of {request.reference} was already extended once." in _messages(page)
    assert ErasureRequest.objects.get(pk=request.pk).deadline_at == extended.deadline_at


def test_cancel_from_the_request_page(reviewer_client, make_verified):
    request = make_verified()
    page = reviewer_client.post(reverse("staff-request-cancel", args=[request.pk]), {"reason": "Subject withdrew"}, follow=True)
    assert f"Request {request.reference} cancelled; the subject was told." in _messages(page)
    cancelled = ErasureRequest.objects.get(pk=request.pk)
    assert cancelled.status == Status.CANCELLED and cancelled.decision_reason == "Subject withdrew"
    assert "— (the deadline no longer runs)" in page.content.decode()


def test_unknown_request_is_404(reviewer_client):
    assert reviewer_client.get("/staff/requests/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert reviewer_client.post("/staff/requests/00000000-0000-0000-0000-000000000000/approve/").status_code == 404


def test_actions_are_post_only(reviewer_client, make_verified):
    request = make_verified()
    assert reviewer_client.get(reverse("staff-request-approve", args=[request.pk])).status_code == 405
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"


def test_the_queue_opens_on_needs_action_awaiting_review_and_failed(reviewer_client, make_verified):
    from service.requests.models import ErasureRequest
    from service.requests.selectors import NEEDS_ACTION_STATUSES

    waiting = make_verified(days_left=20)
    failed = make_verified(days_left=10)
    done = make_verified(days_left=5)
    ErasureRequest.objects.filter(pk=failed.pk).update(status="failed")
    ErasureRequest.objects.filter(pk=done.pk).update(status="active")
    html = reviewer_client.get("/staff/").content.decode()
    assert [ref for _, ref in _rows(html)] == [failed.reference, waiting.reference]
    assert '<option value="needs_action" selected>Needs action (awaiting review, failed, certificate to review)</option>' in html
    assert {s.value for s in NEEDS_ACTION_STATUSES} == {"verified", "failed", "needs_review"}
    assert {ref for _, ref in _rows(reviewer_client.get("/staff/?status=verified").content.decode())} == {waiting.reference}
    assert done.reference in reviewer_client.get("/staff/?status=all").content.decode()


def test_the_auditor_lands_on_every_request_with_its_dossier_link(auditor_client, make_verified):
    from service.requests.models import ErasureRequest

    active = make_verified()
    ErasureRequest.objects.filter(pk=active.pk).update(status="active")
    html = auditor_client.get("/staff/").content.decode()
    assert "<h1>Requests</h1>" in html and active.reference in html
    assert f'<a href="/staff/requests/{active.pk}/dossier/" aria-label="Dossier of {active.reference}">Dossier</a>' in html


def test_the_verification_email_links_the_verify_page_with_the_reference(client, mailoutbox, settings, django_capture_on_commit_callbacks):
    settings.FORGET_PUBLIC_URL = "https://forget.example"
    with django_capture_on_commit_callbacks(execute=True):
        request = request_submit_web(name="Al", email="al@example.com", regulation="gdpr", facts=["Al is 40"], evidence_prompts=[], attested=True)
    [mail] = mailoutbox
    link = f"https://forget.example/request/verify/?reference={request.reference}"
    assert link in mail.body and "al@example.com" not in mail.body
    page = client.get(link.removeprefix("https://forget.example")).content.decode()
    assert f'value="{request.reference}"' in page


def test_the_favicon_is_an_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon" and response.content[:4] == b"\x00\x00\x01\x00"
    assert "max-age" in response["Cache-Control"]


def test_expected_403_and_404_are_logged_as_one_line(auditor_client, caplog, make_verified):
    import logging

    request = make_verified()
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert auditor_client.post(f"/staff/requests/{request.pk}/approve/").status_code == 403
        assert auditor_client.get("/staff/requests/00000000-0000-0000-0000-000000000000/").status_code == 404
    records = [r for r in caplog.records if r.name == "django.request"]
    assert [r.status_code for r in records] == [403, 404] and all(r.exc_info is None for r in records)
