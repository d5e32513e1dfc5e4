"""Writes on the adapter registry. The pipeline, the gateway, the API, the pages and the commands
all call these.

Every change of what is live (activate, deactivate, roll back, revoke) goes through `_change`: it
takes the registry generation's row lock, bumps the generation, moves the version with a
compare-and-set guarded by the transition table, and appends its activation event and audit row,
all in one transaction. So changes are serialised, the generation a gateway sees always matches a
complete set of changes, and a lost race is refused, never half-applied.

A unit's digests are checked before anything else happens to it: at registration (before it is
stored) and before a gateway loads it (adapter_verify_stored). A mismatch is refused, written to
the audit log as `adapter.integrity_failed` and logged as an alert on the `adapters_store.alerts`
logger; a tampered unit is never registered and never handed to a gateway.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from service.accounts.roles import SYSTEM, Actor, Capability
from service.audit.services import audit_record
from service.common.errors import ApplicationError, Conflict, InvalidTransition, NotFound, PermissionDenied
from service.common.reasons import require_reason
from service.requests.models import ErasureRequest
from service.requests.services import request_mark_pipeline, request_roll_back
from service.requests.states import TERMINAL, Status
from workers.engine.unit_manifest import Manifest, UnitCompatibilityError, UnitIntegrityError, list_files, verify_unit

from .models import ActivationEvent, AdapterVersion, GatewayReport, RegistryGeneration
from .orthogonality import orthogonality_record, untrained_against
from .states import ACTION_TARGET, EventAction, VersionStatus, sources_for
from .storage import UnitNotStored, check_unit_id, get_storage, storage_for_uri

logger = logging.getLogger(__name__)
# Route this logger to the operator's alerting (LOGGING in settings): every record on it is a unit
# whose bytes do not match what was registered.
alerts = logging.getLogger("adapters_store.alerts")

MAX_GATEWAY_ID = 128


# --- helpers -------------------------------------------------------------------------------------


def _get(version_id) -> AdapterVersion:
    if isinstance(version_id, AdapterVersion):
        version_id = version_id.pk
    try:
        return AdapterVersion.objects.select_related("request").get(pk=version_id)
    except (AdapterVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such unit version.") from None


def _resolve_request(request) -> ErasureRequest | None:
    if request is None or isinstance(request, ErasureRequest):
        return request
    found = ErasureRequest.objects.filter(reference=str(request).strip().upper()).first()
    if found is None:
        try:
            found = ErasureRequest.objects.filter(pk=request).first()
        except (ValidationError, ValueError, TypeError):
            found = None
    if found is None:
        raise NotFound(f"No request {request}.")
    return found


def _bump_generation() -> int:
    """Locks the generation row until the transaction ends and returns the next value (written)."""
    RegistryGeneration.objects.bulk_create([RegistryGeneration(pk=1, value=0)], ignore_conflicts=True)
    current = RegistryGeneration.objects.select_for_update().values_list("value", flat=True).get(pk=1)
    RegistryGeneration.objects.filter(pk=1).update(value=current + 1, changed_at=timezone.now())
    return current + 1


def adapter_integrity_failed(
    *, unit_id: str, error: UnitIntegrityError, problem: str, stage: str, location: str, actor: Actor = SYSTEM, gateway_id: str = ""
) -> None:
    """A unit's bytes do not match the registry: audited as `adapter.integrity_failed` (in its own
    transaction: it must outlive the refusal) and alerted on the registry's alert channel. Used by
    the registry's own checks and by the gateway (`gateway_id`) when a verified copy changed before
    it was loaded."""
    data = {"file": error.path or "(unit)", "problem": problem, "stage": stage, "location": location}
    if gateway_id:
        data["gateway_id"] = gateway_id
    with transaction.atomic():
        audit_record(action="adapter.integrity_failed", actor=actor, target_type="adapter", target_id=unit_id[:64], data=data)
    where = f"{stage} on gateway {gateway_id}" if gateway_id else stage
    alerts.error("ALERT: unit %s failed its integrity check at %s (%s): %s", unit_id, where, location, problem)


def _change(
    version: AdapterVersion, action: EventAction, *, actor: Actor, reason: str = "", data: dict[str, Any] | None = None, generation: int | None = None
) -> ActivationEvent:
    """Compare-and-set `version` to the status `action` leads to, with its event and audit row.

    Must run inside a transaction; bumps the generation unless the caller already did (`generation`).
    """
    target = ACTION_TARGET[action]
    if generation is None:
        generation = _bump_generation()
    sources = sources_for(target)
    updated = AdapterVersion.objects.filter(pk=version.pk, status__in=[s.value for s in sources]).update(status=target.value)
    if not updated:
        current = AdapterVersion.objects.filter(pk=version.pk).values_list("status", flat=True).first()
        raise InvalidTransition(
            f"Unit {version.unit_id} is {current or 'gone'}; it cannot become {target.value}.",
            extra={"current_status": current, "requested_status": target.value},
        )
    event = ActivationEvent.objects.create(
        version=version, action=action.value, reason=reason, actor_label=actor.label[:150], at=timezone.now(), generation=generation
    )
    audit_record(
        action=f"adapter.{action.value}",
        actor=actor,
        target_type="adapter",
        target_id=version.unit_id,
        data={
            "from": version.status,
            "reason": reason,
            "generation": generation,
            "request": version.request.reference if version.request_id else None,
            **(data or {}),
        },
    )
    version.status = target.value
    return event


# --- registration --------------------------------------------------------------------------------


def _require_registrar(actor: Actor) -> None:
    """The pipeline (the system) registers units; of people, only admins (the command line)."""
    if actor.kind != "system":
        actor.require(Capability.ADMINISTER)


def adapter_register(
    *, unit_dir: str | Path, actor: Actor, request=None, certificate_metrics: dict[str, Any] | None = None, certificate_passed: bool = False
) -> AdapterVersion:
    """Verifies every digest of the unit in `unit_dir`, stores it, and records it as a candidate.

    `request` is the ErasureRequest (or its id or reference) the unit serves; None for a unit
    registered from the command line. A unit whose files do not match its manifest is refused
    (UnitIntegrityError, audited as `adapter.integrity_failed` and alerted) and neither stored nor
    recorded. With FORGET['AUTO_ACTIVATE'] and a passed certificate, the unit is activated in the
    same transaction.

    Idempotent: registering the same unit again (a redelivered task) returns the version recorded
    the first time; another unit with an id already taken is refused (409 `unit_already_registered`).
    """
    _require_registrar(actor)
    erasure = _resolve_request(request)
    source = Path(unit_dir)
    if not source.is_dir():
        raise ApplicationError(f"No unit directory at {source}.", code="unit_not_found", status=422)
    with tempfile.TemporaryDirectory(prefix="register-") as scratch:
        # Verify a snapshot and store that snapshot: the bytes stored are the bytes verified, even
        # if someone writes to `unit_dir` meanwhile.
        snapshot = Path(scratch) / "unit"
        snapshot.mkdir()
        try:
            for relative in list_files(source):
                (snapshot / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / relative, snapshot / relative, follow_symlinks=False)
            manifest = verify_unit(snapshot)
        except UnitIntegrityError as exc:
            message = str(exc).replace(str(snapshot), str(source))
            problem = message.removeprefix(f"{source}: ")
            adapter_integrity_failed(actor=actor, unit_id=source.name, error=exc, problem=problem, stage="register", location=str(source))
            raise UnitIntegrityError(message, path=exc.path) from exc
        except UnitCompatibilityError as exc:
            raise ApplicationError(str(exc).replace(str(snapshot), str(source)), code="unit_incompatible", status=422) from exc
        try:
            unit_id = check_unit_id(manifest.unit_id)
        except ValueError as exc:
            raise ApplicationError(str(exc), code="invalid_unit_id", status=422) from None
        if manifest.adapter_digest is None:
            raise ApplicationError(f"Unit {unit_id} has no adapter weights file.", code="unit_incomplete", status=422)

        existing = _registered(unit_id, manifest, erasure)
        if existing is not None:
            return existing
        uri = get_storage().put_unit(snapshot, unit_id)
    try:
        with transaction.atomic():
            return _record_version(
                manifest=manifest, erasure=erasure, uri=uri, actor=actor, certificate_metrics=certificate_metrics or {}, certificate_passed=certificate_passed
            )
    except IntegrityError:
        # A concurrent registration of the same unit won: answer with its version.
        existing = _registered(unit_id, manifest, erasure)
        if existing is None:
            raise
        return existing


def _registered(unit_id: str, manifest: Manifest, erasure: ErasureRequest | None) -> AdapterVersion | None:
    existing = AdapterVersion.objects.filter(unit_id=unit_id).select_related("request").first()
    if existing is None:
        return None
    if existing.manifest_sha256 != manifest.digest or existing.request_id != (erasure.pk if erasure else None):
        raise Conflict(f"Another unit with the id {unit_id} is already registered.", code="unit_already_registered")
    return existing


def _record_version(
    *, manifest: Manifest, erasure: ErasureRequest | None, uri: str, actor: Actor, certificate_metrics: dict, certificate_passed: bool
) -> AdapterVersion:
    number = 1
    if erasure is not None:
        ErasureRequest.objects.select_for_update().filter(pk=erasure.pk).values_list("pk").first()  # one registration per request at a time
        number = (AdapterVersion.objects.filter(request=erasure).aggregate(top=Max("version"))["top"] or 0) + 1
    version = AdapterVersion.objects.create(
        unit_id=manifest.unit_id,
        request=erasure,
        version=number,
        base_fingerprint=manifest.base_fingerprint or "",
        adapter_sha256=manifest.adapter_digest,
        detector_sha256=manifest.detector_digest or "",
        manifest_sha256=manifest.digest,
        forget_set_hash=manifest.forget_set_hash or "",
        storage_uri=uri,
        training_config=manifest.config or {},
        library_versions=manifest.library_versions or {},
        certificate_metrics=certificate_metrics,
        certificate_passed=bool(certificate_passed),
        orthogonality=orthogonality_record(manifest.extra),
    )
    audit_record(
        action="adapter.registered",
        actor=actor,
        target_type="adapter",
        target_id=version.unit_id,
        data={
            "request": erasure.reference if erasure else None,
            "version": number,
            "adapter_sha256": version.adapter_sha256,
            "detector_sha256": version.detector_sha256,
            "manifest_sha256": version.manifest_sha256,
            "base_fingerprint": version.base_fingerprint,
            "storage_uri": uri,
            "certificate_passed": version.certificate_passed,
        },
    )
    if settings.FORGET["AUTO_ACTIVATE"] and version.certificate_passed and not _request_closed(version):
        _activate(version, actor=SYSTEM, reason="automatic: the certificate passed", data={"policy": "auto_activate"})
    return version


# --- activation history --------------------------------------------------------------------------


def _request_closed(version: AdapterVersion) -> bool:
    return version.request_id is not None and Status(version.request.status) in TERMINAL


def _activate(version: AdapterVersion, *, actor: Actor, reason: str = "", data: dict[str, Any] | None = None) -> ActivationEvent:
    """Activates `version`, first deactivating the request's live version if another one is live."""
    unseen = untrained_against(version, AdapterVersion.objects.filter(status=VersionStatus.ACTIVE).order_by("created_at", "id"))
    if unseen:  # live units its adapter and certificate never saw: on record, for the auditors
        data = {**(data or {}), "untrained_against": unseen}
    generation = _bump_generation()
    if version.request_id is not None:
        live = (
            AdapterVersion.objects.filter(request_id=version.request_id, status=VersionStatus.ACTIVE).exclude(pk=version.pk).select_related("request").first()
        )
        if live is not None:
            _change(live, EventAction.DEACTIVATED, actor=actor, reason=f"superseded by {version.unit_id}", generation=generation)
    return _change(version, EventAction.ACTIVATED, actor=actor, reason=reason, data=data, generation=generation)


