"""API clients: products that integrate the REST API. Their keys are stored hashed."""

from __future__ import annotations

from django.db import models


class ApiClient(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # The key is "fk_<prefix>_<secret>"; the prefix finds the row, the SHA-256 of the whole key checks it.
    key_prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    # This client's quota ("600/m", "10000/h"; service.common.ratelimits); empty: FORGET_API_CLIENT_RATE.
    rate_limit = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # The event types some active webhook endpoint of this client is subscribed to, kept by
    # service.webhooks.services with each endpoint change. A superset is harmless (the endpoints are
    # then read to find which); a missing type would lose deliveries, so it is only ever rewritten
    # under the client's row lock. Authentication loads it with the client, which spares the intake
    # the endpoints query when the client has none (docs/bench-intake.md).
    webhook_events = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def is_authenticated(self) -> bool:  # lets DRF's IsAuthenticated accept a client
        return True
