"""An auditor in a real browser: logs in, opens a certified request's dossier from its page, sees the
score plot, downloads the signed certificate (JSON and printable HTML) and verifies both offline
with `manage.py certificate_verify`, as a third party would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.accounts.roles import actor_for_client, actor_for_user
from service.audit.models import AuditEvent
from service.dossier.signing import key_id
from tests.service.dossier.conftest import raw_base64
from tests.service.dossier.factories import certified_request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pass-for-tests-123"  # tests/conftest.py's staff fixture


def test_auditor_opens_a_dossier_sees_the_plot_and_verifies_the_signed_certificate(live_server, page, screens_dir, settings, staff, api_client_key, tmp_path):
    from playwright.sync_api import expect

    key = Ed25519PrivateKey.generate()
    settings.FORGET_SIGNING_KEY, settings.FORGET_SIGNING_KEY_FILE = raw_base64(key), ""
    owner, _ = api_client_key(("create", "read", "trusted_identity"), name="product")
    request = certified_request(owner=actor_for_client(owner), approver=actor_for_user(staff("reviewer")))
    staff("auditor", username="audrey")

    page.goto(f"{live_server.url}/staff/requests/{request.pk}/")
    expect(page.get_by_role("heading", name="Staff login")).to_be_visible()
    page.get_by_label("Username").fill("audrey")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("link", name="Compliance dossier and signed certificate").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Dossier of request {request.reference}")
    expect(page.locator("#deadline-verdict")).to_have_text("on time")
    expect(page.locator("#certificate-verdict")).to_have_text("pass")
    expect(page.locator("#rules")).to_contain_text("union FPR")
    expect(page.locator("#timeline")).to_contain_text(f"Adapter {request.reference.lower()}-a1 activated")
    expect(page.get_by_role("button", name="Reveal personal data")).to_have_count(0)  # auditors read masked data only
    plot = page.locator("#score-plot")
    expect(plot).to_be_visible()
    plot.scroll_into_view_if_needed()
    # Drawn on the server on first request (a second or two): wait until the browser has decoded it.
    page.wait_for_function("() => { const img = document.getElementById('score-plot'); return img.complete && img.naturalWidth > 500; }")
    page.screenshot(path=str(screens_dir / "dossier.png"), full_page=True)

    files = {}
    for fmt in ("json", "html"):
        with page.expect_download() as download:
            page.locator(f"#download-{fmt}").click()
        files[fmt] = tmp_path / download.value.suggested_filename
        download.value.save_as(files[fmt])
        assert files[fmt].name == f"{request.reference}-certificate-attempt-1.{fmt}"

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "service.config.settings", "FORGET_SIGNING_KEY": raw_base64(key), "FORGET_SIGNING_KEY_FILE": ""}
    for fmt, path in files.items():
        result = subprocess.run([sys.executable, "manage.py", "certificate_verify", str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"VALID: certificate of request {request.reference} ({fmt}), signed by key {key_id(key.public_key())}" in result.stdout

    # The printable certificate as a reader opens it.
    page.goto(files["html"].as_uri())
    expect(page.get_by_role("heading", name="Erasure certificate")).to_be_visible()
    expect(page.locator("#key-id")).to_have_text(key_id(key.public_key()))
    page.screenshot(path=str(screens_dir / "certificate-document.png"), full_page=True)

    downloads = AuditEvent.objects.filter(action="certificate.downloaded", target_id=request.reference).order_by("seq")
    assert [(e.actor_label, e.data["format"]) for e in downloads] == [("audrey", "json"), ("audrey", "html")]
