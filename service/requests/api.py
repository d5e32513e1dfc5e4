"""REST API v1 for erasure requests: products (Bearer API keys) and reviewers (session login).

One class per operation, each with its nested serializers; every class only parses, calls one
service or selector, and renders (the operations on one request through RequestActionApi,
service.accounts.action_api). Who may do what is decided in the service layer (roles.py);
errors come out as problem+json through service.common.problems.

Personal data never leaves through the API: a request's representation carries the subject's
email as a keyed hash and the number of facts and evidence prompts, not their text (the creating
product already has them; a reviewer reads them in the staff UI, where each reveal is audited).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from service.accounts.action_api import ActionApi
from service.accounts.roles import Actor, Capability, Scope, actor_for_request
from service.common.errors import ApplicationError
from service.common.pagination import PageNumberPagination
from service.common.reasons import MAX_REASON
from service.common.schema import NO_NUL_TEXT, NON_BLANK_TEXT, problem_example, problem_responses
from service.common.serializers import Serializer, StatusListField, StrictCharField, StrictSerializer
from service.unlearning import selectors as unlearning_selectors
from service.unlearning.serializers import JobProgressSerializer

from . import selectors, services
from .deadlines import Regulation
from .models import Channel, ErasureRequest
from .states import Status, can_transition

REQUEST_TAG = "requests"
REVIEW_TAG = "review"
PROBLEM = "application/problem+json"

MAX_NAME = 200
MAX_EMAIL = 254
MAX_FACTS = 50
MAX_EVIDENCE_PROMPTS = 20
MAX_TEXT = 1000
MAX_BULK_IDS = 200

# 1 to 128 printable ASCII characters, no leading or trailing space.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?")

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name="Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    type={"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~](?:[ -~]{0,126}[!-~])?$"},
    description=(
        "Optional, recommended. 1 to 128 printable ASCII characters (e.g. a UUID) that identify this "
        "submission for this API client. Retrying with the same key and the same body returns the request "
        "created by the first call (202, `Idempotent-Replayed: true`); the same key with a different body is "
        "refused with 409 `idempotency_key_reused`. A malformed key is refused with 400 `bad_header`."
    ),
)

EXAMPLE_ID = "3b0f6d4e-8a51-4c36-9a3e-5c1d2b7e9f10"
EXAMPLE_URL = f"https://forget.example/api/v1/requests/{EXAMPLE_ID}"
EXAMPLE_REQUEST = {
    "id": EXAMPLE_ID,
    "reference": "RTBF-7K3M9Q",
    "status": "submitted",
    "status_label": "Submitted (awaiting email verification)",
    "regulation": "gdpr",
    "channel": "api",
    "received_at": "2026-11-23T10:15:00Z",
    "deadline_at": "2026-12-23T10:15:00Z",
    "days_left": 30,
    "deadline_extended": False,
    "verified_at": None,
    "decided_at": None,
    "decision_reason": None,
    "effective_at": None,
    "subject_email_hash": "hmac-sha256:5e0c4b6f0d8f1f2a7c3b9e6d4a1f0e2b7c9d8e6f5a4b3c2d1e0f9a8b7c6d5e4f",
    "facts_count": 2,
    "evidence_prompts_count": 1,
    "progress": None,
    "links": {"self": EXAMPLE_URL, "cancel": f"{EXAMPLE_URL}/cancel"},
}


def _detail_url(request, erasure: ErasureRequest) -> str:
    return request.build_absolute_uri(reverse("api-request-detail", kwargs={"request_id": erasure.pk}))


# --- the representation ---------------------------------------------------------------------------

_DATETIME = serializers.DateTimeField()  # unbound: its conversion needs no parent (ISO 8601, current time zone, Z for UTC)


def _datetime(value) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


class RequestRepresentationSerializer(Serializer):
    """What every operation answers with: the request's state and deadline, no personal data."""

    id = serializers.UUIDField()
    reference = serializers.CharField(help_text="Public code the subject quotes, e.g. RTBF-7K3M9Q.")
    status = serializers.ChoiceField(choices=Status.choices)
    status_label = serializers.CharField()
    regulation = serializers.ChoiceField(choices=Regulation.choices)
    channel = serializers.ChoiceField(choices=Channel.choices)
    received_at = serializers.DateTimeField()
    deadline_at = serializers.DateTimeField(help_text="The legal deadline (GDPR: one calendar month; CCPA: 45 days).")
    days_left = serializers.IntegerField(
        allow_null=True, help_text="Whole days until the deadline, negative when overdue; null once the request is closed or done."
    )
    deadline_extended = serializers.BooleanField()
    verified_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_reason = serializers.SerializerMethodField(help_text="Why the request was rejected or cancelled; null otherwise.")
    effective_at = serializers.DateTimeField(allow_null=True, help_text="When the model stopped serving the data (status active).")
    subject_email_hash = serializers.CharField(help_text="Keyed hash of the subject's email: equal for the same address, not reversible.")
    facts_count = serializers.SerializerMethodField()
    evidence_prompts_count = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField(
        help_text="The latest unlearning job (docs/pipeline.md): a progress bar's figures; null before the request is queued."
    )
    links = serializers.SerializerMethodField()

    def to_representation(self, erasure: ErasureRequest) -> dict:
        """The fields above, written out. DRF's generic walk (a bound copy of each of the 19 declared
        fields per request, then an attribute look-up and a conversion per field) was an eighth of
        the intake request's CPU (docs/bench-intake.md); the declared fields stay for the schema.
        tests/service/requests/test_representation.py checks this equals the generic walk."""
        return {
            "id": str(erasure.id),
            "reference": erasure.reference,
            "status": str(erasure.status),
            "status_label": erasure.status_label,
            "regulation": str(erasure.regulation),
            "channel": str(erasure.channel),
            "received_at": _datetime(erasure.received_at),
            "deadline_at": _datetime(erasure.deadline_at),
            "days_left": erasure.days_left(),
            "deadline_extended": bool(erasure.deadline_extended),
            "verified_at": _datetime(erasure.verified_at),
            "decided_at": _datetime(erasure.decided_at),
            "decision_reason": self.get_decision_reason(erasure),
            "effective_at": _datetime(erasure.effective_at),
            "subject_email_hash": erasure.subject_email_hash,
            "facts_count": self.get_facts_count(erasure),
            "evidence_prompts_count": self.get_evidence_prompts_count(erasure),
            "progress": self.get_progress(erasure),
            "links": self.get_links(erasure),
        }

    def get_decision_reason(self, erasure: ErasureRequest) -> str | None:
        return erasure.decision_reason if erasure.status in (Status.REJECTED, Status.CANCELLED) else None

    def get_facts_count(self, erasure: ErasureRequest) -> int:
        return len(erasure.facts or [])

    def get_evidence_prompts_count(self, erasure: ErasureRequest) -> int:
        return len(erasure.evidence_prompts or [])

    @extend_schema_field(JobProgressSerializer(allow_null=True))
    def get_progress(self, erasure: ErasureRequest) -> dict | None:
        return unlearning_selectors.job_progress(self._job(erasure))

    def _job(self, erasure: ErasureRequest):
        cache = self.context.setdefault("_latest_jobs", {})
        if erasure.pk not in cache:
            cache[erasure.pk] = unlearning_selectors.latest_job(erasure)
        return cache[erasure.pk]

    @extend_schema_field(
        {
            "type": "object",
            "description": "Absolute URLs of this request and of the operations the caller may apply to it now.",
            "properties": {
                name: {"type": "string", "format": "uri"} for name in ("self", "cancel", "approve", "reject", "extend_deadline", "certificate", "retry")
            },
            "required": ["self"],
        }
    )
    def get_links(self, erasure: ErasureRequest) -> dict[str, str]:
        request = self.context["request"]
        actor: Actor = self.context["actor"]
        base = _detail_url(request, erasure)
        links = {"self": base}
        reviewer = actor.can(Capability.REVIEW)
        if can_transition(erasure.status, Status.CANCELLED) and (reviewer or actor.has_scope(Scope.CREATE)):
            links["cancel"] = f"{base}/cancel"
        if reviewer and can_transition(erasure.status, Status.APPROVED):
            links["approve"] = f"{base}/approve"
        if reviewer and can_transition(erasure.status, Status.REJECTED):
            links["reject"] = f"{base}/reject"
        if reviewer and erasure.is_open and not erasure.deadline_extended:
            links["extend_deadline"] = f"{base}/extend-deadline"
        job = self._job(erasure)
        if job is not None and job.certificate_passed is not None:
            links["certificate"] = f"{base}/certificate"
        if reviewer and erasure.status == Status.FAILED:
            links["retry"] = f"{base}/retry"
        return links


