"""Request id on every request and response; body size limit answered as problem+json.

Both work in either mode (sync under WSGI, async under the gateway's ASGI server), so that an
ASGI request does not hop to a thread and back for each of them.
"""

from __future__ import annotations

import re

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from .problems import problem_response
from .request_context import reset_request_id, set_request_id

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class _BothModes:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self.handle(request, self.get_response)

    async def _acall(self, request):
        early = self.before(request)
        if early is not None:
            return early
        return self.after(request, await self.get_response(request))

    def handle(self, request, get_response):
        early = self.before(request)
        if early is not None:
            return early
        return self.after(request, get_response(request))

    def before(self, request):
        """A response to answer at once, or None to go on."""
        return None

    def after(self, request, response):
        return response


class RequestIdMiddleware(_BothModes):
    """Takes a well-formed X-Request-ID from the caller or makes one; echoes it in the response."""

    def handle(self, request, get_response):
        token = self._begin(request)
        try:
            response = get_response(request)
            response["X-Request-ID"] = request.request_id
            return response
        finally:
            reset_request_id(token)

    async def _acall(self, request):
        token = self._begin(request)
        try:
            response = await self.get_response(request)
            response["X-Request-ID"] = request.request_id
            return response
        finally:
            reset_request_id(token)

    @staticmethod
    def _begin(request):
        from .request_context import get_request_id

        incoming = request.headers.get("X-Request-ID", "")
        token = set_request_id(incoming if _SAFE_ID.match(incoming) else None)
        request.request_id = get_request_id()
        return token


class BodySizeLimitMiddleware(_BothModes):
    """Refuses bodies over FORGET['MAX_BODY_BYTES'] before anything parses them (413)."""

    def before(self, request):
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
        return None


class HostCheckMiddleware(_BothModes):
    """Checks the Host header against ALLOWED_HOSTS (DisallowedHost: 400), as CommonMiddleware does
    on the web app; for the gateway, whose lean middleware has no CommonMiddleware."""

    def before(self, request):
        request.get_host()
        return None
