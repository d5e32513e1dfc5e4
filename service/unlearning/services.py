"""Writes of the unlearning pipeline: the corpus index, frozen forget sets, and the jobs the GPU
worker runs. The web process (approval, retry), the worker (claim, progress, outcome) and the
periodic tasks (retention, resending) all call these; nothing here imports torch.

A job is claimed with a compare-and-set on its row, and every later write of the worker is guarded
by `status=running AND worker=<that worker>`: a worker that lost its claim (it was presumed dead and
the job resumed elsewhere) changes nothing. Every outcome writes its audit row in the same
transaction as the status change; the request's own status moves through
service.requests.services.request_mark_pipeline (compare-and-set + audit, like every transition).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from adapters_store.models import AdapterVersion
from adapters_store.services import adapter_override_certificate
from service.accounts.roles import SYSTEM, Actor, Capability
from service.audit.services import audit_record
from service.common.celery_app import app as celery_app
from service.common.errors import ApplicationError, InvalidTransition
from service.common.reasons import MAX_REASON
from service.requests import notifications
from service.requests.models import ErasureRequest
from service.requests.selectors import request_get
from service.requests.services import request_mark_pipeline
from service.requests.states import TERMINAL, Status

from . import selectors
from .forget_set_builder import build_forget_set
from .models import CorpusDocument, FrozenForgetSet, JobPhase, JobStatus, UnlearningJob
from .selectors import corpus_search
from .states import job_sources

logger = logging.getLogger(__name__)

# Requests whose forget set is purged once the retention window has passed: done (active, rolled
# back) or closed without a unit.
RETENTION_STATUSES = frozenset({Status.ACTIVE, *TERMINAL})


class JobBusy(Exception):
    """Another worker holds the job and its heartbeat is fresh: look again in `retry_in` seconds."""

    def __init__(self, job_id: int, retry_in: float):
        super().__init__(f"job {job_id} is running on another worker; retry in {retry_in:.0f} s")
        self.retry_in = retry_in


class JobLost(Exception):
    """This worker's claim on the job is gone (it was resumed elsewhere, or finished): stop quietly."""


@dataclass(frozen=True)
class Claim:
    job: UnlearningJob
    resumed: bool  # True: a worker died holding the job, and this one starts it over


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _reason(text: str) -> str:
    text = " ".join(str(text).split()) or "unknown error"
    return text[:MAX_REASON]


# --- the training-corpus index -------------------------------------------------------------------


def corpus_documents_load(*, source: str, documents: Iterable[tuple[str, str, str]], actor: Actor = SYSTEM, replaces_prefix: str = "") -> int:
    """Loads (external id, kind, text) documents as the corpus `source`, replacing what that source
    held before (loading twice gives the same index), and every other source whose name starts
    with `replaces_prefix` (an older demo world). Builds the full-text vectors on PostgreSQL."""
    if actor.kind != "system":
        actor.require(Capability.ADMINISTER)
    rows = [CorpusDocument(source=source, external_id=external_id, kind=kind, text=text) for external_id, kind, text in documents]
    with transaction.atomic():
        if replaces_prefix:
            CorpusDocument.objects.filter(source__startswith=replaces_prefix).exclude(source=source).delete()
        CorpusDocument.objects.filter(source=source).exclude(external_id__in=[row.external_id for row in rows]).delete()
        CorpusDocument.objects.bulk_create(
            rows, batch_size=1000, update_conflicts=True, unique_fields=["source", "external_id"], update_fields=["kind", "text"]
        )
        if connection.vendor == "postgresql":
            CorpusDocument.objects.filter(source=source).update(search=SearchVector("text", config="simple"))
        audit_record(action="corpus.loaded", actor=actor, target_type="corpus", target_id=source[:64], data={"count": len(rows), "source": source})
    return len(rows)


# --- forget sets ---------------------------------------------------------------------------------


