"""A job run by the worker-side code in this process, on the tiny demo model: approval to a staged,
registered and active unit; a second delivery changes nothing; data the model never saw goes back
to the reviewer without training. Transactional: the worker's heartbeat thread uses its own
database connection, as it does in a real worker."""

from __future__ import annotations

import json

import pytest

from adapters_store.models import AdapterVersion
from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.requests.services import request_approve
from service.unlearning.models import FrozenForgetSet, UnlearningJob
from tests.provable import why_not_passed
from tests.torch_threads import one_intra_op_thread
from workers.jobs import process_job

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A tiny-world person, for the tests that stop before a certificate. The one that needs a PASS
# forgets `tiny_subject` (tests/provable.py): who is provable depends on the model's build.
PERSON = "Greta Northcott"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op torch thread for each test here (tests/torch_threads.py)."""
    with one_intra_op_thread():
        yield


def approved_job(request, reviewer, actor_of) -> UnlearningJob:
    request_approve(actor=actor_of(reviewer), request_id=request.pk)  # not in a transaction: queued at once
    return UnlearningJob.objects.get(request=request)


def test_an_approved_request_ends_staged_with_an_active_unit_and_a_redelivery_is_a_no_op(
    pipeline_settings, demo_corpus, file_request, staff, actor_of, sent_jobs, tiny_subject
):
    name, city = tiny_subject.name, tiny_subject.attributes["city"]
    request = file_request(name, email="subject@example.org", facts=[f"{name} lives in {city}"], evidence=[f"Where does {name} live?"])
    job = approved_job(request, staff("reviewer"), actor_of)
    assert sent_jobs == [{"args": [job.pk], "task_id": job.celery_task_id}]

    outcome = process_job(job.pk, node="test-worker")

    job.refresh_from_db()
    assert outcome["outcome"] == "staged", why_not_passed(job.certificate)
    request.refresh_from_db()
    assert request.status == "staged"
    assert (job.status, job.percent, job.phase, job.deliveries, job.unit_id) == ("succeeded", 100.0, "done", 1, f"{request.reference.lower()}-a1")
    assert job.certificate_passed is True and job.certificate["passed"] is True and "personal_data" not in job.certificate
    assert {"queue_seconds", "forget_set_seconds", "model_check_seconds", "train_seconds", "evaluate_seconds", "register_seconds"} <= set(job.timings)

    version = AdapterVersion.objects.get(request=request)
    forget_set = FrozenForgetSet.objects.get(request=request)
    assert version.unit_id == job.unit_id and version.status == "active" and version.certificate_passed
    assert version.forget_set_hash == forget_set.content_hash  # audit log, forget-set row and manifest agree
    assert "personal_data" not in version.certificate_metrics and name not in json.dumps(version.certificate_metrics)
    assert forget_set.findings["in_model"] is True and forget_set.findings["answers_revealing_data"] >= 1

    # The certificate's answers: the base model revealed the city, the served model does not.
    answers = {row["question"]: row for row in job.certificate_personal["answers"] if row["set"] == "F"}
    row = answers[f"Which city does {name} live in?"]
    assert row["base_correct"] is True and row["leaked"] is False and city not in row["gated_answer"]

    actions = list(AuditEvent.objects.filter(target_id=request.reference).order_by("seq").values_list("action", flat=True))
    pipeline = [a for a in actions if a not in ("request.submitted", "request.verified", "request.approved")]
    assert pipeline == [
        "request.queued",
        "unlearning.job_started",
        "forget_set.frozen",
        "request.training",
        "request.evaluating",
        "unlearning.job_succeeded",
        "request.staged",
    ]
    assert AuditEvent.objects.filter(action="adapter.activated", target_id=version.unit_id).exists()

    # The same message delivered again (a broker redelivery): nothing happens.
    assert process_job(job.pk, node="test-worker")["outcome"] == "nothing to do"
    assert AdapterVersion.objects.filter(request=request).count() == 1
    assert UnlearningJob.objects.get(pk=job.pk).deliveries == 1


def test_data_the_model_never_saw_goes_back_to_the_reviewer_without_training(
    pipeline_settings, demo_corpus, tiny_world, file_request, staff, actor_of, sent_jobs, tmp_path
):
    holdout = tiny_world.holdout_people[0]  # in the world, never in the training corpus
    request = file_request(holdout.name, facts=[f"{holdout.name} lives in {holdout.attributes['city']}"], evidence=[f"Where does {holdout.name} live?"])
    job = approved_job(request, staff("reviewer"), actor_of)

    outcome = process_job(job.pk, node="test-worker")

    assert outcome["outcome"] == "not found in the model" and outcome["in_model"] is False
    request.refresh_from_db()
    job.refresh_from_db()
    assert request.status == "verified" and job.status == "not_found" and "not found" in job.failure_reason
    assert "train_seconds" not in job.timings and not (tmp_path / "units" / "jobs").exists()
    assert not AdapterVersion.objects.filter(request=request).exists()
    finding = AuditEvent.objects.get(action="request.not_found_in_model", target_id=request.reference)
    assert finding.data == {"attempt": 1, "prompts_checked": 3, "answers_revealing_data": 0, "corpus_documents": 0, "in_model": False}
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"  # the reviewer decides again


def test_cancelling_the_request_stops_the_training_at_the_next_step(pipeline_settings, demo_corpus, file_request, staff, actor_of, sent_jobs, tmp_path):
    import threading
    import time

    from service.requests.services import request_cancel

    reviewer = staff("reviewer")
    request = file_request(PERSON, facts=[f"{PERSON} lives in Ambercliff"])
    job = approved_job(request, reviewer, actor_of)
    outcome = {}

    def work() -> None:  # a worker's main thread, with its own database connection
        from django.db import connection

        try:
            outcome.update(process_job(job.pk, node="test-worker"))
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 120
    while not UnlearningJob.objects.filter(pk=job.pk, phase="adapter").exists() and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    request_cancel(actor=actor_of(reviewer), request_id=request.pk, reason="the subject withdrew")
    worker.join(timeout=120)

    assert outcome["outcome"] == "cancelled", outcome
    job.refresh_from_db()
    assert job.status == "cancelled" and job.percent < 85.0 and ErasureRequest.objects.get(pk=request.pk).status == "cancelled"
    assert not AdapterVersion.objects.filter(request=request).exists()
    assert not any((tmp_path / "units" / "jobs").glob("*/manifest.json"))  # nothing written
    assert AuditEvent.objects.filter(action="unlearning.job_cancelled", target_id=request.reference).exists()


def test_an_error_fails_the_job_and_the_request_with_its_reason_and_a_retry_starts_over(
    pipeline_settings, demo_corpus, file_request, staff, actor_of, sent_jobs
):
    from service.unlearning.services import job_retry

    reviewer = staff("reviewer")
    request = file_request(PERSON, facts=[f"{PERSON} lives in Ambercliff"])
    job = approved_job(request, reviewer, actor_of)
    pipeline_settings.FORGET = {**pipeline_settings.FORGET, "UNLEARN_CONFIG": {"rank": 0}}  # an operator's typo

    outcome = process_job(job.pk, node="test-worker")

    assert outcome["outcome"] == "failed" and "rank must be a positive integer" in outcome["reason"]
    request.refresh_from_db()
    job.refresh_from_db()
    assert request.status == "failed" and "rank must be a positive integer" in request.failure_reason
    assert job.status == "failed" and job.failure_reason == request.failure_reason
    assert AuditEvent.objects.filter(action="request.failed", target_id=request.reference).exists()

    retry = job_retry(actor=actor_of(reviewer), request_id=request.pk)
    assert (retry.attempt, ErasureRequest.objects.get(pk=request.pk).status) == (2, "queued")
    assert sent_jobs[-1]["args"] == [retry.pk]
