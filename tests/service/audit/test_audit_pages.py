"""The auditor's audit log page and its CSV export, as the auditor (and everyone else) sees them."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from service.accounts.roles import SYSTEM, Actor
from service.audit.cursors import LAST_PAGE
from service.audit.models import AuditEvent
from service.audit.services import audit_record
from service.common.hashing import pii_hash
from tests.service.audit.tampering import tamper as _tamper

pytestmark = pytest.mark.django_db

LOG = "/audit/"
EXPORT = "/audit/export.csv"
SUBJECT = {"name": "Zoë Kowalczyk", "email": "zoe.kowalczyk@example.com", "fact": "Zoë Kowalczyk lives at 12 Elm Street, Gdańsk"}


@pytest.fixture
def submitted():
    """A real request from the public form: its audit rows are the ones an auditor reads."""
    from service.requests.services import request_submit_web

    return request_submit_web(
        name=SUBJECT["name"], email=SUBJECT["email"], regulation="gdpr", facts=[SUBJECT["fact"]], evidence_prompts=["Where does Zoë live?"], attested=True
    )


def _export_rows(response) -> list[dict[str, str]]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


# --- who may see it --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [LOG, EXPORT])
def test_anonymous_visitors_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize("url", [LOG, EXPORT])
def test_reviewers_are_refused(client, staff, url):
    client.force_login(staff("reviewer"))
    response = client.get(url)
    assert response.status_code == 403
    assert "Not allowed" in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_admins_read_the_log_and_find_it_in_the_menu(client, staff, role, submitted):
    client.force_login(staff(role))
    response = client.get(LOG)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'href="{LOG}">Audit log</a>' in page
    assert submitted.reference in page


def test_the_log_refuses_writes(client, auditor):
    assert client.post(LOG).status_code == 405
    assert client.post(EXPORT).status_code == 405


# --- what a row shows ------------------------------------------------------------------------------


def test_each_row_shows_seq_time_actor_action_target_description_request_id_and_hash(client, auditor):
    audit_record(
        action="request.rejected",
        actor=Actor(kind="user", id="3", label="rita"),
        target_type="request",
        target_id="RTBF-ABC234",
        data={"from": "verified", "reason": "duplicate of RTBF-XYZ789"},
    )
    event = AuditEvent.objects.get()
    page = client.get(LOG).content.decode()
    assert f'id="event-{event.seq}"' in page
    assert event.created_at.strftime("%Y-%m-%d %H:%M:%S") in page
    assert 'rita <span class="muted">(user)</span>' in page
    assert "request.rejected" in page
    assert "request RTBF-ABC234" in page
    assert "Request RTBF-ABC234 rejected: duplicate of RTBF-XYZ789" in page
    assert f'<abbr title="{event.hash}">{event.hash[:12]}…</abbr>' in page


def test_the_request_id_of_the_http_request_is_shown(client, auditor):
    from service.common.request_context import reset_request_id, set_request_id

    token = set_request_id("req-7f3a")
    try:
        audit_record(action="request.approved", actor=SYSTEM, target_type="request", target_id="RTBF-ABC234")
    finally:
        reset_request_id(token)
    assert "req-7f3a" in client.get(LOG).content.decode()


def test_personal_data_never_appears_on_the_page_or_in_the_export(client, auditor, submitted):
    page = client.get(LOG).content.decode()
    rows = _export_rows(client.get(EXPORT))
    exported = "\n".join(str(row) for row in rows)
    for text in (page, exported):
        for value in (SUBJECT["name"], SUBJECT["email"], "Elm Street", "Kowalczyk", "Where does Zoë live"):
            assert value not in text
    assert submitted.reference in page
    assert pii_hash(SUBJECT["email"]) in exported  # the hash stands in for the address


# --- filters -------------------------------------------------------------------------------------


@pytest.fixture
def mixed_log():
    rita = Actor(kind="user", id="3", label="rita")
    client_actor = Actor(kind="api_client", id="9", label="api client acme-crm")
    audit_record(action="request.submitted", actor=client_actor, target_type="request", target_id="RTBF-AAA222", data={"channel": "api"})
    audit_record(action="request.verified", actor=client_actor, target_type="request", target_id="RTBF-AAA222")
    audit_record(action="request.submitted", actor=SYSTEM, target_type="request", target_id="RTBF-BBB333", data={"channel": "web"})
    audit_record(action="request.approved", actor=rita, target_type="request", target_id="RTBF-AAA222")
    audit_record(action="adapter.registered", actor=SYSTEM, target_type="adapter", target_id="7")


def _shown_seqs(client, **params) -> list[int]:
    response = client.get(LOG, params)
    assert response.status_code == 200
    return [event.seq for event in response.context["page"].rows]


def test_filter_by_request_reference_any_case(client, auditor, mixed_log):
    assert _shown_seqs(client, request="RTBF-AAA222") == [1, 2, 4]
    assert _shown_seqs(client, request="rtbf-aaa222") == [1, 2, 4]
    assert _shown_seqs(client, request="RTBF-NOPE99") == []


def test_filter_by_request_id_finds_the_events_of_its_reference(client, auditor, submitted):
    seqs = _shown_seqs(client, request=str(submitted.pk))
    assert seqs and seqs == list(AuditEvent.objects.filter(target_id=submitted.reference).values_list("seq", flat=True))


def test_filter_by_actor_action_prefix_and_their_combination(client, auditor, mixed_log):
    assert _shown_seqs(client, actor="ACME") == [1, 2]
    assert _shown_seqs(client, action="request.") == [1, 2, 3, 4]
    assert _shown_seqs(client, action="request.submitted") == [1, 3]
    assert _shown_seqs(client, action="adapter") == [5]
    assert _shown_seqs(client, actor="acme", action="request.verified") == [2]
    assert _shown_seqs(client, request="RTBF-AAA222", actor="rita") == [4]


def test_filter_by_date_range_includes_the_end_date(client, auditor, mixed_log):
    today = timezone.now().date()
    assert _shown_seqs(client, since=today.isoformat(), until=today.isoformat()) == [1, 2, 3, 4, 5]
    assert _shown_seqs(client, since=(today + timedelta(days=1)).isoformat()) == []
    assert _shown_seqs(client, until=(today - timedelta(days=1)).isoformat()) == []


def test_an_inverted_date_range_is_explained_not_applied(client, auditor, mixed_log):
    response = client.get(LOG, {"since": "2030-05-02", "until": "2030-05-01"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "The end date is before the start date." in page
    assert "Correct the filters above" in page
    bad = client.get(LOG, {"since": "not-a-date"})
    assert "Enter a valid date." in bad.content.decode()


def test_target_links_filter_by_that_target(client, auditor, mixed_log):
    page = client.get(LOG).content.decode()
    assert 'href="?request=RTBF-BBB333"' in page


def test_the_log_is_paginated_by_cursor_and_page_links_keep_the_filters(client, auditor):
    for n in range(61):
        audit_record(action="request.approved" if n % 2 else "request.queued", actor=SYSTEM, target_type="request", target_id=f"RTBF-P{n:05d}")
    first = client.get(LOG, {"action": "request."})
    page = first.context["page"]
    assert [e.seq for e in page.rows] == list(range(1, 51))
    assert page.previous is None
    html = first.content.decode()
    assert "61 events match the filters. Showing #1–#50." in html
    assert f'href="?action=request.&amp;cursor={page.next_token}" rel="next"' in html
    second = client.get(LOG, {"action": "request.", "cursor": page.next_token})
    assert [e.seq for e in second.context["page"].rows] == list(range(51, 62))
    assert second.context["page"].next is None
    assert "Showing #51–#61." in second.content.decode()
    back = client.get(LOG, {"action": "request.", "cursor": second.context["page"].previous_token})
    assert [e.seq for e in back.context["page"].rows] == list(range(1, 51))
    latest = client.get(LOG, {"action": "request.", "cursor": LAST_PAGE.encode()})
    assert f'cursor={LAST_PAGE.encode()}">Latest »</a>' in html
    assert [e.seq for e in latest.context["page"].rows] == list(range(12, 62))
    assert latest.context["page"].next is None and latest.context["page"].previous is not None


# --- chain status --------------------------------------------------------------------------------


def test_the_chain_status_box_says_ok_with_the_count(client, auditor, mixed_log):
    page = client.get(LOG).content.decode()
    assert "Chain verified" in page
    assert "All 5 events checked" in page


def test_the_chain_status_box_shows_the_first_broken_event_with_a_link(client, auditor, mixed_log):
    _tamper("""UPDATE audit_auditevent SET actor_label = 'someone else' WHERE seq = 3""")
    page = client.get(LOG).content.decode()
    assert "BROKEN" in page
    assert "event #3 was altered (its hash does not match its content)" in page
    assert "2 events verified before it" in page
    assert 'href="?from_seq=3#event-3">Show event #3</a>' in page
    assert _shown_seqs(client, from_seq=3) == [3, 4, 5]


# --- CSV export ----------------------------------------------------------------------------------


def test_export_streams_the_filtered_rows_with_their_hashes(client, auditor, mixed_log):
    response = client.get(EXPORT, {"request": "RTBF-AAA222"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-')
    rows = _export_rows(response)
    assert list(rows[0]) == [
        "seq",
        "created_at",
        "actor_kind",
        "actor_id",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "description",
        "data",
        "request_id",
        "prev_hash",
        "hash",
    ]
    assert [row["seq"] for row in rows] == ["1", "2", "4"]
    stored = {event.seq: event for event in AuditEvent.objects.all()}
    for row in rows:
        event = stored[int(row["seq"])]
        assert (row["hash"], row["prev_hash"], row["action"], row["created_at"]) == (event.hash, event.prev_hash, event.action, event.created_at.isoformat())
    assert rows[0]["data"] == '{"channel":"api"}'
    assert rows[0]["description"] == "Request RTBF-AAA222 submitted via api"


def test_every_export_is_itself_recorded_with_its_filters_and_row_count(client, auditor, mixed_log):
    rows = _export_rows(client.get(EXPORT, {"actor": "acme"}))
    assert len(rows) == 2
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.actor_label == "audrey"
    assert exported.data == {"format": "csv", "filters": {"actor_label": "acme"}, "rows": 2}
    assert exported.description == "Audit log exported as csv"
    # A later full export holds the earlier export's event, but never its own.
    everything = _export_rows(client.get(EXPORT))
    assert [row["seq"] for row in everything] == ["1", "2", "3", "4", "5", "6"]
    assert everything[-1]["action"] == "audit.exported"
    assert AuditEvent.objects.filter(action="audit.exported").count() == 2
    latest = AuditEvent.objects.filter(action="audit.exported").last()
    assert latest.data["rows"] == 6 and latest.seq == 7


def test_exported_rows_link_into_a_chain(client, auditor, mixed_log):
    rows = _export_rows(client.get(EXPORT))
    assert rows[0]["prev_hash"] == "0" * 64
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in zip(rows, rows[1:]))


def test_export_cells_cannot_run_as_spreadsheet_formulas(client, auditor):
    audit_record(action="request.approved", actor=Actor(kind="user", id="5", label='=HYPERLINK("http://evil")'), target_type="request", target_id="RTBF-ABC234")
    row = _export_rows(client.get(EXPORT))[0]
    assert row["actor_label"] == '\'=HYPERLINK("http://evil")'


def test_export_with_invalid_filters_is_refused_and_not_recorded(client, auditor, mixed_log):
    response = client.get(EXPORT, {"since": "2030-05-02", "until": "2030-05-01"})
    assert response.status_code == 400
    assert "The end date is before the start date." in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_the_page_offers_an_export_of_what_it_shows(client, auditor, mixed_log):
    page = client.get(LOG, {"action": "request.", "verify": "full"}).content.decode()
    assert f'href="{EXPORT}?action=request."' in page
    assert 'href="/audit/export.json?action=request."' in page
    assert "Export these 4 as CSV" in page


def test_an_event_whose_data_reuses_a_template_name_still_renders(client, auditor):
    audit_record(
        action="request.rejected", actor=SYSTEM, target_type="request", target_id="RTBF-ABC234", data={"target": "spoof", "actor": "spoof", "reason": "dup"}
    )
    page = client.get(LOG).content.decode()
    assert "Request RTBF-ABC234 rejected: dup" in page
