"""Signing and verifying certificates, and where the service's key comes from."""

from __future__ import annotations

import base64
import copy
import logging
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.dossier import signing

from .conftest import raw_base64

PAYLOAD = {
    "format": "forget-service/signed-certificate",
    "request": {"reference": "RTBF-ABC123"},
    "passed": True,
    "metrics": {"leak": {"F": {"rate": 0.0, "upper95": 0.3123439780663678}}},
    "note": "Zürich ✓",
}


def test_a_signed_document_verifies_with_its_key_and_is_canonical():
    key = Ed25519PrivateKey.generate()
    document = signing.sign_payload(PAYLOAD, key)
    assert document["signature"]["alg"] == "Ed25519"
    assert document["signature"]["key_id"] == signing.key_id(key.public_key()) and len(document["signature"]["key_id"]) == 64
    assert base64.b64decode(document["signature"]["public_key"]) == signing.raw_public_key(key.public_key())
    assert signing.verify_document(document, key.public_key()).payload == PAYLOAD
    # Canonical: key order and the file's indentation do not matter, the content does.
    reordered = {"signature": document["signature"], "payload": dict(reversed(list(PAYLOAD.items())))}
    assert signing.verify_document(reordered, key.public_key()).key_id == document["signature"]["key_id"]
    assert signing.canonical_bytes({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_any_change_to_the_payload_breaks_the_signature():
    key = Ed25519PrivateKey.generate()
    document = signing.sign_payload(PAYLOAD, key)
    tampered = copy.deepcopy(document)
    tampered["payload"]["metrics"]["leak"]["F"]["rate"] = 0.0000001
    with pytest.raises(signing.InvalidDocument, match="altered"):
        signing.verify_document(tampered, key.public_key())


def test_a_document_resigned_by_another_key_is_refused_even_though_it_carries_that_key():
    service, forger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    forged = signing.sign_payload({**PAYLOAD, "passed": True}, forger)  # self-consistent: the embedded key matches
    with pytest.raises(signing.InvalidDocument, match="not by the trusted key"):
        signing.verify_document(forged, service.public_key())
    # Claiming the service's key id does not help either.
    forged["signature"]["key_id"] = signing.key_id(service.public_key())
    with pytest.raises(signing.InvalidDocument, match="altered"):
        signing.verify_document(forged, service.public_key())


def test_keys_load_from_pem_or_base64_and_a_placeholder_is_refused():
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    for text in (pem, raw_base64(key)):
        assert signing.key_id(signing.private_key_from_text(text, source="t").public_key()) == signing.key_id(key.public_key())
    public_pem = signing.public_key_pem(key.public_key())
    assert signing.key_id(signing.public_key_from_text(public_pem, source="t")) == signing.key_id(key.public_key())
    with pytest.raises(signing.SigningKeyError, match="placeholder"):
        signing.private_key_from_text("change-me-signing-key", source="FORGET_SIGNING_KEY")
    with pytest.raises(signing.SigningKeyError, match="not an Ed25519 private key"):
        signing.private_key_from_text(base64.b64encode(b"too short").decode(), source="FORGET_SIGNING_KEY")


def test_the_settings_pick_the_key_file_then_the_value(settings, tmp_path):
    from_value, from_file = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    key_file = tmp_path / "signing.key"
    key_file.write_text(raw_base64(from_file))
    settings.FORGET_SIGNING_KEY, settings.FORGET_SIGNING_KEY_FILE = raw_base64(from_value), ""
    assert signing.key_id(signing.service_public_key()) == signing.key_id(from_value.public_key())
    settings.FORGET_SIGNING_KEY_FILE = str(key_file)
    assert signing.key_id(signing.service_public_key()) == signing.key_id(from_file.public_key())
    settings.FORGET_SIGNING_KEY_FILE = str(tmp_path / "missing.key")
    with pytest.raises(signing.SigningKeyError, match="cannot read FORGET_SIGNING_KEY_FILE"):
        signing.service_signing_key()


def test_the_embedded_default_key_is_generated_once_0600_and_logged(settings, tmp_path, caplog):
    settings.FORGET_SIGNING_KEY, settings.FORGET_SIGNING_KEY_FILE, settings.VAR_DIR = "", "", tmp_path
    with pytest.raises(signing.SigningKeyError, match="--public-key"):
        signing.service_signing_key(create=False)  # a verifier never makes up a key
    with caplog.at_level(logging.WARNING, logger="service.dossier.signing"):
        first = signing.key_id(signing.service_public_key())
    path = tmp_path / "certificate-signing-key.pem"
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert any("generated the certificate signing key" in r.getMessage() and first in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="service.dossier.signing"):
        assert signing.key_id(signing.service_public_key()) == first  # the same key from now on
    assert not caplog.records and [p.name for p in tmp_path.iterdir()] == ["certificate-signing-key.pem"]