def _represent(request, erasure: ErasureRequest, *, actor: Actor) -> dict:
    return RequestRepresentationSerializer(erasure, context={"request": request, "actor": actor}).data


class RequestActionApi(ActionApi):
    """An operation on one request: answers with the request's representation (202 Accepted with
    `Location` naming it where `accepted`). Reviewers' work unless a class says otherwise."""

    required_capability = Capability.REVIEW

    def represent(self, request, actor: Actor, erasure: ErasureRequest) -> dict:
        return _represent(request, erasure, actor=actor)

    def location(self, request, erasure: ErasureRequest) -> str:
        return _detail_url(request, erasure)


def _reason_field(*, required: bool, help_text: str) -> StrictCharField:
    if required:
        return StrictCharField(max_length=MAX_REASON, help_text=help_text)
    return StrictCharField(max_length=MAX_REASON, required=False, allow_blank=True, default="", help_text=help_text)


# --- products: create, list, read, cancel ---------------------------------------------------------


class RequestCreateApi(APIView):
    class InputSerializer(StrictSerializer):
        subject_name = StrictCharField(max_length=MAX_NAME, help_text="The data subject's name.")
        subject_email = serializers.EmailField(max_length=MAX_EMAIL, help_text="Where the subject is reached (verification code, outcome).")
        regulation = serializers.ChoiceField(choices=Regulation.choices)
        facts = serializers.ListField(
            child=StrictCharField(max_length=MAX_TEXT),
            min_length=1,
            max_length=MAX_FACTS,
            help_text=f"The personal facts the model must stop revealing: 1 to {MAX_FACTS}, each 1 to {MAX_TEXT} characters.",
        )
        evidence_prompts = serializers.ListField(
            child=StrictCharField(max_length=MAX_TEXT),
            max_length=MAX_EVIDENCE_PROMPTS,
            required=False,
            default=list,
            help_text=f"Prompts that made the model reveal the data: 0 to {MAX_EVIDENCE_PROMPTS}, each 1 to {MAX_TEXT} characters.",
        )

    @extend_schema(
        operation_id="requests_create",
        tags=[REQUEST_TAG],
        summary="File an erasure request (API client with scope `create`)",
        description=(
            "Creates the request and answers **202 Accepted** with its representation and a `Location` header "
            "naming its status resource: the rest happens asynchronously (verification, review, unlearning).\n\n"
            "Clients with the `trusted_identity` scope have verified the subject themselves: the request starts "
            "`verified`. For the others it starts `submitted` and the subject is emailed a six-digit code.\n\n"
            "A retry with the same `Idempotency-Key` and body answers 202 again with the same request, whatever "
            "its status is now, and the header `Idempotent-Replayed: true`."
        ),
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={
            202: OpenApiResponse(RequestRepresentationSerializer, description="Accepted (or replayed: see `Idempotent-Replayed`)."),
            **problem_responses(
                400,
                401,
                403,
                409,
                413,
                415,
                descriptions={409: "`idempotency_key_reused`: this Idempotency-Key was already used with a different body."},
                examples={
                    409: [
                        OpenApiExample(
                            "idempotency_key_reused",
                            value=problem_example(409, "idempotency_key_reused", "Conflict", "This Idempotency-Key was already used with a different body."),
                            media_type=PROBLEM,
                            status_codes=["409"],
                            response_only=True,
                        )
                    ]
                },
            ),
        },
        examples=[
            OpenApiExample(
                "GDPR request",
                value={
                    "subject_name": "Alice Example",
                    "subject_email": "alice@example.org",
                    "regulation": "gdpr",
                    "facts": ["Alice Example lives in Utrecht", "Alice Example's phone number is +31 6 1234 5678"],
                    "evidence_prompts": ["Where does Alice Example live?"],
                },
                request_only=True,
            ),
            OpenApiExample("Accepted", value=EXAMPLE_REQUEST, response_only=True, status_codes=["202"]),
        ],
    )
    def post(self, request):
        actor = actor_for_request(request)
        actor.require_scope(Scope.CREATE)  # before reading the body: a client without the scope learns that first
        idempotency_key = _idempotency_key(request)
        data = _create_input_plainly_valid(request.data)
        if data is None:  # something to refuse (or to look at closer): the serializer says what
            serializer = RequestCreateApi.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        erasure, created = services.request_create_api(
            actor=actor,
            idempotency_key=idempotency_key,
            name=data["subject_name"],
            email=data["subject_email"],
            regulation=data["regulation"],
            facts=data["facts"],
            evidence_prompts=data["evidence_prompts"],
            client=getattr(request, "api_client", None),  # loaded by ApiKeyAuthentication
        )
        headers = {"Location": _detail_url(request, erasure)}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        context = {"request": request, "actor": actor}
        if created and not settings.FORGET["AUTO_APPROVE"]:
            # Created by this very call and not approved: no unlearning job can exist yet (jobs are
            # created when an approved request is enqueued), so the representation skips that
            # query, a fifth of the intake's CPU (docs/bench-intake.md).
            context["_latest_jobs"] = {erasure.pk: None}
        body = RequestRepresentationSerializer(erasure, context=context).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


