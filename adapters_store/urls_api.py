"""Registry API routes (mounted at /api/v1/registry/). No trailing slashes, like the rest of /api/v1/."""

from django.urls import path

from . import api

urlpatterns = [
    path("units", api.UnitListApi.as_view(), name="api-registry-units"),
    path("units/<str:unit_id>", api.UnitDetailApi.as_view(), name="api-registry-unit"),
    path("units/<str:unit_id>/activate", api.UnitActivateApi.as_view(), name="api-registry-unit-activate"),
    path("units/<str:unit_id>/deactivate", api.UnitDeactivateApi.as_view(), name="api-registry-unit-deactivate"),
    path("units/<str:unit_id>/revoke", api.UnitRevokeApi.as_view(), name="api-registry-unit-revoke"),
    path("requests/<uuid:request_id>/rollback", api.RequestRollbackApi.as_view(), name="api-registry-request-rollback"),
    path("live", api.LiveApi.as_view(), name="api-registry-live"),
    path("history", api.HistoryApi.as_view(), name="api-registry-history"),
]
