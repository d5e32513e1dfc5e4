"""Status webhook routes (mounted at /api/v1/webhooks/)."""

from django.urls import path

from . import api

urlpatterns = [
    path("endpoints", api.EndpointCollectionApi.as_view(), name="api-webhook-endpoints"),
    path("endpoints/<uuid:endpoint_id>", api.EndpointDetailApi.as_view(), name="api-webhook-endpoint"),
    path("endpoints/<uuid:endpoint_id>/deliveries", api.EndpointDeliveriesApi.as_view(), name="api-webhook-endpoint-deliveries"),
    path("deliveries/<str:delivery_id>", api.DeliveryDetailApi.as_view(), name="api-webhook-delivery"),
    path("deliveries/<str:delivery_id>/replay", api.DeliveryReplayApi.as_view(), name="api-webhook-delivery-replay"),
]
