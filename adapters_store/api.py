"""REST API of the adapter registry (mounted at /api/v1/registry/).

Staff only, with their session login: reviewers, auditors and admins read; reviewers and admins
activate, deactivate, revoke and roll back. API clients (products) have no access: the registry is
the operator's. One class per operation; each parses, calls one service or selector, and renders
(the changes through service.accounts.action_api).
Errors are problem+json (service.common.problems).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from service.accounts.action_api import ActionApi
from service.accounts.roles import Actor, Capability, actor_for_request
from service.common.errors import ApplicationError
from service.common.pagination import PageNumberPagination
from service.common.reasons import MAX_REASON
from service.common.schema import problem_responses
from service.common.serializers import StatusListField, StrictCharField, StrictSerializer

from . import selectors, services
from .models import AdapterVersion
from .states import EventAction, VersionStatus, can_transition

TAG = "registry"

_READ_NOTE = "Staff only (session login): reviewers, auditors and admins. API clients are refused with 403."
_WRITE_NOTE = (
    "Reviewers and admins (session login; writes need the `X-CSRFToken` header). Auditors and API clients "
    "are refused with 403. Every change bumps the registry generation, which the gateways poll."
)


def _refuse_api_clients(actor: Actor) -> None:
    """The registry is staff business; an API client's scopes do not reach it."""
    actor.require(Capability.READ_ALL_REQUESTS)


class EventSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=EventAction.choices)
    reason = serializers.CharField()
    actor = serializers.CharField(source="actor_label")
    at = serializers.DateTimeField()
    generation = serializers.IntegerField(help_text="The registry generation this change produced.")


class UnitSerializer(serializers.Serializer):
    unit_id = serializers.CharField()
    version = serializers.IntegerField(help_text="1, 2, ... per request.")
    status = serializers.ChoiceField(choices=VersionStatus.choices)
    status_label = serializers.CharField()
    request = serializers.SerializerMethodField()
    base_fingerprint = serializers.CharField()
    adapter_sha256 = serializers.CharField(help_text="SHA-256 of adapter/adapter_model.safetensors.")
    detector_sha256 = serializers.CharField(help_text="SHA-256 over the detector files' paths and digests; empty without a detector.")
    manifest_sha256 = serializers.CharField(help_text="SHA-256 of manifest.json (which lists every file's digest).")
    forget_set_hash = serializers.CharField()
    storage_uri = serializers.CharField()
    training_config = serializers.JSONField()
    library_versions = serializers.JSONField()
    certificate = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    links = serializers.SerializerMethodField()

    @extend_schema_field({"type": "object", "nullable": True, "properties": {"id": {"type": "string", "format": "uuid"}, "reference": {"type": "string"}}})
    def get_request(self, version: AdapterVersion) -> dict | None:
        if version.request_id is None:
            return None
        return {"id": str(version.request_id), "reference": version.request.reference}

    @extend_schema_field({"type": "object", "properties": {"passed": {"type": "boolean"}, "metrics": {"type": "object"}}})
    def get_certificate(self, version: AdapterVersion) -> dict:
        return {"passed": version.certificate_passed, "metrics": version.certificate_metrics}

    @extend_schema_field(
        {
            "type": "object",
            "properties": {name: {"type": "string", "format": "uri"} for name in ("self", "activate", "deactivate", "revoke")},
            "required": ["self"],
        }
    )
    def get_links(self, version: AdapterVersion) -> dict[str, str]:
        request = self.context["request"]
        actor: Actor = self.context["actor"]
        base = request.build_absolute_uri(reverse("api-registry-unit", kwargs={"unit_id": version.unit_id}))
        links = {"self": base}
        if actor.can(Capability.REVIEW):
            if can_transition(version.status, VersionStatus.ACTIVE) and version.certificate_passed:
                links["activate"] = f"{base}/activate"
            if can_transition(version.status, VersionStatus.INACTIVE):
                links["deactivate"] = f"{base}/deactivate"
            if can_transition(version.status, VersionStatus.REVOKED):
                links["revoke"] = f"{base}/revoke"
        return links


class UnitDetailSerializer(UnitSerializer):
    events = serializers.SerializerMethodField(help_text="The unit's activation history, oldest first.")

    @extend_schema_field(EventSerializer(many=True))
    def get_events(self, version: AdapterVersion) -> list:
        return EventSerializer(selectors.version_events(version=version), many=True).data


def _unit(request, version: AdapterVersion, *, actor: Actor) -> dict:
    return UnitDetailSerializer(version, context={"request": request, "actor": actor}).data


def _reason(help_text: str) -> StrictCharField:
    return StrictCharField(max_length=MAX_REASON, help_text=help_text)


