"""Fixtures of the dossier tests: the service's signing key (a fresh one per test, through the
settings), the API client that owns the sample request, staff of each role, and a certified request."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .factories import certified_request


def raw_base64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())).decode()


@pytest.fixture
def signing_key(settings) -> Ed25519PrivateKey:
    """The service's signing key for this test (FORGET_SIGNING_KEY)."""
    key = Ed25519PrivateKey.generate()
    settings.FORGET_SIGNING_KEY, settings.FORGET_SIGNING_KEY_FILE = raw_base64(key), ""
    return key


@pytest.fixture
def owner(api_client_key):
    """(ApiClient, key) of the product that filed the sample request (scopes create, read, trusted_identity)."""
    return api_client_key(("create", "read", "trusted_identity"), name="owner-product")


@pytest.fixture
def certified(owner, staff, actor_of, signing_key):
    """certified(**options) -> an active request with a passed certificate (factories.certified_request)."""
    approver = actor_of(staff("reviewer"))

    def make(**options):
        return certified_request(owner=actor_of(owner[0]), approver=approver, **options)

    return make