def adapter_activate(*, version_id, actor: Actor) -> AdapterVersion:
    """Makes a candidate (or inactive) unit live. Reviewers and admins.

    Refused when the certificate did not pass (409 `certificate_not_passed`), when the request is
    closed (409 `request_closed`), and, where policy wants two people (FORGET['AUTO_ACTIVATE'] off),
    when the activating user approved the request themselves (403 `second_approver_required`).
    A request has one live unit: activating a newer version deactivates the older one.
    """
    actor.require(Capability.REVIEW)
    with transaction.atomic():
        version = _get(version_id)
        if not version.certificate_passed and not version.certificate_override:
            raise Conflict(f"Unit {version.unit_id} did not pass its certificate; it cannot be activated.", code="certificate_not_passed")
        if _request_closed(version):
            raise Conflict(f"Request {version.request.reference} is {version.request.status}; its units cannot be activated.", code="request_closed")
        two_people = not settings.FORGET["AUTO_ACTIVATE"]
        if two_people and version.request_id is not None and actor.user_pk is not None and version.request.decided_by_id == actor.user_pk:
            raise PermissionDenied(
                f"You approved {version.request.reference}; by policy another reviewer activates its unit.",
                code="second_approver_required",
            )
        _activate(version, actor=actor, data={"policy": "second_approval" if two_people else "manual"})
    return version


