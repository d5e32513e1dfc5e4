"""Issuing signed certificates: each download is signed now, with the service's current key, and
audited (`certificate.downloaded`, with the payload's hash and the key id)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from service.accounts.roles import Actor
from service.audit.services import audit_record
from service.common.errors import NotFound
from service.common.hashing import sha256_hex
from service.requests.selectors import request_get
from service.unlearning.selectors import forget_set_of, latest_certificate_job

from . import documents, signing
from .selectors import certificate_view, deadline_compliance


class CertificateFormat(str, enum.Enum):
    JSON = "json"
    HTML = "html"


CONTENT_TYPES = {CertificateFormat.JSON: "application/json", CertificateFormat.HTML: "text/html; charset=utf-8"}


@dataclass(frozen=True)
class IssuedCertificate:
    content: bytes
    content_type: str
    filename: str
    document: dict
    key_id: str


def certificate_issue(*, actor: Actor, request_id, document_format: CertificateFormat) -> IssuedCertificate:
    """The signed certificate of the request's newest evaluated attempt, as a file. Whoever may
    read the request may have it (staff, the request's own API client with `read`); 404
    `no_certificate` until an attempt was evaluated."""
    erasure = request_get(actor=actor, request_id=request_id)
    job = latest_certificate_job(erasure)
    if job is None:
        raise NotFound(f"Request {erasure.reference} has no certificate yet.", code="no_certificate")
    key = signing.service_signing_key()
    payload = documents.certificate_payload(
        erasure=erasure,
        certificate=certificate_view(job),
        compliance=deadline_compliance(erasure),
        forget_set=forget_set_of(erasure),
        issued_at=timezone.now(),
    )
    document = signing.sign_payload(payload, key)
    document_format = CertificateFormat(document_format)
    content = documents.json_file(document) if document_format == CertificateFormat.JSON else documents.html_file(document, key)
    key_id = document["signature"]["key_id"]
    with transaction.atomic():
        audit_record(
            action="certificate.downloaded",
            actor=actor,
            target_type="request",
            target_id=erasure.reference,
            data={
                "format": document_format.value,
                "attempt": job.attempt,
                "unit_id": job.unit_id,
                "key_id": key_id,
                "payload_sha256": sha256_hex(signing.canonical_bytes(payload)),
            },
        )
    return IssuedCertificate(
        content=content,
        content_type=CONTENT_TYPES[document_format],
        filename=f"{erasure.reference}-certificate-attempt-{job.attempt}.{document_format.value}",
        document=document,
        key_id=key_id,
    )