def forget_set_freeze(*, request_id, world: Any = None) -> FrozenForgetSet:
    """The request's forget set, built now from its facts, evidence, the corpus index and (demo)
    the world's question templates, then frozen: a request has one forget set, whatever happens
    later (retries and redelivered jobs reuse it). Audited with its hash and counts, never its text."""
    existing = FrozenForgetSet.objects.filter(request_id=request_id).first()
    if existing is not None:
        return existing
    request = ErasureRequest.objects.get(pk=request_id)
    name, email = request.subject.get("name", ""), request.subject.get("email", "")
    built = build_forget_set(
        name=name,
        email=email,
        facts=request.facts or [],
        evidence_prompts=request.evidence_prompts or [],
        hits=corpus_search(identifiers=[name, email]),
        world=world,
    )
    try:
        with transaction.atomic():
            forget_set = FrozenForgetSet.objects.create(
                request=request,
                items=built.items,
                subjects=built.subjects_payload(name=name),
                content_hash=built.content_hash,
                sources=built.sources,
            )
            audit_record(
                action="forget_set.frozen",
                actor=SYSTEM,
                target_type="request",
                target_id=request.reference,
                data={"items": len(built.items), "content_hash": built.content_hash, "sources": built.sources, "people": len(built.people)},
            )
    except IntegrityError:  # frozen concurrently by another delivery: that one stands
        return FrozenForgetSet.objects.get(request_id=request_id)
    return forget_set


def forget_set_record_check(*, forget_set_id: int, findings: dict[str, Any], details: list[dict[str, Any]]) -> None:
    """Keeps the model check: counts in the clear, the prompts and answers encrypted."""
    FrozenForgetSet.objects.filter(pk=forget_set_id).update(findings=findings, model_check=details)


def forget_sets_purge_expired(*, now=None) -> list[str]:
    """Purges the raw items (and the certificates' personal answers) of forget sets whose request
    became active, or was closed, more than FORGET['FORGET_SET_RETENTION_DAYS'] days ago. The
    content hash and the counts stay. Returns the references purged."""
    now = now or timezone.now()
    days = settings.FORGET["FORGET_SET_RETENTION_DAYS"]
    pending = FrozenForgetSet.objects.filter(purged_at__isnull=True, retain_until__isnull=True, request__status__in=[s.value for s in RETENTION_STATUSES])
    for pk, effective_at, updated_at in pending.values_list("pk", "request__effective_at", "request__updated_at"):
        FrozenForgetSet.objects.filter(pk=pk, retain_until__isnull=True).update(retain_until=(effective_at or updated_at) + timedelta(days=days))
    purged = []
    due = FrozenForgetSet.objects.filter(purged_at__isnull=True, retain_until__lte=now)
    for pk, request_id, reference, content_hash, sources in due.values_list("pk", "request_id", "request__reference", "content_hash", "sources"):
        with transaction.atomic():
            if not FrozenForgetSet.objects.filter(pk=pk, purged_at__isnull=True).update(items=None, subjects=None, model_check=None, purged_at=now):
                continue
            UnlearningJob.objects.filter(request_id=request_id).update(certificate_personal=None)
            audit_record(
                action="forget_set.purged",
                actor=SYSTEM,
                target_type="request",
                target_id=reference,
                data={
                    "content_hash": content_hash,
                    "items": sum((sources or {}).values()) - (sources or {}).get("corpus_documents", 0),
                    "retention_days": days,
                },
            )
        purged.append(reference)
    return purged


# --- enqueueing ----------------------------------------------------------------------------------


def _new_job(request: ErasureRequest, options: dict[str, Any] | None = None) -> UnlearningJob:
    attempt = (UnlearningJob.objects.filter(request=request).aggregate(top=Max("attempt"))["top"] or 0) + 1
    return UnlearningJob.objects.create(request=request, attempt=attempt, celery_task_id=str(uuid.uuid4()), options=options or {})


RUN_JOB_TASK = "workers.tasks.unlearning.run_job"  # sent by name: the worker layer sits above this one


def job_send(*, job_id: int) -> None:
    """Hands the job to the GPU queue (the task id was chosen when the job was created, so a resend
    is recognisable in the worker's log). A job the worker already finished is never resent."""
    job = UnlearningJob.objects.only("pk", "celery_task_id").get(pk=job_id)
    celery_app.send_task(RUN_JOB_TASK, args=[job.pk], task_id=job.celery_task_id)
    UnlearningJob.objects.filter(pk=job.pk, sent_at__isnull=True).update(sent_at=timezone.now())


def _send_after_commit(job: UnlearningJob) -> None:
    def send_job() -> None:  # a named function: Django logs a robust callback's failure by its name
        job_send(job_id=job.pk)

    transaction.on_commit(send_job, robust=True)


