"""Serializer helpers shared by the API modules."""

from __future__ import annotations

import copy
import re

from drf_spectacular.drainage import set_override
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

# Arguments a field only reads: shared between copies. DRF shares `validators` and `regex` already;
# `choices` is only read into the field's own dict (ChoiceField._set_choices).
_SHARED_ARGUMENTS = ("validators", "regex", "choices")
_IMMUTABLE = (str, bytes, int, float, bool, type(None), type)


def _clone(field: serializers.Field) -> serializers.Field:
    """A fresh copy of a declared field, as DRF's Field.__deepcopy__ makes it (the class called with
    the arguments it was declared with), without deep-copying the arguments that cannot change: on
    the intake request the deep copies were over half of the serializers' time under cProfile. Nested
    serializers, child fields and any other mutable argument are still deep-copied."""
    if isinstance(field, serializers.BaseSerializer):
        return copy.deepcopy(field)
    args = [arg if isinstance(arg, _IMMUTABLE) else copy.deepcopy(arg) for arg in field._args]
    kwargs = {
        key: value
        if key in _SHARED_ARGUMENTS or isinstance(value, _IMMUTABLE) or callable(value) and not isinstance(value, serializers.Field)
        else copy.deepcopy(value)
        for key, value in field._kwargs.items()
    }
    return field.__class__(*args, **kwargs)


class Serializer(serializers.Serializer):
    """DRF's Serializer with cheaper per-instance field copies (see _clone); the same fields result."""

    def get_fields(self):
        return {name: _clone(field) for name, field in self._declared_fields.items()}


class StrictSerializer(Serializer):
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
    """A list filter on a status: one or several, comma-separated without spaces (`active,candidate`),
    each one of `statuses`. Exactly what its OpenAPI pattern says: no empty parts, no spaces."""

    def __init__(self, *, statuses: list[str], **kwargs):
        self.statuses = list(statuses)
        super().__init__(**kwargs)
        one = "(?:" + "|".join(re.escape(status) for status in self.statuses) + ")"
        self.pattern = re.compile(f"{one}(?:,{one})*")
        set_override(self, "field", {"type": "string", "pattern": f"^{self.pattern.pattern}$", "example": ",".join(self.statuses[:2])})

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not self.pattern.fullmatch(value):
            unknown = [part for part in value.split(",") if part and part not in self.statuses]
            problem = f"Unknown status {', '.join(unknown)}" if unknown else "Expected one status or several, comma-separated without spaces or empty parts"
            raise serializers.ValidationError(f"{problem}; valid: {', '.join(self.statuses)}.", code="invalid_choice")
        return value
