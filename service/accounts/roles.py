"""Who is acting, and what each role may do. Enforced in the service layer, not only in views.

Roles: the data subject (anonymous, own request only), reviewer, auditor (reads everything,
changes nothing), admin, and API clients with scopes. Staff roles are Django groups.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from service.common.errors import PermissionDenied


class Role(str, enum.Enum):
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Scope(str, enum.Enum):
    CREATE = "create"
    READ = "read"
    TRUSTED_IDENTITY = "trusted_identity"
    GENERATE = "generate"  # the inference gateway's endpoints (docs/gateway.md)


class Capability(str, enum.Enum):
    READ_ALL_REQUESTS = "read_all_requests"  # the review queue, any request's page
    REVIEW = "review"  # approve, reject, cancel, extend
    READ_AUDIT = "read_audit"  # the audit log and its exports
    REVEAL_PERSONAL_DATA = "reveal_personal_data"  # unmasked facts (each reveal audited)
    ADMINISTER = "administer"  # API clients, policies


ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.REVIEWER: frozenset({Capability.READ_ALL_REQUESTS, Capability.REVIEW, Capability.REVEAL_PERSONAL_DATA}),
    Role.AUDITOR: frozenset({Capability.READ_ALL_REQUESTS, Capability.READ_AUDIT}),
    Role.ADMIN: frozenset(Capability),
}


@dataclass(frozen=True)
class Actor:
    """The one who acts: a staff user, an API client, the data subject, or the system itself."""

    kind: str  # "user" | "api_client" | "subject" | "system"
    id: str
    label: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps: set[Capability] = set()
        for role in self.roles:
            caps |= ROLE_CAPABILITIES[role]
        return frozenset(caps)

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def require(self, capability: Capability) -> None:
        if not self.can(capability):
            raise PermissionDenied(f"{self.label} may not {capability.value.replace('_', ' ')}.")

    def has_scope(self, scope: Scope) -> bool:
        return self.kind == "api_client" and scope.value in self.scopes

    def require_scope(self, scope: Scope) -> None:
        if not self.has_scope(scope):
            raise PermissionDenied(f"This API client lacks the '{scope.value}' scope.")

    @property
    def client_pk(self) -> int | None:
        return int(self.id) if self.kind == "api_client" else None

    @property
    def user_pk(self) -> int | None:
        return int(self.id) if self.kind == "user" else None


SYSTEM = Actor(kind="system", id="system", label="system")


def subject_actor(reference: str) -> Actor:
    return Actor(kind="subject", id=reference, label=f"subject of {reference}")


def user_roles(user) -> frozenset[Role]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    roles = {Role(name) for name in user.groups.values_list("name", flat=True) if name in Role._value2member_map_}
    if user.is_superuser:
        roles.add(Role.ADMIN)
    return frozenset(roles)


def actor_for_user(user) -> Actor:
    return Actor(kind="user", id=str(user.pk), label=user.get_username(), roles=user_roles(user))


def actor_for_client(client) -> Actor:
    return Actor(kind="api_client", id=str(client.pk), label=f"api client {client.name}", scopes=frozenset(client.scopes))


def actor_for_request(request) -> Actor | None:
    """The actor behind a Django/DRF request: an API client, a staff user, or None (anonymous)."""
    client = getattr(request, "api_client", None)
    if client is not None:
        return actor_for_client(client)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return actor_for_user(user)
    return None
