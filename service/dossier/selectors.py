"""Reads behind a request's dossier: deadline compliance, the forget set's retention, the units with
their digests, the certificate (rules, metrics, score histogram), the before/after answers (masked
unless revealed) and the timeline of the request and its units.

Every entry point takes the actor and checks, through request_get, that it may see the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

from django.utils import timezone

from adapters_store.models import AdapterVersion
from service.accounts.roles import Actor, Capability
from service.audit.models import AuditEvent
from service.audit.selectors import events_for_target
from service.requests.deadlines import legal_deadline
from service.requests.models import ErasureRequest
from service.requests.selectors import request_get
from service.requests.states import Status
from service.unlearning.models import FrozenForgetSet, UnlearningJob
from service.unlearning.selectors import forget_set_of, latest_certificate_job, probe_answers

# Probe sets whose before/after answers the dossier shows: the request's own facts in the trained
# phrasings (F), in held-out paraphrases (P) and padded with unrelated text (D).
ANSWER_SETS = ("F", "P", "statement", "open", "language", "name_forms", "wrapper", "chat", "D")
ANSWERS_PER_SET = 5  # the dossier's before/after table: this many rows per family (any that still leak first)
SET_LABELS = {
    "F": "trained phrasings",
    "P": "held-out paraphrases",
    "statement": "statements to complete",
    "open": "open requests",
    "language": "other languages",
    "name_forms": "misspelt and shortened names",
    "wrapper": "role-play and override wrappers",
    "chat": "multi-turn chats",
    "D": "padded prompts",
    "F<t": "earlier requests",
    "R": "other people",
    "N": "hard neighbours",
    "W": "general facts",
    "O": "holdout people",
}
MODES = (("gated", "served (gated)"), ("on", "adapter forced on"), ("off", "base model"))
_DAY = 86400.0


# --- deadline compliance -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadlineCompliance:
    """When the request was answered against its legal deadline.

    completed_at is the effective erasure time (the gateway confirmed the unit live), or for a
    request refused or withdrawn the time of that decision; None while it is still open.
    """

    received_at: datetime
    acknowledged_at: datetime | None  # the subject's identity confirmed (email code, or a trusted API client)
    decided_at: datetime | None
    effective_at: datetime | None
    legal_deadline_at: datetime  # the regulation's limit from receipt
    deadline_at: datetime  # the limit in force (extended once, with a reason, or not)
    extended: bool
    extension_reason: str
    completed_at: datetime | None
    outcome: str
    days_used: float
    limit_days: float
    verdict: str  # "on time" | "late" | "in progress" | "overdue" | "not applicable"

    @property
    def share_used(self) -> float:
        return self.days_used / self.limit_days if self.limit_days else 0.0

    def as_payload(self) -> dict[str, Any]:
        iso = lambda moment: moment.isoformat(timespec="seconds") if moment else None  # noqa: E731
        return {
            "received_at": iso(self.received_at),
            "acknowledged_at": iso(self.acknowledged_at),
            "decided_at": iso(self.decided_at),
            "effective_at": iso(self.effective_at),
            "legal_deadline_at": iso(self.legal_deadline_at),
            "deadline_at": iso(self.deadline_at),
            "deadline_extended": self.extended,
            "completed_at": iso(self.completed_at),
            "outcome": self.outcome,
            "days_used": self.days_used,
            "limit_days": self.limit_days,
            "verdict": self.verdict,
        }


def deadline_compliance(erasure: ErasureRequest, *, now: datetime | None = None) -> DeadlineCompliance:
    now = now or timezone.now()
    status = Status(erasure.status)
    if erasure.effective_at is not None:  # active, or active once and rolled back since
        completed, outcome = erasure.effective_at, "erased" if status == Status.ACTIVE else f"erased, then {status.label.lower()}"
    elif status in (Status.REJECTED, Status.CANCELLED):
        completed, outcome = erasure.decided_at, status.label.lower()
    elif status == Status.EXPIRED:
        completed, outcome = None, "expired (the subject never confirmed the request)"
    else:
        completed, outcome = None, "open"
    limit_days = round((erasure.deadline_at - erasure.received_at).total_seconds() / _DAY, 1)
    days_used = round(((completed or now) - erasure.received_at).total_seconds() / _DAY, 1)
    if status == Status.EXPIRED:
        verdict = "not applicable"
    elif completed is not None:
        verdict = "on time" if completed <= erasure.deadline_at else "late"
    else:
        verdict = "overdue" if now > erasure.deadline_at else "in progress"
    return DeadlineCompliance(
        received_at=erasure.received_at,
        acknowledged_at=erasure.verified_at,
        decided_at=erasure.decided_at,
        effective_at=erasure.effective_at,
        legal_deadline_at=legal_deadline(erasure.regulation, erasure.received_at),
        deadline_at=erasure.deadline_at,
        extended=erasure.deadline_extended,
        extension_reason=erasure.extension_reason,
        completed_at=completed,
        outcome=outcome,
        days_used=days_used,
        limit_days=limit_days,
        verdict=verdict,
    )


# --- the certificate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitRecord:
    """A unit the certificate covers, with its digests (from the registry when it is registered)."""

    unit_id: str
    certified: bool
    adapter_sha256: str
    detector_sha256: str
    manifest_sha256: str
    forget_set_hash: str
    base_fingerprint: str
    registry_version: AdapterVersion | None

    def as_payload(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "role": "certified" if self.certified else "active before",
            "registered": self.registry_version is not None,
            "adapter_sha256": self.adapter_sha256,
            "detector_sha256": self.detector_sha256,
            "manifest_sha256": self.manifest_sha256,
            "forget_set_hash": self.forget_set_hash,
            "base_fingerprint": self.base_fingerprint,
        }


def certificate_units(job: UnlearningJob) -> list[UnitRecord]:
    cert = job.certificate or {}
    records = {r.get("unit_id"): r for r in cert.get("units") or [] if isinstance(r, dict)}
    unit_ids = list(cert.get("unit_ids") or records or ([job.unit_id] if job.unit_id else []))
    registered = {v.unit_id: v for v in AdapterVersion.objects.filter(unit_id__in=unit_ids)}
    certified = job.unit_id or (unit_ids[-1] if unit_ids else "")
    units = []
    for unit_id in unit_ids:
        record, version = records.get(unit_id, {}), registered.get(unit_id)
        pick = (lambda name: getattr(version, name) or record.get(name) or "") if version else (lambda name: record.get(name) or "")
        units.append(
            UnitRecord(
                unit_id=unit_id,
                certified=unit_id == certified,
                adapter_sha256=pick("adapter_sha256"),
                detector_sha256=pick("detector_sha256"),
                manifest_sha256=pick("manifest_sha256"),
                forget_set_hash=pick("forget_set_hash"),
                base_fingerprint=pick("base_fingerprint"),
                registry_version=version,
            )
        )
    return units


def in_set_order(section: dict[str, Any] | None) -> dict[str, Any]:
    """A per-probe-set section in the sets' own order (F, P, D, F<t, R, N, W): PostgreSQL's jsonb
    gives keys back in its own order."""
    order = list(SET_LABELS)
    return {name: (section or {})[name] for name in sorted(section or {}, key=lambda name: (order.index(name) if name in order else len(order), name))}


def _rows_per_mode(section: dict[str, Any], value_keys: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for name, per_mode in in_set_order(section).items():
        for mode, label in MODES:
            values = (per_mode or {}).get(mode)
            if values:
                rows.append({"set": name, "set_label": SET_LABELS.get(name, ""), "mode": label, **{key: values.get(key) for key in value_keys}})
    return rows


@dataclass(frozen=True)
class CertificateView:
    job: UnlearningJob
    passed: bool
    verdict: str  # pass | inconclusive | fail
    rules: list[dict[str, Any]]
    thresholds: dict[str, Any]
    leak_rows: list[dict[str, Any]]
    retain_rows: list[dict[str, Any]]
    gate_union: dict[str, Any]
    gate_per_unit: list[dict[str, Any]]
    membership: dict[str, Any]
    truth_ratio: dict[str, Any] | None
    probe_sizes: dict[str, int]
    base: dict[str, Any]
    units: list[UnitRecord]
    score_histogram: dict[str, Any] | None
    started_at: str | None
    finished_at: str | None


def _unit_order(cert: dict[str, Any], per_unit: dict[str, Any]) -> list[str]:
    """Units in the certificate's order (earlier units first, the certified one last)."""
    listed = [uid for uid in cert.get("unit_ids") or [] if uid in per_unit]
    return listed + sorted(uid for uid in per_unit if uid not in listed)