def adapter_override_certificate(*, version_id, actor: Actor, reason: str) -> AdapterVersion:
    """A second approver accepts a unit whose certificate did not pass (FAIL or INCONCLUSIVE after
    the worker's remediation): the reason is required and audited, the approver of the request may
    not do it (403 `second_approver_required`), and the request goes needs_review -> staged; the
    unit is then activated as a passing one would be (FORGET['AUTO_ACTIVATE'])."""
    actor.require(Capability.REVIEW)
    reason = require_reason(reason, "override a certificate")
    with transaction.atomic():
        version = _get(version_id)
        erasure = version.request
        if version.certificate_passed:
            raise Conflict(f"Unit {version.unit_id} passed its certificate; there is nothing to override.", code="certificate_passed")
        if erasure is None or erasure.status != Status.NEEDS_REVIEW:
            raise Conflict(f"Unit {version.unit_id}'s request is not waiting for review; only such a unit can be overridden.", code="not_in_review")
        if actor.user_pk is not None and erasure.decided_by_id == actor.user_pk:
            raise PermissionDenied(f"You approved {erasure.reference}; another reviewer must override its certificate.", code="second_approver_required")
        version.certificate_override = {"by": actor.label, "reason": reason, "at": timezone.now().isoformat()}
        version.save(update_fields=["certificate_override"])
        audit_record(
            action="adapter.certificate_overridden",
            actor=actor,
            target_type="adapter",
            target_id=version.unit_id,
            data={"reason": reason, "request": erasure.reference},
        )
        request_mark_pipeline(request_id=erasure.pk, to=Status.STAGED, actor=actor, data={"unit_id": version.unit_id, "override": True})
        if settings.FORGET["AUTO_ACTIVATE"]:
            _activate(version, actor=actor, reason="certificate overridden", data={"policy": "override"})
    return version


