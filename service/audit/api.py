"""REST API of the audit log (mounted at /api/v1/audit/): read-only, for auditors and admins.

Staff only, with their session login (like the registry API): the READ_AUDIT capability is checked
by the selectors, so reviewers and API clients, whatever their scopes, are refused with 403.
Errors are problem+json (service.common.problems).
"""

from __future__ import annotations

from urllib.parse import urlencode

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from service.accounts.roles import actor_for_request
from service.common.schema import problem_example, problem_responses
from service.common.serializers import StrictCharField, StrictSerializer

from .exports import event_document
from .search import MAX_SEARCH_LENGTH
from .selectors import audit_events, audit_events_page, audit_filter_criteria_from

TAG = "audit"
MAX_PAGE_SIZE = 200


class AuditActorSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="`user`, `api_client`, `subject` or `system`.")
    id = serializers.CharField()
    label = serializers.CharField(help_text="A username, `api client NAME`, `subject of RTBF-...`, `system`.")


class AuditTargetSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="`request`, `adapter`, `audit_log`, ...; may be empty.")
    id = serializers.CharField(help_text="Requests appear under their reference (RTBF-...).")


class AuditEventSerializer(serializers.Serializer):
    """One event, with everything its hash covers exactly as hashed (service/audit/exports.py)."""

    seq = serializers.IntegerField(help_text="Position in the chain, from 1, without gaps.")
    created_at = serializers.CharField(help_text="ISO 8601, UTC: exactly the string that was hashed.")
    actor = AuditActorSerializer()
    action = serializers.CharField(help_text="A registered dotted code, e.g. `request.approved`.")
    target = AuditTargetSerializer()
    description = serializers.CharField(help_text="The action's template filled in (not hashed).")
    data = serializers.JSONField(help_text="Details; hashes instead of personal data.")
    request_id = serializers.CharField(help_text="The X-Request-ID of the HTTP request that caused it; may be empty.")
    prev_hash = serializers.CharField(help_text="The previous event's hash (64 zeros for event 1).")
    hash = serializers.CharField(help_text="SHA-256 of the canonical JSON of the fields above except description.")

    def to_representation(self, instance):
        return event_document(instance)


EXAMPLE_EVENT = {
    "seq": 42,
    "created_at": "2030-05-01T09:12:03.514220+00:00",
    "actor": {"kind": "user", "id": "3", "label": "rita"},
    "action": "request.rejected",
    "target": {"type": "request", "id": "RTBF-7K3M9Q"},
    "description": "Request request:RTBF-7K3M9Q rejected: duplicate of RTBF-XYZ789",
    "data": {"from": "verified", "reason": "duplicate of RTBF-XYZ789"},
    "request_id": "6f1c0c3e9a2b4d0f8e7a5b3c1d9e2f40",
    "prev_hash": "9b1f…",
    "hash": "d04e…",
}


class AuditEventListApi(APIView):
    class FilterSerializer(StrictSerializer):
        q = StrictCharField(
            required=False,
            allow_blank=True,
            max_length=MAX_SEARCH_LENGTH,
            help_text='Full-text search over action codes and the strings in `data` (reasons, ...): words, `"a phrase"`, `or`, `-word`; '
            "an action code such as `request.rejected` matches as a phrase.",
        )
        request = StrictCharField(
            required=False, allow_blank=True, max_length=64, help_text="A request's reference (RTBF-..., any case) or id, or any target id."
        )
        actor = StrictCharField(required=False, allow_blank=True, max_length=150, help_text="Part of the actor's label (a username, an API client name).")
        action = StrictCharField(required=False, allow_blank=True, max_length=64, help_text="An action code or its start: `request.` or `request.approved`.")
        since = serializers.DateField(required=False, help_text="First day (UTC), included.")
        until = serializers.DateField(required=False, help_text="Last day (UTC), included.")
        from_seq = serializers.IntegerField(required=False, min_value=1, help_text="Only events from this sequence number on.")
        cursor = StrictCharField(required=False, help_text="`next_cursor` or `previous_cursor` of an earlier answer; leave out for the first page.")
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE, help_text="Events per page (default 50).")

        def validate(self, data):
            if data.get("since") and data.get("until") and data["until"] < data["since"]:
                raise serializers.ValidationError({"until": ["The end date is before the start date."]}, code="invalid_range")
            return data

    class OutputSerializer(serializers.Serializer):
        results = AuditEventSerializer(many=True, help_text="In chain order (ascending seq).")
        next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the following events; null when there are none (yet).")
        previous_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the events before these; null on the first page.")
        next = serializers.URLField(allow_null=True, help_text="This listing's URL with `cursor=next_cursor`.")
        previous = serializers.URLField(allow_null=True, help_text="This listing's URL with `cursor=previous_cursor`.")

    @extend_schema(
        operation_id="audit_events_list",
        tags=[TAG],
        summary="List audit events, filtered and searched, a page at a time",
        description=(
            "Auditors and admins only (session login). Reviewers and API clients are refused with 403. "
            "Pages are cursors on the sequence number: following `next_cursor` visits every matching event "
            "exactly once, even while new events are appended. An unknown cursor answers 400 `invalid_cursor`; "
            "an unknown or malformed filter 400 `validation_error`."
        ),
        parameters=[FilterSerializer],
        responses={
            200: OutputSerializer,
            **problem_responses(
                400,
                401,
                403,
                descriptions={400: "`validation_error` (a bad filter, e.g. an end date before the start) or `invalid_cursor`."},
                examples={
                    400: [
                        OpenApiExample(
                            "invalid_cursor",
                            value=problem_example(
                                400,
                                "invalid_cursor",
                                "Invalid cursor",
                                "The cursor is not valid: use the next or previous cursor from a listing, or leave it out to start at the first event.",
                            ),
                            media_type="application/problem+json",
                            status_codes=["400"],
                            response_only=True,
                        )
                    ]
                },
            ),
        },
        examples=[
            OpenApiExample(
                "A page",
                value={
                    "results": [EXAMPLE_EVENT],
                    "next_cursor": "eyJkIjoiYSIsInMiOjQyfQ",
                    "previous_cursor": None,
                    "next": "https://forget.example/api/v1/audit/events?q=duplicate&cursor=eyJkIjoiYSIsInMiOjQyfQ",
                    "previous": None,
                },
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def get(self, request):
        actor = actor_for_request(request)
        audit_events(actor=actor)  # the capability check, before the filters are looked at
        filters = AuditEventListApi.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        criteria = audit_filter_criteria_from(actor=actor, fields=data)
        page = audit_events_page(actor=actor, criteria=criteria, cursor=data.get("cursor", ""), size=data.get("page_size", 50))
        return Response(
            {
                "results": AuditEventSerializer(page.rows, many=True).data,
                "next_cursor": page.next_token,
                "previous_cursor": page.previous_token,
                "next": _with_cursor(request, page.next_token),
                "previous": _with_cursor(request, page.previous_token),
            }
        )


def _with_cursor(request, token: str | None) -> str | None:
    if token is None:
        return None
    params = {name: value for name, value in request.query_params.items() if name != "cursor"}
    return request.build_absolute_uri(request.path + "?" + urlencode({**params, "cursor": token}))
