"""The append-only, hash-chained audit log.

Rows can be inserted and read, never updated or deleted: the model refuses it here, and a database
trigger refuses it underneath (see migrations/0002_append_only_triggers.py).
"""

from __future__ import annotations

from django.db import models


class AppendOnlyError(Exception):
    """An attempt to change or delete an audit row."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events are append-only: update is refused")

    def delete(self):
        raise AppendOnlyError("audit events are append-only: delete is refused")

    # bulk_update goes through update(); bulk_create would skip the chain, so refuse it too.
    def bulk_create(self, *args, **kwargs):
        raise AppendOnlyError("audit events are written one by one through audit_record()")


class AuditEvent(models.Model):
    seq = models.BigIntegerField(unique=True, help_text="Position in the chain, from 1, without gaps.")
    created_at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=20)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    data = models.JSONField(default=dict, help_text="Hashes instead of raw personal data.")
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["target_type", "target_id", "seq"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only: update is refused")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are append-only: delete is refused")

    @property
    def description(self) -> str:
        from .events import describe

        # target and actor win over data keys of the same name (which would otherwise be a TypeError).
        # The templates name the kind of target themselves ("Request {target} approved"): the id alone.
        return describe(self.action, **{**(self.data or {}), "target": self.target_id, "actor": self.actor_label})
