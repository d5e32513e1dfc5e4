"""Writes for accounts: API clients and demo users."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from django.contrib.auth.models import Group, User
from django.db import transaction

from service.common.errors import ApplicationError

from .models import ApiClient
from .roles import Role, Scope

KEY_PREFIX = "fk_"
# fk_<12 hex digits>_<secret: token_urlsafe(32), 43 characters>
_KEY_SHAPE = re.compile(KEY_PREFIX + r"([0-9a-f]{12})_[A-Za-z0-9_-]{16,128}")


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_client_create(*, name: str, scopes: list[str]) -> tuple[ApiClient, str]:
    """Creates a client and returns it with its secret key, which is shown once and stored hashed."""
    valid = {scope.value for scope in Scope}
    unknown = sorted(set(scopes) - valid)
    if unknown:
        raise ApplicationError(f"Unknown scope(s): {', '.join(unknown)}. Valid scopes: {', '.join(sorted(valid))}.", code="unknown_scope")
    if not name.strip():
        raise ApplicationError("The client needs a name.", code="invalid_name")
    if ApiClient.objects.filter(name=name).exists():
        raise ApplicationError(f"An API client named {name!r} already exists.", code="duplicate_name")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    client = ApiClient.objects.create(name=name, key_prefix=prefix, key_hash=hash_api_key(key), scopes=sorted(set(scopes)))
    return client, key


@transaction.atomic
def api_client_rotate_key(*, client: ApiClient) -> str:
    """Gives the client a new secret key and returns it (shown once); the old key stops working."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    ApiClient.objects.filter(pk=client.pk).update(key_prefix=prefix, key_hash=hash_api_key(key))
    client.refresh_from_db()
    return key


def api_client_for_key(key: str) -> ApiClient | None:
    """The active client whose key this is, or None. Constant-time comparison of the hash."""
    # The shape is checked before any query: a header may carry anything (a NUL byte is a database error).
    shape = _KEY_SHAPE.fullmatch(key)
    if shape is None:
        return None
    prefix = shape.group(1)
    client = ApiClient.objects.filter(key_prefix=prefix, is_active=True).first()
    if client is None or not hmac.compare_digest(client.key_hash, hash_api_key(key)):
        return None
    return client


def ensure_role_groups() -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.value)


@transaction.atomic
def staff_user_ensure(*, username: str, password: str, role: Role, email: str = "") -> User:
    """Creates or updates a staff user with exactly one role (used by the demo seeding)."""
    ensure_role_groups()
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    user.email = email or user.email
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.set_password(password)
    user.save()
    user.groups.set([Group.objects.get(name=role.value)])
    return user
