"""Deadline-first scheduling of the GPU queue (service/unlearning/scheduling.py): the order in which
task messages take queued jobs, the resumption of the job a redelivered message carried, the
forecast, and the reviewers' alert for a deadline at risk. The real-worker test of the same order is
tests/integration/test_scheduling_worker.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.requests.services import request_approve, request_extend_deadline
from service.unlearning import selectors, services
from service.unlearning.models import JobStatus, UnlearningJob
from service.unlearning.scheduling import QueuedWork, forecast, median

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


# --- the forecast (pure) -----------------------------------------------------------------------------


def test_median_of_training_times():
    assert median([]) is None
    assert median([30.0]) == 30.0
    assert median([10.0, 40.0, 20.0]) == 20.0
    assert median([10.0, 40.0, 20.0, 30.0]) == 25.0


def test_the_forecast_plays_the_queue_forward_on_each_free_worker():
    hour = 3600.0
    running = [QueuedWork(1, "R1", NOW + timedelta(days=9), remaining_seconds=0.5 * hour)]
    queued = [QueuedWork(n, f"Q{n}", NOW + timedelta(days=n), remaining_seconds=hour) for n in (2, 3, 4)]

    rows = forecast(running=running, queued=queued, workers=2, now=NOW, margin=timedelta(hours=0))

    by_ref = {row.reference: row for row in rows}
    assert [row.position for row in rows] == [0, 1, 2, 3]
    assert by_ref["R1"].projected_finish == NOW + timedelta(minutes=30)
    assert by_ref["Q2"].projected_start == NOW  # the second worker is free now
    assert by_ref["Q3"].projected_start == NOW + timedelta(minutes=30)  # the first one, once R1 is done
    assert by_ref["Q4"].projected_start == NOW + timedelta(hours=1)  # the second one again
    assert by_ref["Q4"].projected_finish == NOW + timedelta(hours=2)
    assert not any(row.at_risk for row in rows)


def test_a_job_projected_to_finish_inside_the_margin_is_at_risk():
    queued = [QueuedWork(1, "A", NOW + timedelta(hours=10), 4 * 3600.0), QueuedWork(2, "B", NOW + timedelta(hours=30), 4 * 3600.0)]
    rows = forecast(running=[], queued=queued, workers=1, now=NOW, margin=timedelta(hours=24))
    # A ends at +4 h (6 h before its deadline, inside the 24 h margin); B at +8 h, 22 h before its own.
    assert [(row.reference, row.at_risk) for row in rows] == [("A", True), ("B", True)]
    rows = forecast(running=[], queued=queued, workers=1, now=NOW, margin=timedelta(hours=5))
    assert [(row.reference, row.at_risk) for row in rows] == [("A", False), ("B", False)]
    # No worker configured still means one (the forecast never divides the queue by zero).
    assert forecast(running=[], queued=queued[:1], workers=0, now=NOW, margin=timedelta(0))[0].projected_finish == NOW + timedelta(hours=4)


# --- the claim order (PostgreSQL) ------------------------------------------------------------------------


@pytest.fixture
def queue(file_request, staff, actor_of, django_capture_on_commit_callbacks, sent_jobs):
    """queue(name, deadline_in_days) -> the queued job of a request filed now (in this order) whose
    legal deadline is that many days away (regulations and extensions differ: set directly)."""
    reviewer = actor_of(staff("reviewer"))

    def make(name: str, days: float) -> UnlearningJob:
        request = file_request(name)
        ErasureRequest.objects.filter(pk=request.pk).update(deadline_at=timezone.now() + timedelta(days=days))
        with django_capture_on_commit_callbacks(execute=True):
            request_approve(actor=reviewer, request_id=request.pk)
        return UnlearningJob.objects.get(request=request)

    return make


def _claim(message_id: str, job_id: int | None = None):
    claim = services.job_claim_next(worker=f"gpu-{message_id}:1", message_id=message_id, job_id=job_id)
    return None if claim is None else claim.job.pk


def test_a_request_filed_later_with_an_earlier_deadline_trains_first(queue, sent_jobs):
    ccpa = queue("Filed First", 45)  # CCPA: 45 days
    gdpr = queue("Filed Second", 30)  # GDPR: a month, so due earlier although filed later
    tie = queue("Filed Third", 45)  # the same deadline as the first: the job queued first goes first
    assert [s["args"] for s in sent_jobs] == [[ccpa.pk], [gdpr.pk], [tie.pk]]  # each job still sends its own message

    # The first message to arrive is the one sent for the first request; it takes the most urgent job.
    assert _claim(ccpa.celery_task_id, ccpa.pk) == gdpr.pk
    assert _claim(gdpr.celery_task_id, gdpr.pk) == ccpa.pk
    assert [job.pk for job in selectors.jobs_in_schedule_order()] == [tie.pk]
    assert _claim(tie.celery_task_id, tie.pk) == tie.pk
    assert _claim("a-duplicate") is None  # nothing queued: a spare message does nothing

    jobs = {job.pk: job for job in UnlearningJob.objects.all()}
    assert jobs[gdpr.pk].carried_by == ccpa.celery_task_id and jobs[ccpa.pk].carried_by == gdpr.celery_task_id
    started = list(AuditEvent.objects.filter(action="unlearning.job_started").order_by("seq").values_list("target_id", flat=True))
    assert started == [gdpr.request.reference, ccpa.request.reference, tie.request.reference]


def test_a_redelivered_message_resumes_the_job_it_carried_not_the_most_urgent_one(queue, settings):
    first = queue("Long Runner", 20)
    claimed = _claim("m-1", first.pk)
    assert claimed == first.pk
    urgent = queue("Very Urgent", 2)  # queued while the first trains

    with pytest.raises(services.JobBusy):  # m-1 redelivered while its worker still beats: come back later
        _claim("m-1", first.pk)
    UnlearningJob.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=settings.FORGET["JOB_STALE_SECONDS"] + 1))
    resumed = services.job_claim_next(worker="gpu-b:2", message_id="m-1", job_id=first.pk)
    assert resumed.job.pk == first.pk and resumed.resumed is True and resumed.job.worker == "gpu-b:2"
    assert UnlearningJob.objects.get(pk=urgent.pk).status == JobStatus.QUEUED  # its own message takes it
    assert _claim(urgent.celery_task_id, urgent.pk) == urgent.pk


def test_the_jobs_own_message_arriving_while_another_message_runs_it_takes_the_next_job(queue):
    a, b = queue("Person Alpha", 5), queue("Person Beta", 9)
    assert _claim(b.celery_task_id, b.pk) == a.pk  # b's message took a (earlier deadline)
    assert _claim(a.celery_task_id, a.pk) == b.pk  # a's own message: a is taken, so it runs b
    assert UnlearningJob.objects.filter(status=JobStatus.RUNNING).count() == 2


def test_a_cancelled_requests_job_is_closed_on_the_way_to_the_next(queue, staff, actor_of):
    from service.requests.services import request_cancel

    dropped, kept = queue("Changed Mind", 3), queue("Still Wanted", 10)
    request_cancel(actor=actor_of(staff("reviewer")), request_id=dropped.request_id, reason="withdrawn")
    assert _claim(kept.celery_task_id, kept.pk) == kept.pk
    assert UnlearningJob.objects.get(pk=dropped.pk).status == JobStatus.CANCELLED


# --- the deadline-at-risk alert -----------------------------------------------------------------------------


def test_reviewers_are_alerted_once_per_deadline_when_a_job_will_not_finish_in_time(queue, settings, staff, actor_of, django_capture_on_commit_callbacks):
    staff("reviewer", username="on-call")
    settings.FORGET = {**settings.FORGET, "GPU_WORKERS": 1, "DEADLINE_RISK_MARGIN_HOURS": 24, "JOB_ESTIMATE_SECONDS": 1800.0}
    # A measured job took 20 hours (the estimate is measured once there is one).
    done = queue("Already Done", 40)
    UnlearningJob.objects.filter(pk=done.pk).update(
        status=JobStatus.SUCCEEDED, started_at=timezone.now() - timedelta(hours=21), finished_at=timezone.now() - timedelta(hours=1)
    )
    assert selectors.job_seconds_estimate() == pytest.approx(20 * 3600.0, abs=1.0)
    soon = queue("Due Soon", 3)  # starts now, done in 20 h: 52 h before its deadline
    later = queue("Due Later", 2.5)  # more urgent: first; then "Due Soon" finishes at +40 h, 32 h before its deadline
    squeezed = queue("Squeezed Out", 3.2)  # third: finishes at +60 h, 16.8 h before its deadline (margin 24 h)

    rows = {row.reference: row for row in selectors.gpu_queue_forecast()}
    assert [rows[job.request.reference].position for job in (later, soon, squeezed)] == [1, 2, 3]
    with django_capture_on_commit_callbacks(execute=True):  # the email goes after the commit
        assert services.jobs_alert_deadline_risks() == [squeezed.request.reference]
    assert services.jobs_alert_deadline_risks() == []  # once per job
    event = AuditEvent.objects.get(action="unlearning.deadline_at_risk")
    assert event.target_id == squeezed.request.reference and event.data["position"] == 3 and event.data["estimate_seconds"] == pytest.approx(72000.0, abs=1)
    alert = [m for m in mail.outbox if m.subject.startswith("Deadline at risk")]
    assert len(alert) == 1 and "on-call@staff.example" in alert[0].to and "number 3 in the GPU queue" in alert[0].body

    # The deadline is extended, and even so the forecast finishes inside the margin: a new deadline, a new alert.
    request_extend_deadline(actor=actor_of(staff("reviewer")), request_id=squeezed.request_id, reason="complex case")
    settings.FORGET = {**settings.FORGET, "DEADLINE_RISK_MARGIN_HOURS": 24 * 90}  # (every job is at risk now)
    with django_capture_on_commit_callbacks(execute=True):
        again = services.jobs_alert_deadline_risks()
    assert squeezed.request.reference in again
    assert services.jobs_alert_deadline_risks() == []  # once per deadline
    extended = ErasureRequest.objects.get(pk=squeezed.request_id).deadline_at
    assert UnlearningJob.objects.get(pk=squeezed.pk).deadline_alert_for == extended
    assert AuditEvent.objects.filter(action="unlearning.deadline_at_risk", target_id=squeezed.request.reference).count() == 2
    settings.FORGET = {**settings.FORGET, "DEADLINE_RISK_MARGIN_HOURS": 24}

    # A second GPU worker: nothing would be late any more (the alert already sent stays sent).
    settings.FORGET = {**settings.FORGET, "GPU_WORKERS": 2}
    assert not any(row.at_risk for row in selectors.gpu_queue_forecast())


def test_the_request_page_shows_the_queue_position_and_the_forecast(queue, client, staff):
    ahead, behind = queue("Ahead Of Queue", 4), queue("Behind In Queue", 20)
    client.force_login(staff("reviewer"))
    page = client.get(f"/staff/requests/{behind.request_id}/").content.decode()
    assert "Number 2 in the GPU queue (earliest deadline first)" in page and "The deadline is at risk" not in page
    page = client.get(f"/staff/requests/{ahead.request_id}/").content.decode()
    assert "Number 1 in the GPU queue" in page
