"""The data subject's pages, driven through Django's test client against PostgreSQL.

Emails go out after the transaction commits; `submit` and `post` run the commit callbacks so the
code email lands in mailoutbox as it would in production.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from service.accounts.roles import actor_for_user
from service.requests import services
from service.requests.forms import MAX_FACT_CHARS, MAX_FACTS
from service.requests.models import ErasureRequest
from service.requests.states import Status

pytestmark = pytest.mark.django_db

NEW, VERIFY, STATUS = reverse("request-new"), reverse("request-verify"), reverse("request-status")

GOOD_FORM = {
    "name": "Jane Example",
    "email": "jane@example.org",
    "regulation": "gdpr",
    "facts": "Jane Example lives in Leeds\nJane Example's phone is 0113 496 0000\n",
    "evidence_prompts": "Where does Jane Example live?",
    "attested": "on",
}


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    def do(url, data, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data, **kwargs)

    return do


@pytest.fixture
def submit(post):
    """Files GOOD_FORM (with overrides) and returns the created request."""

    def do(**overrides):
        response = post(NEW, {**GOOD_FORM, **overrides})
        assert response.status_code == 302, response.content.decode()[:2000]
        return ErasureRequest.objects.order_by("-received_at").first()

    return do


def text(response) -> str:
    """The page's visible text, tags stripped and whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def field_errors(response, field: str) -> str:
    """The text of the error list tied to one field (id_<field>_error)."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', response.content.decode(), re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split()) if match else ""


# --- start page and the form ---------------------------------------------------------------------


def test_start_page_links_to_the_three_ways_in(client):
    page = client.get("/").content.decode()
    for name in ("request-new", "request-status", "login"):
        assert f'href="{reverse(name)}"' in page


def test_form_labels_are_tied_to_inputs_and_help_texts_described(client):
    page = client.get(NEW).content.decode()
    for field in ("name", "email", "facts", "evidence_prompts", "attested"):
        assert f'<label for="id_{field}">' in page
    assert re.search(r'<textarea[^>]*aria-describedby="id_facts_helptext"', page)
    assert 'name="csrfmiddlewaretoken"' in page
    # Each law's radio button says what deadline it gives.
    assert "45 days" in page and "one calendar month" in page


def test_empty_form_shows_an_error_next_to_each_required_field(post):
    response = post(NEW, {})
    assert response.status_code == 400
    assert field_errors(response, "name") == "Enter your full name."
    assert field_errors(response, "email") == "Enter your email address."
    assert field_errors(response, "regulation") == "Choose the law that applies to you."
    assert "at least one fact" in field_errors(response, "facts")
    assert "Confirm that the data is about you" in field_errors(response, "attested")
    assert field_errors(response, "evidence_prompts") == ""  # optional
    page = response.content.decode()
    assert re.search(r'<input[^>]*name="name"[^>]*aria-invalid="true"', page)
    assert re.search(r'<input[^>]*name="email"[^>]*aria-describedby="id_email_helptext id_email_error"', page)
    assert "There is a problem" in page
    assert not ErasureRequest.objects.exists()


def test_bad_values_are_refused_with_the_reason_and_the_input_kept(post):
    facts = "\n".join(f"fact number {n}" for n in range(MAX_FACTS + 1))
    response = post(NEW, {**GOOD_FORM, "email": "not-an-email", "regulation": "klingon", "facts": facts})
    assert response.status_code == 400
    assert "Enter an email address like name@example.com." in field_errors(response, "email")
    assert "Choose one of the laws listed." in field_errors(response, "regulation")
    assert f"at most {MAX_FACTS} facts" in field_errors(response, "facts")
    assert 'value="Jane Example"' in response.content.decode()  # what was typed stays
    assert not ErasureRequest.objects.exists()


def test_blank_lines_do_not_count_as_facts_and_long_lines_are_named(post):
    response = post(NEW, {**GOOD_FORM, "facts": "\n   \n\n"})
    assert "at least one fact" in field_errors(response, "facts")
    response = post(NEW, {**GOOD_FORM, "facts": "short\n" + "x" * (MAX_FACT_CHARS + 1)})
    assert f"at most {MAX_FACT_CHARS} characters; line(s) 2" in field_errors(response, "facts")


def test_submission_creates_a_submitted_request_and_emails_a_code(client, post, mailoutbox, mailoutbox_codes):
    response = post(NEW, GOOD_FORM)
    assert response.status_code == 302 and response["Location"] == VERIFY  # post/redirect/get
    request = ErasureRequest.objects.get()
    assert request.status == Status.SUBMITTED
    assert request.facts == ["Jane Example lives in Leeds", "Jane Example's phone is 0113 496 0000"]
    assert request.evidence_prompts == ["Where does Jane Example live?"]
    assert request.subject == {"name": "Jane Example", "email": "jane@example.org"}
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["jane@example.org"]
    assert len(mailoutbox_codes()) == 1

    page = client.get(VERIFY)
    assert request.reference in text(page)
    assert "Check your email" in text(page)
    # Reference and email are filled in from the session; only the code is left to type.
    assert f'value="{request.reference}"' in page.content.decode()
    assert 'value="jane@example.org"' in page.content.decode()
    assert "jane@example.org" not in str(dict(client.session))  # the email is kept encrypted


# --- verification --------------------------------------------------------------------------------


def verify_data(request, code, email="jane@example.org"):
    return {"reference": request.reference, "email": email, "code": code, "action": "verify"}


def test_right_code_verifies_and_shows_the_status_page(client, submit, post, mailoutbox_codes):
    request = submit()
    response = post(VERIFY, verify_data(request, mailoutbox_codes()[-1]))
    assert response.status_code == 302 and response["Location"] == STATUS
    request.refresh_from_db()
    assert request.status == Status.VERIFIED
    page = text(client.get(STATUS))
    assert "your email address is confirmed" in page
    assert request.reference in page and "Verified (awaiting review)" in page


def test_reference_can_be_typed_without_prefix_and_in_lower_case(submit, post, mailoutbox_codes):
    request = submit()
    response = post(VERIFY, verify_data(request, mailoutbox_codes()[-1]) | {"reference": request.reference[5:].lower()})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == Status.VERIFIED


def test_code_typed_with_spaces_or_full_width_digits_is_understood(submit, post, mailoutbox_codes):
    request = submit()
    code = mailoutbox_codes()[-1]
    full_width = " ".join(chr(ord("０") + int(d)) for d in code)  # e.g. "１ ２ ３ ..."
    assert post(VERIFY, verify_data(request, full_width)).status_code == 302
    request.refresh_from_db()
    assert request.status == Status.VERIFIED


def test_wrong_code_counts_down_the_attempts(submit, post, mailoutbox_codes):
    request = submit()
    right = mailoutbox_codes()[-1]
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    response = post(VERIFY, verify_data(request, wrong))
    assert response.status_code == 400
    assert field_errors(response, "code") == "Wrong code. 2 attempt(s) left."
    assert f'value="{wrong}"' not in response.content.decode()
    assert "1 attempt(s) left" in field_errors(post(VERIFY, verify_data(request, wrong)), "code")
    last = field_errors(post(VERIFY, verify_data(request, wrong)), "code")
    assert "No attempts left" in last and "Send a new code" in last
    # Even the right code is refused now.
    response = post(VERIFY, verify_data(request, right))
    assert "No attempts left" in field_errors(response, "code")
    request.refresh_from_db()
    assert request.status == Status.SUBMITTED


def test_malformed_code_is_refused_without_using_an_attempt(submit, post):
    request = submit()
    response = post(VERIFY, verify_data(request, "12ab"))
    assert field_errors(response, "code") == "The code has six digits, for example 042917."
    assert field_errors(post(VERIFY, verify_data(request, "")), "code") == "Enter the six-digit code from the email."
    request.refresh_from_db()
    assert request.code_attempts_left == 3


def test_expired_code_is_refused_and_a_new_one_works(submit, post, mailoutbox_codes, settings):
    request = submit()
    code = mailoutbox_codes()[-1]
    ErasureRequest.objects.filter(pk=request.pk).update(
        code_expires_at=timezone.now() - timedelta(seconds=1), code_sent_at=timezone.now() - timedelta(minutes=11)
    )
    response = post(VERIFY, verify_data(request, code))
    assert response.status_code == 400
    assert "This code has expired" in field_errors(response, "code")

    response = post(VERIFY, {**verify_data(request, ""), "action": "resend"})
    assert response.status_code == 302 and response["Location"] == VERIFY
    assert len(mailoutbox_codes()) == 2
    response = post(VERIFY, verify_data(request, mailoutbox_codes()[-1]))
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == Status.VERIFIED


def test_resend_too_soon_shows_the_rate_limit_message(client, submit, post, mailoutbox):
    request = submit()
    response = post(VERIFY, {"reference": request.reference, "email": "jane@example.org", "code": "", "action": "resend"})
    assert response.status_code == 429
    assert "please wait before asking again" in text(response)
    assert len(mailoutbox) == 1


def test_verify_with_the_wrong_email_says_not_found(submit, post, mailoutbox_codes):
    request = submit()
    response = post(VERIFY, verify_data(request, mailoutbox_codes()[-1], email="mallory@example.org"))
    assert response.status_code == 404
    assert "We found no request with this reference and email address" in text(response)
    request.refresh_from_db()
    assert request.status == Status.SUBMITTED and request.code_attempts_left == 3


def test_verifying_twice_leads_to_the_status_page(submit, post, mailoutbox_codes):
    request = submit()
    post(VERIFY, verify_data(request, mailoutbox_codes()[-1]))
    response = post(VERIFY, verify_data(request, mailoutbox_codes()[-1]), follow=True)
    assert "does not need a code any more" in text(response)
    assert "Verified (awaiting review)" in text(response)


# --- status page ---------------------------------------------------------------------------------


def look_up(post, reference, email="jane@example.org"):
    return post(STATUS, {"reference": reference, "email": email})


def test_status_page_shows_only_the_subjects_own_request(client, submit, post):
    mine = submit()
    other = submit(name="Other Person", email="other@example.org", regulation="ccpa")
    client.cookies.clear()

    response = look_up(post, mine.reference)
    assert response.status_code == 302 and response["Location"] == STATUS  # nothing personal in the URL
    page = text(client.get(STATUS))
    assert mine.reference in page and other.reference not in page
    assert "Other Person" not in page and "other@example.org" not in page
    assert "GDPR (EU/UK)" in page and "days left" in page
    assert mine.deadline_at.strftime("%-d %B %Y") in page
    # A refresh shows it again (kept in the session)...
    assert mine.reference in text(client.get(STATUS))
    # ...until the subject asks to check another request.
    post(STATUS, {"action": "forget"})
    assert mine.reference not in text(client.get(STATUS))


@pytest.mark.parametrize("case", ["wrong email", "other's reference", "unknown reference"])
def test_wrong_pairs_get_the_same_not_found_answer(client, submit, post, case):
    mine = submit()
    other = submit(email="other@example.org")
    reference, email = {
        "wrong email": (mine.reference, "mallory@example.org"),
        "other's reference": (other.reference, "jane@example.org"),
        "unknown reference": ("RTBF-ZZZZZZ", "jane@example.org"),
    }[case]
    client.cookies.clear()
    response = look_up(post, reference, email)
    assert response.status_code == 404
    assert "We found no request with this reference and email address. Check both and try again." in text(response)
    assert mine.reference not in text(client.get(STATUS)) and other.reference not in text(client.get(STATUS))


def test_step_indicator_and_outcome_of_a_rejected_request(client, submit, post, staff, mailoutbox_codes):
    request = submit()
    post(VERIFY, verify_data(request, mailoutbox_codes()[-1]))
    services.request_reject(actor=actor_for_user(staff("reviewer")), request_id=request.pk, reason="The data is not about you.")
    page = client.get(STATUS).content.decode()
    assert re.search(r'<li class="done"[^>]*>\s*Received', page)
    assert re.search(r'<li class="done"[^>]*>\s*Email confirmed', page)
    assert re.search(r'<li class="stopped" aria-current="step">\s*Rejected', page)
    assert "Approved" not in re.search(r'<ol class="steps".*?</ol>', page, re.S).group(0)
    assert "Reason: The data is not about you." in text(client.get(STATUS))
    assert "days left" not in text(client.get(STATUS))  # the deadline no longer runs


def test_active_request_shows_the_effective_erasure_time(client, submit):
    request = submit()
    effective = timezone.now().replace(microsecond=0)
    ErasureRequest.objects.filter(pk=request.pk).update(status=Status.ACTIVE, verified_at=effective, effective_at=effective)
    page = text(client.get(STATUS))
    assert "Done." in page and "Effective erasure" in page
    assert effective.strftime("%-d %B %Y, %H:%M") in page


def test_submitted_request_points_to_verification(client, submit):
    submit()
    page = client.get(STATUS).content.decode()
    assert re.search(r'<li class="current" aria-current="step">\s*Received', page)
    assert f'href="{VERIFY}"' in page


# --- robustness ----------------------------------------------------------------------------------


GARBAGE = [
    {},
    {"reference": "x" * 10_000, "email": "@" * 300},
    {"reference": "RTBF-\x00\x00\x00", "email": "a\x00@example.org", "code": "\x00" * 6},
    {"reference": "'; DROP TABLE requests_erasurerequest; --", "email": "jane@example.org", "code": "999999"},
    {"reference": "RTBF-ABCDEF", "email": "jane@example.org", "code": "１２３４５６"},  # full-width digits
    {"name": "x" * 300, "email": "a@b.c", "facts": "\x00", "regulation": ["gdpr", "ccpa"], "attested": "maybe"},
    {"action": "resend"},
    {"action": "forget"},
]


@pytest.mark.parametrize("data", GARBAGE)
@pytest.mark.parametrize("url", [NEW, VERIFY, STATUS])
def test_garbage_input_never_causes_a_server_error(client, url, data):
    response = client.post(url, data)
    assert response.status_code < 500
    response = client.get(url, {"reference": "\x00", "email": "x"})
    assert response.status_code < 500


def test_raw_bytes_and_methods_other_than_get_and_post(client):
    response = client.generic("POST", NEW, b"\xff\xfe\x00name=%FF%00", content_type="application/x-www-form-urlencoded")
    assert response.status_code < 500
    assert client.put(STATUS, {}).status_code == 405
    assert client.delete(VERIFY).status_code == 405


def test_forms_need_the_csrf_token(submit):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post(NEW, GOOD_FORM)
    assert response.status_code == 403
