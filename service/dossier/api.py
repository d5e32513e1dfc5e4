"""REST API of the signed certificates (mounted at /api/v1/): a request's signed certificate, and the
service's public key that verifies it. One class per operation, errors as problem+json."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from service.accounts.roles import actor_for_request
from service.common.schema import problem_responses

from . import services, signing
from .services import CertificateFormat


class SignatureSerializer(serializers.Serializer):
    alg = serializers.CharField(help_text="Always `Ed25519`.")
    key_id = serializers.CharField(help_text="SHA-256 (hex) of the raw 32-byte public key that signed it.")
    public_key = serializers.CharField(
        help_text="That public key, base64 of its raw 32 bytes. Verify with the key you trust (GET /api/v1/certificates/public-key), not with this one."
    )
    value = serializers.CharField(help_text="Base64 Ed25519 signature of the canonical JSON of `payload` (sorted keys, no whitespace, UTF-8).")


class SignedCertificateSerializer(serializers.Serializer):
    payload = serializers.DictField(
        help_text=(
            "The request's reference and dates, deadline compliance, the units with their adapter and detector "
            "digests, the forget set's hash, the rules with thresholds and the metrics. No personal data."
        )
    )
    signature = SignatureSerializer()


class RequestSignedCertificateApi(APIView):
    @extend_schema(
        operation_id="requests_certificate_signed",
        tags=["requests"],
        summary="The request's erasure certificate, signed (Ed25519)",
        description=(
            "Whoever may read the request (its API client with scope `read`, staff). Signed now with the "
            "service's key, audited as `certificate.downloaded`. Check it offline with "
            "`manage.py certificate_verify FILE --public-key KEY` (docs/dossier.md). 404 `no_certificate` "
            "until an attempt has been evaluated."
        ),
        responses={200: SignedCertificateSerializer, **problem_responses(401, 403, 404)},
    )
    def get(self, request, request_id):
        issued = services.certificate_issue(actor=actor_for_request(request), request_id=request_id, document_format=CertificateFormat.JSON)
        return Response(issued.document, headers={"Content-Disposition": f'inline; filename="{issued.filename}"'})


class PemRenderer(BaseRenderer):
    media_type = "application/x-pem-file"
    format = "pem"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode("utf-8")
        return json.dumps(data).encode("utf-8")  # a problem body (405, ...): the handler set its content type


class CertificatePublicKeyApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [PemRenderer]

    def perform_content_negotiation(self, request, force=False):
        return PemRenderer(), PemRenderer.media_type  # one representation, whatever Accept says

    @extend_schema(
        operation_id="certificates_public_key",
        tags=["requests"],
        summary="The public key that verifies signed certificates (PEM)",
        description="Public, no credentials. The `X-Key-Id` header is its key id (SHA-256 of the raw key), as in a certificate's signature.",
        auth=[],
        responses={(200, "application/x-pem-file"): OpenApiResponse(OpenApiTypes.STR, description="A PEM SubjectPublicKeyInfo (Ed25519).")},
    )
    def get(self, request):
        public_key = signing.service_public_key()
        return Response(signing.public_key_pem(public_key), headers={"X-Key-Id": signing.key_id(public_key), "Cache-Control": "public, max-age=300"})
