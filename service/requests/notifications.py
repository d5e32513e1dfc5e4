"""Emails to subjects and reviewers. Sent after the transaction commits, never before."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse


def verify_url(reference: str) -> str:
    """The verification page on the public site, with the reference filled in."""
    return settings.FORGET_PUBLIC_URL.rstrip("/") + reverse("request-verify") + "?" + urlencode({"reference": reference})


def _send_after_commit(subject: str, body: str, recipients: list[str]) -> None:
    recipients = [r for r in recipients if r]
    if recipients:
        transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients))


def send_verification_code(*, email: str, reference: str, code: str, ttl_minutes: int) -> None:
    _send_after_commit(
        f"Your verification code for request {reference}",
        f"Your verification code is {code}\n\n"
        f"Enter it on the verification page within {ttl_minutes} minutes to confirm your request {reference}:\n"
        f"{verify_url(reference)}\n\n"
        "If you did not ask for your data to be forgotten, ignore this email.",
        [email],
    )


def send_rejection(*, email: str, reference: str, reason: str) -> None:
    _send_after_commit(
        f"Your request {reference} was rejected",
        f"We could not carry out your request {reference}.\n\nReason: {reason}\n\nYou may submit a new request or contact your data protection authority.",
        [email],
    )


def send_cancellation(*, email: str, reference: str, reason: str) -> None:
    _send_after_commit(f"Your request {reference} was cancelled", f"Your request {reference} was cancelled.\n\nReason: {reason or 'not given'}", [email])


def send_erasure_confirmed(*, email: str, reference: str, effective_at) -> None:
    _send_after_commit(
        f"Your request {reference} is complete",
        f"Since {effective_at:%Y-%m-%d %H:%M} UTC the model no longer reveals the data named in request {reference}.",
        [email],
    )


def send_deadline_at_risk(*, reference: str, position: int, projected_finish, deadline_at) -> None:
    """The GPU queue's forecast says the request's unit may be trained too late (unlearning scheduling)."""
    reviewers = list(User.objects.filter(groups__name="reviewer", is_active=True).exclude(email="").values_list("email", flat=True))
    where = "training now" if position == 0 else f"number {position} in the GPU queue"
    _send_after_commit(
        f"Deadline at risk: {reference} may not be done in time",
        f"Request {reference} is {where}. At the measured training time it is expected to finish at "
        f"{projected_finish:%Y-%m-%d %H:%M} UTC; its legal deadline is {deadline_at:%Y-%m-%d %H:%M} UTC.\n\n"
        "Add GPU workers, or extend the deadline with a reason if the regulation allows it.",
        reviewers,
    )


def send_deadline_reminder(*, reference: str, days_left: int) -> None:
    reviewers = list(User.objects.filter(groups__name="reviewer", is_active=True).exclude(email="").values_list("email", flat=True))
    _send_after_commit(
        f"Deadline reminder: {reference} has {days_left} day(s) left",
        f"Request {reference} is due in {days_left} day(s). Please review it.",
        reviewers,
    )
