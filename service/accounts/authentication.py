"""`Authorization: Bearer <key>` for API clients."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .services import api_client_for_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <key>'.")
        client = api_client_for_key(parts[1])
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        request._request.api_client = client
        return client, None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