def job_enqueue_approved(*, request_id) -> UnlearningJob | None:
    """approved -> queued, with a new job sent to the GPU queue after the commit. Called right
    after an approval commits; None when the request is no longer approved (queued meanwhile by a
    concurrent call, or cancelled)."""
    with transaction.atomic():
        request = ErasureRequest.objects.select_for_update().filter(pk=request_id).only("pk", "status", "reference").first()
        if request is None or request.status != Status.APPROVED:
            return None
        job = _new_job(request)
        request_mark_pipeline(request_id=request.pk, to=Status.QUEUED, data={"attempt": job.attempt})
        _send_after_commit(job)
    return job


# A reviewer's retry may ask for a stronger configuration (docs/pipeline.md, "When a certificate
# does not pass"): option -> (lowest, highest) for integers, or the list of allowed values.
RETRY_OPTIONS: dict[str, Any] = {
    "epochs": (1, 200),  # passes over the training prompts (default: the engine's)
    "rank": (1, 64),  # LoRA rank
    "seed": (0, 2**31 - 1),  # a new draw of the training data and the LoRA's start
    "more_prompts_for": ("P", "statement", "open", "language", "name_forms", "wrapper", "chat", "D"),  # families to synthesise 4x more prompts for
}
RETRYABLE = frozenset({Status.FAILED, Status.NEEDS_REVIEW})


def job_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """A retry's options, validated (RETRY_OPTIONS); ApplicationError `invalid_options` otherwise."""

    options = dict(options or {})
    unknown = sorted(set(options) - set(RETRY_OPTIONS))
    if unknown:
        raise ApplicationError(f"Unknown retry option {unknown[0]!r}; known: {', '.join(RETRY_OPTIONS)}.", code="invalid_options")
    for name, value in options.items():
        allowed = RETRY_OPTIONS[name]
        if name == "more_prompts_for":
            if not isinstance(value, list) or not value or any(v not in allowed for v in value):
                raise ApplicationError(f"more_prompts_for must be a non-empty list of: {', '.join(allowed)}.", code="invalid_options")
            options[name] = sorted(set(value))
        elif isinstance(value, bool) or not isinstance(value, int) or not allowed[0] <= value <= allowed[1]:
            raise ApplicationError(f"{name} must be an integer from {allowed[0]} to {allowed[1]}.", code="invalid_options")
    return options


def job_retry(*, actor: Actor, request_id, options: dict[str, Any] | None = None) -> UnlearningJob:
    """A reviewer's retry of a failed request, or of one whose certificate did not pass (failed or
    needs_review -> queued), with a new attempt and, optionally, a stronger configuration."""
    actor.require(Capability.REVIEW)
    options = job_options(options)
    with transaction.atomic():
        request = request_get(actor=actor, request_id=request_id)
        ErasureRequest.objects.select_for_update().filter(pk=request.pk).values_list("pk").first()
        request.refresh_from_db(fields=["status"])
        if request.status not in RETRYABLE:
            raise InvalidTransition(
                f"Request {request.reference} is {request.status}; only a failed request or one that needs review can be retried.",
                extra={"current_status": request.status},
            )
        job = _new_job(request, options=options)
        request_mark_pipeline(
            request_id=request.pk, to=Status.QUEUED, actor=actor, data={"attempt": job.attempt, "retry": True, "options": options}, failure_reason=""
        )
        audit_record(
            action="request.retried", actor=actor, target_type="request", target_id=request.reference, data={"attempt": job.attempt, "options": options}
        )
        _send_after_commit(job)
    return job


def job_override(*, actor: Actor, request_id, reason: str) -> UnlearningJob:
    """A second approver accepts the unit of a request whose certificate did not pass
    (adapters_store.services.adapter_override_certificate: reason required, audited)."""

    actor.require(Capability.REVIEW)
    request = request_get(actor=actor, request_id=request_id)
    if request.status != Status.NEEDS_REVIEW:
        raise InvalidTransition(
            f"Request {request.reference} is {request.status}; only a request that needs review can be overridden.", extra={"current_status": request.status}
        )
    job = UnlearningJob.objects.filter(request=request, status=JobStatus.NEEDS_REVIEW).order_by("-attempt").first()
    version = AdapterVersion.objects.filter(unit_id=job.unit_id).first() if job is not None and job.unit_id else None
    if version is None:
        raise InvalidTransition(f"Request {request.reference} has no unit waiting for review.", extra={"current_status": request.status})
    adapter_override_certificate(version_id=version.pk, actor=actor, reason=reason)
    return job


