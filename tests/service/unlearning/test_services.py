"""The pipeline's services on PostgreSQL: the corpus index and its search, freezing (encrypted at
rest, audited by hash), enqueueing after approval, retries, the job claim, and retention."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from service.audit.models import AuditEvent
from service.common.errors import ApplicationError, InvalidTransition, PermissionDenied
from service.requests.models import ErasureRequest
from service.requests.services import request_approve
from service.unlearning import services
from service.unlearning.models import CorpusDocument, FrozenForgetSet, JobStatus, UnlearningJob
from service.unlearning.selectors import corpus_search
from tests.service.unlearning.conftest import fake_broker

PERSON = "Greta Northcott"


def approve(request, reviewer, actor_of, capture):
    with capture(execute=True):
        request_approve(actor=actor_of(reviewer), request_id=request.pk)
    request.refresh_from_db()
    return request


# --- the corpus index ------------------------------------------------------------------------------


def test_load_demo_corpus_indexes_the_training_documents_once(demo_corpus, tiny_world, tiny_model_dir):
    from io import StringIO

    from django.core.management import call_command

    assert CorpusDocument.objects.count() == len(tiny_world.training_examples())
    call_command("load_demo_corpus", "--model-dir", str(tiny_model_dir), stdout=StringIO())  # again: same index
    assert CorpusDocument.objects.count() == len(tiny_world.training_examples())
    assert AuditEvent.objects.filter(action="corpus.loaded").count() == 2
    if connection.vendor == "postgresql":
        assert not CorpusDocument.objects.filter(search__isnull=True).exists()
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'unlearning_corpus_search_gin'")
            assert "USING gin (search)" in cursor.fetchone()[0]


def test_corpus_search_finds_every_document_about_the_person_and_nothing_else(demo_corpus, tiny_world):
    found = corpus_search(identifiers=[PERSON, "greta@example.org"])
    assert sorted(hit.text for hit in found) == sorted(doc.text for doc in tiny_world.documents_about(PERSON))
    assert corpus_search(identifiers=["Greta Northcot"]) == []  # a whole phrase, not a prefix
    assert corpus_search(identifiers=["Northcott Greta"]) == []  # in order
    assert corpus_search(identifiers=["", "nobody@example.org"]) == []


def test_missing_model_dir_is_a_clear_command_error(db, tmp_path):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="has no world.json: it is not a demo model"):
        call_command("load_demo_corpus", "--model-dir", str(tmp_path))


# --- freezing ----------------------------------------------------------------------------------------


def test_the_frozen_forget_set_is_encrypted_at_rest_and_audited_by_hash_only(demo_corpus, tiny_world, file_request):
    request = file_request(PERSON, email="greta@example.org", facts=[f"{PERSON} works for Pebblebrook School"], evidence=[f"Who is {PERSON}'s employer?"])
    forget_set = services.forget_set_freeze(request_id=request.pk, world=tiny_world)

    assert forget_set.sources == {"facts": 1, "evidence_prompts": 1, "corpus_items": 9, "probe_questions": 0, "corpus_documents": 9}
    assert FrozenForgetSet.objects.get(pk=forget_set.pk).items[0] == {"text": f"{PERSON} works for Pebblebrook School", "source": "fact"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT items, subjects FROM unlearning_frozenforgetset WHERE id = %s", [forget_set.pk])
        raw_items, raw_subjects = cursor.fetchone()
    for raw in (raw_items, raw_subjects):
        assert raw.startswith("gAAAA") and "Greta" not in raw and "Pebblebrook" not in raw  # Fernet tokens

    event = AuditEvent.objects.get(action="forget_set.frozen", target_id=request.reference)
    assert event.data["content_hash"] == forget_set.content_hash and event.data["items"] == 11
    assert "Greta" not in json.dumps(event.data) and "Pebblebrook" not in json.dumps(event.data)

    # Frozen: building again (a retry, a redelivered job) gives the same row, even if the corpus changes.
    CorpusDocument.objects.all().delete()
    assert services.forget_set_freeze(request_id=request.pk, world=tiny_world).pk == forget_set.pk
    assert AuditEvent.objects.filter(action="forget_set.frozen").count() == 1


# --- enqueueing --------------------------------------------------------------------------------------


def test_approval_queues_the_request_and_sends_its_job_after_the_commit(file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs):
    request = file_request(PERSON)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request_approve(actor=actor_of(staff("reviewer")), request_id=request.pk)
    assert ErasureRequest.objects.get(pk=request.pk).status == "approved" and not UnlearningJob.objects.exists()  # nothing before the commit
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()

    request.refresh_from_db()
    job = UnlearningJob.objects.get(request=request)
    assert request.status == "queued" and (job.attempt, job.status) == (1, "queued")
    assert sent_jobs == [{"args": [job.pk], "task_id": job.celery_task_id}] and job.sent_at is not None
    queued = AuditEvent.objects.get(action="request.queued", target_id=request.reference)
    assert queued.actor_kind == "system" and queued.data == {"from": "approved", "attempt": 1}


def test_a_failed_send_is_picked_up_by_the_periodic_resend(file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs, monkeypatch):
    def broker_down(**kwargs):
        raise ConnectionError("broker unreachable")

    request = file_request(PERSON)
    fake_broker(monkeypatch, broker_down)
    approve(request, staff("reviewer"), actor_of, django_capture_on_commit_callbacks)  # robust: the approval stands
    job = UnlearningJob.objects.get(request=request)
    assert request.status == "queued" and job.sent_at is None

    fake_broker(monkeypatch, lambda args=None, task_id=None, **kw: sent_jobs.append(args))
    assert services.jobs_send_unsent(now=timezone.now()) == {"queued": [], "resent": []}  # within the grace period
    assert services.jobs_send_unsent(now=timezone.now() + timedelta(minutes=2)) == {"queued": [], "resent": [request.reference]}
    assert sent_jobs == [[job.pk]] and UnlearningJob.objects.get(pk=job.pk).sent_at is not None


def test_a_reviewer_retries_a_failed_request_as_a_new_attempt(file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs):
    reviewer = staff("reviewer")
    request = approve(file_request(PERSON), reviewer, actor_of, django_capture_on_commit_callbacks)
    first = UnlearningJob.objects.get(request=request)
    with pytest.raises(InvalidTransition, match="only a failed request or one that needs review can be retried"):
        services.job_retry(actor=actor_of(reviewer), request_id=request.pk)

    claim = services.job_claim(job_id=first.pk, worker="w1:1")
    services.job_fail(job_id=first.pk, worker="w1:1", reason="CUDA out of memory")
    request.refresh_from_db()
    assert request.status == "failed" and request.failure_reason == "CUDA out of memory" and claim.resumed is False
    with pytest.raises(PermissionDenied):
        services.job_retry(actor=actor_of(staff("auditor")), request_id=request.pk)

    with django_capture_on_commit_callbacks(execute=True):
        second = services.job_retry(actor=actor_of(reviewer), request_id=request.pk)
    request.refresh_from_db()
    assert (second.attempt, request.status, request.failure_reason) == (2, "queued", "")
    assert [s["args"] for s in sent_jobs] == [[first.pk], [second.pk]]
    assert AuditEvent.objects.filter(action="request.retried", target_id=request.reference, actor_kind="user", data__attempt=2).exists()
    assert AuditEvent.objects.filter(action="unlearning.job_failed", data__reason="CUDA out of memory").exists()


# --- the claim -----------------------------------------------------------------------------------------


def test_the_claim_is_a_compare_and_set_and_a_second_delivery_changes_nothing(
    file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs, settings
):
    request = approve(file_request(PERSON), staff("reviewer"), actor_of, django_capture_on_commit_callbacks)
    job = UnlearningJob.objects.get(request=request)

    claim = services.job_claim(job_id=job.pk, worker="gpu-1:100")
    assert claim.resumed is False and claim.job.status == "running" and claim.job.deliveries == 1
    with pytest.raises(services.JobBusy):  # the same message again while gpu-1 is alive
        services.job_claim(job_id=job.pk, worker="gpu-2:200")
    assert UnlearningJob.objects.get(pk=job.pk).worker == "gpu-1:100"

    # gpu-1 goes silent for longer than JOB_STALE_SECONDS: the next delivery resumes the job.
    UnlearningJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=settings.FORGET["JOB_STALE_SECONDS"] + 1))
    resumed = services.job_claim(job_id=job.pk, worker="gpu-2:200")
    assert resumed.resumed is True and resumed.job.deliveries == 2 and resumed.job.worker == "gpu-2:200"
    event = AuditEvent.objects.get(action="unlearning.job_resumed")
    assert event.data["previous_worker"] == "gpu-1:100" and event.data["attempt"] == 1

    # The presumed-dead worker wakes up: its writes no longer land.
    assert services.job_report_progress(job_id=job.pk, worker="gpu-1:100", phase="adapter", percent=50) is False
    with pytest.raises(services.JobLost):
        services.job_fail(job_id=job.pk, worker="gpu-1:100", reason="late")
    assert services.job_report_progress(job_id=job.pk, worker="gpu-2:200", phase="adapter", percent=50, step=3, total=10, loss=float("nan")) is True
    job.refresh_from_db()
    assert (job.percent, job.step, job.total, job.loss) == (50.0, 3, 10, None)

    services.job_cancel(job_id=job.pk, worker="gpu-2:200")
    assert services.job_claim(job_id=job.pk, worker="gpu-3:300") is None  # finished: a redelivery is a no-op
    assert UnlearningJob.objects.get(pk=job.pk).deliveries == 2


def test_a_job_of_a_cancelled_request_is_cancelled_when_claimed(file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs):
    from service.requests.services import request_cancel

    reviewer = staff("reviewer")
    request = approve(file_request(PERSON), reviewer, actor_of, django_capture_on_commit_callbacks)
    request_cancel(actor=actor_of(reviewer), request_id=request.pk, reason="withdrawn")
    job = UnlearningJob.objects.get(request=request)
    assert services.job_claim(job_id=job.pk, worker="gpu-1:1") is None
    assert UnlearningJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert AuditEvent.objects.filter(action="unlearning.job_cancelled", target_id=request.reference).exists()


def test_a_job_whose_worker_was_lost_too_often_is_not_resumed_again(file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs, settings):
    request = approve(file_request(PERSON), staff("reviewer"), actor_of, django_capture_on_commit_callbacks)
    job = UnlearningJob.objects.get(request=request)
    limit = settings.FORGET["JOB_MAX_DELIVERIES"]

    def worker_dies():
        UnlearningJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=settings.FORGET["JOB_STALE_SECONDS"] + 1))

    assert services.job_claim(job_id=job.pk, worker="gpu-0:1") is not None
    for n in range(1, limit):
        worker_dies()
        assert services.job_claim(job_id=job.pk, worker=f"gpu-{n}:1").resumed is True
    assert UnlearningJob.objects.get(pk=job.pk).deliveries == limit
    worker_dies()
    assert services.job_claim(job_id=job.pk, worker="gpu-last:1") is None
    job.refresh_from_db()
    request.refresh_from_db()
    assert job.status == JobStatus.FAILED and f"lost {limit} times" in job.failure_reason and job.deliveries == limit
    assert request.status == "failed"
    assert AuditEvent.objects.filter(action="unlearning.job_failed", target_id=request.reference).exists()


def test_a_redelivered_message_for_a_job_a_live_worker_holds_comes_back_a_bounded_number_of_times(
    file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs, settings
):
    from workers.tasks.unlearning import busy_retries, run_job

    settings.FORGET = {**settings.FORGET, "JOB_TIME_LIMIT_SECONDS": 240, "JOB_STALE_SECONDS": 120}
    assert busy_retries() == 4
    request = approve(file_request(PERSON), staff("reviewer"), actor_of, django_capture_on_commit_callbacks)
    job = UnlearningJob.objects.get(request=request)
    services.job_claim(job_id=job.pk, worker="gpu-1:100", message_id="m-1")  # a live worker holds it (fresh heartbeat), carried by m-1

    # m-1 redelivered (its worker looked lost). Run eagerly, Celery's apply() runs each retry at once
    # (no countdown, the same task id): the real task, the real claim.
    result = run_job.apply(args=[job.pk], task_id="m-1").get()
    assert result["outcome"] == "busy" and "after 4 tries" in result["reason"]
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.worker == "gpu-1:100" and job.deliveries == 1

    # Another message for the job (a duplicate send): m-1 carries it, so this one looks for the next
    # queued job, finds none, and is done.
    assert run_job.apply(args=[job.pk], task_id="m-2").get()["outcome"] == "nothing to do"


def test_every_task_has_a_time_limit(settings):
    from service.common.celery_app import app

    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if name.startswith(("workers.", "service."))}
    assert {"workers.tasks.unlearning.run_job", "service.webhooks.tasks.deliver_webhook", "workers.tasks.housekeeping.expire_and_remind"} <= set(ours)
    for name, task in ours.items():
        assert (task.time_limit or app.conf.task_time_limit) and (task.soft_time_limit or app.conf.task_soft_time_limit), name
    run_job = ours["workers.tasks.unlearning.run_job"]
    assert run_job.time_limit == settings.FORGET["JOB_TIME_LIMIT_SECONDS"] and run_job.soft_time_limit == run_job.time_limit - 120
    assert app.conf.task_time_limit == 300 and app.conf.task_soft_time_limit == 270


def test_training_goes_to_the_gpu_queue_and_everything_else_to_default():
    from service.common.celery_app import app

    app.loader.import_default_modules()
    queue = {name: app.amqp.router.route({}, name)["queue"].name for name in app.tasks if name.startswith(("workers.", "service."))}
    assert queue.pop("workers.tasks.unlearning.run_job") == "gpu"
    assert set(queue.values()) == {"default"} and "workers.tasks.housekeeping.send_unsent_jobs" in queue


# --- retention -----------------------------------------------------------------------------------------


def test_raw_forget_sets_are_purged_after_the_retention_window_and_the_hash_stays(demo_corpus, tiny_world, file_request, settings):
    request = file_request(PERSON, facts=[f"{PERSON} lives in Ambercliff"])
    forget_set = services.forget_set_freeze(request_id=request.pk, world=tiny_world)
    job = UnlearningJob.objects.create(
        request=request,
        attempt=1,
        status="succeeded",
        certificate={"passed": True},
        certificate_personal={"answers": [{"question": "q", "gold": "Ambercliff"}]},
    )
    days = settings.FORGET["FORGET_SET_RETENTION_DAYS"]
    activated = timezone.now() - timedelta(days=days, hours=1)
    ErasureRequest.objects.filter(pk=request.pk).update(status="active", effective_at=activated)
    open_request = file_request("Someone Else")
    services.forget_set_freeze(request_id=open_request.pk, world=tiny_world)  # not active: kept

    assert services.forget_sets_purge_expired(now=activated + timedelta(days=days - 1)) == []  # not yet
    assert FrozenForgetSet.objects.get(pk=forget_set.pk).retain_until == activated + timedelta(days=days)
    assert services.forget_sets_purge_expired() == [request.reference]
    assert services.forget_sets_purge_expired() == []  # once

    purged = FrozenForgetSet.objects.get(pk=forget_set.pk)
    assert purged.items is None and purged.subjects is None and purged.purged_at is not None
    assert purged.content_hash == forget_set.content_hash and purged.sources == forget_set.sources
    assert UnlearningJob.objects.get(pk=job.pk).certificate_personal is None and UnlearningJob.objects.get(pk=job.pk).certificate == {"passed": True}
    assert FrozenForgetSet.objects.get(request=open_request).items is not None
    event = AuditEvent.objects.get(action="forget_set.purged")
    assert (event.target_id, event.data["content_hash"], event.data["retention_days"]) == (request.reference, forget_set.content_hash, days)


# --- a certificate that does not pass ----------------------------------------------------------------


def _to_needs_review(request, reviewer, actor_of, capture) -> UnlearningJob:
    """The worker's path for a certificate still INCONCLUSIVE after its remediation rounds."""
    from adapters_store.models import AdapterVersion

    approve(request, reviewer, actor_of, capture)
    job = UnlearningJob.objects.get(request=request)
    services.job_claim(job_id=job.pk, worker="w1:1")
    job.refresh_from_db()
    assert services.job_begin_training(job=job, resumed=False) and services.job_begin_evaluation(job=job)
    services.job_remediation(
        job_id=job.pk,
        worker="w1:1",
        entry={
            "round": 1,
            "verdict": "inconclusive",
            "reason": "leak D INCONCLUSIVE (0.016, bounds 0.001-0.072, n=64)",
            "failing_families": ["D"],
            "changes": {"seed": 1000, "epochs": 15, "more_prompts_for": ["D"]},
        },
    )
    unit_id = f"{request.reference.lower()}-a1"
    AdapterVersion.objects.create(
        unit_id=unit_id,
        request=request,
        version=1,
        adapter_sha256="a" * 64,
        manifest_sha256="b" * 64,
        storage_uri=f"file:///store/{unit_id}",
        certificate_passed=False,
    )
    services.job_needs_review(
        job_id=job.pk, worker="w1:1", unit_id=unit_id, reason="The certificate is INCONCLUSIVE after the automatic remediation: leak D INCONCLUSIVE"
    )
    request.refresh_from_db()
    job.refresh_from_db()
    return job


