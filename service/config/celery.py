"""The Celery application, where `celery -A service.config` looks for it (service/common/celery_app.py defines it)."""

from service.common.celery_app import app

__all__ = ["app"]
