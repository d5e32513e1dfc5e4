"""Request id on every request and response; characters no request may carry, over-long URLs and
the body size limit answered with 400, 414 and 413 before anything reads them.

All work in either mode (sync under WSGI, async under the gateway's ASGI server), so that an
ASGI request does not hop to a thread and back for each of them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from .error_pages import is_api_path, static_error_page
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


# A NUL byte, or a UTF-16 surrogate written as UTF-8 (ED A0..BF xx: a "lone surrogate", which no
# valid UTF-8 text holds): PostgreSQL text cannot store the first, nothing can encode the second.
_FORBIDDEN_BYTES = re.compile(rb"\x00|\xed[\xa0-\xbf][\x80-\xbf]")
# Other control characters are not allowed in a header value either (RFC 9110 5.5; tab is).
_FORBIDDEN_IN_HEADER = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|\xed[\xa0-\xbf][\x80-\xbf]")


def _wsgi_bytes(value: str) -> bytes:
    """A WSGI environ string back to the bytes that arrived (PEP 3333: latin-1)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # not from a WSGI server (a test client): its own UTF-8
        return value.encode("utf-8", "surrogatepass")


def _refuse(request, *, status: int, code: str, title: str, detail: str):
    """problem+json on the API; the plain error page elsewhere, rendered without the request (no
    context processor, no session or user: nothing here is trusted enough to look up)."""
    if is_api_path(request.path_info):
        return problem_response(request, status=status, code=code, title=title, detail=detail)
    return static_error_page(status, title=title, detail=detail)


class RequestSanityMiddleware(_BothModes):
    """Refuses, before any view, session or database sees them, what no valid request carries:

    - a NUL byte or a lone surrogate in the path, the query string or a header (a header also no
      other control character): 400 `bad_characters` (JSON bodies: service.common.parsers);
    - a URL (path and query string) longer than FORGET['MAX_URL_BYTES']: 414 `uri_too_long`.
    """

    def before(self, request):
        meta = request.META
        path = _wsgi_bytes(meta.get("PATH_INFO", ""))
        query = meta.get("QUERY_STRING", "")
        limit = settings.FORGET["MAX_URL_BYTES"]
        if len(path) + len(query) > limit:
            return _refuse(
                request, status=414, code="uri_too_long", title="URI too long", detail=f"The URL has {len(path) + len(query)} bytes; the limit is {limit}."
            )
        where = None
        # The path as the server decoded it, and decoded once more: some clients and servers
        # leave percent escapes in PATH_INFO (a literal "%00" in a path is refused too: no route
        # has a use for it).
        if _FORBIDDEN_BYTES.search(path) or _FORBIDDEN_BYTES.search(unquote_to_bytes(path)):
            where = "the path"
        elif _FORBIDDEN_BYTES.search(unquote_to_bytes(_wsgi_bytes(query))):
            where = "the query string"
        else:
            for key, value in meta.items():
                if (
                    (key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"))
                    and isinstance(value, str)
                    and _FORBIDDEN_IN_HEADER.search(_wsgi_bytes(value))
                ):
                    where = f"the {key.removeprefix('HTTP_').replace('_', '-').title()} header"
                    break
        if where:
            return _refuse(
                request,
                status=400,
                code="bad_characters",
                title="Bad request",
                detail=f"{where[0].upper()}{where[1:]} holds a NUL byte, a lone surrogate or another character no request may carry.",
            )
        return None
