"""A request that went the whole way (approved, forget set frozen, unit trained, certified, registered,
active), fabricated without training: the certificate is a real one from the tiny demo model
(certificate_sample.json, made by workers.engine.certificate.evaluate_units; its answer table
trimmed to a few rows), the unit ids rewritten to this request's. Shared by the dossier tests, the
role matrix and the browser test."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from adapters_store.models import AdapterVersion
from service.accounts.roles import SYSTEM, Actor
from service.audit.services import audit_record
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api
from service.unlearning.models import FrozenForgetSet, UnlearningJob

SAMPLE = Path(__file__).with_name("certificate_sample.json")
PERSON = "Viggo Vasquez"  # a fictitious person of the demo world; the sample's answers are about him
CITY = "Glimmerton"
EARLIER_UNIT = "rtbf-earlier-a1"

_keys = itertools.count()


def sample_certificate(*, certified_unit: str, with_histogram: bool = True) -> dict:
    """The sample certificate (personal_data included, as the worker hands it over)."""
    text = SAMPLE.read_text(encoding="utf-8").replace('"req-2"', json.dumps(certified_unit)).replace('"req-1"', json.dumps(EARLIER_UNIT))
    certificate = json.loads(text)
    if not with_histogram:  # a certificate made before the evaluation recorded the histogram
        del certificate["gate"]["score_histogram"]
    return certificate


def certified_request(*, owner: Actor, approver: Actor, with_histogram: bool = True, received_days_ago: int = 12, effective: bool = True) -> ErasureRequest:
    """A GDPR request filed by `owner` (an API client's actor), approved by `approver`, with its
    forget set, a succeeded attempt with the sample certificate, and its unit registered and live."""
    request, _ = request_create_api(
        actor=owner,
        idempotency_key=f"dossier-{next(_keys)}",
        name=PERSON,
        email="viggo@example.org",
        regulation="gdpr",
        facts=[f"{PERSON} lives in {CITY}"],
        evidence_prompts=[f"Which city does {PERSON} live in?"],
    )
    return certify(request, approver=approver, with_histogram=with_histogram, received_days_ago=received_days_ago, effective=effective)


def certify(request: ErasureRequest, *, approver: Actor, with_histogram: bool = True, received_days_ago: int = 12, effective: bool = True) -> ErasureRequest:
    """Takes an existing request the whole way (see the module doc)."""
    now = timezone.now()
    received = now - timedelta(days=received_days_ago)
    unit_id = f"{request.reference.lower()}-a1"
    certificate = sample_certificate(certified_unit=unit_id, with_histogram=with_histogram)
    record = certificate["units"][-1]

    ErasureRequest.objects.filter(pk=request.pk).update(
        received_at=received,
        verified_at=received,
        deadline_at=received + timedelta(days=31),
        status="active" if effective else "staged",
        decided_at=received + timedelta(days=1),
        decided_by_id=approver.user_pk,
        effective_at=received + timedelta(days=3) if effective else None,
    )
    FrozenForgetSet.objects.create(
        request=request,
        items=[{"question": f"Which city does {PERSON} live in?", "answer": CITY, "source": "facts"}],
        subjects={"people": [PERSON]},
        content_hash=record["forget_set_hash"],
        sources={"facts": 1, "evidence_prompts": 1, "corpus_documents": 0, "probe_questions": 8},
        findings={"in_model": True, "prompts_checked": 2, "answers_revealing_data": 2, "corpus_documents": 0},
        frozen_at=received + timedelta(days=1),
        retain_until=now + timedelta(days=27) if effective else None,
    )
    UnlearningJob.objects.create(
        request=request,
        attempt=1,
        status="succeeded",
        phase="done",
        percent=100.0,
        unit_id=unit_id,
        worker="gpu-1:42",
        deliveries=1,
        started_at=received + timedelta(days=1),
        finished_at=received + timedelta(days=2),
        certificate={k: v for k, v in certificate.items() if k != "personal_data"},
        certificate_personal=certificate["personal_data"],
        certificate_passed=certificate["passed"],
    )
    AdapterVersion.objects.create(
        unit_id=unit_id,
        request=request,
        version=1,
        status="active" if effective else "candidate",
        base_fingerprint=record["base_fingerprint"],
        adapter_sha256=record["adapter_sha256"],
        detector_sha256=record["detector_sha256"],
        manifest_sha256=record["manifest_sha256"],
        forget_set_hash=record["forget_set_hash"],
        storage_uri=f"file:///data/adapters/{unit_id}",
        certificate_passed=certificate["passed"],
    )
    # The audit rows the pipeline would have written on the way (through the real audit service).
    ref = request.reference
    audit_record(action="request.approved", actor=approver, target_type="request", target_id=ref)
    audit_record(action="forget_set.frozen", actor=SYSTEM, target_type="request", target_id=ref, data={"items": 10, "content_hash": record["forget_set_hash"]})
    audit_record(action="unlearning.job_succeeded", actor=SYSTEM, target_type="request", target_id=ref, data={"attempt": 1, "unit_id": unit_id})
    audit_record(action="adapter.registered", actor=SYSTEM, target_type="adapter", target_id=unit_id, data={"request": ref})
    if effective:
        audit_record(
            action="adapter.activated",
            actor=SYSTEM,
            target_type="adapter",
            target_id=unit_id,
            data={"request": ref, "reason": "certificate passed (auto-activate)"},
        )
        audit_record(action="request.active", actor=SYSTEM, target_type="request", target_id=ref)
    return ErasureRequest.objects.get(pk=request.pk)