def adapter_deactivate(*, version_id, actor: Actor, reason: str) -> AdapterVersion:
    """Takes a live unit off the gateway (it may be activated again). Reason required."""
    actor.require(Capability.REVIEW)
    reason = require_reason(reason, "deactivate a unit")
    with transaction.atomic():
        version = _get(version_id)
        _change(version, EventAction.DEACTIVATED, actor=actor, reason=reason)
    return version


def adapter_revoke(*, version_id, actor: Actor, reason: str) -> AdapterVersion:
    """Retires a unit for good (live or not): it is never served again. Reason required."""
    actor.require(Capability.REVIEW)
    reason = require_reason(reason, "revoke a unit")
    with transaction.atomic():
        version = _get(version_id)
        _change(version, EventAction.REVOKED, actor=actor, reason=reason)
    return version


def adapter_rollback(*, request_id, actor: Actor, reason: str) -> AdapterVersion:
    """Undoes a request's erasure: its live unit is deactivated (event `rolled_back`) and an `active`
    request becomes `rolled_back`, in one transaction. Reason required."""
    actor.require(Capability.REVIEW)
    reason = require_reason(reason, "roll back a request")
    with transaction.atomic():
        erasure = _resolve_request(request_id)
        version = AdapterVersion.objects.filter(request=erasure, status=VersionStatus.ACTIVE).select_related("request").first()
        if version is None:
            raise Conflict(f"Request {erasure.reference} has no live unit to roll back.", code="nothing_live")
        _change(version, EventAction.ROLLED_BACK, actor=actor, reason=reason)
        if erasure.status == Status.ACTIVE:
            request_roll_back(actor=actor, request_id=erasure.pk, reason=reason)
    return version


