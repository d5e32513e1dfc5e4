"""The emailed code's budget: CODE_MAX_ATTEMPTS guesses per code, CODE_MAX_GUESSES per request over
every code it is sent (a resend is a new code, not new guesses). The concurrent case runs against a
real gunicorn: tests/integration/test_verification_race.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from service.audit.models import AuditEvent
from service.common.errors import ApplicationError, Conflict
from service.requests import services
from service.requests.models import ErasureRequest
from service.requests.states import Status

pytestmark = pytest.mark.django_db
EMAIL = "al@example.com"


@pytest.fixture
def budget(settings):
    settings.FORGET = {**settings.FORGET, "CODE_MAX_ATTEMPTS": 3, "CODE_MAX_GUESSES": 5, "CODE_RESEND_SECONDS": 60}


@pytest.fixture(autouse=True)
def _mail_codes(monkeypatch, django_capture_on_commit_callbacks):
    """The codes are mailed after the commit: each submit and resend here runs its commit hooks."""

    def committing(service):
        def call(**kwargs):
            with django_capture_on_commit_callbacks(execute=True):
                return service(**kwargs)

        return call

    for name in ("request_submit_web", "request_resend_code"):
        monkeypatch.setattr(services, name, committing(getattr(services, name)))


def _submit() -> ErasureRequest:
    return services.request_submit_web(name="Al", email=EMAIL, regulation="gdpr", facts=["Al is 40"], evidence_prompts=[], attested=True)


def _wrong(request: ErasureRequest, code: str) -> str:
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(ApplicationError) as refused:
        services.request_verify(reference=request.reference, email=EMAIL, code=wrong)
    return refused.value.code


def _allow_resend(request: ErasureRequest) -> None:
    ErasureRequest.objects.filter(pk=request.pk).update(code_sent_at=timezone.now() - timedelta(minutes=2))


def test_a_resend_gives_a_new_code_but_not_new_guesses_beyond_the_request_total(budget, mailoutbox_codes):
    request = _submit()
    assert [_wrong(request, mailoutbox_codes()[-1]) for _ in range(3)] == ["code_invalid"] * 3
    assert _wrong(request, mailoutbox_codes()[-1]) == "code_attempts_exhausted"  # refused unchecked

    _allow_resend(request)
    services.request_resend_code(reference=request.reference, email=EMAIL)
    request.refresh_from_db()
    assert (request.code_attempts_left, request.code_guesses_used) == (2, 3)  # 5 in total, 3 spent
    assert [_wrong(request, mailoutbox_codes()[-1]) for _ in range(2)] == ["code_invalid"] * 2

    _allow_resend(request)
    with pytest.raises(Conflict) as refused:
        services.request_resend_code(reference=request.reference, email=EMAIL)
    assert refused.value.code == "code_guesses_exhausted" and "File a new request" in refused.value.detail
    with pytest.raises(Conflict):  # the last code sent is refused too, even the right one
        services.request_verify(reference=request.reference, email=EMAIL, code=mailoutbox_codes()[-1])
    assert AuditEvent.objects.filter(action="request.verification_failed", target_id=request.reference).count() == 5
    assert AuditEvent.objects.filter(action="request.verification_sent", target_id=request.reference).count() == 2
    request.refresh_from_db()
    assert request.status == Status.SUBMITTED


def test_the_right_code_counts_as_a_guess_and_verifies(budget, mailoutbox_codes):
    request = _submit()
    _wrong(request, mailoutbox_codes()[-1])
    verified = services.request_verify(reference=request.reference, email=EMAIL, code=mailoutbox_codes()[-1])
    assert verified.status == Status.VERIFIED
    assert (verified.code_guesses_used, verified.code_attempts_left, verified.code_hash) == (2, 0, "")


def test_the_right_code_after_the_last_attempt_is_refused(budget, mailoutbox_codes):
    request = _submit()
    for _ in range(3):
        _wrong(request, mailoutbox_codes()[-1])
    with pytest.raises(ApplicationError) as refused:
        services.request_verify(reference=request.reference, email=EMAIL, code=mailoutbox_codes()[-1])
    assert refused.value.code == "code_attempts_exhausted"
    assert ErasureRequest.objects.get(pk=request.pk).status == Status.SUBMITTED


def test_a_resend_too_soon_says_when_to_retry(budget):
    request = _submit()
    with pytest.raises(ApplicationError) as refused:
        services.request_resend_code(reference=request.reference, email=EMAIL)
    assert refused.value.status == 429 and 55 <= refused.value.retry_after <= 60
