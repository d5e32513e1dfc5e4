"""Deadline-first scheduling with real processes: four requests are filed through the REST API and
approved while no GPU worker runs (their messages wait in Redis in filing order), each with its own
legal deadline; then two real Celery workers start together. Every job is taken in deadline order,
not in the order the messages were sent: overall, and on each worker.

The people are the tiny world's holdout people, whom the model never saw: each job ends after the
"is it in the model?" check (not found), so the test measures the queue, not the training.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.unlearning.models import UnlearningJob
from tests.integration.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

# Filing order -> days to the legal deadline (CCPA's 45 days, GDPR's month, an extension, ...).
DEADLINE_DAYS = (40, 10, 25, 5)


def _file_and_approve(client, key: str, reviewer, person, days: float) -> ErasureRequest:
    city = person.attributes["city"]
    body = {"subject_name": person.name, "subject_email": "subject@example.org", "regulation": "gdpr", "facts": [f"{person.name} lives in {city}"]}
    created = client.post("/api/v1/requests", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert created.status_code == 202, created.content
    request_id = created.json()["id"]
    ErasureRequest.objects.filter(pk=request_id).update(deadline_at=timezone.now() + timedelta(days=days))
    client.force_login(reviewer)
    approved = client.post(f"/api/v1/requests/{request_id}/approve", data="{}", content_type="application/json")
    assert approved.status_code == 200 and approved.json()["status"] == "queued", approved.content
    client.logout()
    return ErasureRequest.objects.get(pk=request_id)


def test_two_workers_take_the_queued_jobs_earliest_deadline_first(start_worker, client, api_client_key, staff, tiny_world):
    _, key = api_client_key(("create", "read", "trusted_identity"))
    reviewer = staff("reviewer")
    people = tiny_world.holdout_people[: len(DEADLINE_DAYS)]
    requests = [_file_and_approve(client, key, reviewer, person, days) for person, days in zip(people, DEADLINE_DAYS, strict=True)]
    by_deadline = [request.reference for request in sorted(requests, key=lambda r: r.deadline_at)]
    assert by_deadline != [request.reference for request in requests]  # the filing order is not the deadline order

    workers = [start_worker("sched-a"), start_worker("sched-b")]
    logs = [worker.log for worker in workers]
    wait_for(
        lambda: UnlearningJob.objects.filter(request__in=requests, finished_at__isnull=False).count() == len(requests),
        "The workers did not finish the four jobs",
        seconds=420,
        logs=logs,
        lines=60,
    )

    jobs = list(UnlearningJob.objects.filter(request__in=requests).select_related("request"))
    assert {job.status for job in jobs} == {"not_found"}, [(job.request.reference, job.status, job.failure_reason) for job in jobs]
    started = list(AuditEvent.objects.filter(action="unlearning.job_started", target_id__in=by_deadline).order_by("seq").values_list("target_id", flat=True))
    assert started == by_deadline  # claimed earliest deadline first

    per_worker: dict[str, list[UnlearningJob]] = {}
    for job in sorted(jobs, key=lambda j: j.started_at):
        per_worker.setdefault(job.worker.split(":")[0], []).append(job)
    for name, taken in per_worker.items():
        assert [job.request.deadline_at for job in taken] == sorted(job.request.deadline_at for job in taken), name
    assert len(per_worker) == 2, f"one worker took every job: {per_worker.keys()}"  # both workers were idle when the queue filled
