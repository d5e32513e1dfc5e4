"""REST API of the reports (mounted at /api/v1/reports/): the request figures for a period as JSON.

Staff only, with their session login (reviewers, auditors, admins), like the registry: the figures
are the operator's; API clients are refused with 403 whatever their scopes. Each report fetched is
audited (`report.generated`, format json).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from service.accounts.roles import Capability, actor_for_request
from service.common.schema import problem_responses
from service.common.serializers import StrictSerializer

from .selectors import DEFAULT_PRESET, PRESET_LABELS, Preset, report_period
from .services import request_report_generate

TAG = "reports"


class FiguresSerializer(serializers.Serializer):
    regulation = serializers.CharField(help_text="`gdpr`, `ccpa`, `other`, or `total`.")
    label = serializers.CharField()
    received = serializers.IntegerField(help_text="Requests received in the period (= completed + rejected + cancelled + expired + open).")
    completed = serializers.IntegerField(help_text="Confirmed live on a gateway (effective erasure time set), including ones rolled back since.")
    rolled_back = serializers.IntegerField(help_text="Of the completed ones, rolled back since.")
    rejected = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    expired = serializers.IntegerField(help_text="Never verified by email.")
    open = serializers.IntegerField(help_text="Any other status at `as_of` (review, pipeline, staged, failed).")
    extended = serializers.IntegerField(help_text="Deadline extended.")
    overdue = serializers.IntegerField(help_text="open_overdue + completed_late.")
    open_overdue = serializers.IntegerField(help_text="Open with the deadline passed at `as_of`.")
    completed_late = serializers.IntegerField(help_text="Completed after the deadline.")
    median_days = serializers.FloatField(allow_null=True, help_text="Median days (of 24 h) from receipt to completion; null with no completed request.")
    p95_days = serializers.FloatField(allow_null=True, help_text="95th percentile, nearest rank.")
    mean_days = serializers.FloatField(allow_null=True)


class RequestReportApi(APIView):
    class QuerySerializer(StrictSerializer):
        preset = serializers.ChoiceField(
            required=False,
            choices=[(preset.value, label) for preset, label in PRESET_LABELS.items()],
            help_text=f"Used when no dates are given; default `{DEFAULT_PRESET.value}` (the last full calendar year).",
        )

        def get_fields(self):
            fields = super().get_fields()
            # `from` is a Python keyword: declared here by name.
            fields["from"] = serializers.DateField(required=False, help_text="First day (UTC), e.g. `2025-01-01`.")
            fields["to"] = serializers.DateField(required=False, help_text="Last day (UTC), included. Default: today when `from` is given.")
            return fields

        def validate(self, data):
            if data.get("from") and data.get("to") and data["to"] < data["from"]:
                raise serializers.ValidationError({"to": ["The end date is before the start date."]})
            return data

    class OutputSerializer(serializers.Serializer):
        period_from = serializers.DateField(source="period.start")
        period_to = serializers.DateField(source="period.end", help_text="Included.")
        as_of = serializers.DateTimeField(help_text="Outcomes and overdue counts as they stood at this time (when the report was made).")
        regulations = FiguresSerializer(source="rows", many=True)
        total = FiguresSerializer()

    @extend_schema(
        operation_id="reports_requests",
        tags=[TAG],
        summary="Request figures for a period (received, completed, rejected, days to completion, overdue)",
        description=(
            "Staff only (session login): reviewers, auditors and admins; API clients are refused with 403. "
            "Counts the requests received in the period, per regulation and in total; definitions in docs/reports.md. "
            "Bad or reversed dates: 400 `validation_error`. Each call is audited as `report.generated`."
        ),
        parameters=[QuerySerializer],
        responses={200: OutputSerializer, **problem_responses(400, 401, 403)},
    )
    def get(self, request):
        actor = actor_for_request(request)
        actor.require(Capability.READ_ALL_REQUESTS)
        query = RequestReportApi.QuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        period = report_period(start=data.get("from"), end=data.get("to"), preset=Preset(data["preset"]) if data.get("preset") else None)
        report = request_report_generate(actor=actor, period=period, export_format="json")
        return Response(RequestReportApi.OutputSerializer(report).data)
