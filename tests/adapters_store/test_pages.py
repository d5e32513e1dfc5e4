"""The registry pages (/registry/): what reviewers, auditors and admins see and may do."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from adapters_store.models import AdapterVersion
from adapters_store.services import gateway_report_loaded

pytestmark = pytest.mark.django_db


def test_index_shows_what_is_live_the_generation_and_the_gateways(staff_client, register, erasure):
    request = erasure("staged")
    live = register("unit-live", request=request, passed=True)
    register("unit-candidate", passed=False)
    gateway_report_loaded(gateway_id="gateway-7", generation=1, unit_ids=["unit-live"])

    page = staff_client("auditor").get(reverse("registry"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "generation 1" in html and "gateway-7" in html and "unit-candidate" in html
    assert request.reference in html and live.adapter_sha256[:12] in html and live.adapter_sha256 in html  # short, full on hover
    assert 'href="/registry/"' in html  # the nav link to the registry
    live_section = html.split('id="h-live"')[1].split('id="h-gateways"')[0]
    assert "unit-live" in live_section and "unit-candidate" not in live_section


def test_index_flags_a_gateway_that_did_not_load_a_live_unit(staff_client, register):
    register("unit-a", passed=True)
    register("unit-b", passed=True)
    gateway_report_loaded(gateway_id="gateway-1", generation=2, unit_ids=["unit-a"])  # refused unit-b
    html = staff_client("reviewer").get(reverse("registry")).content.decode()
    assert "not loaded:" in html and "unit-b" in html.split("not loaded:")[1][:200]


def test_status_filter(staff_client, register):
    register("unit-live", passed=True)
    register("unit-candidate", passed=False)
    html = staff_client("reviewer").get(reverse("registry"), {"status": "candidate"}).content.decode()
    table = html.split('id="h-all"')[1]
    assert "unit-candidate" in table and "unit-live" not in table


def test_unit_page_shows_history_and_offers_changes_only_to_reviewers(staff_client, register):
    register("unit-a", passed=True, metrics={"leak_upper_bound": 0.02})
    url = reverse("registry-unit", args=["unit-a"])
    reviewer_html = staff_client("reviewer").get(url).content.decode()
    assert "Activation history" in reviewer_html and "leak_upper_bound" in reviewer_html
    assert 'action="/registry/units/unit-a/deactivate/"' in reviewer_html and 'for="deactivate-reason"' in reviewer_html
    auditor_html = staff_client("auditor").get(url).content.decode()
    assert "Activation history" in auditor_html and "/deactivate/" not in auditor_html


def test_reviewer_deactivates_from_the_page(staff_client, register):
    register("unit-a", passed=True)
    reviewer = staff_client("reviewer")
    no_reason = reviewer.post(reverse("registry-unit-deactivate", args=["unit-a"]), {"reason": ""}, follow=True)
    assert "A reason is required" in no_reason.content.decode()
    assert AdapterVersion.objects.get(unit_id="unit-a").status == "active"

    done = reviewer.post(reverse("registry-unit-deactivate", args=["unit-a"]), {"reason": "maintenance window"}, follow=True)
    assert done.redirect_chain[-1][0] == reverse("registry-unit", args=["unit-a"])
    html = done.content.decode()
    assert "Unit unit-a deactivated." in html and "maintenance window" in html
    assert AdapterVersion.objects.get(unit_id="unit-a").status == "inactive"


def test_the_approver_is_told_why_they_cannot_activate(settings, staff_client, register, erasure, staff):
    settings.FORGET = {**settings.FORGET, "AUTO_ACTIVATE": False}
    approver = staff("reviewer")
    register("unit-a", request=erasure("staged", approver=approver), passed=True)
    answer = staff_client("reviewer", user=approver).post(reverse("registry-unit-activate", args=["unit-a"]), follow=True)
    assert "another reviewer activates its unit" in answer.content.decode()
    assert AdapterVersion.objects.get(unit_id="unit-a").status == "candidate"


def test_auditor_cannot_change_anything_from_the_pages(staff_client, register):
    register("unit-a", passed=True)
    answer = staff_client("auditor").post(reverse("registry-unit-revoke", args=["unit-a"]), {"reason": "x"})
    assert answer.status_code == 403
    assert AdapterVersion.objects.get(unit_id="unit-a").status == "active"


def test_live_page_answers_for_a_chosen_time(staff_client, register, staff, actor_of):
    from adapters_store.services import adapter_deactivate

    version = register("unit-a", passed=True)
    between = timezone.now()
    adapter_deactivate(version_id=version.pk, actor=actor_of(staff("reviewer")), reason="maintenance")
    auditor = staff_client("auditor")

    form = auditor.get(reverse("registry-live"))
    assert form.status_code == 200 and 'type="datetime-local"' in form.content.decode() and 'for="id_at"' in form.content.decode()
    then = auditor.get(reverse("registry-live"), {"at": between.strftime("%Y-%m-%dT%H:%M:%S.%f")}).content.decode()
    assert "unit-a" in then.split('id="h-result"')[1] and "generation 1" in then
    later = auditor.get(reverse("registry-live"), {"at": timezone.now().isoformat()}).content.decode()
    assert "No unit was live at that time." in later


def test_live_page_with_a_bad_time_says_so(staff_client):
    answer = staff_client("reviewer").get(reverse("registry-live"), {"at": "next tuesday"})
    assert answer.status_code == 400
    assert "Enter a valid date/time." in answer.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client):
    answer = client.get(reverse("registry"))
    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/")
