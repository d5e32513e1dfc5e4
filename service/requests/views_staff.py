"""Staff pages: the review queue, one request's page, and the reviewer's actions.

Thin views: reads go through selectors, writes through services, and the services check the
actor's role. Hiding a button here is a courtesy to the user, never the access control.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from service.accounts.roles import Actor, Capability
from service.accounts.staff_access import staff_view
from service.audit.selectors import events_for_target
from service.common.errors import ApplicationError, NotFound, PermissionDenied
from service.common.masking import mask

from . import services
from .deadlines import Regulation
from .models import Channel, ErasureRequest
from .selectors import RequestFilters, request_get, request_list, review_queue
from .states import OPEN, PIPELINE, Status, can_transition

PAGE_SIZE = 25


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


# --- the queue -----------------------------------------------------------------------------------

STATUS_NEEDS_ACTION, STATUS_OPEN, STATUS_ANY = "needs_action", "open", "all"


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[
            (STATUS_NEEDS_ACTION, "Needs action (awaiting review, failed, certificate to review)"),
            (STATUS_OPEN, "Any open status"),
            (STATUS_ANY, "Any status"),
        ]
        + list(Status.choices),
    )
    regulation = forms.ChoiceField(required=False, choices=[("", "Any")] + list(Regulation.choices))
    channel = forms.ChoiceField(required=False, choices=[("", "Any")] + list(Channel.choices))
    overdue = forms.BooleanField(required=False, label="Overdue only")
    due_within_days = forms.IntegerField(required=False, min_value=0, max_value=3650, label="Due within (days)")
    q = forms.CharField(required=False, max_length=32, label="Reference")


@dataclass(frozen=True)
class QueueRow:
    request: ErasureRequest
    days_left: int | None
    urgency: str  # "overdue" | "due-soon" | "" (the row's CSS class)


def _urgency(days_left: int | None) -> str:
    if days_left is None:
        return ""
    if days_left < 0:
        return "overdue"
    return "due-soon" if days_left <= settings.FORGET["REMINDER_DAYS_LEFT"] else ""


def _default_status(actor: Actor) -> str:
    """Reviewers land on what needs them; auditors (who act on nothing) on every request."""
    return STATUS_NEEDS_ACTION if actor.can(Capability.REVIEW) else STATUS_ANY


def _queue_requests(actor: Actor, data: dict):
    filters = RequestFilters(
        regulation=data.get("regulation") or "",
        channel=data.get("channel") or "",
        overdue=bool(data.get("overdue")),
        due_within_days=data.get("due_within_days"),
        q=data.get("q") or "",
    )
    status = data.get("status") or _default_status(actor)
    if status == STATUS_NEEDS_ACTION:
        return review_queue(actor=actor, filters=filters)
    if status == STATUS_OPEN:
        status = ",".join(sorted(s.value for s in OPEN))
    elif status == STATUS_ANY:
        status = ""
    return request_list(actor=actor, filters=RequestFilters(**{**filters.__dict__, "status": status}))


@require_GET
@staff_view(Capability.READ_ALL_REQUESTS)
def queue(request, actor: Actor):
    form = QueueFilterForm(request.GET or None, initial={"status": _default_status(actor)})
    data = {}
    if form.is_bound:
        form.is_valid()  # an invalid field is shown with its error; the valid ones still filter
        data = form.cleaned_data
    page = Paginator(_queue_requests(actor, data), PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [QueueRow(r, left, _urgency(left)) for r in page.object_list for left in [r.days_left(now)]]
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "requests/staff/queue.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "filter_query": params.urlencode(),
            "can_review": actor.can(Capability.REVIEW),
            "due_soon_days": settings.FORGET["REMINDER_DAYS_LEFT"],
            "heading": "Review queue" if actor.can(Capability.REVIEW) else "Requests",
        },
    )


@require_POST
@staff_view(Capability.REVIEW)
def bulk_decide(request, actor: Actor):
    back = _safe_next(request, reverse("staff-queue"))
    request_ids = request.POST.getlist("request_ids")
    decision = request.POST.get("decision", "")
    if not request_ids:
        messages.error(request, "Select at least one request first.")
        return redirect(back)
    try:
        result = services.requests_bulk_decide(actor=actor, request_ids=request_ids, decision=decision, reason=request.POST.get("reason", ""))
    except (PermissionDenied, NotFound):
        raise
    except ApplicationError as exc:
        messages.error(request, exc.detail)
        return redirect(back)
    verb = "Approved" if decision == "approve" else "Rejected"
    if result["done"]:
        messages.success(request, f"{verb} {len(result['done'])} request(s): {', '.join(result['done'])}.")
    for failure in result["failed"]:
        messages.error(request, f"Not changed: {failure}")
    return redirect(back)


# --- one request ---------------------------------------------------------------------------------


def _detail_context(actor: Actor, erasure: ErasureRequest, *, revealed: bool) -> dict:
    show = (lambda v: v) if revealed else mask
    status = Status(erasure.status)
    can_review = actor.can(Capability.REVIEW)
    reached = PIPELINE.index(status) if status in PIPELINE else -1
    return {
        "req": erasure,
        "revealed": revealed,
        "subject_name": show(erasure.subject.get("name", "")),
        "subject_email": show(erasure.subject.get("email", "")),
        "facts": [show(f) for f in erasure.facts],
        "evidence_prompts": [show(p) for p in erasure.evidence_prompts],
        "days_left": erasure.days_left(),
        "urgency": _urgency(erasure.days_left()),
        "steps": [{"label": s.label, "state": "done" if i < reached else "current" if i == reached else ""} for i, s in enumerate(PIPELINE)],
        "timeline": events_for_target(target_type="request", target_id=erasure.reference),
        "can_reveal": actor.can(Capability.REVEAL_PERSONAL_DATA) and not revealed,
        "can_approve": can_review and can_transition(status, Status.APPROVED),
        "can_reject": can_review and can_transition(status, Status.REJECTED),
        "can_cancel": can_review and can_transition(status, Status.CANCELLED),
        "can_extend": can_review and erasure.is_open and not erasure.deadline_extended,
    }


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def request_detail(request, actor: Actor, request_id):
    erasure = request_get(actor=actor, request_id=request_id)
    return render(request, "requests/staff/request_detail.html", _detail_context(actor, erasure, revealed=False))


@require_POST
@never_cache
@staff_view(Capability.REVEAL_PERSONAL_DATA)
def request_reveal(request, actor: Actor, request_id):
    """Answers the page itself, unmasked (no redirect): the data is shown once and never stored in
    the session, and reloading asks to POST again, which is audited again."""
    erasure = services.request_reveal_personal_data(actor=actor, request_id=request_id)
    return render(request, "requests/staff/request_detail.html", _detail_context(actor, erasure, revealed=True))


def _approve(actor, request_id, reason):
    services.request_approve(actor=actor, request_id=request_id)
    return "Request {ref} approved."


def _reject(actor, request_id, reason):
    services.request_reject(actor=actor, request_id=request_id, reason=reason)
    return "Request {ref} rejected; the subject was emailed the reason."


def _cancel(actor, request_id, reason):
    services.request_cancel(actor=actor, request_id=request_id, reason=reason)
    return "Request {ref} cancelled; the subject was told."


def _extend(actor, request_id, reason):
    erasure = services.request_extend_deadline(actor=actor, request_id=request_id, reason=reason)
    return "Deadline of {ref} extended to " + f"{erasure.deadline_at:%Y-%m-%d %H:%M} UTC."


ACTIONS = {"approve": _approve, "reject": _reject, "cancel": _cancel, "extend": _extend}


@require_POST
@staff_view(Capability.REVIEW)
def request_action(request, actor: Actor, request_id, action: str):
    """approve / reject / cancel / extend: one service call, its outcome as a message."""
    erasure = request_get(actor=actor, request_id=request_id)
    try:
        message = ACTIONS[action](actor, erasure.pk, request.POST.get("reason", ""))
    except (PermissionDenied, NotFound):
        raise
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, message.format(ref=erasure.reference))
    return redirect("staff-request", request_id=erasure.pk)
