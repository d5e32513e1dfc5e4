"""REST API v1 routes (mounted at /api/v1/). No trailing slashes; ids are UUIDs, so a malformed id
never reaches a view: the URL resolver answers 404 problem+json (service.common.views.not_found)."""

from django.urls import path

from . import api

urlpatterns = [
    path("requests", api.RequestCollectionApi.as_view(), name="api-requests"),
    path("requests/bulk-decide", api.RequestsBulkDecideApi.as_view(), name="api-requests-bulk-decide"),
    path("requests/<uuid:request_id>", api.RequestDetailApi.as_view(), name="api-request-detail"),
    path("requests/<uuid:request_id>/cancel", api.RequestCancelApi.as_view(), name="api-request-cancel"),
    path("requests/<uuid:request_id>/approve", api.RequestApproveApi.as_view(), name="api-request-approve"),
    path("requests/<uuid:request_id>/reject", api.RequestRejectApi.as_view(), name="api-request-reject"),
    path("requests/<uuid:request_id>/extend-deadline", api.RequestExtendDeadlineApi.as_view(), name="api-request-extend-deadline"),
]