def certificate_view(job: UnlearningJob) -> CertificateView:
    cert = job.certificate or {}
    gate = cert.get("gate") or {}
    membership = cert.get("membership") or {}
    return CertificateView(
        job=job,
        passed=bool(cert.get("passed")),
        verdict=str(cert.get("verdict") or ("pass" if cert.get("passed") else "fail")),
        rules=list(cert.get("rules") or []),
        thresholds=dict(cert.get("thresholds") or {}),
        leak_rows=_rows_per_mode(cert.get("leak"), ("k", "n", "rate", "lower95", "upper95", "probes")),
        retain_rows=_rows_per_mode(cert.get("retain"), ("ratio", "correct", "base_correct", "probes")),
        gate_union=dict(gate.get("union") or {}),
        gate_per_unit=[{"unit_id": uid, **gate["per_unit"][uid]} for uid in _unit_order(cert, gate.get("per_unit") or {})],
        membership={label: membership[label] for label in ("served", "base") if isinstance(membership.get(label), dict)},
        truth_ratio=cert.get("truth_ratio") or None,
        probe_sizes=dict((cert.get("probes") or {}).get("sizes") or {}),
        base=dict(cert.get("base") or {}),
        units=certificate_units(job),
        score_histogram=gate.get("score_histogram") or None,
        started_at=cert.get("started_at"),
        finished_at=cert.get("finished_at"),
    )


