"""Application errors with a stable code; one handler turns them into problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A refusal the caller can act on. `code` is stable and documented; `status` is the HTTP status."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    # Seconds after which a retry may succeed (429, 503): sent as the Retry-After header.
    retry_after: int | None = None

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None, extra: dict[str, Any] | None = None, retry_after: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra or {}
        if retry_after is not None:
            self.retry_after = max(1, int(retry_after))


class NotFound(ApplicationError):
    status = 404
    code = "not_found"
    title = "Not found"


class PermissionDenied(ApplicationError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"
    title = "Conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "Invalid state transition"


class RateLimited(ApplicationError):
    """Too many calls of one kind from one caller, address or client (service.common.ratelimits)."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(ApplicationError):
    """A dependency (the database, the broker or cache) is out; the caller should retry later."""

    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
    retry_after = 30
