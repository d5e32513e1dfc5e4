"""Staff pages of the pipeline (mounted at /staff/ beside the request pages)."""

from django.urls import path

from . import views

urlpatterns = [
    path("requests/<uuid:request_id>/retry/", views.request_retry, name="staff-request-retry"),
    path("requests/<uuid:request_id>/override/", views.request_override, name="staff-request-override"),
]