_CREATE_FIELDS = frozenset(("subject_name", "subject_email", "regulation", "facts", "evidence_prompts"))
_CREATE_REQUIRED = _CREATE_FIELDS - {"evidence_prompts"}
_REGULATIONS = frozenset(Regulation.values)
_EMAIL = EmailValidator()


def _create_input_plainly_valid(data) -> dict | None:
    """RequestCreateApi.InputSerializer's validated_data for a body it accepts as it stands, or None
    for any other (the serializer then runs, and refuses or accepts it itself).

    The serializer's field objects (copied and bound per request) and its generic validation were
    an eighth of the intake request's CPU (docs/bench-intake.md); this applies the same rules to the
    usual body directly: the same fields and no others, strings that are str (DRF trims them, refuses
    blank, NUL, surrogates and over-long ones), the same email validator, an exact regulation, lists of
    1 to MAX_FACTS facts and at most MAX_EVIDENCE_PROMPTS prompts. Whatever it accepts the serializer
    accepts with the same result; tests/service/requests/test_create_input.py checks that on generated bodies."""
    if type(data) is not dict or not (_CREATE_REQUIRED <= data.keys() <= _CREATE_FIELDS):
        return None
    name, email, regulation = _plain_text(data["subject_name"], MAX_NAME), _plain_text(data["subject_email"], MAX_EMAIL), data["regulation"]
    facts = _plain_texts(data["facts"], MAX_TEXT, 1, MAX_FACTS)
    prompts = _plain_texts(data.get("evidence_prompts", []), MAX_TEXT, 0, MAX_EVIDENCE_PROMPTS)
    if name is None or email is None or facts is None or prompts is None or type(regulation) is not str or regulation not in _REGULATIONS:
        return None
    try:
        _EMAIL(email)
    except DjangoValidationError:
        return None
    return {"subject_name": name, "subject_email": email, "regulation": regulation, "facts": facts, "evidence_prompts": prompts}


