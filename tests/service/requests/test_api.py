"""REST API v1 (service/requests/api.py): what a product and a reviewer see through it."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.test import Client as DjangoClient
from django.test import TestCase
from django.utils import timezone

from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
COLLECTION = "/api/v1/requests"
BODY = {
    "subject_name": "Alice Example",
    "subject_email": "alice@example.org",
    "regulation": "gdpr",
    "facts": ["Alice Example lives in Utrecht", "Alice Example's phone number is +31 6 1234 5678"],
    "evidence_prompts": ["Where does Alice Example live?"],
}


class Client(DjangoClient):
    """The test client, plus what happens after a real request's transaction commits (the emails):
    tests run inside one transaction that never commits, so on-commit callbacks are run per call."""

    def request(self, **request):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(**request)


def bearer(key: str, **kwargs) -> Client:
    return Client(headers={"Authorization": f"Bearer {key}"}, **kwargs)


def post(http: Client, url: str, body=None, **headers):
    return http.post(url, data=json.dumps(body if body is not None else {}), content_type="application/json", headers=headers)


def url_of(request_id, action: str = "") -> str:
    return f"{COLLECTION}/{request_id}" + (f"/{action}" if action else "")


def file_request(http: Client, body=None, **headers) -> dict:
    response = post(http, COLLECTION, body or BODY, **headers)
    assert response.status_code == 202, response.content
    return response.json()


@pytest.fixture
def product(api_client_key):
    """A product that files requests: scopes create + read."""
    _, key = api_client_key(("create", "read"))
    return bearer(key)


@pytest.fixture
def trusted(api_client_key):
    """A product that verified its users itself: its requests start `verified`."""
    _, key = api_client_key(("create", "read", "trusted_identity"))
    return bearer(key)


@pytest.fixture
def session_of(staff):
    def make(role: str, **kwargs) -> Client:
        http = Client(**kwargs)
        http.force_login(staff(role))
        return http

    return make


# --- create ---------------------------------------------------------------------------------------


def test_create_answers_202_with_location_and_no_personal_data(product, mailoutbox):
    response = post(product, COLLECTION, BODY)

    assert response.status_code == 202
    created = response.json()
    assert response["Location"] == f"http://testserver/api/v1/requests/{created['id']}"
    assert created["links"]["self"] == response["Location"]
    assert created["status"] == "submitted"
    assert created["status_label"] == "Submitted (awaiting email verification)"
    assert created["reference"].startswith("RTBF-")
    assert created["channel"] == "api" and created["regulation"] == "gdpr"
    assert created["facts_count"] == 2 and created["evidence_prompts_count"] == 1
    assert created["days_left"] in (30, 31)  # one calendar month
    assert created["subject_email_hash"].startswith("hmac-sha256:")
    assert "Idempotent-Replayed" not in response
    # The subject's name, email and facts never travel back.
    for secret in ("Alice", "alice@example.org", "Utrecht", "1234"):
        assert secret not in response.content.decode()
    # Not a trusted client: the subject gets a verification code by email.
    assert [mail.to for mail in mailoutbox] == [["alice@example.org"]]
    assert ErasureRequest.objects.get(pk=created["id"]).subject == {"name": "Alice Example", "email": "alice@example.org"}


def test_location_is_the_status_resource(product):
    response = post(product, COLLECTION, BODY)
    status = product.get(response["Location"])
    assert status.status_code == 200
    assert status.json() == response.json()


def test_trusted_identity_client_skips_to_verified_without_email(trusted, mailoutbox):
    created = file_request(trusted)
    assert created["status"] == "verified"
    assert created["verified_at"] is not None
    assert mailoutbox == []


def test_same_idempotency_key_and_body_returns_the_same_request(product, mailoutbox):
    first = post(product, COLLECTION, BODY, **{"Idempotency-Key": "order-42"})
    again = post(product, COLLECTION, BODY, **{"Idempotency-Key": "order-42"})

    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert ErasureRequest.objects.count() == 1
    assert len(mailoutbox) == 1  # the subject is not emailed twice


def test_replay_shows_the_current_status(trusted, session_of):
    first = file_request(trusted, **{"Idempotency-Key": "k1"})
    assert post(session_of("reviewer"), url_of(first["id"], "approve")).status_code == 200
    again = post(trusted, COLLECTION, BODY, **{"Idempotency-Key": "k1"})
    assert again.status_code == 202
    assert again.json()["status"] == "queued"  # approved, then queued for unlearning once that committed


def test_same_idempotency_key_with_another_body_is_a_conflict(product):
    post(product, COLLECTION, BODY, **{"Idempotency-Key": "order-42"})
    response = post(product, COLLECTION, {**BODY, "facts": ["something else"]}, **{"Idempotency-Key": "order-42"})

    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "idempotency_key_reused"
    assert ErasureRequest.objects.count() == 1


def test_idempotency_keys_belong_to_one_client(api_client_key):
    first, second = bearer(api_client_key()[1]), bearer(api_client_key()[1])
    a = file_request(first, **{"Idempotency-Key": "shared"})
    b = file_request(second, **{"Idempotency-Key": "shared"})
    assert a["id"] != b["id"]


def test_without_idempotency_key_each_call_creates_a_request(product):
    assert file_request(product)["id"] != file_request(product)["id"]
    assert ErasureRequest.objects.count() == 2


@pytest.mark.parametrize("key", ["", " padded", "x" * 129, "clé", "tab\there"])
def test_malformed_idempotency_key_is_refused(product, key):
    response = post(product, COLLECTION, BODY, **{"Idempotency-Key": key})
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "bad_header"
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert ErasureRequest.objects.count() == 0


def test_a_control_character_in_the_idempotency_key_is_refused_before_the_api(product):
    response = post(product, COLLECTION, BODY, **{"Idempotency-Key": "bell\x07"})
    assert response.status_code == 400 and response.json()["code"] == "bad_characters"
    assert ErasureRequest.objects.count() == 0


def test_longest_allowed_idempotency_key_works(product):
    key = "K" + "-" * 126 + "K"
    assert post(product, COLLECTION, BODY, **{"Idempotency-Key": key}).status_code == 202


def test_create_is_audited_with_hashes_only(product):
    created = file_request(product)
    event = AuditEvent.objects.get(action="request.submitted", target_id=created["reference"])
    assert event.actor_kind == "api_client"
    assert "alice" not in json.dumps(event.data).lower()


# --- read and list --------------------------------------------------------------------------------


def test_another_clients_request_is_indistinguishable_from_an_absent_one(product, api_client_key):
    created = file_request(product)
    stranger = bearer(api_client_key()[1])

    theirs = stranger.get(url_of(created["id"]))
    absent = stranger.get(url_of(uuid.uuid4()))

    assert theirs.status_code == absent.status_code == 404
    assert theirs["Content-Type"] == PROBLEM
    strip = lambda problem: {k: v for k, v in problem.items() if k != "request_id"}  # noqa: E731
    assert strip(theirs.json()) == strip(absent.json())


def test_list_shows_clients_only_their_own(product, api_client_key):
    mine = file_request(product)
    other = bearer(api_client_key()[1])
    file_request(other)

    page = product.get(COLLECTION).json()
    assert page["count"] == 1
    assert [r["id"] for r in page["results"]] == [mine["id"]]
    assert page["next"] is None and page["previous"] is None


def test_staff_see_all_requests(product, api_client_key, session_of):
    file_request(product)
    file_request(bearer(api_client_key()[1]))
    for role in ("reviewer", "auditor", "admin"):
        assert session_of(role).get(COLLECTION).json()["count"] == 2, role


def test_list_filters(trusted, session_of):
    reviewer = session_of("reviewer")
    gdpr = file_request(trusted)
    ccpa = file_request(trusted, {**BODY, "regulation": "ccpa"})
    rejected = file_request(trusted)
    assert post(reviewer, url_of(rejected["id"], "reject"), {"reason": "not about the subject"}).status_code == 200
    ErasureRequest.objects.filter(pk=gdpr["id"]).update(deadline_at=timezone.now() - timedelta(days=2, hours=-1))  # time has passed: 47 h overdue

    def ids(query: str) -> set[str]:
        response = trusted.get(COLLECTION + query)
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids("") == {gdpr["id"], ccpa["id"], rejected["id"]}
    assert ids("?status=rejected") == {rejected["id"]}
    assert ids("?status=verified,rejected") == {gdpr["id"], ccpa["id"], rejected["id"]}
    assert ids("?regulation=ccpa") == {ccpa["id"]}
    assert ids("?overdue=true") == {gdpr["id"]}
    assert ids("?due_within_days=35") == {gdpr["id"]}  # GDPR: a month; CCPA: 45 days; rejected: closed
    assert ids("?due_within_days=50") == {gdpr["id"], ccpa["id"]}
    overdue = trusted.get(url_of(gdpr["id"])).json()
    assert overdue["days_left"] == -2


def test_list_is_paginated(trusted):
    for _ in range(5):
        file_request(trusted)
    first = trusted.get(COLLECTION + "?page_size=2").json()
    assert first["count"] == 5 and len(first["results"]) == 2
    assert first["next"].endswith("page=2&page_size=2")
    last = trusted.get(COLLECTION + "?page_size=2&page=3").json()
    assert len(last["results"]) == 1 and last["next"] is None
    seen = [r["id"] for p in (1, 2, 3) for r in trusted.get(COLLECTION + f"?page_size=2&page={p}").json()["results"]]
    assert len(set(seen)) == 5
    beyond = trusted.get(COLLECTION + "?page_size=2&page=4")
    assert beyond.status_code == 404 and beyond["Content-Type"] == PROBLEM


@pytest.mark.parametrize(
    "query, field",
    [
        ("?status=done", "status"),
        ("?status=verified,nonsense", "status"),
        ("?regulation=hipaa", "regulation"),
        ("?overdue=maybe", "overdue"),
        ("?due_within_days=-1", "due_within_days"),
        ("?due_within_days=soon", "due_within_days"),
        ("?page=0", "page"),
        ("?page_size=1000", "page_size"),
        ("?stauts=verified", "stauts"),
    ],
)
def test_bad_filters_are_refused_by_name(product, query, field):
    response = product.get(COLLECTION + query)
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [e["field"] for e in problem["errors"]] == [field]


def test_decision_reason_shows_only_for_rejected_or_cancelled(product):
    created = file_request(product)
    assert created["decision_reason"] is None
    cancelled = post(product, url_of(created["id"], "cancel"), {"reason": "subject withdrew"}).json()
    assert cancelled["decision_reason"] == "subject withdrew"


# --- cancel ---------------------------------------------------------------------------------------


def test_client_cancels_its_own_request_and_the_subject_is_told(product, mailoutbox):
    created = file_request(product)
    assert "cancel" in created["links"]

    response = post(product, created["links"]["cancel"], {"reason": "The subject withdrew."})

    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled" and cancelled["decided_at"]
    assert "cancel" not in cancelled["links"]
    assert mailoutbox[-1].subject == f"Your request {created['reference']} was cancelled"
    assert "The subject withdrew." in mailoutbox[-1].body


def test_cancel_without_a_body_works(product):
    created = file_request(product)
    response = product.generic("POST", url_of(created["id"], "cancel"))  # curl -X POST: no body, no Content-Type
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


def test_cancel_twice_is_a_conflict_and_changes_nothing(product):
    created = file_request(product)
    post(product, url_of(created["id"], "cancel"))
    response = post(product, url_of(created["id"], "cancel"))
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert response.json()["current_status"] == "cancelled"


def test_client_cannot_cancel_another_clients_request(product, api_client_key):
    created = file_request(product)
    response = post(bearer(api_client_key()[1]), url_of(created["id"], "cancel"))
    assert response.status_code == 404
    assert ErasureRequest.objects.get(pk=created["id"]).status == "submitted"


def test_client_without_create_scope_cannot_cancel(product, api_client_key):
    created = file_request(product)
    reader = bearer(api_client_key(("read",))[1])
    response = post(reader, url_of(created["id"], "cancel"))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert "create" in response.json()["detail"]


def test_reviewer_cancels_any_request(product, session_of):
    created = file_request(product)
    response = post(session_of("reviewer"), url_of(created["id"], "cancel"), {"reason": "duplicate"})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


# --- review ---------------------------------------------------------------------------------------


def test_reviewer_approves_a_verified_request(trusted, session_of):
    created = file_request(trusted)
    reviewer = session_of("reviewer")
    assert set(reviewer.get(url_of(created["id"])).json()["links"]) == {"self", "cancel", "approve", "reject", "extend_deadline"}

    response = post(reviewer, url_of(created["id"], "approve"))

    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    assert AuditEvent.objects.filter(action="request.approved", target_id=created["reference"], actor_kind="user").exists()
    # The product sees the decision too: the approval committed, so the request is queued for unlearning.
    assert trusted.get(url_of(created["id"])).json()["status"] == "queued"


def test_approving_an_unverified_request_is_a_conflict(product, session_of):
    created = file_request(product)
    response = post(session_of("reviewer"), url_of(created["id"], "approve"))
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"


def test_approve_refuses_a_body_with_fields(trusted, session_of):
    created = file_request(trusted)
    response = post(session_of("reviewer"), url_of(created["id"], "approve"), {"force": True})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "force", "message": "Unknown field.", "code": "unknown_field"}]


def test_reject_needs_a_reason_and_emails_the_subject(trusted, session_of, mailoutbox):
    created = file_request(trusted)
    reviewer = session_of("reviewer")

    missing = post(reviewer, url_of(created["id"], "reject"), {})
    blank = post(reviewer, url_of(created["id"], "reject"), {"reason": "   "})
    for response in (missing, blank):
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["reason"]
    assert ErasureRequest.objects.get(pk=created["id"]).status == "verified"

    response = post(reviewer, url_of(created["id"], "reject"), {"reason": "The facts are not about the requester."})
    assert response.status_code == 200
    rejected = response.json()
    assert rejected["status"] == "rejected"
    assert rejected["decision_reason"] == "The facts are not about the requester."
    assert mailoutbox[-1].to == ["alice@example.org"]
    assert "The facts are not about the requester." in mailoutbox[-1].body


def test_extend_deadline_once_with_a_reason(trusted, session_of):
    created = file_request(trusted, {**BODY, "regulation": "ccpa"})
    reviewer = session_of("reviewer")
    assert post(reviewer, url_of(created["id"], "extend-deadline"), {}).status_code == 400

    response = post(reviewer, url_of(created["id"], "extend-deadline"), {"reason": "Data in several corpora."})

    assert response.status_code == 200
    extended = response.json()
    assert extended["deadline_extended"] is True
    assert extended["days_left"] == created["days_left"] + 45
    assert "extend_deadline" not in extended["links"]
    again = post(reviewer, url_of(created["id"], "extend-deadline"), {"reason": "More time."})
    assert again.status_code == 409
    assert again.json()["code"] == "already_extended"


def test_bulk_decide_reports_each_request(trusted, product, session_of):
    verified = [file_request(trusted) for _ in range(2)]
    unverified = file_request(product)
    absent = str(uuid.uuid4())
    reviewer = session_of("reviewer")

    response = post(reviewer, COLLECTION + "/bulk-decide", {"ids": [v["id"] for v in verified] + [unverified["id"], absent], "decision": "approve"})

    assert response.status_code == 200
    outcome = response.json()
    assert sorted(outcome["done"]) == sorted(v["reference"] for v in verified)
    assert len(outcome["failed"]) == 2
    assert outcome["failed"][0].startswith(unverified["id"]) and outcome["failed"][1].startswith(absent)
    assert {r.status for r in ErasureRequest.objects.filter(pk__in=[v["id"] for v in verified])} == {"queued"}  # approved, then queued


def test_bulk_reject_needs_a_reason(trusted, session_of):
    created = file_request(trusted)
    reviewer = session_of("reviewer")
    response = post(reviewer, COLLECTION + "/bulk-decide", {"ids": [created["id"]], "decision": "reject"})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["reason"]
    response = post(reviewer, COLLECTION + "/bulk-decide", {"ids": [created["id"]], "decision": "reject", "reason": "Duplicate."})
    assert response.json() == {"done": [created["reference"]], "failed": []}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"ids": [], "decision": "approve"}, "ids"),
        ({"ids": ["not-a-uuid"], "decision": "approve"}, "ids.0"),
        ({"ids": [str(uuid.uuid4())], "decision": "maybe"}, "decision"),
    ],
)
def test_bulk_decide_validates_its_input(session_of, body, field):
    response = post(session_of("reviewer"), COLLECTION + "/bulk-decide", body)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_auditor_reads_but_cannot_decide(trusted, session_of):
    created = file_request(trusted)
    auditor = session_of("auditor")
    assert auditor.get(url_of(created["id"])).status_code == 200
    assert auditor.get(url_of(created["id"])).json()["links"] == {"self": f"http://testserver{url_of(created['id'])}"}
    for action, body in (("approve", {}), ("reject", {"reason": "x"}), ("extend-deadline", {"reason": "x"}), ("cancel", {})):
        response = post(auditor, url_of(created["id"], action), body)
        assert response.status_code == 403, action
        assert response["Content-Type"] == PROBLEM
        assert response.json()["code"] == "forbidden"
    response = post(auditor, COLLECTION + "/bulk-decide", {"ids": [created["id"]], "decision": "approve"})
    assert response.status_code == 403
    assert ErasureRequest.objects.get(pk=created["id"]).status == "verified"


# --- CSRF: session-authenticated writes need the token; Bearer calls do not -------------------------


def _csrf_token(http: Client) -> str:
    http.get("/accounts/login/")
    return http.cookies["csrftoken"].value


def test_session_write_without_csrf_token_is_refused(trusted, session_of):
    created = file_request(trusted)
    reviewer = session_of("reviewer", enforce_csrf_checks=True)

    refused = post(reviewer, url_of(created["id"], "approve"))
    assert refused.status_code == 403
    assert refused["Content-Type"] == PROBLEM
    assert refused.json()["code"] == "csrf_failed"
    assert ErasureRequest.objects.get(pk=created["id"]).status == "verified"

    token = _csrf_token(reviewer)
    accepted = post(reviewer, url_of(created["id"], "approve"), **{"X-CSRFToken": token})
    assert accepted.status_code == 200 and accepted.json()["status"] == "approved"


def test_session_reads_need_no_csrf_token(trusted, session_of):
    file_request(trusted)
    assert session_of("auditor", enforce_csrf_checks=True).get(COLLECTION).status_code == 200


def test_bearer_writes_need_no_csrf_token(api_client_key):
    strict = bearer(api_client_key()[1], enforce_csrf_checks=True)
    created = file_request(strict)
    assert post(strict, url_of(created["id"], "cancel")).status_code == 200


# --- who may call what: every role against every endpoint ----------------------------------------

ROLES = ("anonymous", "client:create", "client:read", "client:create,read", "owner_client", "user_without_role", "reviewer", "auditor", "admin")
# endpoint -> expected status per role (for a verified request filed by `owner_client`)
MATRIX = {
    ("GET", ""): (401, 403, 404, 404, 200, 403, 200, 200, 200),
    ("POST", "cancel"): (401, 404, 403, 404, 200, 403, 200, 403, 200),
    ("POST", "approve"): (401, 403, 403, 403, 403, 403, 200, 403, 200),
    ("POST", "reject"): (401, 403, 403, 403, 403, 403, 200, 403, 200),
    ("POST", "extend-deadline"): (401, 403, 403, 403, 403, 403, 200, 403, 200),
    ("GET", "list"): (401, 403, 200, 200, 200, 403, 200, 200, 200),
    ("POST", "create"): (401, 202, 403, 202, 202, 403, 403, 403, 403),
    ("POST", "bulk-decide"): (401, 403, 403, 403, 403, 403, 200, 403, 200),
}


@pytest.mark.parametrize("endpoint", list(MATRIX), ids=lambda e: f"{e[0]} {e[1]}")
def test_role_matrix(endpoint, api_client_key, staff, django_user_model):
    _, owner_key = api_client_key(("create", "read", "trusted_identity"))
    owner = bearer(owner_key)
    created = file_request(owner)

    def http_for(role: str) -> Client:
        if role == "anonymous":
            return Client()
        if role == "owner_client":
            return owner
        if role.startswith("client:"):
            return bearer(api_client_key(tuple(role.split(":")[1].split(",")))[1])
        http = Client()
        http.force_login(django_user_model.objects.create_user(f"plain{uuid.uuid4().hex[:6]}") if role == "user_without_role" else staff(role))
        return http

    method, action = endpoint
    bodies = {
        "reject": {"reason": "r"},
        "extend-deadline": {"reason": "r"},
        "cancel": {},
        "approve": {},
        "create": BODY,
        "bulk-decide": {"ids": [created["id"]], "decision": "approve"},
    }
    urls = {"list": COLLECTION, "create": COLLECTION, "bulk-decide": COLLECTION + "/bulk-decide", "": url_of(created["id"])}
    url = urls.get(action, url_of(created["id"], action))
    for role, expected in zip(ROLES, MATRIX[endpoint]):
        http = http_for(role)
        response = http.get(url) if method == "GET" else post(http, url, bodies.get(action))
        assert response.status_code == expected, f"{role} {method} {url}: {response.status_code} {response.content[:200]!r}"
        if expected >= 400:
            assert response["Content-Type"] == PROBLEM
        if expected == 401:
            assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        # Undo a successful decision so that the next role meets the same verified request.
        ErasureRequest.objects.filter(pk=created["id"]).update(status="verified", deadline_extended=False)


# --- idempotency under concurrency ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_one_request(api_client_key):
    """A product that fires the same call from several workers at once gets one request back."""
    import threading

    from django.db import connection

    _, key = api_client_key(("create", "read", "trusted_identity"))
    barrier = threading.Barrier(4)
    responses = []

    def call():
        try:
            barrier.wait(timeout=10)
            responses.append(post(bearer(key), COLLECTION, BODY, **{"Idempotency-Key": "burst-1"}))
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [r.status_code for r in responses] == [202] * 4
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == 3
    assert ErasureRequest.objects.count() == 1
    assert AuditEvent.objects.filter(action="request.submitted").count() == 1
