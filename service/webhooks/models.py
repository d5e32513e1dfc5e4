"""Webhook endpoints of API clients, the deliveries of status events to them, and every attempt.

A delivery is one message (Standard Webhooks: one `webhook-id`) to one endpoint; it is created in
the transaction of the status change it announces (an outbox: committed with the change or not at
all) and sent afterwards by a Celery task, retried on a schedule of at least 24 hours. Each HTTP
attempt is a row with its status code and latency.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from service.common.crypto import EncryptedJSONField


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_client = models.ForeignKey("accounts.ApiClient", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000, help_text="Where events are POSTed: an http(s) URL.")
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="The event types sent to this endpoint (request.active, ...).")
    # The signing secret ("whsec_" + base64): encrypted at rest, shown to the client once.
    secret = EncryptedJSONField(help_text="{'secret': 'whsec_...'}")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["api_client", "is_active"])]

    def __str__(self) -> str:
        return f"{self.url} ({self.api_client_id})"

    @property
    def signing_secret(self) -> str:
        return self.secret["secret"]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending (will be attempted)"
    DELIVERED = "delivered", "Delivered (2xx)"
    FAILED = "failed", "Failed (retries exhausted)"


class WebhookDelivery(models.Model):
    id = models.CharField(primary_key=True, max_length=40, help_text="The message id sent as webhook-id (msg_...); the same on every retry.")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=40, db_index=True)
    request_id = models.UUIDField(null=True, blank=True, db_index=True, help_text="The erasure request the event is about.")
    payload = models.JSONField(help_text="The body sent: ids, reference, status, times and links; no personal data.")
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True)
    attempt_count = models.PositiveIntegerField(default=0)
    retries_used = models.PositiveIntegerField(default=0, help_text="Retries of the current schedule (a replay starts it again).")
    replay_pending = models.BooleanField(default=False, help_text="The next attempt is a replay the client asked for.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.id} {self.event_type} -> {self.endpoint_id}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The HTTP status answered; empty when no answer came.")
    latency_ms = models.PositiveIntegerField(help_text="From connecting to the answer (or the failure).")
    error = models.CharField(max_length=300, blank=True, help_text="Why the attempt failed (timeout, connection refused, status).")
    replay = models.BooleanField(default=False, help_text="Sent because the client asked for a replay.")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="unique_attempt_number_per_delivery")]
