"""Staff pages of the pipeline: a reviewer's retry of a failed request. The job's progress, its
attempts and the certificate are shown on the request's own page (templatetags/unlearning.py)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from service.accounts.roles import Actor, Capability
from service.common.errors import ApplicationError, NotFound, PermissionDenied
from service.requests.selectors import request_get
from service.requests.views_staff import staff_view

from . import services


@require_POST
@staff_view(Capability.REVIEW)
def request_retry(request, actor: Actor, request_id):
    erasure = request_get(actor=actor, request_id=request_id)
    try:
        job = services.job_retry(actor=actor, request_id=erasure.pk)
    except (PermissionDenied, NotFound):
        raise
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Request {erasure.reference} queued again: attempt {job.attempt}.")
    return redirect("staff-request", request_id=erasure.pk)
