"""Celery tasks: thin callers of services (Django side) and of the unlearning engine."""

from .housekeeping import expire_and_remind  # noqa: F401
