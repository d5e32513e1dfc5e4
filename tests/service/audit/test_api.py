"""GET /api/v1/audit/events: filters, search and cursor pages, as an auditor's script uses them; who
may call it; and that no route of the audit log changes or deletes an event."""

from __future__ import annotations

import base64
import json

import pytest
from django.urls import reverse

from service.accounts.roles import SYSTEM, Actor
from service.audit.models import AuditEvent
from service.audit.services import audit_record

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/audit/events"
RITA = Actor(kind="user", id="3", label="rita")


def _append(count: int, *, start: int = 0) -> None:
    for n in range(start, start + count):
        audit_record(
            action="request.approved" if n % 3 else "request.rejected",
            actor=RITA if n % 2 else SYSTEM,
            target_type="request",
            target_id=f"RTBF-{n:06d}",
            data={"from": "verified", "reason": f"note {n}"} if n % 3 == 0 else {"from": "verified"},
        )


def _get(client, **params):
    return client.get(EVENTS, params)


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    return body


# --- pages by cursor ---------------------------------------------------------------------------


def test_walking_next_cursors_visits_every_event_once_while_events_are_appended(client, auditor):
    _append(23)
    seen, pages, cursor = [], 0, None
    while True:
        params = {"page_size": 5, **({"cursor": cursor} if cursor else {})}
        body = _get(client, **params).json()
        seen += [event["seq"] for event in body["results"]]
        pages += 1
        if pages in (2, 4):
            _append(4, start=100 + pages)  # someone works while the auditor pages through
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert body["next"].endswith(f"cursor={cursor}") and "page_size=5" in body["next"]
    assert seen == list(range(1, 32))  # 23 + 2 * 4, each exactly once, in chain order
    assert pages == 7


def test_previous_cursors_walk_back_to_the_first_page(client, auditor):
    _append(12)
    first = _get(client, page_size=5).json()
    assert first["previous_cursor"] is None and first["previous"] is None
    second = _get(client, page_size=5, cursor=first["next_cursor"]).json()
    third = _get(client, page_size=5, cursor=second["next_cursor"]).json()
    assert [e["seq"] for e in third["results"]] == [11, 12] and third["next_cursor"] is None
    back = _get(client, page_size=5, cursor=third["previous_cursor"]).json()
    assert [e["seq"] for e in back["results"]] == [6, 7, 8, 9, 10]
    back = _get(client, page_size=5, cursor=back["previous_cursor"]).json()
    assert [e["seq"] for e in back["results"]] == [1, 2, 3, 4, 5]
    assert back["previous_cursor"] is None
    assert back["next_cursor"] is not None


def test_cursor_pages_keep_the_filters(client, auditor):
    _append(30)
    rejected = list(AuditEvent.objects.filter(action="request.rejected").values_list("seq", flat=True))
    seen, cursor = [], ""
    while cursor is not None:
        body = _get(client, action="request.rejected", page_size=3, **({"cursor": cursor} if cursor else {})).json()
        seen += [e["seq"] for e in body["results"]]
        cursor = body["next_cursor"]
    assert seen == rejected and len(rejected) == 10


def test_an_event_is_shown_with_everything_its_hash_covers(client, auditor):
    audit_record(
        action="request.rejected", actor=RITA, target_type="request", target_id="RTBF-ABC234", data={"from": "verified", "reason": "duplicate of RTBF-XYZ789"}
    )
    event = AuditEvent.objects.get()
    [shown] = _get(client).json()["results"]
    assert shown == {
        "seq": 1,
        "created_at": event.created_at.isoformat(),
        "actor": {"kind": "user", "id": "3", "label": "rita"},
        "action": "request.rejected",
        "target": {"type": "request", "id": "RTBF-ABC234"},
        "description": "Request RTBF-ABC234 rejected: duplicate of RTBF-XYZ789",
        "data": {"from": "verified", "reason": "duplicate of RTBF-XYZ789"},
        "request_id": "",
        "prev_hash": "0" * 64,
        "hash": event.hash,
    }


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        base64.urlsafe_b64encode(b'{"d":"x","s":3}').decode(),
        base64.urlsafe_b64encode(b'{"d":"a","s":-1}').decode(),
        base64.urlsafe_b64encode(b'{"d":"a","s":"3"}').decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        "eyJkIjoiYSIsInMiOjN9" * 20,
    ],
)
def test_an_invalid_cursor_is_a_400_problem(client, auditor, cursor):
    _append(3)
    body = _problem(_get(client, cursor=cursor), 400, "invalid_cursor")
    assert "cursor is not valid" in body["detail"]


