"""The data subject's pages: start page, request form, email verification, status.

Thin views: forms check the input, services and selectors decide. Service refusals become messages
next to the field they concern (never a 500). The subject's reference and email live in the
session (the email encrypted, as everywhere at rest), never in a URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from service.common import ratelimits
from service.common.crypto import decrypt_text, encrypt_text
from service.common.errors import ApplicationError, InvalidTransition, NotFound, RateLimited

from . import selectors, services
from .forms import RequestForm, SubjectLookupForm, VerifyForm
from .models import ErasureRequest
from .states import PIPELINE, TERMINAL, Status

SESSION_KEY = "forget.subject"  # {"reference": ..., "email": <Fernet token>}: the request this browser follows
NOT_FOUND_MESSAGE = "We found no request with this reference and email address. Check both and try again."
_CODE_ERRORS = {"code_invalid", "code_expired", "code_attempts_exhausted"}
_NEW_CODE_HINT = " Use \u201cSend a new code\u201d below."

# What the subject reads for each step of the pipeline (states.PIPELINE).
STEP_LABELS: dict[Status, str] = {
    Status.SUBMITTED: "Received",
    Status.VERIFIED: "Email confirmed",
    Status.APPROVED: "Approved",
    Status.QUEUED: "Queued",
    Status.TRAINING: "Unlearning",
    Status.EVALUATING: "Checking",
    Status.STAGED: "Passed checks",
    Status.ACTIVE: "Done",
}
OUTCOME_LABELS: dict[Status, str] = {
    Status.REJECTED: "Rejected",
    Status.CANCELLED: "Cancelled",
    Status.EXPIRED: "Expired",
    Status.FAILED: "Problem, being retried",
    Status.NEEDS_REVIEW: "Being checked by our team",
    Status.ROLLED_BACK: "Withdrawn",
}


# --- the session slot ------------------------------------------------------------------------------


def _remember(request: HttpRequest, reference: str, email: str) -> None:
    request.session[SESSION_KEY] = {"reference": reference, "email": encrypt_text(email)}


def _remembered(request: HttpRequest) -> tuple[str, str] | None:
    slot = request.session.get(SESSION_KEY)
    try:
        return slot["reference"], decrypt_text(slot["email"])
    except (TypeError, KeyError, ValueError):  # nothing remembered, or a key rotated away
        return None


def _forget(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)


# --- the progress indicator ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    label: str
    state: str  # "done" | "current" | "todo" | "stopped"


def _last_reached(erasure: ErasureRequest) -> Status:
    """The last pipeline step a request that left the pipeline had passed."""
    status = Status(erasure.status)
    if status in PIPELINE:
        return status
    if status == Status.ROLLED_BACK:
        return Status.ACTIVE
    if status == Status.FAILED:
        return Status.APPROVED
    if status == Status.NEEDS_REVIEW:
        return Status.EVALUATING
    if status == Status.REJECTED or erasure.verified_at:
        return Status.VERIFIED
    return Status.SUBMITTED


def progress_steps(erasure: ErasureRequest) -> list[Step]:
    status = Status(erasure.status)
    reached = PIPELINE.index(_last_reached(erasure))
    if status in PIPELINE:
        return [Step(STEP_LABELS[s], "done" if i < reached else "current" if i == reached else "todo") for i, s in enumerate(PIPELINE)]
    steps = [Step(STEP_LABELS[s], "done") for s in PIPELINE[: reached + 1]]
    steps.append(Step(OUTCOME_LABELS[status], "stopped"))
    if status not in TERMINAL:  # a failed job is retried, a certificate reviewed: the rest of the way is still ahead
        steps += [Step(STEP_LABELS[s], "todo") for s in PIPELINE[reached + 1 :]]
    return steps


def days_left_text(left: int | None) -> str:
    if left is None:
        return ""
    if left < 0:
        return f"overdue by {-left} day{'s' if left < -1 else ''}"
    if left == 0:
        return "due today"
    return f"{left} day{'s' if left > 1 else ''} left"


# --- pages -----------------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "requests/public/home.html")


def _page(request: HttpRequest, template: str, context: dict, *, status: int = 200, refusal: ApplicationError | None = None) -> HttpResponse:
    """A page, with the Retry-After of a rate limit or a resend too soon when that refused it."""
    response = render(request, template, context, status=status)
    if refusal is not None and refusal.retry_after:
        response["Retry-After"] = str(refusal.retry_after)
    return response


@require_http_methods(["GET", "HEAD", "POST"])
def request_new(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return render(request, "requests/public/new.html", {"form": RequestForm()})
    form = RequestForm(request.POST)
    status, refusal = 400, None
    if form.is_valid():
        data = form.cleaned_data
        try:
            ratelimits.hit("submit_per_ip", ratelimits.client_ip(request))
            erasure = services.request_submit_web(
                name=data["name"],
                email=data["email"],
                regulation=data["regulation"],
                facts=data["facts"],
                evidence_prompts=data["evidence_prompts"],
                attested=data["attested"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.detail)  # the form comes back filled in: nothing typed is lost
            status, refusal = exc.status, exc
        else:
            _remember(request, erasure.reference, data["email"])
            request.session["forget.just_submitted"] = erasure.reference
            return redirect("request-verify")
    return _page(request, "requests/public/new.html", {"form": form}, status=status, refusal=refusal)


def _show_service_error(form: VerifyForm, exc: ApplicationError) -> None:
    if exc.code in _CODE_ERRORS:
        hint = _NEW_CODE_HINT if exc.code != "code_invalid" or not exc.extra.get("attempts_left") else ""
        form.add_error("code", exc.detail + hint)
    elif isinstance(exc, NotFound):
        form.add_error(None, NOT_FOUND_MESSAGE)
    else:
        form.add_error(None, exc.detail)


@require_http_methods(["GET", "HEAD", "POST"])
def request_verify(request: HttpRequest) -> HttpResponse:
    """Enter the emailed code; or ask for a new one (the second submit button, action=resend)."""
    remembered = _remembered(request)
    just_submitted = request.session.pop("forget.just_submitted", None)
    context = {
        "just_submitted": just_submitted,
        "resend_seconds": settings.FORGET["CODE_RESEND_SECONDS"],
        "expiry_days": settings.FORGET["UNVERIFIED_EXPIRY_DAYS"],
    }
    if request.method != "POST":
        initial = {"reference": remembered[0], "email": remembered[1]} if remembered else {}
        if not initial and (linked := request.GET.get("reference", "").strip().upper()[:16]):
            initial = {"reference": linked}  # the link in the verification email names the request (never the email)
        return render(request, "requests/public/verify.html", {**context, "form": VerifyForm(initial=initial)})

    resend = request.POST.get("action") == "resend"
    form = VerifyForm(request.POST, resend=resend)
    status, refusal = 400, None
    if form.is_valid():
        reference, email = form.cleaned_data["reference"], form.cleaned_data["email"]
        try:
            ratelimits.hit("verify_per_ip", ratelimits.client_ip(request))
            if resend:
                services.request_resend_code(reference=reference, email=email)
            else:
                services.request_verify(reference=reference, email=email, code=form.cleaned_data["code"])
        except InvalidTransition:
            # Reference and email matched, but the request needs no code any more (already
            # verified, or expired): its status page says what happened.
            _remember(request, reference, email)
            messages.info(request, "This request does not need a code any more. Here is where it stands.")
            return redirect("request-status")
        except ApplicationError as exc:
            _show_service_error(form, exc)
            status, refusal = exc.status, exc
        else:
            _remember(request, reference, email)
            if resend:
                messages.success(request, "We sent a new code to your email address. Codes sent before it no longer work.")
                return redirect("request-verify")
            messages.success(request, "Thank you: your email address is confirmed. A reviewer will now look at your request.")
            return redirect("request-status")
    if not resend and form.data.get("code"):
        form.data = form.data.copy()
        form.data["code"] = ""  # a refused code is not shown again
    return _page(request, "requests/public/verify.html", {**context, "form": form}, status=status, refusal=refusal)


@require_http_methods(["GET", "HEAD", "POST"])
def request_status(request: HttpRequest) -> HttpResponse:
    """The subject's own request, found by reference AND email (POSTed, kept in the session)."""
    if request.method == "POST":
        if request.POST.get("action") == "forget":
            _forget(request)
            messages.info(request, "This browser no longer shows your request.")
            return redirect("request-status")
        form = SubjectLookupForm(request.POST)
        status, refusal = 400, None
        if form.is_valid():
            reference, email = form.cleaned_data["reference"], form.cleaned_data["email"]
            try:
                ratelimits.hit("status_per_ip", ratelimits.client_ip(request))
                selectors.request_for_subject(reference=reference, email=email)
            except NotFound:
                form.add_error(None, NOT_FOUND_MESSAGE)
                status = 404
            except RateLimited as exc:
                form.add_error(None, exc.detail)
                status, refusal = exc.status, exc
            else:
                _remember(request, reference, email)
                return redirect("request-status")
        return _page(request, "requests/public/status_lookup.html", {"form": form}, status=status, refusal=refusal)

    erasure = None
    if remembered := _remembered(request):
        try:
            erasure = selectors.request_for_subject(reference=remembered[0], email=remembered[1])
        except NotFound:
            _forget(request)
    if erasure is None:
        return render(request, "requests/public/status_lookup.html", {"form": SubjectLookupForm()})
    left = erasure.days_left(timezone.now())
    return render(
        request,
        "requests/public/status.html",
        {
            "erasure": erasure,
            "steps": progress_steps(erasure),
            "days_left": left,
            "days_left_text": days_left_text(left),
            "expiry_days": settings.FORGET["UNVERIFIED_EXPIRY_DAYS"],
        },
    )
