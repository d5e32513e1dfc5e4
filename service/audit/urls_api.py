"""Audit log API routes (mounted at /api/v1/audit/). Read-only: there is no route that changes an event."""

from django.urls import path

from . import api

urlpatterns = [
    path("events", api.AuditEventListApi.as_view(), name="api-audit-events"),
]