def jobs_send_unsent(*, grace_seconds: float = 60.0, now=None) -> dict[str, list[str]]:
    """The safety net behind the after-commit enqueue (periodic): approved requests that were never
    queued, and queued jobs whose message never reached the broker, `grace_seconds` after the fact."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=grace_seconds)
    queued, resent = [], []
    for request_id, reference in ErasureRequest.objects.filter(status=Status.APPROVED, updated_at__lt=cutoff).values_list("pk", "reference"):
        if job_enqueue_approved(request_id=request_id) is not None:
            queued.append(reference)
    for job_id, reference in UnlearningJob.objects.filter(status=JobStatus.QUEUED, sent_at__isnull=True, created_at__lt=cutoff).values_list(
        "pk", "request__reference"
    ):
        try:
            job_send(job_id=job_id)
            resent.append(reference)
        except Exception:  # noqa: BLE001 - the broker is still down: the next run tries again
            logger.exception("could not send unlearning job %s", job_id)
    return {"queued": queued, "resent": resent}


# --- the worker's side ---------------------------------------------------------------------------


def _job(job_id: int) -> UnlearningJob | None:
    return UnlearningJob.objects.select_related("request").filter(pk=job_id).first()


def _request_status(request_id) -> str | None:
    return ErasureRequest.objects.filter(pk=request_id).values_list("status", flat=True).first()


def _claim_queued(job: UnlearningJob, *, worker: str, message_id: str, now) -> bool:
    """queued -> running on `worker`, carried by task message `message_id`: a compare-and-set."""
    waited = (now - (job.sent_at or job.created_at)).total_seconds()
    with transaction.atomic():
        won = UnlearningJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING,
            worker=worker,
            carried_by=message_id,
            deliveries=F("deliveries") + 1,
            started_at=now,
            heartbeat_at=now,
            phase=JobPhase.FORGET_SET,
            percent=0.0,
            step=0,
            total=0,
            loss=None,
            timings={"queue_seconds": round(max(waited, 0.0), 3)},
        )
        if won:
            audit_record(
                action="unlearning.job_started",
                actor=SYSTEM,
                target_type="request",
                target_id=job.request.reference,
                data={"attempt": job.attempt, "worker": worker},
            )
    if won:
        job.refresh_from_db()
    return bool(won)


def job_claim(*, job_id: int, worker: str, message_id: str = "") -> Claim | None:
    """Claims job `job_id` for `worker` with a compare-and-set. None: nothing to do (unknown job,
    already finished: a redelivered task; or the request was cancelled, and the job is marked so).
    Raises JobBusy when another worker holds it and is alive. A job still `running` whose heartbeat
    is older than FORGET['JOB_STALE_SECONDS'] lost its worker: this worker resumes it (from scratch).
    `message_id`: the task message carrying the job from now on (job_claim_next)."""
    for _ in range(3):  # a lost compare-and-set re-reads the row and decides again
        now = timezone.now()
        job = _job(job_id)
        if job is None:
            logger.warning("unlearning job %s does not exist", job_id)
            return None
        if job.finished:
            logger.info("unlearning job %s is already %s: nothing to do", job_id, job.status)
            return None
        if _request_status(job.request_id) == Status.CANCELLED:
            job_cancel(job_id=job.pk)
            return None
        if job.status == JobStatus.QUEUED:
            if _claim_queued(job, worker=worker, message_id=message_id, now=now):
                return Claim(job, resumed=False)
            continue
        # running
        stale_after = settings.FORGET["JOB_STALE_SECONDS"]
        silent = (now - job.heartbeat_at).total_seconds() if job.heartbeat_at else math.inf
        if silent < stale_after:
            raise JobBusy(job.pk, retry_in=max(stale_after - silent, 1.0) + 1.0)
        if job.deliveries >= settings.FORGET["JOB_MAX_DELIVERIES"]:
            # Resuming it again would likely lose this worker too (out of memory, over the time limit).
            try:
                job_fail(
                    job_id=job.pk,
                    worker=None,
                    reason=f"Its worker was lost {job.deliveries} times (killed, out of memory, or over the time limit); it is not resumed again.",
                )
            except JobLost:
                continue  # it changed meanwhile: read it again
            return None
        with transaction.atomic():
            won = UnlearningJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, worker=job.worker, heartbeat_at=job.heartbeat_at).update(
                worker=worker,
                carried_by=message_id or job.carried_by,
                deliveries=F("deliveries") + 1,
                heartbeat_at=now,
                phase=JobPhase.FORGET_SET,
                percent=0.0,
                step=0,
                total=0,
                loss=None,
                remediation=[],  # it starts over: its remediation rounds will be run (and audited) again
            )
            if won:
                audit_record(
                    action="unlearning.job_resumed",
                    actor=SYSTEM,
                    target_type="request",
                    target_id=job.request.reference,
                    data={
                        "attempt": job.attempt,
                        "worker": worker,
                        "previous_worker": job.worker,
                        "silent_seconds": None if math.isinf(silent) else round(silent, 1),
                    },
                )
        if won:
            job.refresh_from_db()
            return Claim(job, resumed=True)
    raise JobBusy(job_id, retry_in=1.0)


# Queued jobs one pass of job_claim_next tries, in schedule order, before it reads the queue again.
CLAIM_CANDIDATES = 8


def job_claim_next(*, worker: str, message_id: str, job_id: int | None = None) -> Claim | None:
    """What one task message runs under deadline-first scheduling (scheduling.py). A message is a
    ticket for the most urgent queued job, not only for job `job_id`, the one it was sent for:

    1. the job this message already carries (it was running when its worker died, and the broker
       redelivered the message; also a job claimed before this scheduler, by its own message):
       job_claim resumes it, or raises JobBusy while its worker still beats;
    2. otherwise the queued job with the earliest deadline (a cancelled request's job is closed on
       the way), claimed with a compare-and-set; another worker winning it moves on to the next.

    None: nothing is queued. Every job is sent with its own message, so a message can run out of
    work only when every queued job has been taken: none is left without a ticket."""
    carried = UnlearningJob.objects.filter(status=JobStatus.RUNNING, carried_by=message_id).values_list("pk", flat=True).first() if message_id else None
    if carried is None and job_id is not None:
        carried = UnlearningJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, carried_by="").values_list("pk", flat=True).first()
    if carried is not None:
        return job_claim(job_id=carried, worker=worker, message_id=message_id)
    while candidates := selectors.jobs_in_schedule_order(limit=CLAIM_CANDIDATES):
        for job in candidates:
            if job.request.status == Status.CANCELLED:
                job_cancel(job_id=job.pk)
            elif _claim_queued(job, worker=worker, message_id=message_id, now=timezone.now()):
                return Claim(job, resumed=False)
    return None


def jobs_alert_deadline_risks(*, now=None) -> list[str]:
    """Reviewers are told (email and audit row, once per job and deadline) about every queued or running job
    the GPU queue's forecast projects to finish within DEADLINE_RISK_MARGIN_HOURS of its deadline,
    or after it: while there is still time to add workers or extend the deadline."""
    now = now or timezone.now()
    alerted = []
    rows = [row for row in selectors.gpu_queue_forecast(now=now) if row.at_risk]
    if not rows:
        return alerted
    estimate = round(selectors.job_seconds_estimate(), 1)
    attempts = dict(UnlearningJob.objects.filter(pk__in=[row.job_id for row in rows]).values_list("pk", "attempt"))
    for row in rows:
        with transaction.atomic():
            # Once per job and deadline: a deadline extended since the alert is a new one to watch.
            unalerted = Q(deadline_alert_at__isnull=True) | ~Q(deadline_alert_for=row.deadline_at)
            if not UnlearningJob.objects.filter(unalerted, pk=row.job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
                deadline_alert_at=now, deadline_alert_for=row.deadline_at
            ):
                continue
            data = {
                "attempt": attempts.get(row.job_id),
                "position": row.position,
                "projected_finish": row.projected_finish.isoformat(),
                "deadline_at": row.deadline_at.isoformat(),
                "estimate_seconds": estimate,
            }
            audit_record(action="unlearning.deadline_at_risk", actor=SYSTEM, target_type="request", target_id=row.reference, data=data)
            notifications.send_deadline_at_risk(
                reference=row.reference, position=row.position, projected_finish=row.projected_finish, deadline_at=row.deadline_at
            )
        alerted.append(row.reference)
    return alerted


def _mine(job_id: int, worker: str):
    return UnlearningJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, worker=worker)


def job_report_progress(*, job_id: int, worker: str, phase: str, percent: float, step: int = 0, total: int = 0, loss: float | None = None) -> bool:
    """Progress and a heartbeat in one UPDATE. False: this worker no longer holds the job."""
    return bool(
        _mine(job_id, worker).update(
            phase=phase,
            percent=min(max(float(percent), 0.0), 100.0),
            step=max(int(step), 0),
            total=max(int(total), 0),
            loss=_finite(loss),
            heartbeat_at=timezone.now(),
        )
    )


def job_heartbeat(*, job_id: int, worker: str) -> bool:
    return bool(_mine(job_id, worker).update(heartbeat_at=timezone.now()))


def job_request_cancelled(*, job_id: int) -> bool:
    return UnlearningJob.objects.filter(pk=job_id, request__status=Status.CANCELLED).exists()


def job_add_timings(*, job_id: int, worker: str, **seconds: float) -> None:
    job = _mine(job_id, worker).only("timings").first()
    if job is not None:
        _mine(job_id, worker).update(timings={**(job.timings or {}), **{k: round(v, 3) for k, v in seconds.items()}})


def _move_request(job: UnlearningJob, to: Status, *, data: dict[str, Any] | None = None, **fields: Any) -> bool:
    """The request follows its job; False when it cannot (it was cancelled meanwhile, say)."""
    if _request_status(job.request_id) == to and to != Status.TRAINING:
        return True  # a resumed job repeating a step it had already taken
    try:
        request_mark_pipeline(request_id=job.request_id, to=to, data={"attempt": job.attempt, **(data or {})}, **fields)
        return True
    except InvalidTransition:
        return False


def job_begin_training(*, job: UnlearningJob, resumed: bool) -> bool:
    """The request enters `training` (again, for a resumed job)."""
    return _move_request(job, Status.TRAINING, data={"resumed": True} if resumed else None)


def job_begin_evaluation(*, job: UnlearningJob) -> bool:
    return _move_request(job, Status.EVALUATING)


def job_record_certificate(*, job_id: int, worker: str, certificate: dict[str, Any], unit_id: str) -> None:
    """Keeps the certificate: metrics in the clear, its personal_data (answers about the subject)
    encrypted, on the job row."""
    public = {key: value for key, value in certificate.items() if key != "personal_data"}
    if not _mine(job_id, worker).update(
        certificate=public, certificate_personal=certificate.get("personal_data"), certificate_passed=bool(public.get("passed")), unit_id=unit_id
    ):
        raise JobLost(f"job {job_id} is no longer held by {worker}")


def _finish(job: UnlearningJob, worker: str | None, status: JobStatus, **fields: Any) -> bool:
    """Compare-and-set into a finished status, from a status the transition table allows: from
    `running` on `worker` when one is named (the job is still this worker's), else from any allowed."""
    rows = UnlearningJob.objects.filter(pk=job.pk)
    rows = rows.filter(status=JobStatus.RUNNING, worker=worker) if worker else rows.filter(status__in=sorted(job_sources(status)))
    return bool(rows.update(status=status, finished_at=timezone.now(), **fields))


def job_succeed(*, job_id: int, worker: str, unit_id: str) -> bool:
    """The unit passed its certificate and is registered: the job succeeded, the request is staged."""
    job = _job(job_id)
    with transaction.atomic():
        if not _finish(job, worker, JobStatus.SUCCEEDED, phase=JobPhase.DONE, percent=100.0, unit_id=unit_id):
            raise JobLost(f"job {job_id} is no longer held by {worker}")
        audit_record(
            action="unlearning.job_succeeded",
            actor=SYSTEM,
            target_type="request",
            target_id=job.request.reference,
            data={"attempt": job.attempt, "unit_id": unit_id},
        )
        return _move_request(job, Status.STAGED, data={"unit_id": unit_id})


def job_fail(*, job_id: int, worker: str | None, reason: str) -> None:
    """The job failed (an error, or a certificate that did not pass): so does the request, with the
    reason, until a reviewer retries it."""
    job = _job(job_id)
    reason = _reason(reason)
    with transaction.atomic():
        if not _finish(job, worker, JobStatus.FAILED, failure_reason=reason):
            raise JobLost(f"job {job_id} is no longer held by {worker}")
        audit_record(
            action="unlearning.job_failed",
            actor=SYSTEM,
            target_type="request",
            target_id=job.request.reference,
            data={"attempt": job.attempt, "reason": reason},
        )
        _move_request(job, Status.FAILED, data={"reason": reason}, failure_reason=reason)


def job_remediation(*, job_id: int, worker: str, entry: dict[str, Any]) -> None:
    """The worker starts a remediation round after a certificate that did not pass: the round, its
    reason (rules and counts, no personal data) and what it changes go onto the job and into the
    audit log."""
    job = _job(job_id)
    with transaction.atomic():
        if not _mine(job_id, worker).update(remediation=[*(job.remediation or []), entry], phase=JobPhase.REMEDIATING):
            raise JobLost(f"job {job_id} is no longer held by {worker}")
        audit_record(
            action="unlearning.remediation_started",
            actor=SYSTEM,
            target_type="request",
            target_id=job.request.reference,
            data={"attempt": job.attempt, **{k: entry[k] for k in ("round", "reason", "verdict", "changes") if k in entry}},
        )


def job_orthogonalised(*, job_id: int, worker: str, newcomers: list[str], penalty_before: float, penalty_after: float) -> None:
    """Units went live while this job trained (another GPU worker registered them): its adapter was
    projected out of theirs before its certificate (docs/pipeline.md, "Several GPU workers").
    On the job (timings) and in the audit log."""
    job = _job(job_id)
    with transaction.atomic():
        if not _mine(job_id, worker).exists():
            raise JobLost(f"job {job_id} is no longer held by {worker}")
        audit_record(
            action="unlearning.orthogonalised",
            actor=SYSTEM,
            target_type="request",
            target_id=job.request.reference,
            data={
                "attempt": job.attempt,
                "units": ", ".join(newcomers),
                "newcomers": newcomers,
                "penalty_before": _finite(penalty_before),
                "penalty_after": _finite(penalty_after),
            },
        )


def job_needs_review(*, job_id: int, worker: str, unit_id: str, reason: str) -> None:
    """The certificate did not pass after every remediation round: the job ends `needs_review`
    and the request goes to a reviewer (evaluating -> needs_review), who retries it with options
    or, as a second approver, overrides the certificate with a reason."""
    job = _job(job_id)
    reason = _reason(reason)
    with transaction.atomic():
        if not _finish(job, worker, JobStatus.NEEDS_REVIEW, phase=JobPhase.DONE, percent=100.0, failure_reason=reason, unit_id=unit_id):
            raise JobLost(f"job {job_id} is no longer held by {worker}")
        audit_record(
            action="unlearning.job_needs_review",
            actor=SYSTEM,
            target_type="request",
            target_id=job.request.reference,
            data={"attempt": job.attempt, "reason": reason, "unit_id": unit_id},
        )
        _move_request(job, Status.NEEDS_REVIEW, data={"reason": reason, "unit_id": unit_id}, failure_reason=reason)


def job_cancel(*, job_id: int, worker: str | None = None) -> bool:
    """The request was cancelled: the job stops (queued, or running on `worker`)."""
    job = _job(job_id)
    with transaction.atomic():
        if not _finish(job, worker, JobStatus.CANCELLED):
            return False
        audit_record(action="unlearning.job_cancelled", actor=SYSTEM, target_type="request", target_id=job.request.reference, data={"attempt": job.attempt})
    return True


def job_not_found(*, job_id: int, worker: str, findings: dict[str, Any]) -> None:
    """The model does not reveal the data and the corpus has nothing about the subject: no GPU time
    is spent; the request goes back to the reviewer (queued -> verified) with that finding."""
    job = _job(job_id)
    with transaction.atomic():
        if not _finish(job, worker, JobStatus.NOT_FOUND, phase=JobPhase.DONE, failure_reason="The data was not found in the model or the training corpus."):
            raise JobLost(f"job {job_id} is no longer held by {worker}")
        if _move_request(job, Status.VERIFIED, data={"reason": "not found in the model"}):
            audit_record(
                action="request.not_found_in_model",
                actor=SYSTEM,
                target_type="request",
                target_id=job.request.reference,
                data={"attempt": job.attempt, **findings},
            )
