"""REST API routes of the signed certificates (mounted at /api/v1/)."""

from django.urls import path

from . import api

urlpatterns = [
    path("requests/<uuid:request_id>/certificate/signed", api.RequestSignedCertificateApi.as_view(), name="api-request-certificate-signed"),
    path("certificates/public-key", api.CertificatePublicKeyApi.as_view(), name="api-certificate-public-key"),
]
