"""The shared certificate rule table: the dossier, the request page and the unit page render a
certificate's rules the same way, and a rule with keys or a status added later still renders."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string

from service.accounts.roles import actor_for_client, actor_for_user
from service.unlearning.models import UnlearningJob
from tests.service.dossier.factories import certified_request, sample_certificate


def text_of(html: str) -> str:
    import html as entities

    return entities.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_rules_with_a_lower_bound_an_unknown_key_and_an_inconclusive_status_render():
    rules = [
        {
            "name": "leak F",
            "metric": "leak rate on F (gated)",
            "value": 0.0,
            "upper95": 0.31,
            "lower95": 0.0,
            "n": 8,
            "threshold": 0.0,
            "comparison": "<=",
            "status": "pass",
        },
        {
            "name": "leak P",
            "metric": "leak rate on P (gated)",
            "value": 0.25,
            "upper95": 0.52,
            "lower95": 0.03,
            "n": 4,
            "threshold": 0.05,
            "comparison": "<=",
            "status": "inconclusive",
            "power": 0.4,
        },
    ]
    html = render_to_string("common/certificate_rules.html", {"rules": rules, "table_id": "t"})
    text = text_of(html)
    assert "Lower 95%" in text and "0.030" in text and "power" in text and "0.400" in text
    assert '<span class="badge warn">inconclusive</span>' in html and '<span class="badge good">pass</span>' in html
    assert "{" not in text  # no raw dict


def test_rules_of_today_have_both_bounds_and_no_raw_keys():
    html = render_to_string("common/certificate_rules.html", {"rules": sample_certificate(certified_unit="u")["rules"]})
    assert "Lower 95%" in html and "union FPR" in html and "leak name_forms" in html
    assert ">family<" not in html  # a known key, not an extra column


@pytest.mark.django_db
def test_the_unit_page_shows_its_certificate_as_the_rule_table(staff_client, staff, api_client_key):
    owner, _ = api_client_key(("create", "read", "trusted_identity"))
    request = certified_request(owner=actor_for_client(owner), approver=actor_for_user(staff("reviewer")))
    version = request.adapter_versions.get()
    public = {k: v for k, v in sample_certificate(certified_unit=version.unit_id).items() if k != "personal_data"}
    type(version).objects.filter(pk=version.pk).update(certificate_metrics=public)
    html = staff_client("auditor").get(f"/registry/units/{version.unit_id}/").content.decode()
    assert (
        'id="unit-rules"' in html
        and "share of R probes answered correctly by the base that the gated system still answers" in html
        and "'upper95'" not in html
        and "{&#x27;" not in html
    )
    assert f'href="/staff/requests/{request.pk}/dossier/"' in html


@pytest.mark.django_db
def test_a_job_whose_certificate_failed_says_so_whatever_its_last_phase(staff_client, staff, api_client_key):
    from service.requests.models import ErasureRequest

    owner, _ = api_client_key(("create", "read", "trusted_identity"))
    request = certified_request(owner=actor_for_client(owner), approver=actor_for_user(staff("reviewer")))
    job = UnlearningJob.objects.get(request=request)
    certificate = dict(job.certificate)
    certificate["rules"] = [dict(rule, status="fail", value=0.25) if rule["name"] == "leak P" else rule for rule in certificate["rules"]]
    UnlearningJob.objects.filter(pk=job.pk).update(
        status="failed", phase="registering", percent=97.0, certificate=certificate, certificate_passed=False, failure_reason="The certificate did not pass."
    )
    ErasureRequest.objects.filter(pk=request.pk).update(status="failed")
    text = text_of(staff_client("reviewer").get(f"/staff/requests/{request.pk}/").content.decode())
    assert "Failed at the certificate: it did not pass" in text and "Registering the unit" not in text
    assert "Certificate rules not met: leak P (fail: 0.250, <= 0.05 required)." in text
