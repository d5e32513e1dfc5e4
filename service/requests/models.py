"""The erasure request. Personal data (name, email, facts, evidence) is encrypted at rest."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from service.common.crypto import EncryptedJSONField

from .deadlines import Regulation, days_left
from .states import OPEN, Status


class Channel(models.TextChoices):
    WEB = "web", "Web form"
    API = "api", "REST API"


class ErasureRequest(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reference = models.CharField(max_length=16, unique=True, help_text="Public code the subject quotes, e.g. RTBF-7K3M9Q.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUBMITTED, db_index=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    api_client = models.ForeignKey("accounts.ApiClient", null=True, blank=True, on_delete=models.PROTECT, related_name="requests")
    idempotency_key = models.CharField(max_length=128, blank=True)
    idempotency_body_hash = models.CharField(max_length=64, blank=True)

    # The subject and the data to forget: encrypted; the email's keyed hash allows lookups.
    subject = EncryptedJSONField(help_text="{'name': ..., 'email': ...}")
    subject_email_hash = models.CharField(max_length=80, db_index=True)
    facts = EncryptedJSONField(default=list, help_text="Personal facts to be forgotten (strings).")
    evidence_prompts = EncryptedJSONField(default=list, help_text="Prompts that made the model reveal the data.")
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the submitted content (the audit log keeps this, not the text).")
    attested = models.BooleanField(default=False)

    regulation = models.CharField(max_length=8, choices=Regulation.choices)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    deadline_at = models.DateTimeField(db_index=True)
    deadline_extended = models.BooleanField(default=False)
    extension_reason = models.TextField(blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)

    # Email verification: the code is stored hashed.
    code_hash = models.CharField(max_length=64, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    code_attempts_left = models.PositiveSmallIntegerField(default=0)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    # Guesses checked against any code of this request: a resend gives a new code, never new
    # guesses beyond FORGET['CODE_MAX_GUESSES'] in total (services.request_verify).
    code_guesses_used = models.PositiveSmallIntegerField(default=0)

    verified_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decision_reason = models.TextField(blank=True, help_text="Reason for a rejection or cancellation.")
    failure_reason = models.TextField(blank=True)
    effective_at = models.DateTimeField(null=True, blank=True, help_text="When the gateway confirmed the unit live: the effective erasure time.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deadline_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["api_client", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="unique_idempotency_key_per_client",
            )
        ]
        indexes = [models.Index(fields=["status", "deadline_at"])]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def days_left(self, now=None) -> int | None:
        return days_left(self.deadline_at, now or timezone.now()) if self.is_open else None

    @property
    def is_overdue(self) -> bool:
        left = self.days_left()
        return left is not None and left < 0

    @property
    def status_label(self) -> str:
        return Status(self.status).label
