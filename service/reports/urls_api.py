"""Reports API routes (mounted at /api/v1/reports/). No trailing slashes, like the rest of /api/v1/."""

from django.urls import path

from . import api

urlpatterns = [
    path("requests", api.RequestReportApi.as_view(), name="api-reports-requests"),
]
