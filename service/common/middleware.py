"""Request id on every request and response; body size limit answered as problem+json."""

from __future__ import annotations

import re

from django.conf import settings

from .problems import problem_response
from .request_context import reset_request_id, set_request_id

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Takes a well-formed X-Request-ID from the caller or makes one; echoes it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        token = set_request_id(incoming if _SAFE_ID.match(incoming) else None)
        try:
            from .request_context import get_request_id

            request.request_id = get_request_id()
            response = self.get_response(request)
            response["X-Request-ID"] = request.request_id
            return response
        finally:
            reset_request_id(token)


class BodySizeLimitMiddleware:
    """Refuses bodies over FORGET['MAX_BODY_BYTES'] before anything parses them (413)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.FORGET["MAX_BODY_BYTES"]
        try:
            length = int(request.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            return problem_response(request, status=400, code="bad_header", title="Bad request", detail="Content-Length is not a non-negative number.")
        if length > limit:
            return problem_response(
                request,
                status=413,
                code="body_too_large",
                title="Request body too large",
                detail=f"The body has {length} bytes; the limit is {limit}.",
            )
        return self.get_response(request)
