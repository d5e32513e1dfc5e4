"""URL-level error handlers: API paths answer problem+json, pages answer HTML.

The 400 and 500 pages are static (service.common.error_pages: no session or user is looked up, so
a database outage cannot fail them a second time); an outage is answered 503 with Retry-After and
the static maintenance page instead of a 500.
"""

from __future__ import annotations

import sys

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from .error_pages import is_api_path, static_error_page
from .favicon import favicon_ico
from .outages import OUTAGE_DETAIL, is_outage, retry_after_seconds
from .problems import problem_response


def service_unavailable(request) -> HttpResponse:
    """503 for an outage: problem+json on the API, the maintenance page elsewhere; Retry-After."""
    retry = str(retry_after_seconds())
    if is_api_path(request.path_info):
        response = problem_response(request, status=503, code="service_unavailable", title="Service unavailable", detail=OUTAGE_DETAIL)
        response["Retry-After"] = retry
        return response
    return static_error_page(503, headers={"Retry-After": retry})


def _with_navigation(request, template: str, status: int) -> HttpResponse:
    """A page with the site's navigation (its context processors read the session and user); the
    static page when that fails because a dependency is out."""
    try:
        return render(request, template, status=status)
    except Exception as exc:
        if is_outage(exc):
            return service_unavailable(request)
        raise


def not_found(request, exception=None):
    if is_api_path(request.path_info):
        return problem_response(request, status=404, code="not_found", title="Not found", detail="No resource at this address.")
    return _with_navigation(request, "errors/404.html", 404)


def server_error(request):
    """handler500: Django calls it while handling the exception, so sys.exc_info() names it."""
    if is_outage(sys.exc_info()[1]):
        return service_unavailable(request)
    if is_api_path(request.path_info):
        return problem_response(
            request, status=500, code="internal_error", title="Internal server error", detail="An unexpected error occurred; quote the request id."
        )
    return static_error_page(500)


def bad_request(request, exception=None):
    if is_api_path(request.path_info):
        return problem_response(request, status=400, code="bad_request", title="Bad request", detail="The request could not be understood.")
    return static_error_page(400)


def permission_denied(request, exception=None):
    if is_api_path(request.path_info):
        return problem_response(request, status=403, code="forbidden", title="Forbidden", detail="You may not do this.")
    return _with_navigation(request, "errors/403.html", 403)


@require_GET
@cache_control(public=True, max_age=7 * 24 * 3600)
def favicon(request):
    return HttpResponse(favicon_ico(), content_type="image/x-icon")
