"""The unlearning pipeline's Celery tasks (docs/pipeline.md). Thin: they take ids, and call one
function each. `run_job` goes to the `gpu` queue (CELERY_TASK_ROUTES); the periodic bookkeeping
tasks to `default`. Nothing heavy is imported at module level: the web process imports this module
to send jobs, and must not load torch.
"""

from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="workers.tasks.unlearning.run_job", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def run_job(self, job_id: int) -> dict:
    """Claims job `job_id` (compare-and-set) and runs it: a redelivered or duplicate message for a
    finished job does nothing, one for a job whose worker died resumes it, and one for a job that
    another live worker holds comes back later (retry with a countdown)."""
    from service.unlearning.services import JobBusy
    from workers.forget_pipeline import run_job as run

    try:
        return run(job_id, node=self.request.hostname or socket.gethostname())
    except JobBusy as busy:
        raise self.retry(countdown=busy.retry_in) from None


@shared_task(name="workers.tasks.unlearning.purge_forget_sets", ignore_result=True)
def purge_forget_sets() -> list[str]:
    """Periodic (celery beat): raw forget sets past their retention window are purged."""
    from service.unlearning.services import forget_sets_purge_expired

    return forget_sets_purge_expired()


@shared_task(name="workers.tasks.unlearning.send_unsent_jobs", ignore_result=True)
def send_unsent_jobs() -> dict[str, list[str]]:
    """Periodic (celery beat): approved requests never queued, and jobs never sent, are sent now."""
    from service.unlearning.services import jobs_send_unsent

    return jobs_send_unsent()
