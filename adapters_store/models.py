"""The adapter registry: unit versions, their activation history, the generation counter that the
inference gateway polls, and the gateways' confirmations of what they loaded.

Writes go through services.py only. Activation events are append-only (refused here like audit
rows), so "which units were live at time T" is a query over them that nothing can rewrite.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from service.audit.models import AppendOnlyError

from .states import EventAction, VersionStatus


class AdapterVersion(models.Model):
    """One registered unit: an adapter and its detector, sealed by their digests."""

    unit_id = models.CharField(max_length=64, unique=True, help_text="The unit's id, as in its manifest.json.")
    request = models.ForeignKey(
        "requests.ErasureRequest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="adapter_versions",
        help_text="The erasure request it serves; empty for units registered from the command line.",
    )
    version = models.PositiveIntegerField(help_text="1, 2, ... per request (a retrained unit is the next version).")
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE, db_index=True)

    base_fingerprint = models.CharField(max_length=128, blank=True, help_text="The base model the adapter was trained against.")
    adapter_sha256 = models.CharField(max_length=64, help_text="SHA-256 of adapter/adapter_model.safetensors.")
    detector_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 over the detector's files (paths and digests); empty without a detector.")
    manifest_sha256 = models.CharField(max_length=64, help_text="SHA-256 of manifest.json, which holds the digest of every file.")
    forget_set_hash = models.CharField(max_length=64, blank=True)
    storage_uri = models.CharField(max_length=1024, help_text="Where the unit is stored (file://... or s3://...).")

    training_config = models.JSONField(default=dict, blank=True, help_text="The manifest's config: unlearning and detector settings.")
    library_versions = models.JSONField(default=dict, blank=True)
    certificate_metrics = models.JSONField(default=dict, blank=True, help_text="The evaluation behind the certificate.")
    certificate_passed = models.BooleanField(default=False)
    orthogonality = models.JSONField(
        default=dict,
        blank=True,
        help_text="The manifest's orthogonality record: the penalty against the units it was trained against and the room they left it "
        "(workers/engine/orthogonal_room.py). Empty for units trained before the record existed.",
    )
    certificate_override = models.JSONField(
        default=dict,
        blank=True,
        help_text="A second approver's override of a certificate that did not pass ({by, reason, at}); empty: none.",
    )

    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "version"], condition=models.Q(request__isnull=False), name="unique_version_per_request"),
            # At most one live unit per request: activating a new version supersedes the old one.
            models.UniqueConstraint(fields=["request"], condition=models.Q(status="active"), name="one_active_version_per_request"),
        ]

    def __str__(self) -> str:
        return self.unit_id

    @property
    def status_label(self) -> str:
        return VersionStatus(self.status).label


class ActivationEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("activation events are append-only: update is refused")

    def delete(self):
        raise AppendOnlyError("activation events are append-only: delete is refused")


class ActivationEvent(models.Model):
    """One change of what is live. Append-only: the history is the record."""

    version = models.ForeignKey(AdapterVersion, on_delete=models.PROTECT, related_name="events")
    action = models.CharField(max_length=16, choices=EventAction.choices)
    reason = models.TextField(blank=True)
    actor_label = models.CharField(max_length=150)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    generation = models.PositiveBigIntegerField(db_index=True, help_text="The registry generation this change produced; orders the history.")

    objects = ActivationEventQuerySet.as_manager()

    class Meta:
        ordering = ["generation", "id"]
        indexes = [models.Index(fields=["version", "generation"], name="adapters_event_version_gen")]

    def __str__(self) -> str:
        return f"{self.version_id} {self.action} at {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("activation events are append-only: update is refused")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("activation events are append-only: delete is refused")


class RegistryGeneration(models.Model):
    """A single row (pk=1): bumped in the transaction of every change of the live set.

    The gateway polls this one row every few seconds; a new value means "reload the active set".
    """

    value = models.PositiveBigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"generation {self.value}"


class GatewayReport(models.Model):
    """A gateway's confirmation of the generation and the units it has loaded and serves."""

    gateway_id = models.CharField(max_length=128)
    generation = models.PositiveBigIntegerField()
    unit_ids = models.JSONField(default=list)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["gateway_id", "-at"], name="adapters_report_gateway_at")]

    def __str__(self) -> str:
        return f"{self.gateway_id} generation {self.generation} at {self.at:%Y-%m-%d %H:%M:%S}"
