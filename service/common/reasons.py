"""The reason a person gives for a decision (reject, cancel, roll back, override a certificate, ...):
required, and at most MAX_REASON characters (the API's schema says the same)."""

from __future__ import annotations

from .errors import ApplicationError

MAX_REASON = 2000


def require_reason(reason: str, what: str) -> str:
    """The reason, stripped; ApplicationError `reason_required` when it is blank, `reason_too_long`
    past MAX_REASON. `what` ends the message: "A reason is required to {what}."."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(
            f"A reason is required to {what}.",
            code="reason_required",
            extra={"errors": [{"field": "reason", "message": "This field is required.", "code": "required"}]},
        )
    if len(reason) > MAX_REASON:
        raise ApplicationError(
            f"The reason is longer than {MAX_REASON} characters.",
            code="reason_too_long",
            extra={"errors": [{"field": "reason", "message": f"At most {MAX_REASON} characters.", "code": "max_length"}]},
        )
    return reason
