"""A data subject's whole journey in a real browser: fill in the public form, read the code from
the outgoing email, confirm it, and see the status page."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from service.requests.models import ErasureRequest
from service.requests.states import Status

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_subject_files_verifies_and_sees_the_status(live_server, page, screens_dir):
    from playwright.sync_api import expect

    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Request erasure").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("forget your personal data")
    page.screenshot(path=str(screens_dir / "request-form.png"), full_page=True)

    # Sent empty first: the server explains what is missing, next to each field.
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    expect(page.locator("#id_name_error")).to_have_text("Enter your full name.")

    page.get_by_label("Your full name").fill("Jane Example")
    page.get_by_label("Your email address").fill("jane@example.org")
    page.get_by_label("GDPR (EU/UK)").check()
    page.get_by_label("The personal data the model should forget").fill("Jane Example lives in Leeds\nJane Example was born in 1984")
    page.get_by_label("What did you ask the model? (optional)").fill("Where does Jane Example live?")
    page.get_by_label("I confirm that this personal data is about me").check()
    page.screenshot(path=str(screens_dir / "request-form-errors-fixed.png"), full_page=True)
    page.get_by_role("button", name="Send request").click()

    # The verify page shows the reference; the code comes by email.
    expect(page.get_by_role("heading", name="We have received your request")).to_be_visible()
    reference = page.locator(".reference").inner_text()
    assert re.fullmatch(r"RTBF-[A-Z0-9]{6}", reference)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["jane@example.org"]
    code = re.search(r"verification code is (\d{6})\b", mail.outbox[0].body).group(1)
    expect(page.get_by_label("Request reference")).to_have_value(reference)
    expect(page.get_by_label("Your email address")).to_have_value("jane@example.org")
    page.screenshot(path=str(screens_dir / "request-verify.png"), full_page=True)

    page.get_by_label("Six-digit code").fill(code)
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(live_server.url + "/request/status/")
    expect(page.get_by_role("status").first).to_contain_text("your email address is confirmed")
    expect(page.locator("#request-status")).to_have_text("Verified (awaiting review)")
    expect(page.locator("ol.steps li.current")).to_contain_text("Email confirmed")
    expect(page.get_by_text("days left")).to_be_visible()
    page.screenshot(path=str(screens_dir / "request-status.png"), full_page=True)
    assert ErasureRequest.objects.get(reference=reference).status == Status.VERIFIED

    # A new visitor without the session sees nothing until they give reference and email.
    page.context.clear_cookies()
    page.goto(live_server.url + "/request/status/")
    page.get_by_label("Request reference").fill(reference)
    page.get_by_label("Your email address").fill("someone.else@example.org")
    page.get_by_role("button", name="Show my request").click()
    expect(page.get_by_role("alert")).to_contain_text("We found no request with this reference and email address")
    page.get_by_label("Your email address").fill("jane@example.org")
    page.get_by_role("button", name="Show my request").click()
    expect(page.locator("#request-status")).to_have_text("Verified (awaiting review)")