def test_a_certificate_that_does_not_pass_goes_to_review_with_its_remediation_recorded(
    file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs, client
):
    reviewer = staff("reviewer")
    request = file_request(PERSON, email="greta@example.org")
    job = _to_needs_review(request, reviewer, actor_of, django_capture_on_commit_callbacks)
    assert (request.status, job.status, job.phase) == ("needs_review", "needs_review", "done")
    assert job.remediation[0]["round"] == 1 and "INCONCLUSIVE" in request.failure_reason
    actions = set(AuditEvent.objects.filter(target_id=request.reference).values_list("action", flat=True))
    assert {"unlearning.remediation_started", "unlearning.job_needs_review", "request.needs_review"} <= actions
    assert PERSON not in json.dumps(list(AuditEvent.objects.filter(action="unlearning.remediation_started").values_list("data", flat=True)))
    # The subject is told the truth: still being worked on, not "a technical problem".
    page = client.post("/request/status/", {"reference": request.reference, "email": "greta@example.org"}, follow=True).content.decode()
    assert "We are still working on your request" in page and "technical problem" not in page

    # A retry with options: validated, kept on the new attempt, audited.
    with pytest.raises(ApplicationError, match="epochs must be an integer"):
        services.job_retry(actor=actor_of(reviewer), request_id=request.pk, options={"epochs": 0})
    with pytest.raises(ApplicationError, match="Unknown retry option 'lr'"):
        services.job_retry(actor=actor_of(reviewer), request_id=request.pk, options={"lr": 0.1})
    with django_capture_on_commit_callbacks(execute=True):
        second = services.job_retry(actor=actor_of(reviewer), request_id=request.pk, options={"epochs": 30, "more_prompts_for": ["D", "chat"]})
    request.refresh_from_db()
    assert (second.attempt, second.options, request.status) == (2, {"epochs": 30, "more_prompts_for": ["D", "chat"]}, "queued")
    assert AuditEvent.objects.filter(action="request.retried", target_id=request.reference, data__options__epochs=30).exists()


