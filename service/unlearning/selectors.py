"""Reads for the unlearning pipeline: the corpus search, a request's jobs, progress and certificate.

Callers check that the viewer may see the request (service.requests.selectors.request_get) before
asking for its jobs; these functions take the request itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from service.common.masking import mask
from service.requests.models import ErasureRequest
from workers.engine.detector.negatives import infer_subjects
from workers.engine.prompting import normalise

from .forget_set_builder import CorpusHit, qa_pair
from .models import CorpusDocument, FrozenForgetSet, JobStatus, UnlearningJob
from .scheduling import SCHEDULE_ORDER, Forecast, QueuedWork, forecast, median

# Most documents one search returns (the forget set of one person, not a data export).
MAX_CORPUS_HITS = 500
# Request statuses that can have jobs (the others never reached the pipeline, or went back to review).
PIPELINE_STATUSES = frozenset({"queued", "training", "evaluating", "staged", "active", "failed", "needs_review", "rolled_back", "cancelled", "verified"})


def _mentions(text: str, needles: Sequence[str]) -> bool:
    haystack = f" {normalise(text)} "
    return any(f" {needle} " in haystack for needle in needles)


def corpus_search(*, identifiers: Sequence[str], limit: int = MAX_CORPUS_HITS) -> list[CorpusHit]:
    """Corpus documents that mention any of the identifiers (a name, an email address) as a whole
    phrase. PostgreSQL: full-text phrase queries on the GIN-indexed tsvector ('simple' configuration);
    SQLite: case-insensitive substring. Either way the candidates are then checked on normalised
    text (prompting.normalise), so "Ada Brightwell" never matches "Ada Brightwellson"."""
    identifiers = [i.strip() for i in identifiers if i and i.strip()]
    needles = [normalise(i) for i in identifiers if normalise(i)]
    if not needles:
        return []
    condition = Q()
    for identifier in identifiers:
        if connection.vendor == "postgresql":
            condition |= Q(search=SearchQuery(identifier, search_type="phrase", config="simple"))
        else:
            condition |= Q(text__icontains=identifier)
    candidates = CorpusDocument.objects.filter(condition).order_by("source", "id")[: limit * 2]
    hits = [CorpusHit(id=str(doc.pk), kind=doc.kind, text=doc.text) for doc in candidates if _mentions(doc.text, needles)]
    return hits[:limit]


# Other people's questions a certificate samples from the corpus index as negatives (R and N) when
# the base model is not the demo model: at most this many.
MAX_CORPUS_NEGATIVES = 400


def corpus_negatives(*, limit: int = MAX_CORPUS_NEGATIVES) -> list[tuple[str, str, str]]:
    """(question, answer, name) of corpus QA documents about named people, a deterministic spread
    over the index (every k-th by id), for a certificate's negatives. The caller leaves out the
    subject's own and splits the rest into neighbours (a shared name part) and other people."""
    total = CorpusDocument.objects.count()
    step = max(1, total // (limit * 2) if total else 1)
    found = []
    for text in CorpusDocument.objects.order_by("id").values_list("text", flat=True)[: limit * 2 * step : step]:
        pair = qa_pair(text)
        names = infer_subjects([pair[0], pair[0]]) if pair else []
        if names:
            found.append((pair[0], pair[1], names[0]))
        if len(found) >= limit:
            break
    return found


def forget_set_of(request: ErasureRequest) -> FrozenForgetSet | None:
    return FrozenForgetSet.objects.filter(request=request).first()


def forget_set_people(*, request_id) -> list[str] | None:
    """The demo-world people a request's forget set is about; None once purged (or never built)."""
    found = FrozenForgetSet.objects.filter(request_id=request_id).only("subjects", "purged_at").first()
    if found is None or found.subjects is None:
        return None
    return list(found.subjects.get("people", []))


def jobs_of(request: ErasureRequest) -> list[UnlearningJob]:
    """Every attempt, newest first."""
    return list(UnlearningJob.objects.filter(request=request).order_by("-attempt"))


def latest_job(request: ErasureRequest) -> UnlearningJob | None:
    if request.status not in PIPELINE_STATUSES:
        return None
    return UnlearningJob.objects.filter(request=request).order_by("-attempt").first()


def latest_certificate_job(request: ErasureRequest) -> UnlearningJob | None:
    """The newest attempt that produced a certificate."""
    return UnlearningJob.objects.filter(request=request, certificate__isnull=False).order_by("-attempt").first()


def request_was_not_found(*, request_id) -> bool:
    """Whether an earlier job of the request found its data neither in the model nor in the corpus."""
    return UnlearningJob.objects.filter(request_id=request_id, status=JobStatus.NOT_FOUND).exists()


def job_is_current(job: UnlearningJob | None) -> bool:
    """Queued or running: the page refreshes itself while this holds."""
    return job is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING)


def job_progress(job: UnlearningJob | None) -> dict[str, Any] | None:
    """The job as the API and the page's script show it (no personal data)."""
    if job is None:
        return None
    return {
        "attempt": job.attempt,
        "status": job.status,
        "phase": job.phase,
        "phase_label": job.phase_label,
        "percent": round(job.percent, 1),
        "step": job.step,
        "total": job.total,
        "loss": job.loss,
        "heartbeat_at": job.heartbeat_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "restarts": max(job.deliveries - 1, 0),
        "failure_reason": job.failure_reason or None,
        "unit_id": job.unit_id or None,
        "certificate_passed": job.certificate_passed,
    }


