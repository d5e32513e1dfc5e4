"""The unlearning pipeline's GPU task (docs/pipeline.md): `run_job` takes a job id and calls the job
runner; it goes to the `gpu` queue (CELERY_TASK_ROUTES). The pipeline's periodic bookkeeping, which
needs no GPU, is in housekeeping.py on the `default` queue. The runner is imported in the task body:
Celery's autodiscovery imports this module in every process, and the web process must not load torch.
"""

from __future__ import annotations

import logging
import math
import socket

from celery import shared_task
from django.conf import settings

from service.unlearning.services import JobBusy

logger = logging.getLogger(__name__)


def busy_retries() -> int:
    """How often a message for a job that another live worker holds comes back: long enough to
    outlast the holder (its time limit, at one try per stale window), then it is dropped: the
    holder finishes the job, and if it dies its own message is redelivered and resumes it."""
    cfg = settings.FORGET
    return math.ceil(cfg["JOB_TIME_LIMIT_SECONDS"] / cfg["JOB_STALE_SECONDS"]) + 2


# Time limits: CELERY_TASK_ANNOTATIONS in settings.py (JOB_TIME_LIMIT_SECONDS).
@shared_task(name="workers.tasks.unlearning.run_job", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(self, job_id: int) -> dict:
    """Claims the most urgent queued job (deadline first; `job_id` is the job this message was sent
    for, which another message may have taken already) and runs it: a message redelivered after its
    worker died resumes the job it was running, and comes back later while that job's worker is
    still alive (retry with a countdown, at most busy_retries() times); with nothing queued it does
    nothing."""
    from workers.jobs import process_job  # torch and the engine: only in the GPU worker's task body

    try:
        return process_job(job_id, node=self.request.hostname or socket.gethostname(), message_id=self.request.id or "")
    except JobBusy as busy:
        limit = busy_retries()
        if self.request.retries >= limit:
            reason = f"another live worker still holds job {job_id} after {limit} tries; this duplicate message is dropped"
            logger.warning("unlearning job %s: %s", job_id, reason)
            return {"job": job_id, "outcome": "busy", "reason": reason}
        raise self.retry(countdown=busy.retry_in, max_retries=limit) from None
