"""Serializer helpers shared by the API modules."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail


class StrictSerializer(serializers.Serializer):
    """Refuses unknown fields instead of silently ignoring them (a typo must not lose data)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        errors = {name: [ErrorDetail("Unknown field.", code="unknown_field")] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # All problems in one answer: the misspelt field and the (then missing) field it was meant to be.
            raise serializers.ValidationError({**exc.detail, **errors}) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField turns 42 or 4.2 into "42"; a wrong type must be refused."""

    default_error_messages = {"invalid": "Expected a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StatusListField(StrictCharField):
    """A list filter on a status: one or several, comma-separated (`active,candidate`), each one of
    `statuses`; the value is them joined by commas without spaces (empty parts dropped)."""

    def __init__(self, *, statuses: list[str], **kwargs):
        self.statuses = list(statuses)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        wanted = [part.strip() for part in super().to_internal_value(data).split(",") if part.strip()]
        unknown = [part for part in wanted if part not in self.statuses]
        if unknown:
            raise serializers.ValidationError(f"Unknown status {', '.join(unknown)}; valid: {', '.join(self.statuses)}.", code="invalid_choice")
        return ",".join(wanted)
