"""Staff pages of the dossier (mounted at /staff/ beside the request pages)."""

from django.urls import path

from . import views

urlpatterns = [
    path("requests/<uuid:request_id>/dossier/", views.dossier, name="staff-dossier"),
    path("requests/<uuid:request_id>/dossier/reveal/", views.dossier_reveal, name="staff-dossier-reveal"),
    path("requests/<uuid:request_id>/dossier/scores.png", views.dossier_scores_png, name="staff-dossier-scores"),
    path("requests/<uuid:request_id>/certificate.json", views.certificate_download, {"document_format": "json"}, name="staff-certificate-json"),
    path("requests/<uuid:request_id>/certificate.html", views.certificate_download, {"document_format": "html"}, name="staff-certificate-html"),
]
