"""Full-text search over the audit log (PostgreSQL): by action code, by words of a reason, with the
search syntax an auditor types, on the page and through the GIN index of migration 0003."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from service.accounts.roles import SYSTEM, Actor
from service.audit.models import AuditEvent
from service.audit.search import SEARCH_INDEX_NAME
from service.audit.selectors import audit_chain_verify, audit_events
from service.audit.services import audit_record
from service.common.hashing import pii_hash

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="full-text search is PostgreSQL's; SQLite falls back to substrings")

RITA = Actor(kind="user", id="3", label="rita")
LOG = "/audit/"


def _auditor():
    from service.accounts.roles import Role

    return Actor(kind="user", id="1", label="audrey", roles=frozenset({Role.AUDITOR}))


@pytest.fixture
def log(db):
    """Seven events: 1 submitted, 2 rejected (duplicate), 3 approved, 4 rejected (wrong person),
    5 failed (GPU out of memory), 6 adapter deactivated (refuses unrelated questions), 7 forget set frozen."""
    audit_record(action="request.submitted", actor=SYSTEM, target_type="request", target_id="RTBF-AAA222", data={"channel": "web"})
    audit_record(
        action="request.rejected", actor=RITA, target_type="request", target_id="RTBF-AAA222", data={"from": "verified", "reason": "Duplicate of RTBF-XYZ789"}
    )
    audit_record(action="request.approved", actor=RITA, target_type="request", target_id="RTBF-BBB333", data={"from": "verified"})
    audit_record(
        action="request.rejected",
        actor=RITA,
        target_type="request",
        target_id="RTBF-CCC444",
        data={"from": "verified", "reason": "The facts are about the wrong person"},
    )
    audit_record(action="request.failed", actor=SYSTEM, target_type="request", target_id="RTBF-BBB333", data={"reason": "GPU out of memory while training"})
    audit_record(action="adapter.deactivated", actor=RITA, target_type="adapter", target_id="7", data={"reason": "Refuses unrelated questions about Lisbon"})
    audit_record(action="forget_set.frozen", actor=SYSTEM, target_type="request", target_id="RTBF-BBB333", data={"items": 3, "content_hash": "sha256:ab12"})


def _found(text: str, **filters) -> list[int]:
    return list(audit_events(actor=_auditor(), search=text, **filters).values_list("seq", flat=True))


def test_search_finds_events_by_action_code(log):
    assert _found("request.rejected") == [2, 4]
    assert _found("forget_set.frozen") == [7]
    assert _found("adapter") == [6]
    assert _found("approved") == [3]


def test_search_finds_events_by_the_words_of_their_reason(log):
    assert _found("duplicate") == [2]
    assert _found("wrong person") == [4]
    assert _found("lisbon") == [6]
    assert _found("memory") == [5]
    assert _found("RTBF-XYZ789") == [2]  # a reference quoted in a reason


def test_search_matches_other_forms_of_a_word(log):
    assert _found("duplicates") == [2]
    assert _found("rejecting") == [2, 4]
    assert _found("refused") == [6]


def test_search_syntax_phrases_or_and_exclusion(log):
    assert _found('"wrong person"') == [4]
    assert _found('"person wrong"') == []
    assert _found("duplicate or lisbon") == [2, 6]
    assert _found("request.rejected -duplicate") == [4]
    assert _found("rejected memory") == []  # every word must match the same event


def test_search_combines_with_the_other_filters(log):
    assert _found("verified", action="request.rejected") == [2, 4]
    assert _found("duplicate", action="adapter.") == []
    assert _found("verified", target_id="RTBF-AAA222") == [2]  # the status the request came from, in data
    assert _found("rita") == []  # actors have their own filter: search is over actions and data


def test_search_of_nonsense_or_punctuation_finds_nothing_and_does_not_fail(log):
    assert _found("zebra") == []
    assert _found('"') == []
    assert _found("&|!:*()") == []


def test_search_on_the_page_and_in_its_links(client, staff, log):
    client.force_login(staff("auditor"))
    response = client.get(LOG, {"q": "duplicate"})
    assert response.status_code == 200
    assert [event.seq for event in response.context["page"].rows] == [2]
    page = response.content.decode()
    assert "1 event matches the filters." in page
    assert 'href="/audit/export.csv?q=duplicate"' in page


def test_subject_data_cannot_be_found_because_it_is_not_there(client, staff):
    from service.requests.services import request_submit_web

    request_submit_web(
        name="Zoë Kowalczyk", email="zoe.kowalczyk@example.com", regulation="gdpr", facts=["Zoë Kowalczyk lives in Gdańsk"], evidence_prompts=[], attested=True
    )
    assert AuditEvent.objects.exists()
    for text in ("Kowalczyk", "zoe.kowalczyk@example.com", "Gdańsk"):
        assert _found(text) == []
    # An export of a search records the search's hash, never the words typed.
    client.force_login(staff("auditor"))
    client.get("/audit/export.csv", {"q": "Kowalczyk"})
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.data["filters"] == {"search": pii_hash("Kowalczyk")}
    assert "Kowalczyk" not in str(exported.data)


def test_search_uses_the_gin_index(log):
    assert SEARCH_INDEX_NAME in connection.introspection.get_constraints(connection.cursor(), "audit_auditevent")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = audit_events(actor=_auditor(), search="duplicate").explain()
    assert SEARCH_INDEX_NAME in plan


@pytest.mark.django_db(transaction=True)
def test_the_index_migration_runs_on_a_log_with_rows_and_its_trigger():
    """Dropping and building the index again on a populated, append-only table: the trigger refuses
    nothing (no row is rewritten), and the chain still verifies afterwards."""
    audit_record(action="request.rejected", actor=RITA, target_type="request", target_id="RTBF-AAA222", data={"reason": "duplicate"})
    audit_record(action="request.approved", actor=RITA, target_type="request", target_id="RTBF-BBB333")
    before = list(AuditEvent.objects.values_list("seq", "hash"))
    try:
        call_command("migrate", "audit", "0002", verbosity=0)
        assert SEARCH_INDEX_NAME not in connection.introspection.get_constraints(connection.cursor(), "audit_auditevent")
    finally:
        call_command("migrate", "audit", verbosity=0)
    assert SEARCH_INDEX_NAME in connection.introspection.get_constraints(connection.cursor(), "audit_auditevent")
    assert list(AuditEvent.objects.values_list("seq", "hash")) == before
    assert audit_chain_verify().ok
    assert _found("duplicate") == [1]
