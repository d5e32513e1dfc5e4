"""Outages of what the web app depends on (the database, Redis as broker and cache): recognised
in one place, so that every caller answers them the same way, 503 with Retry-After (API:
problem+json `service_unavailable`; pages: the static maintenance page), never a 500."""

from __future__ import annotations

from django.conf import settings
from django.db import InterfaceError, OperationalError


def _outage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OperationalError, InterfaceError]
    try:
        import redis.exceptions

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is a pinned dependency
        pass
    try:
        import kombu.exceptions

        errors.append(kombu.exceptions.OperationalError)
    except ImportError:  # pragma: no cover - kombu comes with celery
        pass
    return tuple(errors)


OUTAGE_ERRORS = _outage_errors()


def is_outage(exc: BaseException | None) -> bool:
    """True for a dependency that cannot be reached or stopped answering (not for a bad query:
    a DataError or an IntegrityError is the request's fault and handled where it happens)."""
    return isinstance(exc, OUTAGE_ERRORS)


def retry_after_seconds() -> int:
    return settings.FORGET["OUTAGE_RETRY_AFTER_SECONDS"]


OUTAGE_DETAIL = (
    "A service this request needs (the database, or the broker and cache) cannot be reached just now; nothing was changed. Retry after the time in Retry-After."
)
