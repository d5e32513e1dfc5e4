"""REST API of the pipeline, beside the requests' own (mounted at /api/v1/): a request's erasure
certificate, and a reviewer's retry of a failed request. The request representation itself carries
the job's `progress` (service.requests.api). One class per operation, errors as problem+json."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from service.accounts.roles import Actor, actor_for_request
from service.common.errors import NotFound
from service.common.schema import problem_responses
from service.common.serializers import StrictCharField, StrictSerializer
from service.requests.api import RequestActionApi, RequestRepresentationSerializer
from service.requests.models import ErasureRequest
from service.requests.selectors import request_get

from . import selectors, services
from .serializers import CertificateSummarySerializer


class RequestCertificateApi(APIView):
    @extend_schema(
        operation_id="requests_certificate",
        tags=["requests"],
        summary="The erasure certificate of a request (summary, no personal data)",
        description=(
            "Whoever may read the request (its API client with scope `read`, staff): the verdict and every rule "
            "of the newest evaluated attempt with its value and threshold, and the headline metrics. The answers "
            "to the probes are personal data and stay on the staff page. 404 `no_certificate` until an attempt "
            "has been evaluated."
        ),
        responses={200: CertificateSummarySerializer, **problem_responses(401, 403, 404)},
    )
    def get(self, request, request_id):
        erasure = request_get(actor=actor_for_request(request), request_id=request_id)
        job = selectors.latest_certificate_job(erasure)
        if job is None:
            raise NotFound(f"Request {erasure.reference} has no certificate yet.", code="no_certificate")
        return Response(CertificateSummarySerializer(selectors.certificate_summary(job)).data)


class RetryOptionsSerializer(StrictSerializer):
    epochs = serializers.IntegerField(required=False, min_value=1, max_value=200, help_text="Passes over the training prompts.")
    rank = serializers.IntegerField(required=False, min_value=1, max_value=64, help_text="LoRA rank of the new adapter.")
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1, help_text="A new draw of the training data and the LoRA's start.")
    more_prompts_for = serializers.ListField(
        required=False,
        allow_empty=False,
        child=serializers.ChoiceField(choices=list(services.RETRY_OPTIONS["more_prompts_for"])),
        help_text="Probe families to synthesise four times as many training prompts for (development phrasings).",
    )


class RequestRetryApi(RequestActionApi):
    accepted = True

    class InputSerializer(StrictSerializer):
        options = RetryOptionsSerializer(required=False, help_text="A stronger configuration for the new attempt; omit for the defaults.")

    @extend_schema(
        operation_id="requests_retry",
        tags=["review"],
        summary="Retry a failed request, or one whose certificate did not pass (a new unlearning attempt)",
        description=(
            "Reviewers and admins (session login; the `X-CSRFToken` header). A `failed` or `needs_review` request goes "
            "back to `queued` with a new job, optionally with `options` that make the training stronger; answers "
            "**202 Accepted** with the request and a `Location` header. Any other status answers 409 `invalid_transition`."
        ),
        request=InputSerializer,
        responses={202: OpenApiResponse(RequestRepresentationSerializer, description="Queued again."), **problem_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, request_id):
        return self.act(request, request_id=request_id)

    def perform(self, *, actor: Actor, data: dict, request_id) -> ErasureRequest:
        job = services.job_retry(actor=actor, request_id=request_id, options=data.get("options"))
        return request_get(actor=actor, request_id=job.request_id)


class RequestOverrideApi(RequestActionApi):
    class InputSerializer(StrictSerializer):
        reason = StrictCharField(max_length=2000, help_text="Why the unit is accepted although its certificate did not pass (audited).")

    @extend_schema(
        operation_id="requests_override_certificate",
        tags=["review"],
        summary="Accept a unit whose certificate did not pass (second approver, with a reason)",
        description=(
            "Reviewers and admins (session login; the `X-CSRFToken` header), but not the reviewer who approved the "
            "request (403 `second_approver_required`). A `needs_review` request goes to `staged` and its unit is "
            "activated by policy; the reason is audited and shown in the dossier. Any other status answers 409."
        ),
        request=InputSerializer,
        responses={200: RequestRepresentationSerializer, **problem_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, request_id):
        return self.act(request, request_id=request_id)

    def perform(self, *, actor: Actor, data: dict, request_id) -> ErasureRequest:
        job = services.job_override(actor=actor, request_id=request_id, reason=data["reason"])
        return request_get(actor=actor, request_id=job.request_id)