def _plain_text(value, max_length: int) -> str | None:
    """A CharField's value (trimmed) if DRF would take it without a word, else None."""
    if type(value) is not str:
        return None
    value = value.strip()
    if not value or len(value) > max_length or "\x00" in value:
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")  # fails exactly on surrogate code points, which DRF refuses
        except UnicodeEncodeError:
            return None
    return value


def _plain_texts(values, max_length: int, least: int, most: int) -> list[str] | None:
    if type(values) is not list or not least <= len(values) <= most:
        return None
    texts = [_plain_text(value, max_length) for value in values]
    return None if None in texts else texts


def _idempotency_key(request) -> str:
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return ""
    if not _IDEMPOTENCY_KEY.fullmatch(raw):
        message = "Idempotency-Key must be 1 to 128 printable ASCII characters, without leading or trailing spaces."
        raise ApplicationError(message, code="bad_header", extra={"errors": [{"field": "Idempotency-Key", "message": message, "code": "invalid"}]})
    return raw


class RequestListApi(APIView):
    pagination_class = PageNumberPagination

    class FilterSerializer(StrictSerializer):
        status = StatusListField(statuses=Status.values, required=False, help_text="One status or several, comma-separated: `verified,approved`.")
        regulation = serializers.ChoiceField(choices=Regulation.choices, required=False)
        overdue = serializers.BooleanField(required=False, default=False, help_text="Only open requests past their deadline.")
        due_within_days = serializers.IntegerField(
            required=False, min_value=0, max_value=3650, help_text="Only open requests due within this many days (overdue ones included)."
        )
        page = serializers.IntegerField(required=False, min_value=1, help_text="Page number, from 1.")
        page_size = serializers.IntegerField(
            required=False, min_value=1, max_value=PageNumberPagination.max_page_size, help_text="Results per page (default 50)."
        )

    @extend_schema(
        operation_id="requests_list",
        tags=[REQUEST_TAG],
        summary="List requests (clients: their own, scope `read`; staff: all)",
        description="Most urgent first (earliest deadline). Paginated: `count`, `next`, `previous`, `results`. A page past the last one is 404.",
        parameters=[FilterSerializer],
        responses={200: RequestRepresentationSerializer(many=True), **problem_responses(400, 401, 403, 404, descriptions={404: "`not_found`: no such page."})},
        examples=[OpenApiExample("One request", value=EXAMPLE_REQUEST, response_only=True, status_codes=["200"])],
    )
    def get(self, request):
        actor = actor_for_request(request)
        filters = RequestListApi.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        requests = selectors.request_list(
            actor=actor,
            filters=selectors.RequestFilters(
                status=data.get("status", ""),
                regulation=data.get("regulation", ""),
                overdue=data["overdue"],
                due_within_days=data.get("due_within_days"),
            ),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(requests, request, view=self)
        context = {"request": request, "actor": actor}
        return paginator.get_paginated_response(RequestRepresentationSerializer(page, many=True, context=context).data)


class RequestCollectionApi(RequestListApi, RequestCreateApi):
    """`/api/v1/requests`: GET lists (RequestListApi), POST creates (RequestCreateApi)."""


class RequestDetailApi(APIView):
    @extend_schema(
        operation_id="requests_retrieve",
        tags=[REQUEST_TAG],
        summary="Read one request (the status resource)",
        description="API clients (scope `read`) see only their own requests: another client's id answers 404, exactly like an absent one.",
        responses={200: RequestRepresentationSerializer, **problem_responses(401, 403, 404)},
        examples=[OpenApiExample("Submitted", value=EXAMPLE_REQUEST, response_only=True, status_codes=["200"])],
    )
    def get(self, request, request_id):
        actor = actor_for_request(request)
        return Response(_represent(request, selectors.request_get(actor=actor, request_id=request_id), actor=actor))


class RequestCancelApi(RequestActionApi):
    class InputSerializer(StrictSerializer):
        reason = _reason_field(required=False, help_text="Optional; sent to the subject.")

    @extend_schema(
        operation_id="requests_cancel",
        tags=[REQUEST_TAG],
        summary="Cancel a request (API client with scope `create`: its own; reviewer: any)",
        description="The subject is emailed. Allowed until the request is staged; a closed or active request answers 409 `invalid_transition`.",
        request=InputSerializer,
        responses={200: RequestRepresentationSerializer, **problem_responses(400, 401, 403, 404, 409, 415)},
        examples=[OpenApiExample("With a reason", value={"reason": "The subject withdrew the request."}, request_only=True)],
    )
    def post(self, request, request_id):
        return self.act(request, request_id=request_id)

    def allow(self, actor: Actor) -> None:
        """Reviewers cancel any request; an API client needs the `create` scope (and only its own
        requests, which the service checks)."""
        if actor.kind == "api_client":
            actor.require_scope(Scope.CREATE)
        else:
            actor.require(Capability.REVIEW)

    def perform(self, *, actor: Actor, data: dict, request_id) -> ErasureRequest:
        return services.request_cancel(actor=actor, request_id=request_id, reason=data["reason"])


# --- reviewers (session login; auditors read only) ------------------------------------------------

_STAFF_NOTE = "Staff only: a logged-in reviewer or admin (session cookie; writes need the `X-CSRFToken` header). Auditors and API clients are refused with 403."


class RequestApproveApi(RequestActionApi):
    @extend_schema(
        operation_id="requests_approve",
        tags=[REVIEW_TAG],
        summary="Approve a verified request",
        description=_STAFF_NOTE + " Takes no body (or `{}`).",
        request=None,
        responses={200: RequestRepresentationSerializer, **problem_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, request_id):
        return self.act(request, request_id=request_id)

    def perform(self, *, actor: Actor, data: dict, request_id) -> ErasureRequest:
        return services.request_approve(actor=actor, request_id=request_id)


class RequestRejectApi(RequestActionApi):
    class InputSerializer(StrictSerializer):
        reason = _reason_field(required=True, help_text="Required; sent to the subject.")

    @extend_schema(
        operation_id="requests_reject",
        tags=[REVIEW_TAG],
        summary="Reject a verified request (reason required; the subject is emailed)",
        description=_STAFF_NOTE,
        request=InputSerializer,
        responses={200: RequestRepresentationSerializer, **problem_responses(400, 401, 403, 404, 409, 415)},
        examples=[OpenApiExample("Reason", value={"reason": "The facts are not about the requester."}, request_only=True)],
    )
    def post(self, request, request_id):
        return self.act(request, request_id=request_id)

    def perform(self, *, actor: Actor, data: dict, request_id) -> ErasureRequest:
        return services.request_reject(actor=actor, request_id=request_id, reason=data["reason"])


class RequestExtendDeadlineApi(RequestActionApi):
    class InputSerializer(StrictSerializer):
        reason = _reason_field(required=True, help_text="Required; recorded in the audit log.")

    @extend_schema(
        operation_id="requests_extend_deadline",
        tags=[REVIEW_TAG],
        summary="Extend the legal deadline once (GDPR: +2 months; CCPA: +45 days)",
        description=_STAFF_NOTE + " A second extension answers 409 `already_extended`.",
        request=InputSerializer,
        responses={
            200: RequestRepresentationSerializer,
            **problem_responses(400, 401, 403, 404, 409, 415, descriptions={409: "`already_extended`, or `invalid_transition` for a closed request."}),
        },
        examples=[OpenApiExample("Reason", value={"reason": "Complex request: the data appears in several corpora."}, request_only=True)],
    )
    def post(self, request, request_id):
        return self.act(request, request_id=request_id)

    def perform(self, *, actor: Actor, data: dict, request_id) -> ErasureRequest:
        return services.request_extend_deadline(actor=actor, request_id=request_id, reason=data["reason"])


_BULK_IDS = {
    "type": "array",
    "items": {"type": "string", "format": "uuid"},
    "minItems": 1,
    "maxItems": MAX_BULK_IDS,
    "description": f"1 to {MAX_BULK_IDS} request ids.",
}
# The rule InputSerializer.validate enforces, in the schema: approve takes an optional reason,
# reject requires one that holds more than whitespace.
BULK_DECIDE_BODY = {
    "oneOf": [
        {
            "type": "object",
            "title": "approve",
            "additionalProperties": False,
            "required": ["ids", "decision"],
            "properties": {
                "ids": _BULK_IDS,
                "decision": {"type": "string", "enum": ["approve"]},
                "reason": {"type": "string", "maxLength": MAX_REASON, "pattern": NO_NUL_TEXT},
            },
        },
        {
            "type": "object",
            "title": "reject",
            "additionalProperties": False,
            "required": ["ids", "decision", "reason"],
            "properties": {
                "ids": _BULK_IDS,
                "decision": {"type": "string", "enum": ["reject"]},
                "reason": {"type": "string", "maxLength": MAX_REASON, "pattern": NON_BLANK_TEXT, "description": "Required; sent to each subject."},
            },
        },
    ]
}


class RequestsBulkDecideApi(APIView):
    class InputSerializer(StrictSerializer):
        ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=MAX_BULK_IDS, help_text=f"1 to {MAX_BULK_IDS} request ids.")
        decision = serializers.ChoiceField(choices=[("approve", "approve"), ("reject", "reject")])
        reason = _reason_field(required=False, help_text="Required for `reject`; sent to each subject.")

        def validate(self, data):
            if data["decision"] == "reject" and not data["reason"].strip():
                raise serializers.ValidationError({"reason": ["A reason is required to reject requests."]}, code="required")
            return data

    class OutputSerializer(serializers.Serializer):
        done = serializers.ListField(child=serializers.CharField(), help_text="References of the requests decided.")
        failed = serializers.ListField(child=serializers.CharField(), help_text="`<id>: <why>` for each request that could not be decided.")

    @extend_schema(
        operation_id="requests_bulk_decide",
        tags=[REVIEW_TAG],
        summary="Approve or reject many requests",
        description=_STAFF_NOTE
        + (
            " Each request is decided on its own: one that cannot be (wrong status, unknown id) is listed under `failed` and does not stop the others. "
            "`reject` needs a `reason` with more than spaces in it."
        ),
        request={"application/json": BULK_DECIDE_BODY},
        responses={200: OutputSerializer, **problem_responses(400, 401, 403, 415)},
        examples=[
            OpenApiExample(
                "Reject two",
                value={"ids": [EXAMPLE_ID, "9d2c7a4b-1e0f-4b8a-9c6d-2f3e4a5b6c7d"], "decision": "reject", "reason": "Duplicate of an earlier request."},
                request_only=True,
            ),
            OpenApiExample(
                "Outcome",
                value={"done": ["RTBF-7K3M9Q"], "failed": ["9d2c7a4b-1e0f-4b8a-9c6d-2f3e4a5b6c7d: No such request."]},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request):
        actor = actor_for_request(request)
        actor.require(Capability.REVIEW)  # permission before validation: 403 whatever the body
        serializer = RequestsBulkDecideApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        outcome = services.requests_bulk_decide(actor=actor, request_ids=data["ids"], decision=data["decision"], reason=data["reason"])
        return Response(RequestsBulkDecideApi.OutputSerializer(outcome).data)
