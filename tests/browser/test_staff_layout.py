"""Every staff page at a phone's width (390 px) and a laptop's (1280 px), in headless Chromium:
no page is wider than the window (a wide table scrolls inside its card), nothing sticks out of
its card, and the header stays on one line. Screenshots of each page at both widths go to
var/screens/staff-<page>-<width>.png."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from service.accounts.roles import actor_for_client, actor_for_user
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api, request_submit_web
from service.unlearning.models import UnlearningJob
from tests.service.dossier.factories import certified_request, sample_certificate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pass-for-tests-123"  # tests/conftest.py's staff fixture
WIDTHS = (390, 1280)

# What sticks out: the page wider than the window, elements past the right edge of their card
# (unless inside an element that scrolls sideways), and a header taller than one row.
MEASURE = """() => {
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) { const s = getComputedStyle(p).overflowX; if (s === 'auto' || s === 'scroll') return true; }
    return false;
  };
  const out = [];
  for (const card of document.querySelectorAll('.card')) {
    const right = card.getBoundingClientRect().right + 1;
    for (const el of card.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width && r.right > right && !scrolls(el)) {
        out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' in card ' + (card.id || card.getAttribute('aria-labelledby') || ''));
        break;
      }
    }
  }
  const header = document.querySelector('header');
  return {page: document.documentElement.scrollWidth, window: window.innerWidth, cards: out, header: header ? header.getBoundingClientRect().height : 0};
}"""


@pytest.fixture
def staff_world(settings, staff, api_client_key, tmp_path):
    """A certified live request, a failed one whose certificate failed, one awaiting review and an
    unverified web request; an admin and an auditor."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.service.dossier.conftest import raw_base64

    settings.FORGET_SIGNING_KEY, settings.FORGET_SIGNING_KEY_FILE = raw_base64(Ed25519PrivateKey.generate()), ""
    owner, _ = api_client_key(("create", "read", "trusted_identity"), name="product")
    reviewer = actor_for_user(staff("reviewer"))
    live = certified_request(owner=actor_for_client(owner), approver=reviewer)
    failed, _ = request_create_api(
        actor=actor_for_client(owner),
        idempotency_key="layout-failed",
        name="Imke Vasquez",
        email="imke@example.org",
        regulation="ccpa",
        facts=["Imke Vasquez works for Brightwater Analytics"],
        evidence_prompts=[],
    )
    certificate = sample_certificate(certified_unit=f"{failed.reference.lower()}-a1")
    certificate["passed"] = False
    ErasureRequest.objects.filter(pk=failed.pk).update(status="failed", failure_reason="The certificate did not pass: leak P 0.25 > 0.05.")
    UnlearningJob.objects.create(
        request=failed,
        attempt=1,
        status="failed",
        phase="registering",
        percent=97.0,
        worker="gpu-1:42",
        deliveries=1,
        started_at=timezone.now() - timedelta(hours=1),
        finished_at=timezone.now() - timedelta(minutes=50),
        failure_reason="The certificate did not pass: leak P 0.25 > 0.05.",
        certificate={k: v for k, v in certificate.items() if k != "personal_data"},
        certificate_personal=certificate["personal_data"],
        certificate_passed=False,
    )
    waiting, _ = request_create_api(
        actor=actor_for_client(owner),
        idempotency_key="layout-waiting",
        name="Nils Kowalczyk",
        email="nils@example.org",
        regulation="gdpr",
        facts=["Nils Kowalczyk was born in 1983"],
        evidence_prompts=[],
    )
    request_submit_web(
        name="Dorian Falconer", email="dorian@example.org", regulation="other", facts=["Dorian Falconer lives in Varnholm"], evidence_prompts=[], attested=True
    )
    staff("admin", username="layout-admin")
    staff("auditor", username="layout-auditor")
    version = live.adapter_versions.get()
    public = {k: v for k, v in sample_certificate(certified_unit=version.unit_id).items() if k != "personal_data"}
    type(version).objects.filter(pk=version.pk).update(certificate_metrics=public)
    unit = version.unit_id
    return {"live": live, "failed": failed, "waiting": waiting, "unit": unit}


def login(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def staff_pages(world) -> dict[str, str]:
    live, failed = world["live"].pk, world["failed"].pk
    return {
        "queue": "/staff/",
        "queue-all": "/staff/?status=all",
        "request-live": f"/staff/requests/{live}/",
        "request-failed": f"/staff/requests/{failed}/",
        "dossier": f"/staff/requests/{live}/dossier/",
        "audit-log": "/audit/",
        "registry": "/registry/",
        "registry-live": "/registry/live/",
        "live-history": "/registry/history/",
        "unit": f"/registry/units/{world['unit']}/",
        "reports": "/reports/",
        "playground": "/staff/playground/",
    }


def check(page, name: str, width: int, screens_dir) -> list[str]:
    page.wait_for_load_state("load")
    page.screenshot(path=str(screens_dir / f"staff-{name}-{width}.png"), full_page=True)
    m = page.evaluate(MEASURE)
    problems = []
    if m["page"] > m["window"]:
        problems.append(f"{name} at {width} px: the page is {m['page']} px wide")
    problems += [f"{name} at {width} px: {what} sticks out of its card" for what in m["cards"]]
    if width >= 1280 and m["header"] > 60:
        problems.append(f"{name} at {width} px: the header wraps ({m['header']:.0f} px high)")
    return problems


def test_every_staff_page_fits_a_phone_and_a_laptop(live_server, page, screens_dir, staff_world):
    login(page, live_server.url, "layout-admin")
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in staff_pages(staff_world).items():
            page.goto(live_server.url + path)
            problems += check(page, name, width, screens_dir)
        # The revealed request page (the before/after table unmasked).
        page.goto(f"{live_server.url}/staff/requests/{staff_world['live'].pk}/")
        page.get_by_role("button", name="Reveal personal data").first.click()
        problems += check(page, "request-revealed", width, screens_dir)
    assert not problems, "\n".join(problems)


def test_the_auditor_lands_on_the_requests_with_links_to_their_dossiers(live_server, page, screens_dir, staff_world):
    from playwright.sync_api import expect

    login(page, live_server.url, "layout-auditor")
    expect(page.get_by_role("heading", level=1)).to_have_text("Requests")
    for request in (staff_world["live"], staff_world["failed"], staff_world["waiting"]):
        expect(page.get_by_role("link", name=f"Dossier of {request.reference}")).to_have_attribute("href", f"/staff/requests/{request.pk}/dossier/")
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        problems += check(page, "auditor-landing", width, screens_dir)
    assert not problems, "\n".join(problems)
