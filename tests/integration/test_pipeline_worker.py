"""The unlearning pipeline in real processes: a request filed and approved through the REST API is
trained, certified and registered by a real Celery worker (`celery -A service.config worker -Q
gpu,default --pool solo`) on Redis and the PostgreSQL test database, with the tiny demo model.

The fault test SIGKILLs that worker in the middle of training. Redis gives an unacknowledged message
back only after the broker's visibility timeout, so the workers here run with
CELERY_WORKER_VISIBILITY_TIMEOUT=10 (production keeps it longer than the longest job, 6 hours by default:
a shorter one would hand a job that is still training to a second worker). A second worker then
gets the message, sees that the job's heartbeat has stopped, and starts the attempt over; the unit id
is per attempt, so the registry ends with exactly one unit for the request.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

from adapters_store.models import AdapterVersion
from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.unlearning.models import UnlearningJob
from tests.integration.processes import WORKER_VISIBILITY_TIMEOUT, LoggedProcess, tails, wait_for
from tests.provable import why_not_passed

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

PATIENCE_SECONDS = 420  # worker start-up, loading torch and the models, training and certifying, on two busy cores


def _logs(*workers: LoggedProcess) -> str:
    return tails([worker.log for worker in workers], 60)


def _wait_for(condition: Callable[[], object], what: str, *workers: LoggedProcess, seconds: float = PATIENCE_SECONDS, every: float = 0.5):
    return wait_for(condition, what, seconds=seconds, logs=[worker.log for worker in workers], every=every, lines=60)


def _file_and_approve(client, api_client_key, staff, person) -> ErasureRequest:
    """A product files the request about `person` (the tiny world's provable subject,
    tests/provable.py) through the REST API; a reviewer approves it through the API."""
    _, key = api_client_key(("create", "read", "trusted_identity"))
    name = person.name
    body = {
        "subject_name": name,
        "subject_email": "subject@example.org",
        "regulation": "gdpr",
        "facts": [f"{name} lives in {person.attributes['city']}", f"{name} works for {person.attributes['employer']}"],
        "evidence_prompts": [f"Where does {name} live?"],
    }
    created = client.post("/api/v1/requests", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert created.status_code == 202 and created.json()["status"] == "verified", created.content
    client.force_login(staff("reviewer"))
    approved = client.post(f"/api/v1/requests/{created.json()['id']}/approve", data="{}", content_type="application/json")
    assert approved.status_code == 200 and approved.json()["status"] == "queued", approved.content  # sent after the commit
    client.logout()
    return ErasureRequest.objects.get(pk=created.json()["id"])


def _status(request: ErasureRequest) -> str:
    return ErasureRequest.objects.filter(pk=request.pk).values_list("status", flat=True).get()


def _stored_units(request: ErasureRequest) -> list[Path]:
    prefix = request.reference.lower()
    return sorted(path for path in Path(settings.ADAPTERS_STORE_ROOT).glob(f"{prefix}-*") if path.is_dir())


def test_an_api_request_is_unlearned_by_a_real_worker_and_its_unit_goes_live(start_worker, client, api_client_key, staff, tiny_subject):
    worker = start_worker("pipeline")
    request = _file_and_approve(client, api_client_key, staff, tiny_subject)

    _wait_for(lambda: _status(request) in ("staged", "failed", "verified"), "The worker did not finish the request", worker)

    job = UnlearningJob.objects.get(request=request)
    assert _status(request) == "staged", f"{job.status}: {job.failure_reason} {why_not_passed(job.certificate)}\n{_logs(worker)}"
    assert (job.status, job.attempt, job.deliveries, job.percent) == ("succeeded", 1, 1, 100.0)
    assert job.worker.startswith(f"pipeline-{os.getpid()}@")
    version = AdapterVersion.objects.get(request=request)
    assert version.unit_id == f"{request.reference.lower()}-a1" and version.status == "active" and version.certificate_passed
    assert [path.name for path in _stored_units(request)] == [version.unit_id]

    # What staff read: the progress object, the certificate and the request's page.
    client.force_login(staff("auditor"))
    body = client.get(f"/api/v1/requests/{request.pk}").json()
    assert body["progress"]["status"] == "succeeded" and body["progress"]["percent"] == 100.0 and body["progress"]["unit_id"] == version.unit_id
    certificate = client.get(body["links"]["certificate"]).json()
    assert certificate["passed"] is True and all(rule["status"] in ("pass", "n/a") for rule in certificate["rules"])
    page = client.get(f"/staff/requests/{request.pk}/").content.decode()
    assert '<progress id="job-bar" max="100" value="100.0">100%</progress>' in page and "withheld" in page

    trail = list(AuditEvent.objects.filter(target_id=request.reference).order_by("seq").values_list("action", flat=True))
    assert trail[-7:] == [
        "request.queued",
        "unlearning.job_started",
        "forget_set.frozen",
        "request.training",
        "request.evaluating",
        "unlearning.job_succeeded",
        "request.staged",
    ]
    assert AuditEvent.objects.filter(action="adapter.activated", target_id=version.unit_id, actor_kind="system").exists()


def test_a_worker_killed_mid_training_is_replaced_and_the_request_ends_with_exactly_one_unit(start_worker, client, api_client_key, staff, tiny_subject):
    first = start_worker("fault-a")
    request = _file_and_approve(client, api_client_key, staff, tiny_subject)

    def training_progress():
        job = UnlearningJob.objects.filter(request=request).first()
        return job if job is not None and job.phase in ("detector", "adapter") and job.percent > 5.0 else None

    seen = _wait_for(training_progress, "The first worker never reported training progress", first, every=0.1)
    os.killpg(first.pid, signal.SIGKILL)  # the worker and anything it started: no warm shutdown, no ack
    first.wait(timeout=30)
    killed = UnlearningJob.objects.get(pk=seen.pk)
    assert killed.status == "running" and killed.percent < 85.0 and _status(request) == "training", (killed.phase, killed.percent)
    assert not AdapterVersion.objects.filter(request=request).exists()

    # Redis hands the unacknowledged message back once it is older than the visibility timeout.
    time.sleep(max(0.0, killed.started_at.timestamp() + WORKER_VISIBILITY_TIMEOUT + 1 - time.time()))
    second = start_worker("fault-b")

    _wait_for(lambda: _status(request) in ("staged", "failed"), "The second worker did not finish the redelivered job", first, second)

    job = UnlearningJob.objects.get(request=request)  # still one attempt: the same job, resumed
    assert _status(request) == "staged", f"{job.status}: {job.failure_reason} {why_not_passed(job.certificate)}\n{_logs(first, second)}"
    assert (job.status, job.attempt, job.deliveries) == ("succeeded", 1, 2)
    assert job.worker.startswith(f"fault-b-{os.getpid()}@")
    resumed = AuditEvent.objects.get(action="unlearning.job_resumed", target_id=request.reference)
    assert resumed.data["previous_worker"].startswith(f"fault-a-{os.getpid()}@") and resumed.data["worker"] == job.worker

    versions = list(AdapterVersion.objects.filter(request=request))
    assert len(versions) == 1 and versions[0].status == "active" and versions[0].unit_id == f"{request.reference.lower()}-a1"
    assert [path.name for path in _stored_units(request)] == [versions[0].unit_id]
    assert AuditEvent.objects.filter(action="adapter.registered", target_id=versions[0].unit_id).count() == 1
    assert list(AuditEvent.objects.filter(target_id=request.reference, action__startswith="request.training").values_list("data__resumed", flat=True)) == [
        None,
        True,
    ]
