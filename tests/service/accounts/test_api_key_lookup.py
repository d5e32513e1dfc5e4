"""API-key authentication reads the client with one hand-written query per call (no ORM queryset,
no cache; docs/bench-intake.md). Rotation and scopes must behave exactly as with the ORM look-up."""

from __future__ import annotations

import pytest
from django.test import Client

from service.accounts.models import ApiClient
from service.accounts.services import api_client_for_key, api_client_rotate_key

pytestmark = pytest.mark.django_db


def get(key: str, path: str = "/api/v1/requests"):
    return Client(headers={"Authorization": f"Bearer {key}"}).get(path)


def test_a_rotated_key_is_refused_at_once_and_the_new_one_works(api_client_key):
    client, old = api_client_key(("create", "read"))
    assert get(old).status_code == 200

    new = api_client_rotate_key(client=client)

    refused = get(old)
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json"
    assert get(new).status_code == 200


def test_the_client_read_back_is_the_stored_one_with_its_scopes(api_client_key):
    client, key = api_client_key(("read",))
    found = api_client_for_key(key)
    stored = ApiClient.objects.get(pk=client.pk)
    assert found is not None
    assert {f.attname: getattr(found, f.attname) for f in ApiClient._meta.concrete_fields} == {
        f.attname: getattr(stored, f.attname) for f in ApiClient._meta.concrete_fields
    }
    # The scopes come back as a list, so a read-only client is refused a create.
    response = Client(headers={"Authorization": f"Bearer {key}"}).post("/api/v1/requests", {}, content_type="application/json")
    assert response.status_code == 403


def test_a_key_with_an_unknown_prefix_or_a_revoked_client_finds_nothing(api_client_key):
    client, key = api_client_key(("read",))
    assert api_client_for_key("fk_000000000000_" + "A" * 43) is None
    ApiClient.objects.filter(pk=client.pk).update(is_active=False)
    assert api_client_for_key(key) is None
