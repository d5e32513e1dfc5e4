"""Every audit action, registered once with a dotted code and a human template.

A code that is not registered here cannot be written: typos fail loudly in tests.
"""

from __future__ import annotations

EVENTS: dict[str, str] = {
    # requests
    "request.submitted": "Request {target} submitted via {channel}",
    "request.verification_sent": "Verification code sent for {target}",
    "request.verification_failed": "Wrong verification code for {target} ({attempts_left} attempts left)",
    "request.verified": "Request {target} verified",
    "request.approved": "Request {target} approved",
    "request.rejected": "Request {target} rejected: {reason}",
    "request.cancelled": "Request {target} cancelled",
    "request.expired": "Request {target} expired",
    "request.deadline_extended": "Deadline of {target} extended to {deadline}: {reason}",
    "request.deadline_reminder": "Deadline reminder for {target} ({days_left} days left)",
    "request.queued": "Request {target} queued for unlearning",
    "request.training": "Training started for {target}",
    "request.evaluating": "Evaluation started for {target}",
    "request.staged": "Unit for {target} staged",
    "request.active": "Request {target} active on the gateway",
    "request.failed": "Request {target} failed: {reason}",
    "request.needs_review": "Request {target} needs review: {reason}",
    "request.retried": "Request {target} retried",
    "request.rolled_back": "Request {target} rolled back: {reason}",
    "request.not_found_in_model": "Data of {target} not found in the model",
    "request.personal_data_revealed": "Personal data of {target} revealed to {actor}",
    # the unlearning pipeline (service/unlearning, docs/pipeline.md); targets are requests
    "forget_set.frozen": "Forget set of {target} frozen: {items} items, sha256 {content_hash}",
    "forget_set.purged": "Raw forget set of {target} purged after the retention window (hash kept)",
    "unlearning.job_started": "Unlearning attempt {attempt} of {target} started on {worker}",
    "unlearning.job_resumed": "Unlearning attempt {attempt} of {target} resumed on {worker} (the previous worker stopped reporting)",
    "unlearning.job_succeeded": "Unlearning attempt {attempt} of {target} produced unit {unit_id}",
    "unlearning.job_failed": "Unlearning attempt {attempt} of {target} failed: {reason}",
    "unlearning.job_cancelled": "Unlearning attempt {attempt} of {target} stopped: the request was cancelled",
    "unlearning.remediation_started": "Unlearning attempt {attempt} of {target}: remediation round {round} ({reason})",
    "unlearning.job_needs_review": "Unlearning attempt {attempt} of {target} needs review: {reason}",
    "unlearning.orthogonalised": "Unlearning attempt {attempt} of {target}: adapter projected out of units {units}, which went live while it trained",
    "unlearning.deadline_at_risk": "Deadline of {target} at risk: attempt {attempt}, GPU queue position {position}, expected at {projected_finish}",
    "corpus.loaded": "Training-corpus index: {count} documents loaded from {source}",
    # signed certificates (service/dossier, docs/dossier.md); targets are requests
    "certificate.downloaded": "Signed certificate of {target} (attempt {attempt}) downloaded as {format}, key {key_id}",
    # api clients
    "api_client.created": "API client {target} created",
    # staff logins (service/audit/receivers.py; username and address as keyed hashes)
    "staff.login_failed": "Failed staff login",
    "staff.locked_out": "Staff login locked out after too many failures (settings AXES_*)",
    # adapters and gateway
    "adapter.registered": "Adapter {target} registered",
    "adapter.activated": "Adapter {target} activated",
    "adapter.deactivated": "Adapter {target} deactivated: {reason}",
    "adapter.revoked": "Adapter {target} revoked: {reason}",
    "adapter.rolled_back": "Adapter {target} rolled back: {reason}",
    "adapter.integrity_failed": "Adapter {target} failed its integrity check: {file}",
    "adapter.certificate_overridden": "Certificate of adapter {target} overridden by a second approver: {reason}",
    "gateway.loaded": "Gateway loaded {count} units (generation {generation})",
    # audit itself
    "audit.exported": "Audit log exported as {format}",
    # reports (service/reports, docs/reports.md)
    "report.generated": "Request report {period_from} to {period_to} generated ({format})",
    "report.downloaded": "Request report {period_from} to {period_to} downloaded as {format}",
}


def describe(action: str, **fields) -> str:
    template = EVENTS[action]
    try:
        return template.format(**fields)
    except (KeyError, IndexError):
        return template


def register(action: str, template: str) -> None:
    """For apps added later (e.g. the adapter registry) to add their own codes."""
    if action in EVENTS and EVENTS[action] != template:
        raise ValueError(f"audit action {action!r} is already registered with another template")
    EVENTS[action] = template
