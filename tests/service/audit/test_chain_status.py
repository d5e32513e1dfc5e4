"""The chain status on the auditor's page: the same check as `audit_verify`, resumed from the last
verified event between full walks, and never hiding a tampered event for longer than allowed."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

import service.audit.selectors as selectors
from service.accounts.roles import SYSTEM, Actor
from service.audit.services import audit_record
from tests.service.audit.tampering import tamper

pytestmark = pytest.mark.django_db

LOG = "/audit/"
RITA = Actor(kind="user", id="3", label="rita")


def _append(count: int) -> None:
    for n in range(count):
        audit_record(action="request.approved", actor=RITA if n % 2 else SYSTEM, target_type="request", target_id=f"RTBF-S{n:05d}", data={"from": "verified"})


def _tamper(seq: int) -> None:
    tamper('UPDATE audit_auditevent SET data = \'{"from": "rejected"}\'::jsonb WHERE seq = %s', [seq])


@pytest.fixture
def hashes_recomputed(monkeypatch):
    """Counts the events whose hash the check recomputes (it still recomputes them all)."""
    calls = []
    original = selectors._recomputed_hash

    def counting(event):
        calls.append(event.seq)
        return original(event)

    monkeypatch.setattr(selectors, "_recomputed_hash", counting)
    return calls


def test_the_first_visit_walks_the_whole_chain(client, auditor):
    _append(5)
    page = client.get(LOG).content.decode()
    assert "All 5 events checked" in page
    assert "Verified up to event #5 at" in page
    assert "This visit walked the whole chain from event #1." in page


def test_later_visits_verify_only_the_events_appended_since(client, auditor, hashes_recomputed):
    _append(30)
    client.get(LOG)
    assert len(hashes_recomputed) == 30
    _append(3)
    hashes_recomputed.clear()
    page = client.get(LOG).content.decode()
    assert hashes_recomputed == [30, 31, 32, 33]  # the last verified event, then the new ones
    assert "All 33 events checked" in page
    assert "Verified up to event #33" in page
    assert "this visit checked the events after #30" in page


def test_the_first_broken_event_is_shown_with_a_link(client, auditor):
    _append(6)
    _tamper(4)
    page = client.get(LOG).content.decode()
    assert "BROKEN" in page and "Chain verified" not in page
    assert "event #4 was altered (its hash does not match its content). 3 events verified before it." in page
    assert 'href="?from_seq=4#event-4">Show event #4</a>' in page
    shown = client.get(LOG, {"from_seq": 4})
    assert [event.seq for event in shown.context["page"].rows] == [4, 5, 6]
    assert 'id="event-4"' in shown.content.decode()


def test_an_event_tampered_after_the_last_check_is_found_on_the_next_visit(client, auditor):
    _append(5)
    client.get(LOG)
    _append(2)
    _tamper(6)  # after the checkpoint: the resumed check reads it
    assert "event #6 was altered" in client.get(LOG).content.decode()


def test_tampering_with_the_last_verified_event_forces_a_full_walk(client, auditor):
    _append(5)
    client.get(LOG)
    _tamper(5)
    assert "event #5 was altered" in client.get(LOG).content.decode()


def test_an_older_event_tampered_between_full_walks_is_found_by_a_full_check(client, auditor, settings):
    _append(8)
    assert "Chain verified" in client.get(LOG).content.decode()
    _tamper(3)
    # Within the full-walk interval the page resumes after #8 and says how far it verified and when...
    resumed = client.get(LOG).content.decode()
    assert "Chain verified" in resumed and "this visit checked the events after #8" in resumed
    # ...but `audit_verify` always walks everything,
    with pytest.raises(CommandError, match=r"BROKEN at event #3"):
        call_command("audit_verify")
    # an auditor can ask for a full walk at once,
    assert "event #3 was altered" in client.get(LOG, {"verify": "full"}).content.decode()
    # and once the interval has passed, the page walks everything by itself.
    settings.AUDIT_CHAIN_FULL_CHECK_SECONDS = 0
    assert "event #3 was altered" in client.get(LOG).content.decode()


def test_a_missing_event_is_reported(client, auditor):
    _append(4)
    tamper("DELETE FROM audit_auditevent WHERE seq = 2")
    page = client.get(LOG).content.decode()
    assert "event #2 is missing (next is #3)" in page
    assert 'href="?from_seq=2#event-2">Show event #2</a>' in page


def test_the_status_needs_the_read_audit_capability():
    from service.common.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        selectors.audit_chain_status(actor=RITA)