class UnitListApi(APIView):
    pagination_class = PageNumberPagination

    class FilterSerializer(StrictSerializer):
        status = StatusListField(statuses=VersionStatus.values, required=False, help_text="One status or several, comma-separated: `active,candidate`.")
        request = StrictCharField(required=False, max_length=64, help_text="A request's id or reference (RTBF-...).")
        page = serializers.IntegerField(required=False, min_value=1)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=PageNumberPagination.max_page_size)

    @extend_schema(
        operation_id="registry_units_list",
        tags=[TAG],
        summary="List unit versions, newest first",
        description=_READ_NOTE,
        parameters=[FilterSerializer],
        responses={200: UnitSerializer(many=True), **problem_responses(400, 401, 403, 404)},
    )
    def get(self, request):
        actor = actor_for_request(request)
        _refuse_api_clients(actor)
        filters = UnitListApi.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        versions = selectors.version_list(actor=actor, status=data.get("status", ""), request=data.get("request"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(versions, request, view=self)
        return paginator.get_paginated_response(UnitSerializer(page, many=True, context={"request": request, "actor": actor}).data)


class UnitDetailApi(APIView):
    @extend_schema(
        operation_id="registry_units_retrieve",
        tags=[TAG],
        summary="Read one unit version with its activation history",
        description=_READ_NOTE,
        responses={200: UnitDetailSerializer, **problem_responses(401, 403, 404)},
    )
    def get(self, request, unit_id):
        actor = actor_for_request(request)
        _refuse_api_clients(actor)
        return Response(_unit(request, selectors.version_get(actor=actor, unit_id=unit_id), actor=actor))


class _UnitActionApi(ActionApi):
    """A registry change (reviewers and admins): answers with the unit's detail (its new status and history)."""

    required_capability = Capability.REVIEW

    def represent(self, request, actor: Actor, version: AdapterVersion) -> dict:
        return _unit(request, version, actor=actor)


class UnitActivateApi(_UnitActionApi):
    @extend_schema(
        operation_id="registry_units_activate",
        tags=[TAG],
        summary="Activate a unit (make it live on the gateways)",
        description=(
            _WRITE_NOTE + " Takes no body (or `{}`). Refused with 409 `certificate_not_passed`, `request_closed` or "
            "`invalid_transition`; with 403 `second_approver_required` when policy wants two people and you approved the request."
        ),
        request=None,
        responses={200: UnitDetailSerializer, **problem_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, unit_id):
        return self.act(request, unit_id=unit_id)

    def perform(self, *, actor: Actor, data: dict, unit_id: str) -> AdapterVersion:
        version = selectors.version_get(actor=actor, unit_id=unit_id)
        return services.adapter_activate(version_id=version.pk, actor=actor)


class UnitDeactivateApi(_UnitActionApi):
    class InputSerializer(StrictSerializer):
        reason = _reason("Required; recorded in the history and the audit log.")

    @extend_schema(
        operation_id="registry_units_deactivate",
        tags=[TAG],
        summary="Deactivate a live unit (reason required)",
        description=_WRITE_NOTE + " It can be activated again later.",
        request=InputSerializer,
        responses={200: UnitDetailSerializer, **problem_responses(400, 401, 403, 404, 409, 415)},
        examples=[OpenApiExample("Reason", value={"reason": "Refuses unrelated questions about Lisbon; retraining."}, request_only=True)],
    )
    def post(self, request, unit_id):
        return self.act(request, unit_id=unit_id)

    def perform(self, *, actor: Actor, data: dict, unit_id: str) -> AdapterVersion:
        version = selectors.version_get(actor=actor, unit_id=unit_id)
        return services.adapter_deactivate(version_id=version.pk, actor=actor, reason=data["reason"])


class UnitRevokeApi(_UnitActionApi):
    class InputSerializer(StrictSerializer):
        reason = _reason("Required; recorded in the history and the audit log.")

    @extend_schema(
        operation_id="registry_units_revoke",
        tags=[TAG],
        summary="Revoke a unit for good (reason required)",
        description=_WRITE_NOTE + " A revoked unit is never served again.",
        request=InputSerializer,
        responses={200: UnitDetailSerializer, **problem_responses(400, 401, 403, 404, 409, 415)},
    )
    def post(self, request, unit_id):
        return self.act(request, unit_id=unit_id)

    def perform(self, *, actor: Actor, data: dict, unit_id: str) -> AdapterVersion:
        version = selectors.version_get(actor=actor, unit_id=unit_id)
        return services.adapter_revoke(version_id=version.pk, actor=actor, reason=data["reason"])


class RequestRollbackApi(_UnitActionApi):
    class InputSerializer(StrictSerializer):
        reason = _reason("Required; recorded in the history and the audit log.")

    @extend_schema(
        operation_id="registry_requests_rollback",
        tags=[TAG],
        summary="Roll back a request: deactivate its live unit (reason required)",
        description=_WRITE_NOTE + " An `active` request becomes `rolled_back`. 409 `nothing_live` when no unit of the request is live.",
        request=InputSerializer,
        responses={200: UnitDetailSerializer, **problem_responses(400, 401, 403, 404, 409, 415)},
    )
    def post(self, request, request_id):
        return self.act(request, request_id=request_id)

    def perform(self, *, actor: Actor, data: dict, request_id) -> AdapterVersion:
        return services.adapter_rollback(request_id=request_id, actor=actor, reason=data["reason"])


# The ISO 8601 date-times `at` takes, exactly (the schema's pattern; parse_datetime alone also
# accepts other forms, which the schema would not describe).
INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
_INSTANT = re.compile(INSTANT_PATTERN, re.ASCII)


def parse_instant(value: str):
    """An ISO 8601 date-time; without an offset it is taken in the service's time zone (UTC)."""
    try:
        parsed = parse_datetime(value) if _INSTANT.match(value) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ApplicationError(
            f"'at' must be an ISO 8601 date-time such as 2026-11-23T10:15:00Z, not {value!r}.",
            code="validation_error",
            extra={"errors": [{"field": "at", "message": "Expected an ISO 8601 date-time.", "code": "invalid"}]},
        )
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.get_default_timezone())


class LiveUnitSerializer(serializers.Serializer):
    unit = serializers.SerializerMethodField()
    activated = EventSerializer(source="since", help_text="The activation behind it: live from this event until after `at`.")

    @extend_schema_field(UnitSerializer)
    def get_unit(self, live) -> dict:
        return UnitSerializer(live.version, context=self.context).data


class GatewayReportSerializer(serializers.Serializer):
    gateway_id = serializers.CharField()
    generation = serializers.IntegerField()
    unit_ids = serializers.ListField(child=serializers.CharField())
    at = serializers.DateTimeField()


class LiveApi(APIView):
    class OutputSerializer(serializers.Serializer):
        at = serializers.DateTimeField()
        generation = serializers.IntegerField(help_text="The registry generation in force at `at` (0: nothing was ever activated).")
        units = LiveUnitSerializer(many=True)
        gateway_report = GatewayReportSerializer(allow_null=True, help_text="The last gateway confirmation at or before `at`.")

    @extend_schema(
        operation_id="registry_live",
        tags=[TAG],
        summary="Which units were live at a time T",
        description=_READ_NOTE + " Answered from the append-only activation history. Without `at`: now.",
        parameters=[
            OpenApiParameter(
                "at",
                {"type": "string", "pattern": INSTANT_PATTERN},
                description="ISO 8601 date-time, e.g. `2026-11-23T10:15:00Z`; without an offset, UTC.",
                required=False,
            )
        ],
        responses={200: OutputSerializer, **problem_responses(400, 401, 403)},
    )
    def get(self, request):
        actor = actor_for_request(request)
        _refuse_api_clients(actor)
        raw = request.query_params.get("at")
        at = parse_instant(raw) if raw is not None else None
        live = selectors.live_set(actor=actor, at=at)
        return Response(LiveApi.OutputSerializer(live, context={"request": request, "actor": actor}).data)


# --- live history --------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "example": "2026-11-23"})
class InstantField(serializers.Field):
    """An ISO 8601 date (`2026-11-23`: the start of that day, or with `end_of_day` the start of the
    next, so that a date range includes its last day) or date-time; without an offset, UTC."""

    default_error_messages = {"invalid": "Expected an ISO 8601 date (2026-11-23) or date-time (2026-11-23T10:15:00Z)."}

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        text = data.strip()
        try:
            day = parse_date(text) if len(text) == 10 else None
            moment = None if day else parse_datetime(text)
        except ValueError:
            self.fail("invalid")
        if day is not None:
            try:
                return datetime.combine(day + timedelta(days=1) if self.end_of_day else day, time.min, tzinfo=UTC)
            except OverflowError:  # 9999-12-31: the selector refuses such years anyway
                self.fail("invalid")
        if moment is None:
            self.fail("invalid")
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)

    def to_representation(self, value):
        return value.isoformat()


# Plain strings in the schema: one enum for both fields would be named twice (a spectacular warning).
_SOURCE_FIELD = {"type": "string", "example": "gateway"}


class HistoryIntervalSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="When it went live: the first gateway confirmation where one is recorded, else the activation event.")
    end = serializers.DateTimeField(
        allow_null=True, help_text="When it stopped being live (same rule: the last gateway to drop it, else the event); null while live."
    )
    start_source = serializers.SerializerMethodField()
    end_source = serializers.SerializerMethodField()
    activated = EventSerializer(source="opened_by", help_text="The activation that opened the interval.")
    ended = EventSerializer(source="closed_by", allow_null=True, help_text="The deactivation, roll-back or revocation that closed it; null while live.")
    gateway_confirmed_from = serializers.DateTimeField(source="confirmed_from", allow_null=True)
    gateway_confirmed_until = serializers.DateTimeField(source="confirmed_until", allow_null=True)

    @extend_schema_field(
        {
            **_SOURCE_FIELD,
            "description": "`gateway`: `start` is a gateway's confirmation; `registry`: no gateway confirmed it, `start` is the activation event's time.",
        }
    )
    def get_start_source(self, interval) -> str:
        return "gateway" if interval.start_confirmed else "registry"

    @extend_schema_field({**_SOURCE_FIELD, "nullable": True, "description": "`gateway` or `registry`, as `start_source` but for `end`; null while live."})
    def get_end_source(self, interval) -> str | None:
        if interval.closed_by is None:
            return None
        return "gateway" if interval.end_confirmed else "registry"


