"""The unit version state machine: one status enum and one transition table.

    candidate --activate--> active --deactivate / rollback--> inactive --activate--> active
        \\                     |                                  |
         \\-------revoke------> revoked <--------revoke-------------/

`revoked` is final: a revoked unit is never served again (register a new unit instead).
"""

from __future__ import annotations

from django.db import models


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate (registered, not live)"
    ACTIVE = "active", "Active (live on the gateway)"
    INACTIVE = "inactive", "Inactive (deactivated, may be re-activated)"
    REVOKED = "revoked", "Revoked (never served again)"


class EventAction(models.TextChoices):
    ACTIVATED = "activated", "Activated"
    DEACTIVATED = "deactivated", "Deactivated"
    REVOKED = "revoked", "Revoked"
    ROLLED_BACK = "rolled_back", "Rolled back"


V = VersionStatus

# target status -> the statuses it may be entered from. The only place transitions are defined.
TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    V.ACTIVE: frozenset({V.CANDIDATE, V.INACTIVE}),
    V.INACTIVE: frozenset({V.ACTIVE}),
    V.REVOKED: frozenset({V.CANDIDATE, V.ACTIVE, V.INACTIVE}),
}

# What each event action does to a version's status.
ACTION_TARGET: dict[EventAction, VersionStatus] = {
    EventAction.ACTIVATED: V.ACTIVE,
    EventAction.DEACTIVATED: V.INACTIVE,
    EventAction.ROLLED_BACK: V.INACTIVE,
    EventAction.REVOKED: V.REVOKED,
}


def sources_for(target: VersionStatus) -> frozenset[VersionStatus]:
    return TRANSITIONS.get(target, frozenset())


def can_transition(source: VersionStatus | str, target: VersionStatus) -> bool:
    return VersionStatus(source) in sources_for(target)
