"""Celery tasks of the status webhooks: thin callers of services (docs/api.md, "Status webhooks").

Here rather than in workers/tasks/: they need no model and no GPU, run on the `default` queue, and
the Celery app discovers them here (service/common/celery_app.py).
"""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name=services.DELIVER_TASK, ignore_result=True)
def deliver_webhook(delivery_id: str) -> str | None:
    delivery = services.webhook_delivery_attempt(delivery_id=delivery_id)
    return None if delivery is None else delivery.status


@shared_task(name="service.webhooks.tasks.send_due_webhooks", ignore_result=True)
def send_due_webhooks() -> int:
    return len(services.webhooks_send_due())
