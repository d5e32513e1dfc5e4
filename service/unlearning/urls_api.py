"""REST API routes of the pipeline (mounted at /api/v1/, beside the requests' routes)."""

from django.urls import path

from . import api

urlpatterns = [
    path("requests/<uuid:request_id>/certificate", api.RequestCertificateApi.as_view(), name="api-request-certificate"),
    path("requests/<uuid:request_id>/retry", api.RequestRetryApi.as_view(), name="api-request-retry"),
    path("requests/<uuid:request_id>/override", api.RequestOverrideApi.as_view(), name="api-request-override"),
]
