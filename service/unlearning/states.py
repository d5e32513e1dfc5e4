"""The unlearning job's state machine: one status enum and one transition table, like the request's
(service/requests/states.py) and the registry's (adapters_store/states.py).

    queued  -> running                  (a worker claims it)
    running -> running                  (another worker resumes it: its worker died)
    running -> succeeded | needs_review | not_found
    queued | running -> failed | cancelled

A job in a finished status never runs again: a redelivered task for it is a no-op. A reviewer's
retry is a new job (a new attempt), never a transition of the old one.
"""

from __future__ import annotations

from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    NOT_FOUND = "not_found", "Data not found in the model (back to review)"
    NEEDS_REVIEW = "needs_review", "Certificate did not pass after remediation (back to review)"


J = JobStatus

# target status -> the statuses it may be entered from. The only place job transitions are defined;
# services.py's compare-and-set updates filter on these.
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    J.RUNNING: frozenset({J.QUEUED, J.RUNNING}),  # running -> running: a worker resumes a job whose worker died
    J.SUCCEEDED: frozenset({J.RUNNING}),
    J.NEEDS_REVIEW: frozenset({J.RUNNING}),
    J.NOT_FOUND: frozenset({J.RUNNING}),
    J.FAILED: frozenset({J.QUEUED, J.RUNNING}),  # queued -> failed: the job could not be started (an operator's or the sweep's call)
    J.CANCELLED: frozenset({J.QUEUED, J.RUNNING}),
}

# A job in one of these never runs again: a redelivered task for it is a no-op.
FINISHED_JOB_STATUSES: frozenset[JobStatus] = frozenset(set(J) - {J.QUEUED, J.RUNNING})


def job_sources(to: JobStatus) -> frozenset[JobStatus]:
    """The statuses a job may enter `to` from (empty: `to` is never entered, only started in)."""
    return JOB_TRANSITIONS.get(JobStatus(to), frozenset())


def job_can_transition(current: str, to: JobStatus) -> bool:
    return JobStatus(current) in job_sources(to)
