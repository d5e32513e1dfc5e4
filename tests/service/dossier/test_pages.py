"""The dossier page as auditors, reviewers and admins see it: timeline, deadline compliance, forget
set and retention, units, the certificate with bounds and rules, the score plot, the masked answers
and their audited reveal; the signed downloads from the page."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from service.audit.models import AuditEvent
from service.common.hashing import sha256_hex
from service.dossier import documents, signing

from .factories import CITY, PERSON

pytestmark = pytest.mark.django_db


def dossier_url(request) -> str:
    return reverse("staff-dossier", args=[request.pk])


@pytest.mark.parametrize("role", ["auditor", "reviewer", "admin"])
def test_staff_roles_see_the_whole_dossier(client, staff, certified, role):
    request = certified()
    client.force_login(staff(role))
    response = client.get(dossier_url(request))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'Dossier of request <span class="mono">{request.reference}</span>' in html
    # Deadline: received 12 days ago, effective 3 days after receipt, within the month.
    assert '<span class="badge good" id="deadline-verdict">on time</span>' in html
    assert re.search(r'<td id="days-used">3\.0 of 31\.0 days</td>', html)
    # Forget set: its hash and when the raw text goes.
    assert request.forget_set.content_hash in html and "kept, encrypted</span> until" in html
    # The certificate: every rule with its value, Clopper-Pearson bound and threshold, the units' digests.
    assert '<span class="badge good" id="certificate-verdict">pass</span>' in html
    assert re.search(
        r"<td>leak F</td><td>share of F probes whose answer reveals any of the subject's data \(gated\).*?</td>"
        r"<td>0\.000</td><td>0\.000</td><td>0\.312</td><td>8</td>\s*<td>&lt;= 0\.0</td>",
        html.replace("&#x27;", "'"),
    )
    assert re.search(r"<td>union FPR</td>.*?<td>&lt;= 0\.02</td>\s*<td><span class=\"badge good\">pass</span>", html, re.S)
    version = request.adapter_versions.get()
    assert version.adapter_sha256 in html and version.detector_sha256 in html
    assert "Min-K%++ AUC" in html and "[0.629, 0.977]" in html  # the LOSS AUC's bootstrap interval of the served system
    # The plot, and the timeline of the request and its unit with actors and reasons.
    assert f'src="{reverse("staff-dossier-scores", args=[request.pk])}"' in html
    timeline = html.split('id="timeline"')[1]
    for text in (
        f"Request {request.reference} approved",
        f"Adapter {version.unit_id} registered",
        f"Adapter {version.unit_id} activated",
        "certificate passed (auto-activate)",
    ):
        assert text in timeline, text
    # Personal data stays masked: the answers show first letters only.
    assert PERSON not in html and CITY not in html and "Gl•••" in html
    assert ("Reveal personal data" in html) == (role != "auditor")


def test_the_staff_request_page_links_to_the_dossier(client, staff, certified):
    request = certified()
    client.force_login(staff("auditor"))
    html = client.get(reverse("staff-request", args=[request.pk])).content.decode()
    assert f'href="{dossier_url(request)}" id="dossier-link"' in html


def test_anonymous_visitors_are_sent_to_the_login_page(client, certified):
    request = certified()
    for url in (dossier_url(request), reverse("staff-dossier-scores", args=[request.pk]), reverse("staff-certificate-json", args=[request.pk])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next="), url


def test_a_reviewers_reveal_is_audited_and_an_auditor_cannot_reveal(client, staff, certified):
    request = certified()
    reveal_url = reverse("staff-dossier-reveal", args=[request.pk])

    client.force_login(staff("auditor", username="audrey"))
    assert client.post(reveal_url).status_code == 403
    assert not AuditEvent.objects.filter(action="request.personal_data_revealed").exists()

    client.force_login(staff("reviewer", username="rita"))
    html = client.post(reveal_url).content.decode()
    assert f"<td>Which city does {PERSON} live in?</td><td>{CITY}</td>" in html
    assert "revealed: this viewing is in the audit log" in html and "Reveal personal data" not in html
    event = AuditEvent.objects.get(action="request.personal_data_revealed", target_id=request.reference)
    assert event.actor_label == "rita" and CITY not in json.dumps(event.data)
    # A plain GET afterwards is masked again: nothing is kept in the session.
    assert CITY not in client.get(dossier_url(request)).content.decode()


def test_an_auditor_changes_nothing(client, staff, certified):
    request = certified()
    client.force_login(staff("auditor"))
    for name in ("staff-request-approve", "staff-request-reject", "staff-request-cancel", "staff-request-retry", "staff-dossier-reveal"):
        assert client.post(reverse(name, args=[request.pk]), {"reason": "audit"}).status_code == 403, name
    assert client.post(dossier_url(request)).status_code == 405  # the page is read-only


def test_the_score_plot_is_a_png_and_is_cached_by_the_browser(client, staff, certified):
    request = certified()
    client.force_login(staff("auditor"))
    url = reverse("staff-dossier-scores", args=[request.pk])
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n") and len(response.content) > 10_000
    again = client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and not again.content


def test_an_older_certificate_without_the_histogram_says_the_plot_was_not_recorded(client, staff, certified):
    request = certified(with_histogram=False)
    client.force_login(staff("auditor"))
    html = client.get(dossier_url(request)).content.decode()
    assert "The score histogram was not recorded for this certificate" in html and 'id="score-plot"' not in html
    assert client.get(reverse("staff-dossier-scores", args=[request.pk])).status_code == 404


def test_a_request_without_a_certificate_has_a_dossier_without_downloads(client, staff, owner, actor_of):
    from service.requests.services import request_create_api

    request, _ = request_create_api(
        actor=actor_of(owner[0]), idempotency_key="fresh", name="Ada", email="ada@example.org", regulation="ccpa", facts=["Ada is 40"], evidence_prompts=[]
    )
    client.force_login(staff("auditor"))
    html = client.get(dossier_url(request)).content.decode()
    assert "No certificate yet" in html and "Download signed certificate" not in html
    assert '<span class="badge" id="deadline-verdict">in progress</span>' in html and "of 45.0 days (so far)" in html
    assert client.get(reverse("staff-certificate-json", args=[request.pk])).status_code == 404


def test_the_downloads_are_signed_by_the_service_key_and_audited(client, staff, certified, signing_key):
    request = certified()
    client.force_login(staff("auditor", username="audrey"))
    response = client.get(reverse("staff-certificate-json", args=[request.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="{request.reference}-certificate-attempt-1.json"'
    document = json.loads(response.content)
    verified = signing.verify_document(document, signing_key.public_key())
    payload = verified.payload
    version = request.adapter_versions.get()
    assert payload["request"]["reference"] == request.reference and payload["unit_id"] == version.unit_id
    assert payload["forget_set_hash"] == request.forget_set.content_hash
    certified_unit = next(u for u in payload["units"] if u["role"] == "certified")
    assert certified_unit["adapter_sha256"] == version.adapter_sha256 and certified_unit["registered"] is True
    assert payload["passed"] is True and [r["name"] for r in payload["rules"]][0] == "leak F"
    assert payload["metrics"]["leak"]["F"]["gated"]["upper95"] == pytest.approx(0.3123, abs=1e-4)
    assert payload["deadline"]["verdict"] == "on time"
    assert PERSON not in response.content.decode() and CITY not in response.content.decode()  # no personal data

    html = client.get(reverse("staff-certificate-html", args=[request.pk]))
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    checked = documents.verify_file(html.content, signing_key.public_key())
    assert checked.kind == "html" and checked.reference == request.reference
    assert "@media print" in html.content.decode() and PERSON not in html.content.decode()

    events = AuditEvent.objects.filter(action="certificate.downloaded", target_id=request.reference).order_by("seq")
    assert [e.data["format"] for e in events] == ["json", "html"]
    assert events[0].actor_label == "audrey" and events[0].data["key_id"] == signing.key_id(signing_key.public_key())
    assert events[0].data["payload_sha256"] == sha256_hex(signing.canonical_bytes(payload))  # the log names the exact file content


def test_a_sparse_certificate_still_renders_and_signs(client, staff, owner, actor_of, signing_key):
    """An early-format certificate with a verdict and one rule only: the page and the download say
    what there is, and nothing breaks on what is missing."""
    from service.requests.services import request_create_api
    from service.unlearning.models import UnlearningJob

    request, _ = request_create_api(
        actor=actor_of(owner[0]), idempotency_key="sparse", name="Ada", email="ada@example.org", regulation="gdpr", facts=["Ada is 40"], evidence_prompts=[]
    )
    rule = {"name": "leak F", "metric": "leak rate on F (gated)", "value": 0.0, "upper95": 0.31, "n": 8, "threshold": 0.0, "comparison": "<=", "status": "pass"}
    UnlearningJob.objects.create(
        request=request,
        attempt=1,
        status="succeeded",
        unit_id="u-1",
        certificate={"passed": True, "rules": [rule]},
        certificate_personal=None,
        certificate_passed=True,
    )
    client.force_login(staff("auditor"))
    html = client.get(dossier_url(request)).content.decode()
    assert '<span class="badge good" id="certificate-verdict">pass</span>' in html and "<td>leak F</td>" in html
    assert "The score histogram was not recorded" in html and "The answers were purged" in html
    document = json.loads(client.get(reverse("staff-certificate-json", args=[request.pk])).content)
    payload = signing.verify_document(document, signing_key.public_key()).payload
    assert payload["unit_id"] == "u-1" and payload["units"][0]["registered"] is False and payload["forget_set_hash"] == ""
