"""The registry's REST API (/api/v1/registry/): what staff read and change, what others are refused."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from adapters_store.models import AdapterVersion
from adapters_store.selectors import registry_generation

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
BASE = "/api/v1/registry"


def post(http: Client, url: str, body=None):
    return http.post(url, data=json.dumps(body if body is not None else {}), content_type="application/json")


def test_list_and_detail_show_status_digests_and_history(staff_client, register, erasure):
    request = erasure("evaluating")
    live = register("unit-live", request=request, passed=True)
    register("unit-candidate", passed=False)
    auditor = staff_client("auditor")

    listing = auditor.get(f"{BASE}/units")
    assert listing.status_code == 200
    assert [unit["unit_id"] for unit in listing.json()["results"]] == ["unit-candidate", "unit-live"]
    assert [u["unit_id"] for u in auditor.get(f"{BASE}/units", {"status": "active"}).json()["results"]] == ["unit-live"]
    assert [u["unit_id"] for u in auditor.get(f"{BASE}/units", {"status": "active,candidate"}).json()["results"]] == ["unit-candidate", "unit-live"]
    unknown = auditor.get(f"{BASE}/units", {"status": "active,live"})
    assert unknown.status_code == 400 and unknown["Content-Type"] == PROBLEM
    [error] = unknown.json()["errors"]
    assert (error["field"], error["code"]) == ("status", "invalid_choice") and error["message"].startswith("Unknown status live; valid: ")
    assert [u["unit_id"] for u in auditor.get(f"{BASE}/units", {"request": request.reference}).json()["results"]] == ["unit-live"]

    detail = auditor.get(f"{BASE}/units/unit-live").json()
    assert detail["status"] == "active" and detail["version"] == 1
    assert detail["request"] == {"id": str(request.pk), "reference": request.reference}
    assert detail["adapter_sha256"] == live.adapter_sha256 and detail["manifest_sha256"] == live.manifest_sha256
    assert detail["certificate"]["passed"] is True and detail["certificate"]["metrics"]["retain_ratio"] == 0.97
    assert [(e["action"], e["actor"], e["generation"]) for e in detail["events"]] == [("activated", "system", 1)]
    assert set(detail["links"]) == {"self"}  # an auditor is offered no change


def test_reviewer_deactivates_with_a_reason_and_activates_again(staff_client, register):
    register("unit-a", passed=True)
    reviewer = staff_client("reviewer")
    assert set(reviewer.get(f"{BASE}/units/unit-a").json()["links"]) == {"self", "deactivate", "revoke"}

    missing = post(reviewer, f"{BASE}/units/unit-a/deactivate", {})
    assert missing.status_code == 400 and missing["Content-Type"] == PROBLEM
    assert missing.json()["errors"][0]["field"] == "reason"

    done = post(reviewer, f"{BASE}/units/unit-a/deactivate", {"reason": "complaints about refusals"})
    assert done.status_code == 200 and done.json()["status"] == "inactive"
    assert done.json()["events"][-1]["reason"] == "complaints about refusals" and registry_generation() == 2
    again = post(reviewer, f"{BASE}/units/unit-a/activate")
    assert again.status_code == 200 and again.json()["status"] == "active" and registry_generation() == 3


def test_illegal_transitions_answer_409_problem(staff_client, register):
    register("unit-a", passed=True)
    reviewer = staff_client("reviewer")
    refused = post(reviewer, f"{BASE}/units/unit-a/activate")
    assert refused.status_code == 409 and refused["Content-Type"] == PROBLEM
    assert refused.json()["code"] == "invalid_transition" and refused.json()["current_status"] == "active"

    assert post(reviewer, f"{BASE}/units/unit-a/revoke", {"reason": "bad unit"}).status_code == 200
    assert post(reviewer, f"{BASE}/units/unit-a/activate").json()["code"] == "invalid_transition"
    register("unit-failed", passed=False)
    assert post(reviewer, f"{BASE}/units/unit-failed/activate").json()["code"] == "certificate_not_passed"


def test_auditors_and_api_clients_cannot_change_anything(staff_client, register, api_client_key):
    register("unit-a", passed=True)
    _, key = api_client_key(("create", "read", "trusted_identity"))
    product = Client(headers={"Authorization": f"Bearer {key}"})
    for http in (staff_client("auditor"), product):
        answer = post(http, f"{BASE}/units/unit-a/deactivate", {"reason": "x"})
        assert answer.status_code == 403 and answer["Content-Type"] == PROBLEM
    assert product.get(f"{BASE}/units").status_code == 403  # the registry is not the products' business
    assert AdapterVersion.objects.get(unit_id="unit-a").status == "active"


def test_unknown_unit_is_404_problem(staff_client):
    answer = staff_client("reviewer").get(f"{BASE}/units/no-such-unit")
    assert answer.status_code == 404 and answer["Content-Type"] == PROBLEM


def test_rollback_of_a_request(staff_client, register, erasure):
    request = erasure("active")
    register(request=request, passed=True)
    answer = post(staff_client("reviewer"), f"{BASE}/requests/{request.pk}/rollback", {"reason": "withdrawn by the subject"})
    assert answer.status_code == 200 and answer.json()["status"] == "inactive"
    assert answer.json()["events"][-1]["action"] == "rolled_back"
    request.refresh_from_db()
    assert request.status == "rolled_back"


def test_live_at_t(staff_client, register, staff, actor_of):
    from adapters_store.services import adapter_deactivate

    before = timezone.now()
    version = register("unit-a", passed=True)
    between = timezone.now()
    adapter_deactivate(version_id=version.pk, actor=actor_of(staff("reviewer")), reason="maintenance")
    auditor = staff_client("auditor")

    then = auditor.get(f"{BASE}/live", {"at": between.isoformat()})
    assert then.status_code == 200
    body = then.json()
    assert [item["unit"]["unit_id"] for item in body["units"]] == ["unit-a"] and body["generation"] == 1
    assert body["units"][0]["activated"]["action"] == "activated" and body["units"][0]["activated"]["actor"] == "system"
    assert auditor.get(f"{BASE}/live", {"at": before.isoformat()}).json()["units"] == []
    assert auditor.get(f"{BASE}/live").json()["units"] == []  # now: deactivated
    naive_utc = between.replace(tzinfo=None).isoformat()  # no offset: UTC
    assert [item["unit"]["unit_id"] for item in auditor.get(f"{BASE}/live", {"at": naive_utc}).json()["units"]] == ["unit-a"]


@pytest.mark.parametrize("at", ["yesterday", "2026-13-45T00:00:00Z", ""])
def test_live_with_a_bad_time_is_400_problem(staff_client, at):
    answer = staff_client("auditor").get(f"{BASE}/live", {"at": at})
    assert answer.status_code == 400 and answer["Content-Type"] == PROBLEM
    assert answer.json()["errors"][0]["field"] == "at"


def test_schema_documents_the_registry(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    assert {"/api/v1/registry/units", "/api/v1/registry/units/{unit_id}/activate", "/api/v1/registry/live"} <= set(schema["paths"])
