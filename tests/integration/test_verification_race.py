"""Concurrent guesses at one emailed code, against the web app under a real gunicorn on the
PostgreSQL test database: at most CODE_MAX_ATTEMPTS (3) guesses are ever checked, whatever the
concurrency, and the right code sent after them is refused.

The attack this closes: 20 to 30 guesses sent at once used to be checked 4 to 8 times (the attempt
counter was read, then written back minus one), and the right code sent fifth was accepted.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.cookies import SimpleCookie

import pytest

from service.audit.models import AuditEvent
from service.requests import services
from service.requests.models import ErasureRequest
from service.requests.states import Status
from tests.integration.processes import Gunicorn, app_env, require_postgresql

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GUESSES = 30
EMAIL = "race@example.com"


class Browser:
    """One visitor of the public pages: its own connection, session and CSRF cookies."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Host": "127.0.0.1", "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")})
            headers.update({"Content-Type": "application/x-www-form-urlencoded", "Referer": f"http://127.0.0.1:{self.port}{path}"})
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        text = response.read().decode("utf-8", "replace")
        conn.close()
        return response.status, text


@pytest.fixture
def web(tmp_path, transactional_db):
    require_postgresql("gunicorn")
    # gthread: 4 workers x 8 threads serve all 30 guesses at the same time, more than the
    # deployed 4 sync workers would; rate limits off, so that only the code's own budget counts.
    server = Gunicorn(env=app_env(tmp_path, FORGET_RATELIMIT_ENABLE="false"), log=tmp_path / "gunicorn.log", workers=4, threads=8)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_thirty_concurrent_guesses_check_at_most_three_and_the_right_code_is_refused_after(web, mailoutbox, mailoutbox_codes):
    request = services.request_submit_web(name="Race Subject", email=EMAIL, regulation="gdpr", facts=["Race Subject is 40"], evidence_prompts=[], attested=True)
    (code,) = mailoutbox_codes()
    wrong = [f"{(int(code) + n) % 10**6:06d}" for n in range(1, GUESSES + 1)]

    browsers = [Browser(web.port) for _ in range(GUESSES)]
    for browser in browsers:
        assert browser.request("GET", "/request/verify/")[0] == 200  # session and CSRF cookies
    start = threading.Barrier(GUESSES)
    answers: list[int] = []

    def guess(browser: Browser, attempt: str) -> None:
        start.wait()
        status, _ = browser.request("POST", "/request/verify/", {"reference": request.reference, "email": EMAIL, "code": attempt})
        answers.append(status)

    threads = [threading.Thread(target=guess, args=(b, w)) for b, w in zip(browsers, wrong, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(answers) == GUESSES and all(status == 400 for status in answers), answers  # each one refused, none a 5xx
    checked = AuditEvent.objects.filter(action="request.verification_failed", target_id=request.reference).count()
    assert checked == 3, f"{checked} guesses were checked against the code; at most 3 may be"

    right = Browser(web.port)
    right.request("GET", "/request/verify/")
    status, page = right.request("POST", "/request/verify/", {"reference": request.reference, "email": EMAIL, "code": code})
    assert status == 400 and "No attempts left" in page
    request.refresh_from_db()
    assert request.status == Status.SUBMITTED and request.code_guesses_used == 3 and request.code_attempts_left == 0
    assert ErasureRequest.objects.filter(pk=request.pk, verified_at__isnull=False).count() == 0