# --- the gateway's side --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedUnit:
    version: AdapterVersion
    manifest: Manifest
    path: Path | None  # the verified local copy; None when no dest_dir was given (checked, then removed)


def adapter_verify_stored(*, version, dest_dir: str | Path | None = None, actor: Actor = SYSTEM) -> VerifiedUnit:
    """Fetches the stored unit and re-hashes it against the digests recorded at registration.

    The gateway calls this before loading a unit, with `dest_dir` (a new directory) where the
    verified copy is left for it to load; without `dest_dir` the unit is checked in a temporary
    directory. A mismatch (or a unit gone from storage) raises UnitIntegrityError, is audited as
    `adapter.integrity_failed` and alerted, and no copy is left behind. Call it outside a
    transaction, so that the audit event is committed whatever the caller does next.
    """
    version = _get(version)
    storage = storage_for_uri(version.storage_uri)
    scratch = None
    if dest_dir is None:
        scratch = tempfile.mkdtemp(prefix="verify-")
        target = Path(scratch) / version.unit_id
    else:
        target = Path(dest_dir)
    try:
        try:
            path = storage.fetch_unit(version.storage_uri, target)
        except UnitNotStored as exc:
            raise UnitIntegrityError(f"unit is missing from storage ({version.storage_uri})") from exc
        manifest = verify_unit(path, expected_manifest_digest=version.manifest_sha256)
        recorded = {
            "unit id": (manifest.unit_id, version.unit_id),
            "adapter digest": (manifest.adapter_digest, version.adapter_sha256),
            "detector digest": (manifest.detector_digest or "", version.detector_sha256),
            "base-model fingerprint": (manifest.base_fingerprint or "", version.base_fingerprint),
        }
        for what, (found, registered) in recorded.items():
            if found != registered:
                raise UnitIntegrityError(f"{path}: the manifest's {what} differs from the registered one", path="manifest.json")
    except UnitIntegrityError as exc:
        shutil.rmtree(target, ignore_errors=True)
        problem = str(exc).removeprefix(f"{target}: ")
        adapter_integrity_failed(actor=actor, unit_id=version.unit_id, error=exc, problem=problem, stage="load", location=version.storage_uri)
        raise
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return VerifiedUnit(version, manifest, None if scratch is not None else path)


def gateway_report_loaded(*, gateway_id: str, generation: int, unit_ids: list[str], actor: Actor = SYSTEM) -> GatewayReport:
    """Records that a gateway has loaded `unit_ids` at registry `generation` and serves them now.

    Report after every (re)load. A report identical to the gateway's previous one (same generation
    and units) is not recorded again: the previous one is returned.
    """
    gateway_id = (gateway_id or "").strip()
    if not gateway_id or len(gateway_id) > MAX_GATEWAY_ID:
        raise ApplicationError(f"A gateway id is 1 to {MAX_GATEWAY_ID} characters.", code="invalid_gateway_id")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise ApplicationError("The generation is a whole number, 0 or more.", code="invalid_generation")
    loaded = sorted(set(unit_ids))
    if not all(isinstance(unit_id, str) for unit_id in loaded):
        raise ApplicationError("Unit ids are strings.", code="invalid_unit_id")
    with transaction.atomic():
        previous = GatewayReport.objects.filter(gateway_id=gateway_id).order_by("-at", "-id").first()
        if previous is not None and previous.generation == generation and sorted(previous.unit_ids) == loaded:
            return previous
        report = GatewayReport.objects.create(gateway_id=gateway_id, generation=generation, unit_ids=loaded, at=timezone.now())
        audit_record(
            action="gateway.loaded",
            actor=actor,
            target_type="gateway",
            target_id=gateway_id[:64],
            data={"count": len(loaded), "generation": generation, "unit_ids": loaded},
        )
    return report
