"""RFC 9457 problem details: the one error shape of every API response.

Application errors, DRF's exceptions and validation errors all come out as
`application/problem+json` with `type`, `title`, `status`, `detail`, a stable `code`, the
`request_id`, and for validation errors a list of `errors` with the field path and message.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

from .errors import ApplicationError
from .outages import OUTAGE_DETAIL, is_outage, retry_after_seconds
from .request_context import get_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://forget.example/problems/"
logger = logging.getLogger(__name__)

# DRF exception class -> (stable code, title)
_DRF_CODES: dict[type, tuple[str, str]] = {
    drf_exceptions.ParseError: ("malformed_body", "Malformed request body"),
    drf_exceptions.UnsupportedMediaType: ("unsupported_media_type", "Unsupported media type"),
    drf_exceptions.NotAuthenticated: ("not_authenticated", "Authentication required"),
    drf_exceptions.AuthenticationFailed: ("authentication_failed", "Authentication failed"),
    drf_exceptions.PermissionDenied: ("forbidden", "Forbidden"),
    drf_exceptions.NotFound: ("not_found", "Not found"),
    drf_exceptions.MethodNotAllowed: ("method_not_allowed", "Method not allowed"),
    drf_exceptions.NotAcceptable: ("not_acceptable", "Not acceptable"),
    drf_exceptions.Throttled: ("rate_limited", "Too many requests"),
}


def problem_body(*, status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": get_request_id(),
    }
    body.update(extra)
    return body


def problem_response(request, *, status: int, code: str, title: str, detail: str, **extra: Any) -> HttpResponse:
    """A plain Django response (for middleware and URL-level handlers outside DRF)."""
    body = problem_body(status=status, code=code, title=title, detail=detail, **extra)
    return HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)


def flatten_validation_errors(detail: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested error dict/list -> [{"field": "facts.0.value", "message": ..., "code": ...}]."""
    errors: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = str(key) if key != "non_field_errors" else ""  # list indexes come as ints (0 is falsy)
            errors += flatten_validation_errors(value, f"{path}.{field}".strip(".") if field else path)
    elif isinstance(detail, list):
        if all(isinstance(item, drf_exceptions.ErrorDetail) for item in detail):
            for item in detail:
                errors.append({"field": path, "message": str(item), "code": getattr(item, "code", "invalid")})
        else:
            for index, item in enumerate(detail):
                errors += flatten_validation_errors(item, f"{path}.{index}".strip("."))
    else:
        errors.append({"field": path, "message": str(detail), "code": getattr(detail, "code", "invalid")})
    return errors


def _problem(status: int, code: str, title: str, detail: str, headers: dict | None = None, **extra: Any) -> Response:
    response = Response(problem_body(status=status, code=code, title=title, detail=detail, **extra), status=status, headers=headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF EXCEPTION_HANDLER: every error out of an API view becomes problem+json."""
    if isinstance(exc, ApplicationError):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return _problem(exc.status, exc.code, exc.title, exc.detail, headers=headers, **exc.extra)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):  # a model field refused a value the API let through
        exc = drf_exceptions.ValidationError(detail=as_serializer_error(exc))
    elif isinstance(exc, RequestDataTooBig):
        return _problem(413, "body_too_large", "Request body too large", "The request body is larger than the configured limit.")
    elif isinstance(exc, SuspiciousOperation):  # e.g. more than DATA_UPLOAD_MAX_NUMBER_FIELDS query parameters
        return _problem(400, "bad_request", "Bad request", "The request could not be understood.")
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = flatten_validation_errors(exc.detail)
        return _problem(400, "validation_error", "Invalid input", "The request has invalid fields; see errors.", errors=errors)
    if isinstance(exc, drf_exceptions.APIException):
        code, title = next(((c, t) for cls, (c, t) in _DRF_CODES.items() if isinstance(exc, cls)), ("error", "Error"))
        if isinstance(exc, drf_exceptions.PermissionDenied) and str(exc.detail).startswith("CSRF Failed"):
            code, title = "csrf_failed", "CSRF check failed"  # SessionAuthentication: send X-CSRFToken
        headers = {}
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return _problem(exc.status_code, code, title, str(exc.detail), headers=headers)
    if is_outage(exc):
        logger.warning("dependency outage in API view: %s", exc)
        return _problem(503, "service_unavailable", "Service unavailable", OUTAGE_DETAIL, headers={"Retry-After": str(retry_after_seconds())})
    logger.exception("unhandled error in API view", exc_info=exc)
    return _problem(500, "internal_error", "Internal server error", "An unexpected error occurred; quote the request id.")
