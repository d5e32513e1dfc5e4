"""The signed certificate in the API: an API client gets its own request's only; the public key that
verifies it is public."""

from __future__ import annotations

import pytest
from django.urls import reverse

from service.audit.models import AuditEvent
from service.dossier import signing

pytestmark = pytest.mark.django_db


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_the_owning_client_gets_its_signed_certificate_and_others_get_nothing(client, certified, owner, api_client_key, signing_key):
    request = certified()
    url = reverse("api-request-certificate-signed", args=[request.pk])

    response = client.get(url, **bearer(owner[1]))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    verified = signing.verify_document(response.json(), signing_key.public_key())
    assert verified.payload["request"]["reference"] == request.reference
    event = AuditEvent.objects.get(action="certificate.downloaded", target_id=request.reference)
    assert event.actor_kind == "api_client" and event.data["format"] == "json"

    _, other_key = api_client_key(("create", "read"), name="another-product")
    foreign = client.get(url, **bearer(other_key))
    assert foreign.status_code == 404 and foreign["Content-Type"] == "application/problem+json"  # not "forbidden": no probing of ids
    _, no_read = api_client_key(("create",), name="write-only")
    assert client.get(url, **bearer(no_read)).status_code == 403
    assert client.get(url).status_code == 401
    assert AuditEvent.objects.filter(action="certificate.downloaded").count() == 1  # refusals issue nothing


def test_no_certificate_yet_is_a_404_with_its_code(client, owner, actor_of, signing_key):
    from service.requests.services import request_create_api

    request, _ = request_create_api(
        actor=actor_of(owner[0]), idempotency_key="early", name="Ada", email="ada@example.org", regulation="gdpr", facts=["Ada is 40"], evidence_prompts=[]
    )
    response = client.get(reverse("api-request-certificate-signed", args=[request.pk]), **bearer(owner[1]))
    assert response.status_code == 404 and response.json()["code"] == "no_certificate"


def test_the_public_key_is_served_as_pem_to_anyone(client, signing_key):
    response = client.get(reverse("api-certificate-public-key"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/x-pem-file")
    pem = response.content.decode()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    served = signing.public_key_from_text(pem, source="the response")
    assert signing.key_id(served) == signing.key_id(signing_key.public_key()) == response["X-Key-Id"]
