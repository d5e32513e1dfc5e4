"""Report pages (mounted at /reports/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.reports_index, name="reports"),
    path("requests.csv", views.reports_csv, name="reports-csv"),
]
