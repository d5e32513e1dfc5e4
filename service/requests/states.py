"""The request state machine: one status enum and one transition table (DESIGN.md).

    submitted -> verified -> approved -> queued -> training -> evaluating -> staged -> active
         \\            \\          \\                    \\            \\           \\         \\
       expired     rejected   cancelled            failed       failed     cancelled   rolled_back
                                                                  \\
                                                               needs_review -> queued (retry) | staged (override)

`needs_review`: the certificate did not pass even after the worker's own remediation rounds; a
reviewer retries with options, or (a second approver, with a reason) overrides the certificate.
"""

from __future__ import annotations

from django.db import models


class Status(models.TextChoices):
    SUBMITTED = "submitted", "Submitted (awaiting email verification)"
    VERIFIED = "verified", "Verified (awaiting review)"
    APPROVED = "approved", "Approved"
    QUEUED = "queued", "Queued for unlearning"
    TRAINING = "training", "Training"
    EVALUATING = "evaluating", "Evaluating"
    STAGED = "staged", "Staged (passed evaluation)"
    ACTIVE = "active", "Active (data no longer served)"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired (never verified)"
    FAILED = "failed", "Failed"
    NEEDS_REVIEW = "needs_review", "Needs review (certificate did not pass)"
    ROLLED_BACK = "rolled_back", "Rolled back"


S = Status

# target status -> the statuses it may be entered from. The only place transitions are defined.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.VERIFIED: frozenset({S.SUBMITTED, S.APPROVED, S.QUEUED}),  # approved/queued -> verified: data not found in the model, back to review
    S.APPROVED: frozenset({S.VERIFIED}),
    S.QUEUED: frozenset({S.APPROVED, S.FAILED, S.NEEDS_REVIEW}),  # failed / needs_review -> queued: a reviewer's retry
    S.TRAINING: frozenset({S.QUEUED, S.TRAINING, S.EVALUATING}),  # training/evaluating -> training: a redelivered job (its worker died) starts over
    S.EVALUATING: frozenset({S.TRAINING}),
    S.STAGED: frozenset({S.EVALUATING, S.NEEDS_REVIEW}),  # needs_review -> staged: a second approver's override
    S.ACTIVE: frozenset({S.STAGED}),
    S.REJECTED: frozenset({S.VERIFIED}),
    S.CANCELLED: frozenset({S.SUBMITTED, S.VERIFIED, S.APPROVED, S.QUEUED, S.TRAINING, S.STAGED, S.FAILED, S.NEEDS_REVIEW}),
    S.EXPIRED: frozenset({S.SUBMITTED}),
    S.FAILED: frozenset({S.QUEUED, S.TRAINING, S.EVALUATING}),
    S.NEEDS_REVIEW: frozenset({S.EVALUATING}),
    S.ROLLED_BACK: frozenset({S.ACTIVE}),
}

TERMINAL: frozenset[Status] = frozenset({S.REJECTED, S.CANCELLED, S.EXPIRED, S.ROLLED_BACK})
# Statuses in which the legal deadline still runs (shown as days left, counted as overdue).
OPEN: frozenset[Status] = frozenset({S.SUBMITTED, S.VERIFIED, S.APPROVED, S.QUEUED, S.TRAINING, S.EVALUATING, S.STAGED, S.FAILED, S.NEEDS_REVIEW})
# The pipeline's progress through the statuses, for the subject's status page.
PIPELINE: tuple[Status, ...] = (S.SUBMITTED, S.VERIFIED, S.APPROVED, S.QUEUED, S.TRAINING, S.EVALUATING, S.STAGED, S.ACTIVE)


def sources_for(target: Status) -> frozenset[Status]:
    return TRANSITIONS.get(target, frozenset())


def can_transition(source: Status | str, target: Status) -> bool:
    return Status(source) in sources_for(target)
