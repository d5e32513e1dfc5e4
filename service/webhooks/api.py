"""REST API of the status webhooks (/api/v1/webhooks/...): an API client (scope `read`) registers
endpoints for the events it wants, reads every delivery with its attempts, and replays one.
Thin classes: parse, call one service or selector, render (docs/api.md, "Status webhooks")."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from service.accounts.action_api import ActionApi
from service.accounts.roles import Actor, Scope, actor_for_request
from service.common.pagination import PageNumberPagination
from service.common.schema import problem_responses
from service.common.serializers import StrictCharField, StrictSerializer

from . import selectors, services
from .events import EVENT_TYPES
from .models import WebhookDelivery

TAG = "webhooks"
_CLIENTS = "API clients with the `read` scope, for their own requests; staff are refused (admins use the Django admin)."


class EndpointSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField()
    description = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES))
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    disabled_at = serializers.DateTimeField(allow_null=True)


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret (whsec_...): shown this once, keep it; only its encrypted form is stored.")


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    attempted_at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True, help_text="Null when no answer came (timeout, connection refused).")
    latency_ms = serializers.IntegerField()
    error = serializers.CharField()
    replay = serializers.BooleanField()


class DeliverySerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The message id, sent as `webhook-id`.")
    endpoint = serializers.UUIDField(source="endpoint_id")
    event_type = serializers.CharField()
    status = serializers.CharField()
    attempt_count = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    payload = serializers.JSONField(help_text="The body sent (no personal data).")
    attempts = AttemptSerializer(many=True, source="attempts.all")
    links = serializers.SerializerMethodField()

    def get_links(self, delivery: WebhookDelivery) -> dict[str, str]:
        request = self.context["request"]
        url = request.build_absolute_uri(reverse("api-webhook-delivery", kwargs={"delivery_id": delivery.pk}))
        return {"self": url, "replay": f"{url}/replay"}


EXAMPLE_PAYLOAD = {
    "type": "request.active",
    "timestamp": "2026-11-23T10:20:41Z",
    "data": {
        "id": "3b0f6d4e-8a51-4c36-9a3e-5c1d2b7e9f10",
        "reference": "RTBF-7K3M9Q",
        "status": "active",
        "previous_status": "staged",
        "regulation": "gdpr",
        "received_at": "2026-11-23T10:15:00Z",
        "deadline_at": "2026-12-23T10:15:00Z",
        "changed_at": "2026-11-23T10:20:41Z",
        "effective_at": "2026-11-23T10:20:41Z",
        "links": {
            "self": "https://forget.example/api/v1/requests/3b0f6d4e-8a51-4c36-9a3e-5c1d2b7e9f10",
            "certificate": "https://forget.example/api/v1/requests/3b0f6d4e-8a51-4c36-9a3e-5c1d2b7e9f10/certificate/signed",
        },
    },
}


class EndpointCollectionApi(APIView):
    pagination_class = PageNumberPagination

    class InputSerializer(StrictSerializer):
        url = serializers.URLField(max_length=2000, help_text="An http(s) URL that answers 2xx to a POST.")
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=EVENT_TYPES), min_length=1, max_length=len(EVENT_TYPES), help_text="The event types to receive."
        )
        description = StrictCharField(max_length=200, required=False, allow_blank=True, default="")

    @extend_schema(
        operation_id="webhook_endpoints_list",
        tags=[TAG],
        summary="List your webhook endpoints",
        description=_CLIENTS,
        responses={200: EndpointSerializer(many=True), **problem_responses(401, 403)},
    )
    def get(self, request):
        endpoints = selectors.webhook_endpoint_list(actor=actor_for_request(request))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(endpoints, request, view=self)
        return paginator.get_paginated_response(EndpointSerializer(page, many=True).data)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        tags=[TAG],
        summary="Register a webhook endpoint (its signing secret is shown once)",
        description=_CLIENTS + " Events are POSTed signed per the Standard Webhooks specification; see docs/api.md for verification.",
        request=InputSerializer,
        responses={201: EndpointCreatedSerializer, **problem_responses(400, 401, 403, 409, 415)},
        examples=[
            OpenApiExample(
                "Active and failed", value={"url": "https://product.example/hooks/forget", "events": ["request.active", "request.failed"]}, request_only=True
            ),
            OpenApiExample("A delivery's body", value=EXAMPLE_PAYLOAD, response_only=True, status_codes=["200"]),
        ],
    )
    def post(self, request):
        actor = actor_for_request(request)
        actor.require_scope(Scope.READ)  # before the body: staff (admins use the Django admin) and clients without the scope learn that first
        serializer = EndpointCollectionApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint, secret = services.webhook_endpoint_create(actor=actor, url=data["url"], events=data["events"], description=data["description"])
        body = {**EndpointSerializer(endpoint).data, "secret": secret}
        location = request.build_absolute_uri(reverse("api-webhook-endpoint", kwargs={"endpoint_id": endpoint.pk}))
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class EndpointDetailApi(APIView):
    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        tags=[TAG],
        summary="Read a webhook endpoint",
        description=_CLIENTS,
        responses={200: EndpointSerializer, **problem_responses(401, 403, 404)},
    )
    def get(self, request, endpoint_id):
        return Response(EndpointSerializer(selectors.webhook_endpoint_get(actor=actor_for_request(request), endpoint_id=endpoint_id)).data)

    @extend_schema(
        operation_id="webhook_endpoints_disable",
        tags=[TAG],
        summary="Disable a webhook endpoint (no more deliveries; the history stays)",
        description=_CLIENTS,
        responses={200: EndpointSerializer, **problem_responses(401, 403, 404)},
    )
    def delete(self, request, endpoint_id):
        actor = actor_for_request(request)
        actor.require_scope(Scope.READ)  # the API is the clients'; admins disable in the Django admin
        return Response(EndpointSerializer(services.webhook_endpoint_disable(actor=actor, endpoint_id=endpoint_id)).data)


class EndpointDeliveriesApi(APIView):
    pagination_class = PageNumberPagination

    @extend_schema(
        operation_id="webhook_deliveries_list",
        tags=[TAG],
        summary="The deliveries to an endpoint, newest first, each with every attempt",
        description=_CLIENTS,
        responses={200: DeliverySerializer(many=True), **problem_responses(401, 403, 404)},
    )
    def get(self, request, endpoint_id):
        deliveries = selectors.webhook_delivery_list(actor=actor_for_request(request), endpoint_id=endpoint_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True, context={"request": request}).data)


class DeliveryDetailApi(APIView):
    @extend_schema(
        operation_id="webhook_deliveries_retrieve",
        tags=[TAG],
        summary="One delivery with its attempts (status code, latency)",
        description=_CLIENTS,
        responses={200: DeliverySerializer, **problem_responses(401, 403, 404)},
    )
    def get(self, request, delivery_id):
        delivery = selectors.webhook_delivery_get(actor=actor_for_request(request), delivery_id=delivery_id)
        return Response(DeliverySerializer(delivery, context={"request": request}).data)


class DeliveryReplayApi(ActionApi):
    accepted = True

    @extend_schema(
        operation_id="webhook_deliveries_replay",
        tags=[TAG],
        summary="Send a delivery again (same webhook-id, fresh retry schedule)",
        description=_CLIENTS + " Answers 202 with the delivery; the attempt follows within seconds.",
        request=None,
        responses={202: DeliverySerializer, **problem_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, delivery_id):
        return self.act(request, delivery_id=delivery_id)

    def allow(self, actor: Actor) -> None:
        actor.require_scope(Scope.READ)  # the API is the clients'; admins replay in the Django admin

    def perform(self, *, actor: Actor, data: dict, delivery_id) -> WebhookDelivery:
        return services.webhook_delivery_replay(actor=actor, delivery_id=delivery_id)

    def represent(self, request, actor: Actor, result: WebhookDelivery) -> dict:
        return DeliverySerializer(selectors.webhook_delivery_get(actor=actor, delivery_id=result.pk), context={"request": request}).data

    def location(self, request, result: WebhookDelivery) -> str:
        return request.build_absolute_uri(reverse("api-webhook-delivery", kwargs={"delivery_id": result.pk}))
