"""Celery tasks: thin callers of services (Django side) and of the unlearning engine."""

from .housekeeping import expire_and_remind  # noqa: F401
from .unlearning import purge_forget_sets, run_job, send_unsent_jobs  # noqa: F401
