"""The unlearning job on the staff request page: `{% unlearning_job_panel %}` (progress bar, attempts,
retry, certificate, before/after answers) and `{% unlearning_refresh %}` (no-JS auto-refresh in the
page head while a job is queued or running). Both read the page's `req` and `revealed`."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from service.accounts.roles import Capability, actor_for_request
from service.requests.states import Status

from .. import selectors, services
from ..models import JobStatus

register = template.Library()

REFRESH_SECONDS = 5
# Probe families whose before/after answers the page shows, and how many rows of each (any that
# still leak first): every family that prompts about the person.
SHOWN_SETS = ("F", "P", "statement", "open", "language", "name_forms", "wrapper", "chat", "D")
SHOWN_PER_SET = 3


@register.inclusion_tag("unlearning/job_panel.html", takes_context=True)
def unlearning_job_panel(context) -> dict:
    req = context["req"]
    revealed = bool(context.get("revealed"))
    actor = context.get("actor") or actor_for_request(context["request"])
    jobs = selectors.jobs_of(req)
    latest = jobs[0] if jobs else None
    certified = next((job for job in jobs if job.certificate), None)
    certificate = (certified.certificate or {}) if certified else {}
    reviewer = actor is not None and actor.can(Capability.REVIEW)
    stage, failed_rules = _stage(latest)
    return {
        "stage": stage,
        "failed_rules": failed_rules,
        "req": req,
        "jobs": jobs,
        "job": latest,
        "current": selectors.job_is_current(latest),
        "forecast": selectors.job_forecast(latest),
        "forget_set": selectors.forget_set_of(req),
        "certified": certified,
        "rules": certificate.get("rules", []),
        "verdict": certificate.get("verdict") or ("pass" if certificate.get("passed") else "fail"),
        "failing_families": [f for f in certificate.get("failing_families", []) if f in services.RETRY_OPTIONS["more_prompts_for"]],
        "answers": selectors.probe_answers(certified, revealed=revealed, sets=SHOWN_SETS, per_set=SHOWN_PER_SET),
        "answers_purged": certified is not None and not certified.certificate_personal,
        "revealed": revealed,
        "can_retry": reviewer and req.status in services.RETRYABLE,
        "can_override": reviewer and req.status == Status.NEEDS_REVIEW and (actor.user_pk is None or req.decided_by_id != actor.user_pk),
        "waiting_for_queue": req.status == Status.APPROVED,
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
        "refresh_seconds": REFRESH_SECONDS,
        "statuses": JobStatus,
    }


def _stage(job) -> tuple[str, list[dict]]:
    """Where the job is, or where it stopped. A job whose certificate did not pass failed at the
    certificate, whatever phase its last progress report named (the bar may stand at 97%
    "Registering the unit": the verdict came after that report)."""
    if job is None:
        return "", []
    if job.status in (JobStatus.FAILED, JobStatus.NEEDS_REVIEW) and job.certificate_passed is False:
        rules = [rule for rule in (job.certificate or {}).get("rules", []) if isinstance(rule, dict) and rule.get("status") not in ("pass", None, "n/a")]
        return "at the certificate: it did not pass, after the automatic remediation", rules
    if job.status == JobStatus.FAILED:
        return f"while {job.phase_label[0].lower()}{job.phase_label[1:]}", []
    return job.phase_label, []


@register.simple_tag(takes_context=True)
def unlearning_refresh(context) -> str:
    """Without JavaScript, reload the page every few seconds while the job runs (the panel's script
    updates the bar in place instead, and reloads only when the job ends)."""
    req = context.get("req")
    if req is None or not (req.status == Status.APPROVED or selectors.job_is_current(selectors.latest_job(req))):
        return ""
    return format_html('<noscript><meta http-equiv="refresh" content="{}"></noscript>', REFRESH_SECONDS)
