"""API clients end to end: `manage.py create_api_client`, the key it prints once, Bearer auth,
revocation, and what the `trusted_identity` scope changes for the subject."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client as DjangoClient
from django.test import TestCase

from service.accounts.models import ApiClient
from service.accounts.services import hash_api_key
from service.requests.services import request_verify

pytestmark = pytest.mark.django_db

BODY = {"subject_name": "Cy Test", "subject_email": "cy@example.com", "regulation": "gdpr", "facts": ["Cy works at Initech"]}


class Client(DjangoClient):
    """Runs what a real request runs after its transaction commits (the emails)."""

    def request(self, **request):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(**request)


def create_client(name: str, scopes: str) -> tuple[str, str]:
    """Runs the command as an operator would; returns (everything printed, the key)."""
    out = io.StringIO()
    call_command("create_api_client", name, "--scopes", scopes, stdout=out)
    printed = out.getvalue()
    keys = [line for line in printed.splitlines() if line.startswith("fk_")]
    assert len(keys) == 1, printed
    return printed, keys[0]


def test_command_prints_the_key_once_and_stores_only_its_hash():
    printed, key = create_client("acme-crm", "create,read")

    assert "acme-crm" in printed and "create, read" in printed
    assert printed.count(key) == 1
    client = ApiClient.objects.get(name="acme-crm")
    assert client.scopes == ["create", "read"]
    assert client.key_hash == hash_api_key(key)
    # Nowhere in the database is the key in clear, nor its secret part.
    secret = key.rsplit("_", 1)[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apiclient")
        stored = repr(cursor.fetchall())
    assert key not in stored and secret not in stored


def test_each_client_gets_its_own_key():
    _, first = create_client("one", "read")
    _, second = create_client("two", "read")
    assert first != second


@pytest.mark.parametrize("scopes", ["create,admin", "read,,write", "everything"])
def test_unknown_scope_is_an_error_and_creates_nothing(scopes):
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_client", "bad", "--scopes", scopes, stdout=io.StringIO())
    assert not ApiClient.objects.filter(name="bad").exists()


def test_duplicate_name_is_an_error():
    create_client("acme", "read")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_api_client", "acme", "--scopes", "read", stdout=io.StringIO())


def test_printed_key_authenticates_and_revoking_the_client_shuts_it_out():
    _, key = create_client("acme", "create,read")
    http = Client(headers={"Authorization": f"Bearer {key}"})

    created = http.post("/api/v1/requests", BODY, content_type="application/json")
    assert created.status_code == 202
    assert http.get(created["Location"]).status_code == 200

    ApiClient.objects.filter(name="acme").update(is_active=False)  # an administrator revokes it
    refused = http.get(created["Location"])
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "authentication_failed"
    assert refused["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_tampered_key_is_refused():
    _, key = create_client("acme", "read")
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    response = Client(headers={"Authorization": f"Bearer {tampered}"}).get("/api/v1/requests")
    assert response.status_code == 401


def test_without_trusted_identity_the_subject_verifies_by_emailed_code(mailoutbox, mailoutbox_codes):
    _, key = create_client("acme", "create,read")
    http = Client(headers={"Authorization": f"Bearer {key}"})

    created = http.post("/api/v1/requests", BODY, content_type="application/json").json()

    assert created["status"] == "submitted"
    assert mailoutbox[0].to == ["cy@example.com"]
    assert created["reference"] in mailoutbox[0].subject
    (code,) = mailoutbox_codes()
    request_verify(reference=created["reference"], email="cy@example.com", code=code)  # the subject types it in
    assert http.get(created["links"]["self"]).json()["status"] == "verified"


def test_trusted_identity_skips_to_verified_and_sends_no_code(mailoutbox):
    _, key = create_client("bank", "create,read,trusted_identity")
    http = Client(headers={"Authorization": f"Bearer {key}"})

    response = http.post("/api/v1/requests", json.dumps(BODY), content_type="application/json")

    assert response.status_code == 202
    assert response.json()["status"] == "verified"
    assert mailoutbox == []
