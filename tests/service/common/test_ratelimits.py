"""Rate limits (service/common/ratelimits.py, django-ratelimit) and the staff login lockout
(django-axes): where each applies, what a caller over it gets (429 with Retry-After; on the
subject's pages the form again, nothing typed lost; on the API problem+json), and that counting
works on Redis, as in production, and a Redis outage is a 503.

Each test sets small rates; the counters start empty in every test (tests/conftest.py).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest

pytestmark = pytest.mark.django_db

NEW, VERIFY, STATUS = reverse("request-new"), reverse("request-verify"), reverse("request-status")
FORM = {"name": "Jane Example", "email": "jane@example.org", "regulation": "gdpr", "facts": "Jane Example lives in Leeds", "attested": "on"}
PROBLEM = "application/problem+json"
REDIS = "redis://127.0.0.1:6379/12"  # bin/test's TEST_CELERY_BROKER_URL for this worktree


@pytest.fixture
def rates(settings):
    def set_rates(**rates: str) -> None:
        settings.FORGET = {**settings.FORGET, "RATE_LIMITS": {**settings.FORGET["RATE_LIMITS"], **rates}}

    return set_rates


@pytest.fixture
def post(django_capture_on_commit_callbacks):
    """post(url, data, ip=...) from a browser at that address; mails go out as after a commit."""

    def do(url, data, *, ip: str = "198.51.100.7", http: Client | None = None):
        with django_capture_on_commit_callbacks(execute=True):
            return (http or Client()).post(url, data, REMOTE_ADDR=ip)

    return do


def _assert_429_page(response, *, says: str) -> None:
    assert response.status_code == 429, response.status_code
    assert 1 <= int(response["Retry-After"]) <= 3600
    page = " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())
    assert says in page and "try again in" in page


def test_public_form_submissions_are_limited_per_address_and_the_form_comes_back_filled_in(rates, post, mailoutbox):
    rates(submit_per_ip="3/h", submit_per_email="", code_mails_per_email="")
    for n in range(3):
        assert post(NEW, {**FORM, "email": f"p{n}@example.org"}).status_code == 302
    refused = post(NEW, {**FORM, "email": "p9@example.org"})
    _assert_429_page(refused, says="Too many requests filed from your connection")
    assert 'value="p9@example.org"' in refused.content.decode()  # nothing typed is lost
    assert post(NEW, {**FORM, "email": "p8@example.org"}, ip="203.0.113.9").status_code == 302  # another address is not affected
    assert ErasureRequest.objects.count() == 4 and len(mailoutbox) == 4


def test_one_victims_address_flooded_from_many_addresses_gets_few_code_mails(rates, post, mailoutbox):
    """The attack: 40 submissions for one address in a second sent 40 code mails."""
    rates(submit_per_ip="", submit_per_email="5/h", code_mails_per_email="5/h")
    answers = [post(NEW, FORM, ip=f"198.51.100.{n}").status_code for n in range(40)]
    assert answers.count(302) == 5 and answers.count(429) == 35
    assert len(mailoutbox) == 5 and ErasureRequest.objects.count() == 5


def test_code_mails_per_address_count_resends_too(rates, post, mailoutbox):
    rates(submit_per_ip="", submit_per_email="", code_mails_per_email="2/h", verify_per_ip="")
    http = Client()
    assert post(NEW, FORM, http=http).status_code == 302
    request = ErasureRequest.objects.get()
    resend = {"reference": request.reference, "email": FORM["email"], "action": "resend"}
    ErasureRequest.objects.filter(pk=request.pk).update(code_sent_at=timezone.now() - timedelta(minutes=2))
    assert post(VERIFY, resend, http=http).status_code == 302
    ErasureRequest.objects.filter(pk=request.pk).update(code_sent_at=timezone.now() - timedelta(minutes=2))
    _assert_429_page(post(VERIFY, resend, http=http), says="Too many verification codes sent to this email address")
    assert len(mailoutbox) == 2


def test_status_lookups_are_limited_per_address(rates, post):
    rates(status_per_ip="5/h")
    lookup = {"reference": "RTBF-AAAAAA", "email": "nobody@example.org"}
    assert [post(STATUS, lookup).status_code for _ in range(5)] == [404] * 5
    _assert_429_page(post(STATUS, lookup), says="Too many status look-ups from your connection")


def test_verification_attempts_are_limited_per_address_and_a_refused_guess_is_not_checked(rates, post):
    rates(verify_per_ip="3/h", submit_per_ip="", submit_per_email="", code_mails_per_email="")
    assert post(NEW, FORM).status_code == 302
    request = ErasureRequest.objects.get()
    guess = {"reference": request.reference, "email": FORM["email"], "code": "000000"}
    assert [post(VERIFY, guess, ip="192.0.2.1").status_code for _ in range(3)] == [400] * 3  # counted and checked
    _assert_429_page(post(VERIFY, guess, ip="192.0.2.1"), says="Too many verification attempts from your connection")
    assert AuditEvent.objects.filter(action="request.verification_failed").count() == 3


# --- staff login lockout (django-axes) ------------------------------------------------------------------


def test_staff_login_is_locked_out_after_five_wrong_passwords_and_it_is_audited(settings, staff):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    staff("admin", username="admin")
    http = Client()
    login = reverse("login")
    wrong = [
        http.post(login, {"username": "admin", "password": f"guess{n}"}, REMOTE_ADDR="198.51.100.1").status_code for n in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert wrong[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, with its error
    locked = http.post(login, {"username": "admin", "password": "pass-for-tests-123"}, REMOTE_ADDR="198.51.100.1")  # even the right one now
    _assert_429_page(locked, says="Too many failed logins for this username")
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert AuditEvent.objects.filter(action="staff.login_failed").count() >= settings.AXES_FAILURE_LIMIT
    event = AuditEvent.objects.filter(action="staff.locked_out").first()  # at the lockout, and for each refused attempt after
    assert event.data["username"].startswith("hmac-sha256:") and "admin" not in str(event.data)  # hashed, not in clear

    other = Client()  # the same user from another address is not locked out
    assert other.post(login, {"username": "admin", "password": "pass-for-tests-123"}, REMOTE_ADDR="203.0.113.5").status_code == 302


# --- API clients: a quota per client -------------------------------------------------------------------


def test_each_api_client_has_its_own_quota_and_is_told_when_to_retry(api_client_key, settings):
    from service.accounts.services import api_client_set_rate_limit

    small, small_key = api_client_key(("read",))
    api_client_set_rate_limit(client=small, rate_limit="3/m")
    _, other_key = api_client_key(("read",))
    http = Client(headers={"Authorization": f"Bearer {small_key}"})
    assert [http.get("/api/v1/requests").status_code for _ in range(3)] == [200] * 3
    refused = http.get("/api/v1/requests")
    assert refused.status_code == 429 and refused["Content-Type"] == PROBLEM
    assert refused.json()["code"] == "rate_limited" and 1 <= int(refused["Retry-After"]) <= 60
    assert Client(headers={"Authorization": f"Bearer {other_key}"}).get("/api/v1/requests").status_code == 200  # the default quota


def test_the_default_api_quota_comes_from_the_settings(api_client_key, rates):
    rates(api_client="2/m")
    _, key = api_client_key(("read",))
    http = Client(headers={"Authorization": f"Bearer {key}"})
    assert [http.get("/api/v1/requests").status_code for _ in range(3)] == [200, 200, 429]


def test_a_malformed_quota_is_refused(api_client_key):
    from service.accounts.services import api_client_set_rate_limit
    from service.common.errors import ApplicationError

    client, _ = api_client_key()
    with pytest.raises(ApplicationError, match="600/m"):
        api_client_set_rate_limit(client=client, rate_limit="lots")


# --- on Redis, as in production --------------------------------------------------------------------------


@pytest.fixture
def redis_cache(settings):
    pytest.importorskip("redis")
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS, "KEY_PREFIX": f"ratelimit-test-{uuid.uuid4().hex}"}
    }
    from django.core.cache import cache

    try:
        cache.get("probe")
    except Exception as exc:  # noqa: BLE001 - turned into a clear failure
        pytest.fail(f"Redis at {REDIS} is not reachable ({exc}); bin/test starts it (bin/services)")


def test_limits_count_on_redis_across_clients(redis_cache, rates, api_client_key):
    rates(api_client="4/m")
    _, key = api_client_key(("read",))
    answers = [Client(headers={"Authorization": f"Bearer {key}"}).get("/api/v1/requests").status_code for _ in range(6)]  # a new connection each
    assert answers == [200] * 4 + [429] * 2


def test_a_redis_outage_is_503_on_the_api_and_the_maintenance_page_on_the_form(settings, api_client_key):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}}  # nothing listens on port 9
    _, key = api_client_key(("create", "trusted_identity"))
    http = Client(headers={"Authorization": f"Bearer {key}"}, raise_request_exception=False)
    response = http.post(
        "/api/v1/requests",
        {"subject_name": "Bo", "subject_email": "bo@example.com", "regulation": "gdpr", "facts": ["Bo is 5"]},
        content_type="application/json",
    )
    assert response.status_code == 503 and response["Content-Type"] == PROBLEM and response["Retry-After"]
    assert response.json()["code"] == "service_unavailable"
    page = Client(raise_request_exception=False).post(NEW, FORM)
    assert page.status_code == 503 and "Down for maintenance" in page.content.decode()
    assert ErasureRequest.objects.count() == 0  # nothing half-done
