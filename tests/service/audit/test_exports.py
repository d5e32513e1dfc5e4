"""CSV and JSON exports of a date range: exactly the right events, streamed, audited, and (JSON)
re-verifiable offline with nothing but the standard library."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from service.accounts.roles import SYSTEM, Actor
from service.audit import offline_verify
from service.audit.models import AuditEvent
from service.audit.services import audit_record
from service.common.hashing import pii_hash
from tests.service.audit.tampering import tamper

pytestmark = pytest.mark.django_db

CSV_EXPORT = "/audit/export.csv"
JSON_EXPORT = "/audit/export.json"
RITA = Actor(kind="user", id="3", label="rita")


@pytest.fixture
def days_log(monkeypatch):
    """Events on four days (UTC): #1, #2 on 29 April, #3 just before midnight on 30 April, #4 at
    midnight and #5 on 1 May, #6 on 2 May; then time goes on as usual for the export itself."""
    moments = [
        datetime(2030, 4, 29, 9, 0, tzinfo=UTC),
        datetime(2030, 4, 29, 17, 30, tzinfo=UTC),
        datetime(2030, 4, 30, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2030, 5, 1, 0, 0, tzinfo=UTC),
        datetime(2030, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
        datetime(2030, 5, 2, 8, 0, tzinfo=UTC),
    ]
    real_now = timezone.now
    for index, moment in enumerate(moments):
        monkeypatch.setattr(timezone, "now", lambda moment=moment: moment)
        action, data = (
            ("request.rejected", {"from": "verified", "reason": f"Duplicate {index} – naïve “quotes”"})
            if index % 2
            else ("request.approved", {"from": "verified", "score": 0.5 + index})
        )
        audit_record(action=action, actor=RITA if index % 2 else SYSTEM, target_type="request", target_id=f"RTBF-D{index:05d}", data=data)
    monkeypatch.setattr(timezone, "now", real_now)


def _body(response) -> str:
    assert response.status_code == 200, response.content
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


def _json_export(client, **params) -> dict:
    response = client.get(JSON_EXPORT, params)
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-') and response["Content-Disposition"].endswith('.json"')
    return json.loads(_body(response))


RANGE = {"since": "2030-04-30", "until": "2030-05-01"}


def test_csv_export_of_a_date_range_holds_exactly_its_events(client, auditor, days_log):
    rows = list(csv.DictReader(io.StringIO(_body(client.get(CSV_EXPORT, RANGE)))))
    assert [row["seq"] for row in rows] == ["3", "4", "5"]
    assert rows[0]["created_at"] == "2030-04-30T23:59:59.999999+00:00"
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.data == {"format": "csv", "filters": {"since": "2030-04-30 00:00:00+00:00", "until": "2030-05-02 00:00:00+00:00"}, "rows": 3}


def test_json_export_of_a_date_range_holds_exactly_its_events_and_its_context(client, auditor, days_log):
    document = _json_export(client, **RANGE)
    assert [event["seq"] for event in document["events"]] == [3, 4, 5]
    assert document["count"] == 3
    assert document["format"] == "forget-service/audit-export" and document["version"] == 1
    assert document["criteria"] == {
        "given": {"since": "2030-04-30", "until": "2030-05-01"},
        "applied": {"since": "2030-04-30T00:00:00+00:00", "until": "2030-05-02T00:00:00+00:00"},
    }
    assert document["exported_by"] == "audrey"
    export = AuditEvent.objects.get(action="audit.exported")
    assert document["export_event"]["seq"] == export.seq == 7
    assert document["export_event"]["hash"] == export.hash
    assert document["exported_at"] == export.created_at.isoformat()
    assert export.data == {"format": "json", "filters": {"since": "2030-04-30 00:00:00+00:00", "until": "2030-05-02 00:00:00+00:00"}, "rows": 3}
    chain = document["chain_status"]
    assert chain["ok"] is True and chain["checked"] == 6 and chain["verified_through_seq"] == 6 and chain["first_broken_seq"] is None
    stored = {event.seq: event for event in AuditEvent.objects.all()}
    for event in document["events"]:
        assert event["hash"] == stored[event["seq"]].hash
        assert event["prev_hash"] == stored[event["seq"]].prev_hash


def test_json_export_hashes_reverify_offline(client, auditor, days_log, tmp_path):
    document = _json_export(client, **RANGE)
    check = offline_verify.verify_export(document)
    assert check.ok, check.problems
    assert (check.events, check.links, check.gaps) == (3, 2, 0)
    assert check.summary() == "export verifies: 3 event hashes match their content, 2 links between consecutive events hold"

    # The standalone script, copied away from the service and run without site-packages (no Django).
    script = tmp_path / "offline_verify.py"
    shutil.copy(Path(offline_verify.__file__), script)
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run([sys.executable, "-I", "-S", str(script), str(export_file)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "export verifies: 3 event hashes match their content" in result.stdout
    call_command("audit_verify", "--export", str(export_file))


def test_a_changed_export_fails_offline_verification(client, auditor, days_log, tmp_path):
    document = _json_export(client)
    assert offline_verify.verify_export(document).ok
    assert [event["seq"] for event in document["events"]] == [1, 2, 3, 4, 5, 6]
    assert document["events"][0]["prev_hash"] == "0" * 64

    edited = json.loads(json.dumps(document))
    edited["events"][3]["data"]["reason"] = "Not a duplicate"  # event #4
    check = offline_verify.verify_export(edited)
    assert not check.ok and check.problems == ["event #4: its hash does not match its content"]

    dropped = json.loads(json.dumps(document))
    del dropped["events"][2]  # event #3 dropped from an export of the whole log
    dropped["count"] = 5
    assert offline_verify.verify_export(dropped).problems == ["event #3 is missing from an export of the whole log"]
    truncated = json.loads(json.dumps(document))
    del truncated["events"][-1]
    assert offline_verify.verify_export(truncated).problems == [
        "the document says 6 events but holds 5",
        "an export of the whole log must end at event #6, before its own audit event",
    ]

    forged = json.loads(json.dumps(document))
    forged["events"][3]["prev_hash"] = "f" * 64
    forged["events"][3]["hash"] = offline_verify.event_hash(forged["events"][3])  # a consistent but forged row
    # ... and the next event no longer links to it either.
    assert offline_verify.verify_export(forged).problems == ["event #4 does not link to event #3", "event #5 does not link to event #4"]

    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edited), encoding="utf-8")
    with pytest.raises(CommandError, match=r"export does NOT verify: event #4: its hash does not match its content"):
        call_command("audit_verify", "--export", str(path))


def test_a_filtered_json_export_links_where_its_events_are_consecutive(client, auditor, days_log):
    document = _json_export(client, action="request.rejected")
    assert [event["seq"] for event in document["events"]] == [2, 4, 6]
    check = offline_verify.verify_export(document)
    assert check.ok and (check.links, check.gaps) == (0, 2)


def test_json_export_reports_a_broken_chain_at_export(client, auditor, days_log):
    tamper("UPDATE audit_auditevent SET actor_label = 'mallory' WHERE seq = 2")
    document = _json_export(client)
    chain = document["chain_status"]
    assert chain["ok"] is False and chain["first_broken_seq"] == 2 and chain["verified_through_seq"] == 1
    assert "event #2 was altered" in chain["reason"]
    assert offline_verify.verify_export(document).problems[0] == "event #2: its hash does not match its content"


def test_every_json_export_is_audited_and_a_later_export_holds_it(client, auditor, days_log):
    _json_export(client, q="duplicate")
    first = AuditEvent.objects.get(action="audit.exported")
    assert first.data == {"format": "json", "filters": {"search": pii_hash("duplicate")}, "rows": 3}
    assert first.description == "Audit log exported as json"
    later = _json_export(client)
    assert [event["seq"] for event in later["events"]] == [1, 2, 3, 4, 5, 6, 7]
    assert later["events"][-1]["action"] == "audit.exported"
    assert offline_verify.verify_export(later).ok


def test_exports_stream_a_large_log(client, auditor):
    for n in range(2500):  # more than one database chunk
        audit_record(action="request.approved", actor=SYSTEM, target_type="request", target_id=f"RTBF-L{n:05d}")
    response = client.get(JSON_EXPORT)
    chunks = list(response.streaming_content)
    assert len(chunks) > 2500  # one piece per event: nothing is built in memory first
    document = json.loads(b"".join(chunks))
    assert document["count"] == 2500 and len(document["events"]) == 2500
    assert offline_verify.verify_export(document).links == 2499


@pytest.mark.parametrize("url", [CSV_EXPORT, JSON_EXPORT])
def test_a_bad_date_range_is_explained_and_nothing_is_exported_or_recorded(client, auditor, days_log, url):
    response = client.get(url, {"since": "2030-05-02", "until": "2030-05-01"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "The end date is before the start date." in page
    assert "Correct the filters above to see events." in page
    response = client.get(url, {"since": "1 May"})
    assert response.status_code == 400 and "Enter a valid date." in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


@pytest.mark.parametrize("url", [CSV_EXPORT, JSON_EXPORT])
def test_reviewers_cannot_export(client, staff, url):
    client.force_login(staff("reviewer"))
    assert client.get(url).status_code == 403
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


@pytest.mark.parametrize("url", [CSV_EXPORT, JSON_EXPORT])
def test_anonymous_visitors_are_sent_to_log_in(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
