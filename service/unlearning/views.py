"""Staff pages of the pipeline: a reviewer's retry (with options) of a failed request or one whose
certificate did not pass, and a second approver's override of such a certificate. The job's
progress, its attempts and the certificate are shown on the request's own page
(templatetags/unlearning.py)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from service.accounts.roles import Actor, Capability
from service.accounts.staff_access import staff_view
from service.common.errors import ApplicationError, NotFound, PermissionDenied
from service.requests.selectors import request_get

from . import services


@require_POST
@staff_view(Capability.REVIEW)
def request_retry(request, actor: Actor, request_id):
    erasure = request_get(actor=actor, request_id=request_id)
    try:
        job = services.job_retry(actor=actor, request_id=erasure.pk, options=_retry_options(request.POST))
    except (PermissionDenied, NotFound):
        raise
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Request {erasure.reference} queued again: attempt {job.attempt}.")
    return redirect("staff-request", request_id=erasure.pk)


def _retry_options(form) -> dict:
    """The retry form's options: the filled-in numbers and the ticked families."""
    options: dict = {}
    for name in ("epochs", "rank", "seed"):
        value = (form.get(name) or "").strip()
        if value:
            if not value.isdigit():
                raise ApplicationError(f"{name} must be a whole number.", code="invalid_options")
            options[name] = int(value)
    families = form.getlist("more_prompts_for")
    if families:
        options["more_prompts_for"] = families
    return options


@require_POST
@staff_view(Capability.REVIEW)
def request_override(request, actor: Actor, request_id):
    erasure = request_get(actor=actor, request_id=request_id)
    try:
        job = services.job_override(actor=actor, request_id=erasure.pk, reason=request.POST.get("reason", ""))
    except NotFound:
        raise
    except ApplicationError as exc:  # PermissionDenied (second approver) included: said on the page
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Certificate of {job.unit_id} overridden: request {erasure.reference} is staged.")
    return redirect("staff-request", request_id=erasure.pk)
