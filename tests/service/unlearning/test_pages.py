"""The job on the staff request page and in the API: the progress bar (without JavaScript too), the
attempts with their reasons, the reviewer's retry, and the certificate with masked answers."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from service.audit.models import AuditEvent
from service.requests.services import request_approve
from service.unlearning import services
from service.unlearning.models import UnlearningJob

PERSON = "Greta Northcott"
CERTIFICATE = {
    "passed": False,
    "rules": [
        {"name": "leak F", "metric": "leak rate on F (gated)", "value": 0.0, "upper95": 0.31, "n": 8, "threshold": 0.0, "comparison": "<=", "status": "pass"},
        {
            "name": "retain N",
            "metric": "retain ratio on N (gated / base)",
            "value": 0.75,
            "upper95": None,
            "n": 24,
            "threshold": 0.95,
            "comparison": ">=",
            "status": "fail",
        },
    ],
    "thresholds": {"leak_F": 0.0, "retain": 0.95},
    "leak": {"F": {"gated": {"rate": 0.0, "n": 8}, "on": {}, "off": {}}},
    "retain": {"N": {"gated": {"ratio": 0.75}, "on": {}, "off": {}}},
    "gate": {"union": {"auroc": 0.97}},
    "probes": {"sizes": {"F": 8, "N": 24}},
    "base": {"fingerprint": "f" * 64},
    "personal_data": {
        "answers": [
            {
                "set": "F",
                "question": f"Which city does {PERSON} live in?",
                "gold": "Ambercliff",
                "base_answer": "Ambercliff",
                "gated_answer": "I can't share information about that person.",
                "base_correct": True,
                "leaked": False,
            },
            {
                "set": "R",
                "question": "Which city does Someone Else live in?",
                "gold": "Osterly",
                "base_answer": "Osterly",
                "gated_answer": "Osterly",
                "base_correct": True,
                "leaked": True,
            },
        ]
    },
}


@pytest.fixture
def reviewer(staff):
    return staff("reviewer")


@pytest.fixture
def running_job(file_request, reviewer, actor_of, django_capture_on_commit_callbacks, sent_jobs):
    """A request whose job runs on worker w:1, 42% into training."""
    request = file_request(PERSON, facts=[f"{PERSON} lives in Ambercliff"])
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(actor=actor_of(reviewer), request_id=request.pk)
    job = UnlearningJob.objects.get(request=request)
    services.job_claim(job_id=job.pk, worker="w:1")
    services.job_begin_training(job=job, resumed=False)
    services.job_report_progress(job_id=job.pk, worker="w:1", phase="adapter", percent=42.0, step=12, total=30, loss=0.5321)
    request.refresh_from_db()
    return request, job


def page(client, request):
    response = client.get(reverse("staff-request", args=[request.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_a_live_progress_bar_that_refreshes_without_javascript(client, reviewer, running_job):
    request, _ = running_job
    client.force_login(reviewer)
    html = page(client, request)
    assert re.search(r'<label for="job-bar">Progress of attempt 1</label>\s*<progress id="job-bar" max="100" value="42.0">42%</progress>', html)
    assert "step 12 of 30" in html and "loss 0.5321" in html and "Training the adapter" in html
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html.split("</head>")[0]
    assert "This page refreshes itself while the job runs." in html
    assert '<script src="/static/unlearning/job-progress.js" defer></script>' in html  # a file: the CSP allows no inline script


def test_the_api_carries_the_progress_object(client, reviewer, running_job, trusted_client):
    request, job = running_job
    client.force_login(reviewer)
    body = client.get(reverse("api-request-detail", args=[request.pk])).json()
    assert body["status"] == "training"
    assert body["progress"] | {"heartbeat_at": None, "started_at": None} == {
        "attempt": 1,
        "status": "running",
        "phase": "adapter",
        "phase_label": "Training the adapter",
        "percent": 42.0,
        "step": 12,
        "total": 30,
        "loss": 0.5321,
        "heartbeat_at": None,
        "started_at": None,
        "finished_at": None,
        "restarts": 0,
        "failure_reason": None,
        "unit_id": None,
        "certificate_passed": None,
    }
    assert "certificate" not in body["links"] and "retry" not in body["links"]


def test_a_failed_job_shows_its_reason_the_certificate_and_a_retry_for_reviewers(client, staff, reviewer, running_job, sent_jobs):
    request, job = running_job
    services.job_begin_evaluation(job=job)
    services.job_record_certificate(job_id=job.pk, worker="w:1", certificate=CERTIFICATE, unit_id="u-1")
    services.job_fail(job_id=job.pk, worker="w:1", reason="The certificate did not pass: retain N 0.750 (must be >= 0.95).")

    client.force_login(staff("auditor"))
    html = page(client, request)
    assert "Retry" not in html and "<noscript>" not in html  # auditors read; nothing runs any more
    assert "The certificate did not pass: retain N 0.750 (must be &gt;= 0.95)." in html
    assert re.search(r"<td>retain N</td>.*?<td>0.750</td>.*?<td>&gt;= 0.95</td>\s*<td><span class=\"badge bad\">fail</span>", html, re.S)
    # The answers are masked (first letters only); only F and P rows are shown.
    assert "Wh•••" in html and "Am•••" in html and "Ambercliff" not in html and "Osterly" not in html
    assert 'badge good">withheld' in html

    client.force_login(reviewer)
    html = client.post(reverse("staff-request-reveal", args=[request.pk])).content.decode()
    assert f"Which city does {PERSON} live in?" in html and "<td>Ambercliff</td>" in html
    assert AuditEvent.objects.filter(action="request.personal_data_revealed", target_id=request.reference).exists()

    response = client.post(reverse("staff-request-retry", args=[request.pk]), follow=True)
    assert f"Request {request.reference} queued again: attempt 2." in response.content.decode()
    assert UnlearningJob.objects.get(request=request, attempt=2).status == "queued"
    again = client.post(reverse("staff-request-retry", args=[request.pk]), follow=True).content.decode()
    assert "only a failed request or one that needs review can be retried" in again


def test_the_certificate_summary_and_retry_in_the_api(client, reviewer, running_job, api_client_key, sent_jobs):
    request, job = running_job
    client.force_login(reviewer)
    certificate_url = reverse("api-request-certificate", args=[request.pk])
    missing = client.get(certificate_url)
    assert missing.status_code == 404 and missing.json()["code"] == "no_certificate"

    services.job_begin_evaluation(job=job)
    services.job_record_certificate(job_id=job.pk, worker="w:1", certificate=CERTIFICATE, unit_id="u-1")
    services.job_fail(job_id=job.pk, worker="w:1", reason="certificate failed")
    body = client.get(reverse("api-request-detail", args=[request.pk])).json()
    assert body["links"]["certificate"].endswith(certificate_url) and body["links"]["retry"].endswith(f"/api/v1/requests/{request.pk}/retry")
    summary = client.get(certificate_url).json()
    assert summary["passed"] is False and [r["name"] for r in summary["rules"]] == ["leak F", "retain N"]
    assert summary["leak"] == {"F": {"rate": 0.0, "n": 8}} and "Ambercliff" not in str(summary) and PERSON not in str(summary)

    retried = client.post(reverse("api-request-retry", args=[request.pk]), data="{}", content_type="application/json")
    assert retried.status_code == 202 and retried["Location"].endswith(f"/api/v1/requests/{request.pk}")
    assert retried.json()["status"] == "queued" and retried.json()["progress"]["attempt"] == 2
    conflict = client.post(reverse("api-request-retry", args=[request.pk]), data="{}", content_type="application/json")
    assert conflict.status_code == 409 and conflict.json()["code"] == "invalid_transition"