class HistoryUnitSerializer(serializers.Serializer):
    unit_id = serializers.CharField(source="version.unit_id")
    version = serializers.IntegerField(source="version.version")
    status = serializers.ChoiceField(source="version.status", choices=VersionStatus.choices, help_text="Its status now.")
    request = serializers.SerializerMethodField()
    intervals = HistoryIntervalSerializer(many=True, help_text="The intervals it was live that overlap the window, oldest first (not clipped to the window).")

    @extend_schema_field({"type": "object", "nullable": True, "properties": {"id": {"type": "string", "format": "uuid"}, "reference": {"type": "string"}}})
    def get_request(self, lane) -> dict | None:
        version = lane.version
        return {"id": str(version.request_id), "reference": version.request.reference} if version.request_id else None


class HistoryEventSerializer(serializers.Serializer):
    at = serializers.DateTimeField(source="event.at")
    unit_id = serializers.CharField(source="event.version.unit_id")
    request = serializers.SerializerMethodField(help_text="The request's reference; null for a unit registered from the command line.")
    action = serializers.ChoiceField(source="event.action", choices=EventAction.choices)
    actor = serializers.CharField(source="event.actor_label")
    reason = serializers.CharField(source="event.reason")
    generation = serializers.IntegerField(source="event.generation")
    gateway_confirmed_at = serializers.DateTimeField(
        allow_null=True,
        help_text="An activation: when a gateway first served the unit. A closing event: when the last gateway stopped serving it. "
        "Null when no gateway report confirms it.",
    )
    changed_live_set = serializers.BooleanField(help_text="False for the revocation of a unit that was not live (nothing changed on the gateways).")

    @extend_schema_field({"type": "string", "nullable": True})
    def get_request(self, item) -> str | None:
        version = item.event.version
        return version.request.reference if version.request_id else None