def test_only_a_second_approver_overrides_a_certificate_with_a_reason(file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs):
    from adapters_store.models import AdapterVersion

    approver, second = staff("reviewer"), staff("reviewer")
    request = file_request(PERSON)
    job = _to_needs_review(request, approver, actor_of, django_capture_on_commit_callbacks)
    with pytest.raises(PermissionDenied, match="another reviewer must override"):
        services.job_override(actor=actor_of(approver), request_id=request.pk, reason="looks fine")
    with pytest.raises(ApplicationError, match="reason"):
        services.job_override(actor=actor_of(second), request_id=request.pk, reason="  ")
    with pytest.raises(PermissionDenied):
        services.job_override(actor=actor_of(staff("auditor")), request_id=request.pk, reason="looks fine")

    services.job_override(actor=actor_of(second), request_id=request.pk, reason="D probes checked by hand: refusals only")
    request.refresh_from_db()
    version = AdapterVersion.objects.get(unit_id=job.unit_id)
    assert request.status == "staged" and version.certificate_override["reason"] == "D probes checked by hand: refusals only"
    assert version.status == "active"  # activated by policy (FORGET_AUTO_ACTIVATE)
    assert AuditEvent.objects.filter(
        action="adapter.certificate_overridden", target_id=job.unit_id, data__reason="D probes checked by hand: refusals only"
    ).exists()
    with pytest.raises(InvalidTransition):  # nothing waits for review any more
        services.job_override(actor=actor_of(second), request_id=request.pk, reason="again")