def answers(job: UnlearningJob | None, *, revealed: bool) -> list[dict[str, Any]]:
    """The before/after table of the request's own probes; masked unless `revealed`."""
    return probe_answers(job, revealed=revealed, sets=ANSWER_SETS, per_set=ANSWERS_PER_SET)


# --- the forget set ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    forget_set: FrozenForgetSet
    state: str  # "purged" | "scheduled" | "kept until active"

    @property
    def purged(self) -> bool:
        return self.state == "purged"


def retention(forget_set: FrozenForgetSet | None) -> Retention | None:
    if forget_set is None:
        return None
    if forget_set.purged_at is not None:
        return Retention(forget_set, "purged")
    return Retention(forget_set, "scheduled" if forget_set.retain_until else "kept until active")


# --- the timeline --------------------------------------------------------------------------------


def timeline(erasure: ErasureRequest, unit_ids: list[str]) -> list[AuditEvent]:
    """The request's audit events and those of its units (registration, activation, ...), in
    chain order."""
    streams = [events_for_target(target_type="request", target_id=erasure.reference)]
    streams += [events_for_target(target_type="adapter", target_id=unit_id) for unit_id in dict.fromkeys(unit_ids) if unit_id]
    return sorted(chain.from_iterable(streams), key=lambda event: event.seq)


# --- the dossier ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dossier:
    request: ErasureRequest
    compliance: DeadlineCompliance
    retention: Retention | None
    versions: list[AdapterVersion]
    certificate: CertificateView | None
    answers: list[dict[str, Any]]
    answers_purged: bool
    revealed: bool
    timeline: list[AuditEvent] = field(default_factory=list)


def dossier_get(*, actor: Actor, request_id, revealed: bool = False) -> Dossier:
    """Everything the dossier page shows. `revealed` (unmasked answers) needs REVEAL_PERSONAL_DATA:
    the caller has audited the reveal (service.requests.services.request_reveal_personal_data)."""
    actor.require(Capability.READ_ALL_REQUESTS)
    if revealed:
        actor.require(Capability.REVEAL_PERSONAL_DATA)
    erasure = request_get(actor=actor, request_id=request_id)
    job = latest_certificate_job(erasure)
    versions = list(AdapterVersion.objects.filter(request=erasure).order_by("version"))
    unit_ids = [v.unit_id for v in versions] + [j for j in UnlearningJob.objects.filter(request=erasure).values_list("unit_id", flat=True) if j]
    return Dossier(
        request=erasure,
        compliance=deadline_compliance(erasure),
        retention=retention(forget_set_of(erasure)),
        versions=versions,
        certificate=certificate_view(job) if job else None,
        answers=answers(job, revealed=revealed),
        answers_purged=job is not None and not job.certificate_personal,
        revealed=revealed,
        timeline=timeline(erasure, unit_ids),
    )


def score_histogram_of(*, actor: Actor, request_id) -> dict[str, Any] | None:
    """The certified unit's score histogram of the request's newest certificate, if recorded."""
    actor.require(Capability.READ_ALL_REQUESTS)
    job = latest_certificate_job(request_get(actor=actor, request_id=request_id))
    if job is None:
        return None
    return ((job.certificate or {}).get("gate") or {}).get("score_histogram") or None