class HistoryApi(APIView):
    class QuerySerializer(StrictSerializer):
        since = InstantField(
            required=False,
            help_text="Start of the window: a date (its midnight, UTC) or a date-time. "
            "Default: 30 days before `until`, or the minute of the first event if the history is younger.",
        )
        until = InstantField(required=False, end_of_day=True, help_text="End of the window: a date (included whole) or a date-time. Default: now.")

        def validate(self, data):
            if data.get("since") and data.get("until") and data["until"] <= data["since"]:
                raise serializers.ValidationError({"until": ["Must be after 'since'."]}, code="invalid")
            return data

    class OutputSerializer(serializers.Serializer):
        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        gateway_reports_recorded = serializers.BooleanField(help_text="False when no gateway ever reported what it loaded: every time is then the registry's.")
        units = HistoryUnitSerializer(
            source="lanes", many=True, help_text="Each unit live at some time in the window or changed in it, by when it first went live."
        )
        events = HistoryEventSerializer(many=True, help_text="The activation events in the window, oldest first.")

    @extend_schema(
        operation_id="registry_history",
        tags=[TAG],
        summary="Which units were live when over a period, and the events behind each change",
        description=(
            _READ_NOTE + " Intervals come from the append-only activation history; where a gateway confirmed a change "
            "(its report of the units it loaded), the interval starts or ends at that confirmation instead, and "
            "`start_source` / `end_source` say which. Bad dates, or `until` before `since`: 400 `validation_error`."
        ),
        parameters=[QuerySerializer],
        responses={200: OutputSerializer, **problem_responses(400, 401, 403)},
    )
    def get(self, request):
        actor = actor_for_request(request)
        _refuse_api_clients(actor)
        query = HistoryApi.QuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        history = selectors.live_history(actor=actor, since=query.validated_data.get("since"), until=query.validated_data.get("until"))
        return Response(HistoryApi.OutputSerializer(history).data)
