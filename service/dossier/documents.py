"""Signed certificate documents: the payload, the JSON and the printable HTML file, and reading
either file back for verification (docs/dossier.md).

The payload holds no personal data: the request's reference and dates, the units and their
digests, the forget set's hash, the rules and the metrics. The HTML file embeds the signed JSON
document (<script type="application/json" id="certificate">) and is itself signed: its
<meta name="certificate-html-signature"> carries the signature of the file's bytes with that
attribute empty, so editing what a reader sees breaks it too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.template.loader import render_to_string

from service.requests.models import ErasureRequest
from service.unlearning.models import FrozenForgetSet

from . import signing
from .selectors import CertificateView, DeadlineCompliance, in_set_order

PAYLOAD_FORMAT = "forget-service/signed-certificate"
PAYLOAD_VERSION = 1
ISSUER = "forget-service"

HTML_SIGNATURE_EMPTY = '<meta name="certificate-html-signature" content="">'
_HTML_SIGNATURE = re.compile(r'<meta name="certificate-html-signature" content="([A-Za-z0-9+/=]*)">')
_EMBEDDED_JSON = re.compile(r'<script\b[^>]*\bid="certificate"[^>]*>(.*?)</script>', re.S)


def _truth_ratio_summary(truth: dict[str, Any] | None) -> dict[str, Any] | None:
    """Counts, means, medians and the KS test; not the per-probe values."""
    if not truth:
        return None
    summary = {name: {k: v for k, v in group.items() if k != "values"} for name, group in truth.items() if isinstance(group, dict) and name != "ks_F_vs_O"}
    if "ks_F_vs_O" in truth:
        summary["ks_F_vs_O"] = truth["ks_F_vs_O"]
    return summary


def certificate_payload(
    *, erasure: ErasureRequest, certificate: CertificateView, compliance: DeadlineCompliance, forget_set: FrozenForgetSet | None, issued_at: datetime
) -> dict[str, Any]:
    """What is signed: everything an auditor needs to check the erasure, no personal data."""
    cert = certificate.job.certificate or {}
    certified = next((unit for unit in certificate.units if unit.certified), None)
    gate = cert.get("gate") or {}
    return {
        "format": PAYLOAD_FORMAT,
        "version": PAYLOAD_VERSION,
        "issuer": ISSUER,
        "issued_at": issued_at.isoformat(timespec="seconds"),
        "request": {
            "id": str(erasure.pk),
            "reference": erasure.reference,
            "regulation": erasure.regulation,
            "channel": erasure.channel,
            "status": erasure.status,
        },
        "deadline": compliance.as_payload(),
        "attempt": certificate.job.attempt,
        "unit_id": certified.unit_id if certified else (certificate.job.unit_id or None),
        "units": [unit.as_payload() for unit in certificate.units],
        "forget_set_hash": (forget_set.content_hash if forget_set else "") or (certified.forget_set_hash if certified else ""),
        "base_model": {key: cert.get("base", {}).get(key) for key in ("fingerprint", "name", "model_type")},
        "passed": certificate.passed,
        "verdict": certificate.verdict,
        "rules": certificate.rules,
        "thresholds": certificate.thresholds,
        "metrics": {
            "probes": certificate.probe_sizes,
            "leak": in_set_order(cert.get("leak")),
            "retain": in_set_order(cert.get("retain")),
            "gate": {key: gate[key] for key in ("union", "per_unit", "above_half_by_set") if key in gate},
            "membership": cert.get("membership") or {},
            "truth_ratio": _truth_ratio_summary(cert.get("truth_ratio")),
        },
        "evaluated": {
            "started_at": certificate.started_at,
            "finished_at": certificate.finished_at,
            "certificate_format": cert.get("format"),
            "certificate_version": cert.get("version"),
        },
    }


def json_file(document: dict[str, Any]) -> bytes:
    """The signed document as a file: indented for people; verification re-canonicalises the payload."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def html_file(document: dict[str, Any], private_key: Ed25519PrivateKey) -> bytes:
    """The printable certificate: the signed JSON embedded, the page itself signed (module doc)."""
    payload = document["payload"]
    html = render_to_string("dossier/certificate_document.html", {"document": document, "payload": payload, "signature": document["signature"]})
    if html.count(HTML_SIGNATURE_EMPTY) != 1:
        raise RuntimeError("the certificate template must hold exactly one empty certificate-html-signature meta tag")
    unsigned = html.encode("utf-8")
    value = signing.sign_bytes(unsigned, private_key)
    return html.replace(HTML_SIGNATURE_EMPTY, HTML_SIGNATURE_EMPTY.replace('content=""', f'content="{value}"')).encode("utf-8")


# --- reading a file back -------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedFile:
    kind: str  # "json" | "html"
    reference: str
    key_id: str
    passed: bool | None
    issued_at: str | None
    unit_id: str | None


def verify_file(content: bytes, trusted_key: Ed25519PublicKey) -> VerifiedFile:
    """Checks a downloaded certificate, JSON or HTML, against `trusted_key`; InvalidDocument (one
    line) when it is unreadable, altered or signed by another key."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise signing.InvalidDocument("not a certificate file: the content is not UTF-8 text") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        kind, document = "json", _load_json(text, where="the file")
    elif _EMBEDDED_JSON.search(text):
        kind, document = "html", _html_document(text, trusted_key)
    else:
        raise signing.InvalidDocument("not a certificate file: neither a signed JSON document nor an HTML certificate with an embedded one")
    verified = signing.verify_document(document, trusted_key)
    payload = verified.payload
    if payload.get("format") != PAYLOAD_FORMAT:
        raise signing.InvalidDocument(f"signed, but not a certificate payload (format {payload.get('format')!r})")
    return VerifiedFile(
        kind=kind,
        reference=str((payload.get("request") or {}).get("reference", "?")),
        key_id=verified.key_id,
        passed=payload.get("passed"),
        issued_at=payload.get("issued_at"),
        unit_id=payload.get("unit_id"),
    )


def _load_json(text: str, *, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise signing.InvalidDocument(f"{where} is not valid JSON ({exc})") from None


def _html_document(text: str, trusted_key: Ed25519PublicKey) -> Any:
    signatures = _HTML_SIGNATURE.findall(text)
    if len(signatures) != 1 or not signatures[0]:
        raise signing.InvalidDocument("the HTML certificate carries no page signature (certificate-html-signature)")
    unsigned = _HTML_SIGNATURE.sub(HTML_SIGNATURE_EMPTY, text, count=1)
    embedded = _EMBEDDED_JSON.findall(text)
    if len(embedded) != 1:
        raise signing.InvalidDocument("the HTML certificate must embed exactly one signed JSON document")
    document = _load_json(embedded[0], where="the embedded certificate")
    # The embedded document first: its error names the key that signed it, if that is the issue.
    signing.verify_document(document, trusted_key)
    if not signing.bytes_signed_by(unsigned.encode("utf-8"), signatures[0], trusted_key):
        raise signing.InvalidDocument("the HTML page was altered: its signature does not match what it shows")
    return document
