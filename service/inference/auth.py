"""Who may call the gateway.

- API clients: `Authorization: Bearer <API key>` of a client with the `generate` scope (products
  that send their users' prompts through the gated model).
- Staff, through the web app's playground: `Authorization: Staff <token>`, a token the web app
  signs with the SECRET_KEY both processes share (django.core.signing, valid for 60 seconds),
  naming the user. The gateway looks the user up and requires the `review` capability (reviewers
  and admins), so a user demoted or deactivated since is refused.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core import signing
from rest_framework import authentication, exceptions, permissions

from service.accounts.models import ApiClient
from service.accounts.roles import Actor, Capability, Scope, actor_for_client, actor_for_user
from service.accounts.services import api_client_for_key

STAFF_SCHEME = "Staff"
STAFF_TOKEN_SALT = "service.inference.staff-token"
STAFF_TOKEN_MAX_AGE = 60  # seconds: long enough for one call, short enough not to be worth stealing


def staff_token_for(user) -> str:
    """A short-lived token the playground sends to the gateway on behalf of `user`."""
    return signing.dumps({"user": user.pk}, salt=STAFF_TOKEN_SALT)


class GatewayAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme == "Bearer" and credential:
            client = api_client_for_key(credential)
            if client is None:
                raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
            request._request.api_client = client
            return client, None
        if scheme == STAFF_SCHEME and credential:
            try:
                payload = signing.loads(credential, salt=STAFF_TOKEN_SALT, max_age=STAFF_TOKEN_MAX_AGE)
            except signing.SignatureExpired:
                raise exceptions.AuthenticationFailed("The staff token has expired; reload the playground.") from None
            except signing.BadSignature:
                raise exceptions.AuthenticationFailed("Invalid staff token.") from None
            user = get_user_model().objects.filter(pk=payload.get("user") if isinstance(payload, dict) else None, is_active=True).first()
            if user is None:
                raise exceptions.AuthenticationFailed("The staff token names no active user.")
            return user, None
        raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <API key>'.")

    def authenticate_header(self, request):
        return 'Bearer realm="gateway"'


def gateway_actor(request) -> Actor | None:
    who = getattr(request, "user", None)
    if isinstance(who, ApiClient):
        return actor_for_client(who)
    if who is not None and getattr(who, "is_authenticated", False):
        return actor_for_user(who)
    return None


class MayGenerate(permissions.BasePermission):
    """API clients with the `generate` scope; staff with the `review` capability (reviewers, admins)."""

    def has_permission(self, request, view) -> bool:
        actor = gateway_actor(request)
        if actor is None:
            return False  # DRF answers 401: no credentials
        if actor.kind == "api_client":
            actor.require_scope(Scope.GENERATE)
        else:
            actor.require(Capability.REVIEW)
        return True
