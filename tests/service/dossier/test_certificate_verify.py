"""`manage.py certificate_verify` as a third party runs it, in its own process: exit 0 and a clear
verdict on a genuine file (JSON or HTML), exit 1 with one line and no traceback on a tampered JSON, a
tampered HTML, a certificate re-signed by a foreign key, or an unreadable file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.urls import reverse

from service.dossier import documents, signing

from .conftest import raw_base64

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


def verify(path: Path, *, service_key: Ed25519PrivateKey, public_key: Path | None = None) -> subprocess.CompletedProcess:
    """The command in a fresh process configured with `service_key` (and no database access needed)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "service.config.settings", "FORGET_SIGNING_KEY": raw_base64(service_key), "FORGET_SIGNING_KEY_FILE": ""}
    argv = [sys.executable, "manage.py", "certificate_verify", str(path)] + (["--public-key", str(public_key)] if public_key else [])
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def assert_invalid(result: subprocess.CompletedProcess, reason: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "INVALID" in lines[0] and reason in lines[0], lines[0]


@pytest.fixture
def downloads(client, staff, certified, tmp_path):
    """The JSON and the HTML certificate of a certified request, downloaded by an auditor."""
    request = certified()
    client.force_login(staff("auditor"))
    files = {}
    for fmt in ("json", "html"):
        path = tmp_path / f"certificate.{fmt}"
        path.write_bytes(client.get(reverse(f"staff-certificate-{fmt}", args=[request.pk])).content)
        files[fmt] = path
    return request, files


def test_genuine_files_verify_with_the_configured_key(downloads, signing_key):
    request, files = downloads
    for fmt, path in files.items():
        result = verify(path, service_key=signing_key)
        assert result.returncode == 0, result.stderr
        first = result.stdout.splitlines()[0]
        assert (
            first == f"VALID: certificate of request {request.reference} ({fmt}), signed by key {signing.key_id(signing_key.public_key())} "
            "(the service's signing key)"
        )
        assert "PASSED its rules" in result.stdout


def test_a_tampered_json_fails(downloads, signing_key, tmp_path):
    _, files = downloads
    document = json.loads(files["json"].read_text())
    document["payload"]["passed"] = not document["payload"]["passed"]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document, indent=2))
    assert_invalid(verify(tampered, service_key=signing_key), "altered")


def test_a_tampered_html_fails_whether_the_data_or_the_page_was_edited(downloads, signing_key, tmp_path):
    _, files = downloads
    html = files["html"].read_text()
    # The embedded certificate: a rule's threshold loosened.
    edited_data = tmp_path / "edited-data.html"
    edited_data.write_text(html.replace('"threshold": 0.02', '"threshold": 0.5', 1).replace('"threshold":0.02', '"threshold":0.5', 1))
    assert edited_data.read_text() != html
    assert_invalid(verify(edited_data, service_key=signing_key), "altered")
    # Only what a reader sees: the verdict line.
    edited_page = tmp_path / "edited-page.html"
    edited_page.write_text(html.replace("PASS: every rule holds on its 95% bound.", "PASS with flying colours."))
    assert edited_page.read_text() != html
    assert_invalid(verify(edited_page, service_key=signing_key), "the HTML page was altered")


def test_a_certificate_resigned_by_a_foreign_key_fails_unless_that_key_is_given(downloads, signing_key, tmp_path):
    _, files = downloads
    foreign = Ed25519PrivateKey.generate()
    document = json.loads(files["json"].read_text())
    resigned = tmp_path / "resigned.json"
    resigned.write_text(json.dumps(signing.sign_payload(document["payload"], foreign)))
    assert_invalid(verify(resigned, service_key=signing_key), "not by the trusted key")

    foreign_pem = tmp_path / "foreign.pem"
    foreign_pem.write_text(signing.public_key_pem(foreign.public_key()))
    explicit = verify(resigned, service_key=signing_key, public_key=foreign_pem)
    assert explicit.returncode == 0 and signing.key_id(foreign.public_key()) in explicit.stdout and "--public-key" in explicit.stdout

    resigned_html = tmp_path / "resigned.html"
    resigned_html.write_bytes(documents.html_file(signing.sign_payload(document["payload"], foreign), foreign))
    assert_invalid(verify(resigned_html, service_key=signing_key), "not by the trusted key")


def test_the_published_public_key_verifies_and_unreadable_files_fail(client, downloads, signing_key, tmp_path):
    _, files = downloads
    published = tmp_path / "service.pem"
    published.write_bytes(client.get(reverse("api-certificate-public-key")).content)
    other_service_key = Ed25519PrivateKey.generate()  # the verifier's own configuration does not matter then
    assert verify(files["html"], service_key=other_service_key, public_key=published).returncode == 0

    assert_invalid(verify(tmp_path / "nowhere.json", service_key=signing_key), "no such file")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert_invalid(verify(garbage, service_key=signing_key), "not valid JSON")
    image = tmp_path / "plot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert_invalid(verify(image, service_key=signing_key), "not UTF-8")
