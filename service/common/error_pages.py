"""Which answers are the API's, and the error pages that need nothing but their arguments.

A static error page is rendered without the request: no context processor runs, so it never looks
up a session or a user (during a database outage that would fail a second time).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.template.loader import render_to_string

_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Page not found",
    414: "Address too long",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Down for maintenance",
}


def is_api_path(path: str) -> bool:
    """The REST API and the gateway's OpenAI-style routes answer problem+json; the rest is pages."""
    return path.startswith("/api/") or path.startswith("/v1/")


def static_error_page(status: int, *, title: str = "", detail: str = "", headers: dict[str, str] | None = None, **context) -> HttpResponse:
    """errors/<status>.html rendered from nothing but these arguments (no request, no database)."""
    body = render_to_string(f"errors/{status}.html", {"title": title or _TITLES.get(status, "Error"), "detail": detail, **context})
    response = HttpResponse(body, status=status, content_type="text/html; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response
