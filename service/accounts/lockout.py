"""The page a locked-out staff login gets (django-axes' AXES_LOCKOUT_CALLABLE): 429 with Retry-After,
the friendly error page (problem+json on API paths), rendered without touching the session."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

from service.common.error_pages import is_api_path, static_error_page
from service.common.problems import problem_response
from service.common.ratelimits import wait_text


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    detail = (
        f"Too many failed logins for this username from your connection; logins are refused for {wait_text(seconds)}. "
        "Ask an administrator if you forgot the password."
    )
    if is_api_path(request.path_info):
        response = problem_response(request, status=429, code="login_locked_out", title="Too many requests", detail=detail)
        response["Retry-After"] = str(seconds)
        return response
    return static_error_page(
        429, title="Login locked", detail=detail, retry_after=seconds, retry_after_text=wait_text(seconds), headers={"Retry-After": str(seconds)}
    )