# --- the GPU queue (scheduling.py) ----------------------------------------------------------------

# Jobs whose training time the forecast measures: the most recent ones that trained a unit.
ESTIMATE_SAMPLE = 20


def jobs_in_schedule_order(*, limit: int | None = None) -> list[UnlearningJob]:
    """The queued jobs in the order GPU workers take them: earliest legal deadline first."""
    rows = UnlearningJob.objects.filter(status=JobStatus.QUEUED).select_related("request").order_by(*SCHEDULE_ORDER)
    return list(rows[:limit] if limit is not None else rows)


def job_seconds_estimate() -> float:
    """How long a job takes on a GPU worker: the median claim-to-finish time of the last
    ESTIMATE_SAMPLE jobs that trained a unit, else FORGET['JOB_ESTIMATE_SECONDS'] (nothing measured yet)."""
    recent = (
        UnlearningJob.objects.filter(status__in=[JobStatus.SUCCEEDED, JobStatus.NEEDS_REVIEW], started_at__isnull=False, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[:ESTIMATE_SAMPLE]
    )
    measured = median([(finished - started).total_seconds() for started, finished in recent])
    return measured if measured is not None else float(settings.FORGET["JOB_ESTIMATE_SECONDS"])


def gpu_queue_forecast(*, now=None) -> list[Forecast]:
    """Every running and queued job with its projected start and finish (scheduling.forecast), on
    FORGET['GPU_WORKERS'] workers (or as many as hold a job now, if more)."""
    now = now or timezone.now()
    estimate = job_seconds_estimate()
    running = [
        QueuedWork(job.pk, job.request.reference, job.request.deadline_at, estimate * (1.0 - min(max(job.percent, 0.0), 100.0) / 100.0))
        for job in UnlearningJob.objects.filter(status=JobStatus.RUNNING).select_related("request").order_by(*SCHEDULE_ORDER)
    ]
    queued = [QueuedWork(job.pk, job.request.reference, job.request.deadline_at, estimate) for job in jobs_in_schedule_order()]
    workers = max(settings.FORGET["GPU_WORKERS"], len(running))
    margin = timedelta(hours=settings.FORGET["DEADLINE_RISK_MARGIN_HOURS"])
    return forecast(running=running, queued=queued, workers=workers, now=now, margin=margin)


def job_forecast(job: UnlearningJob | None) -> Forecast | None:
    """The forecast row of one queued or running job (the request page's "expected to finish")."""
    if not job_is_current(job):
        return None
    return next((row for row in gpu_queue_forecast() if row.job_id == job.pk), None)


def certificate_summary(job: UnlearningJob) -> dict[str, Any]:
    """The certificate as the API gives it: verdict, rules with thresholds, headline metrics; never
    the personal_data part (the answers), which the staff page shows masked."""
    cert = job.certificate or {}
    return {
        "attempt": job.attempt,
        "unit_id": job.unit_id or None,
        "passed": bool(cert.get("passed")),
        "verdict": cert.get("verdict") or ("pass" if cert.get("passed") else "fail"),
        "failing_families": cert.get("failing_families", []),
        "rules": cert.get("rules", []),
        "thresholds": cert.get("thresholds", {}),
        "leak": {name: modes.get("gated", {}) for name, modes in (cert.get("leak") or {}).items()},
        "retain": {name: modes.get("gated", {}) for name, modes in (cert.get("retain") or {}).items()},
        "gate_union": (cert.get("gate") or {}).get("union", {}),
        "probes": (cert.get("probes") or {}).get("sizes", {}),
        "base": cert.get("base", {}),
        "started_at": cert.get("started_at"),
        "finished_at": cert.get("finished_at"),
    }


def probe_answers(job: UnlearningJob | None, *, revealed: bool, sets: Sequence[str], per_set: int | None = None) -> list[dict[str, Any]]:
    """The before/after rows of a job's certificate for the probe families `sets` (personal data:
    masked unless `revealed`, which the caller checks and audits); [] once purged. With `per_set`,
    at most that many rows per family: the ones that still leak first, then the ones the base
    model revealed data on. A row leaks, as in the certificate, when the answer reveals any of the
    subject's values (workers.engine.leaks)."""
    if job is None or not job.certificate_personal:
        return []
    show = (lambda value: value) if revealed else (lambda value: mask(value) if value else value)
    rows = [row for row in job.certificate_personal.get("answers", []) if row.get("set") in sets]
    if per_set is not None:
        chosen: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(rows, key=lambda r: (not r.get("leaked"), not r.get("base_correct"))):
            group = chosen.setdefault(row["set"], [])
            if len(group) < per_set:
                group.append(row)
        rows = [row for name in sets for row in chosen.get(name, [])]
    return [
        {
            "set": row["set"],
            "shape": row.get("shape", "question"),
            "question": show(row.get("question", "")),
            "gold": show(row.get("gold", "")),
            "before": show(row.get("base_answer", "")),
            "after": show(row.get("gated_answer", "")),
            "known_before": row.get("base_correct"),
            "leaked_after": row.get("leaked"),
            "revealed": [show(value) for value in row.get("revealed") or []],
        }
        for row in rows
    ]
