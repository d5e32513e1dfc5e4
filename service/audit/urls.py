from django.urls import path

from . import views

urlpatterns = [
    path("", views.audit_log, name="audit-log"),
    path("export.csv", views.audit_export_csv, name="audit-export"),
    path("export.json", views.audit_export_json, name="audit-export-json"),
]
