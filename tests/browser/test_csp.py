"""The strict Content-Security-Policy (settings.CONTENT_SECURITY_POLICY: scripts, styles and images
from this origin only, nothing inline) in a real browser: every page a data subject, a reviewer, an
auditor and an admin opens is served with it, and Chromium reports no violation on any of them:
the stylesheets and scripts load from static files, the inline SVG charts and the dossier's plot
render, the Swagger UI starts from its script file.
"""

from __future__ import annotations

import pytest

from service.accounts.roles import actor_for_client, actor_for_user
from tests.service.dossier.factories import certified_request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pass-for-tests-123"  # tests/conftest.py's staff fixture

# Collects the violations the page reports (a blocked inline style or script, a foreign origin).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
  e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));
"""


def test_no_page_violates_the_content_security_policy(live_server, page, settings, staff, api_client_key, screens_dir):
    from playwright.sync_api import expect

    owner, _ = api_client_key(("create", "read", "trusted_identity"), name="product")
    request = certified_request(owner=actor_for_client(owner), approver=actor_for_user(staff("reviewer")))
    staff("admin", username="ada")
    page.add_init_script(RECORD_VIOLATIONS)
    console = []
    page.on("console", lambda message: console.append(message.text) if "Content Security Policy" in message.text else None)

    base = live_server.url
    public = ["/", "/request/new/", "/request/verify/", "/request/status/", "/accounts/login/"]
    for path in public:
        response = page.goto(base + path)
        assert "script-src 'self'" in response.headers["content-security-policy"], path

    page.goto(base + "/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()

    unit_id = f"{request.reference.lower()}-a1"
    staff_pages = [
        "/staff/",
        f"/staff/requests/{request.pk}/",
        f"/staff/requests/{request.pk}/dossier/",
        "/audit/",
        "/registry/",
        "/registry/live/",
        "/registry/history/",
        f"/registry/units/{unit_id}/",
        "/reports/",
        "/staff/playground/",
        "/admin/",
        "/admin/auth/user/",
        "/api/docs/",
    ]
    violations = {}
    for path in public + staff_pages:
        response = page.goto(base + path)
        assert response.status == 200, (path, response.status)
        page.wait_for_load_state("networkidle")
        found = page.evaluate("window.__csp")
        if found:
            violations[path] = found
    assert page.locator("#swagger-ui .info").count() == 1  # the docs page started from its script file
    assert not violations, violations
    assert not console, console