def test_an_invalid_cursor_on_the_page_is_explained(client, auditor):
    _append(3)
    response = client.get("/audit/", {"cursor": "garbage", "action": "request."})
    assert response.status_code == 400
    page = response.content.decode()
    assert "The cursor is not valid" in page
    assert 'href="?action=request.">Go to the first page</a>' in page


# --- filters and search --------------------------------------------------------------------------


def test_filters_and_search_through_the_api(client, auditor):
    _append(9)
    assert [e["seq"] for e in _get(client, q="note 3").json()["results"]] == [4]  # reason "note 3"
    assert [e["seq"] for e in _get(client, q="request.rejected").json()["results"]] == [1, 4, 7]
    assert [e["seq"] for e in _get(client, actor="rit", action="request.approved").json()["results"]] == [2, 6, 8]
    assert [e["seq"] for e in _get(client, request="rtbf-000004").json()["results"]] == [5]
    assert [e["seq"] for e in _get(client, from_seq=8).json()["results"]] == [8, 9]
    from django.utils import timezone

    today = timezone.now().date().isoformat()
    assert len(_get(client, since=today, until=today).json()["results"]) == 9
    assert _get(client, since="2001-01-01", until="2001-01-02").json()["results"] == []


@pytest.mark.parametrize(
    "params, field",
    [
        ({"since": "2030-05-02", "until": "2030-05-01"}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"from_seq": "0"}, "from_seq"),
        ({"page_size": "500"}, "page_size"),
        ({"sort": "seq"}, "sort"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_filters_are_a_400_problem_naming_the_field(client, auditor, params, field):
    body = _problem(_get(client, **params), 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == [field]


def test_an_end_date_before_the_start_is_explained(client, auditor):
    body = _problem(_get(client, since="2030-05-02", until="2030-05-01"), 400, "validation_error")
    assert body["errors"][0]["message"] == "The end date is before the start date."


# --- who may call it -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_admins_read_the_events(client, staff, role):
    _append(2)
    client.force_login(staff(role))
    assert [e["seq"] for e in _get(client).json()["results"]] == [1, 2]


def test_reviewers_are_refused(client, staff):
    client.force_login(staff("reviewer"))
    _problem(_get(client), 403, "forbidden")


def test_api_clients_are_refused_whatever_their_scopes(client, api_client_key):
    _, key = api_client_key(("create", "read", "trusted_identity"))
    _problem(client.get(EVENTS, HTTP_AUTHORIZATION=f"Bearer {key}"), 403, "forbidden")


def test_anonymous_callers_must_authenticate(client):
    response = _get(client)
    _problem(response, 401, "not_authenticated")


# --- nothing changes an event --------------------------------------------------------------------

AUDIT_ROUTES = ["/audit/", "/audit/export.csv", "/audit/export.json", EVENTS, EVENTS + "/1", "/audit/1"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_no_route_changes_or_deletes_an_event(client, staff, method):
    _append(3)
    before = list(AuditEvent.objects.values_list("seq", "hash", "data"))
    client.force_login(staff("admin"))
    for url in AUDIT_ROUTES:
        response = getattr(client, method)(url, data=json.dumps({"action": "request.approved", "data": {}}), content_type="application/json")
        assert response.status_code in (404, 405), f"{method.upper()} {url}: {response.status_code}"
    assert list(AuditEvent.objects.values_list("seq", "hash", "data")) == before
    assert reverse("api-audit-events") == EVENTS
