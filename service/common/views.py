"""URL-level error handlers: API paths answer problem+json, pages answer HTML."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from .favicon import favicon_ico
from .problems import problem_response


def _is_api(request) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/v1/")


def not_found(request, exception=None):
    if _is_api(request):
        return problem_response(request, status=404, code="not_found", title="Not found", detail="No resource at this address.")
    return render(request, "errors/404.html", status=404)


def server_error(request):
    if _is_api(request):
        return problem_response(request, status=500, code="internal_error", title="Internal server error", detail="An unexpected error occurred; quote the request id.")
    return render(request, "errors/500.html", status=500)


def bad_request(request, exception=None):
    if _is_api(request):
        return problem_response(request, status=400, code="bad_request", title="Bad request", detail="The request could not be understood.")
    return render(request, "errors/400.html", status=400)


def permission_denied(request, exception=None):
    if _is_api(request):
        return problem_response(request, status=403, code="forbidden", title="Forbidden", detail="You may not do this.")
    return render(request, "errors/403.html", status=403)


@require_GET
@cache_control(public=True, max_age=7 * 24 * 3600)
def favicon(request):
    return HttpResponse(favicon_ico(), content_type="image/x-icon")
