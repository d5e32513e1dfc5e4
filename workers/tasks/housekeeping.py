"""Periodic housekeeping (celery beat): expire unverified requests, send deadline reminders."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.tasks.housekeeping.expire_and_remind")
def expire_and_remind() -> dict[str, list[str]]:
    from service.requests.services import requests_expire_unverified, requests_send_deadline_reminders

    return {"expired": requests_expire_unverified(), "reminded": requests_send_deadline_reminders()}
