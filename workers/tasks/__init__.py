"""Celery tasks: thin callers of services (Django side) and of the unlearning engine."""

from .housekeeping import expire_and_remind, purge_forget_sets, send_unsent_jobs  # noqa: F401
from .unlearning import run_job  # noqa: F401
