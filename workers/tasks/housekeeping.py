"""Periodic housekeeping (celery beat, queue `default`): expire unverified requests, send deadline
reminders, purge forget sets past their retention, send the jobs whose enqueue failed, alert
reviewers to jobs the GPU queue may finish too late. Thin: each calls one service function."""

from __future__ import annotations

from celery import shared_task

from service.requests.services import requests_expire_unverified, requests_send_deadline_reminders
from service.unlearning.services import forget_sets_purge_expired, jobs_alert_deadline_risks, jobs_send_unsent


@shared_task(name="workers.tasks.housekeeping.expire_and_remind")
def expire_and_remind() -> dict[str, list[str]]:
    return {"expired": requests_expire_unverified(), "reminded": requests_send_deadline_reminders()}


@shared_task(name="workers.tasks.housekeeping.purge_forget_sets", ignore_result=True)
def purge_forget_sets() -> list[str]:
    """Periodic (celery beat): raw forget sets past their retention window are purged."""
    return forget_sets_purge_expired()


@shared_task(name="workers.tasks.housekeeping.send_unsent_jobs", ignore_result=True)
def send_unsent_jobs() -> dict[str, list[str]]:
    """Periodic (celery beat): approved requests never queued, and jobs never sent, are sent now."""
    return jobs_send_unsent()


@shared_task(name="workers.tasks.housekeeping.alert_deadline_risks", ignore_result=True)
def alert_deadline_risks() -> list[str]:
    """Periodic (celery beat): reviewers hear, once per job, of jobs projected to finish too late."""
    return jobs_alert_deadline_risks()
