"""The registry's services: registration behind digest checks, the activation state machine, the
generation counter, the gateway's pre-load verification and its reports."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import pytest

from adapters_store.models import ActivationEvent, AdapterVersion, GatewayReport
from adapters_store.selectors import active_versions, gateway_report_check, registry_generation
from adapters_store.services import (
    adapter_activate,
    adapter_deactivate,
    adapter_register,
    adapter_revoke,
    adapter_rollback,
    adapter_verify_stored,
    gateway_report_loaded,
)
from adapters_store.storage import FilesystemStorage
from service.accounts.roles import SYSTEM
from service.audit.models import AppendOnlyError, AuditEvent
from service.common.errors import ApplicationError, Conflict, InvalidTransition, PermissionDenied
from service.requests.states import Status
from workers.engine.unit_manifest import UnitIntegrityError, digest_of_files, sha256_file

pytestmark = pytest.mark.django_db


def _flip_a_byte(path) -> None:
    os.chmod(path, 0o644)  # stored files are read-only; an attacker with the rights changes that
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _audit(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- registration ---------------------------------------------------------------------------------


def test_register_records_the_digests_of_the_files_themselves(store, make_unit, erasure):
    request = erasure("evaluating")
    unit = make_unit("rtbf-alice-v1")
    version = adapter_register(unit_dir=unit, actor=SYSTEM, request=request, certificate_passed=True, certificate_metrics={"leak_upper_bound": 0.01})

    assert version.unit_id == "rtbf-alice-v1" and version.request == request and version.version == 1
    assert version.adapter_sha256 == sha256_file(unit / "adapter" / "adapter_model.safetensors")
    assert version.manifest_sha256 == hashlib.sha256((unit / "manifest.json").read_bytes()).hexdigest()
    detector_files = {path: sha256_file(unit / path) for path in ("detector/scorer.npz", "detector/calibration/quantiles.json")}
    assert version.detector_sha256 == digest_of_files(detector_files, "detector")
    manifest = json.loads((unit / "manifest.json").read_text())
    assert version.base_fingerprint == manifest["base_fingerprint"] == "f" * 64
    assert version.training_config == manifest["config"] and version.forget_set_hash == manifest["forget_set_hash"]
    assert version.certificate_metrics == {"leak_upper_bound": 0.01} and version.certificate_passed

    stored = FilesystemStorage.path_for(version.storage_uri)
    assert stored == store / "rtbf-alice-v1"
    assert (stored / "adapter" / "adapter_model.safetensors").read_bytes() == (unit / "adapter" / "adapter_model.safetensors").read_bytes()
    registered = _audit("adapter.registered")[-1]
    assert registered.target_id == "rtbf-alice-v1" and registered.data["adapter_sha256"] == version.adapter_sha256
    assert registered.data["request"] == request.reference


def test_a_detector_change_changes_the_detector_digest(store, make_unit):
    first = adapter_register(unit_dir=make_unit("with-detector"), actor=SYSTEM)
    without = adapter_register(unit_dir=make_unit("without-detector", detector=False), actor=SYSTEM)
    assert len(first.detector_sha256) == 64 and without.detector_sha256 == ""


@pytest.mark.parametrize("path", ["adapter/adapter_model.safetensors", "adapter/adapter_config.json", "detector/scorer.npz"])
def test_a_tampered_unit_is_refused_audited_alerted_and_never_stored(store, make_unit, path, caplog):
    unit = make_unit("tampered")
    _flip_a_byte(unit / path)
    with caplog.at_level(logging.ERROR, logger="adapters_store.alerts"), pytest.raises(UnitIntegrityError, match=path):
        adapter_register(unit_dir=unit, actor=SYSTEM, certificate_passed=True)

    assert not AdapterVersion.objects.exists()
    assert not (store / "tampered").exists()
    [event] = _audit("adapter.integrity_failed")
    assert event.target_id == "tampered" and event.data["file"] == path and event.data["stage"] == "register"
    assert path in event.description and str(unit) == event.data["location"]
    assert any("ALERT" in record.getMessage() and path in record.getMessage() for record in caplog.records)


def test_an_unlisted_file_is_refused(store, make_unit):
    unit = make_unit("smuggled")
    (unit / "detector" / "backdoor.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(UnitIntegrityError, match="detector/backdoor.pkl"):
        adapter_register(unit_dir=unit, actor=SYSTEM)
    assert _audit("adapter.integrity_failed")[0].data["file"] == "detector/backdoor.pkl"
    assert not AdapterVersion.objects.exists()


def test_registering_the_same_unit_again_returns_the_first_version(store, make_unit, erasure):
    request = erasure("evaluating")
    unit = make_unit("redelivered")
    first = adapter_register(unit_dir=unit, actor=SYSTEM, request=request, certificate_passed=True)
    again = adapter_register(unit_dir=unit, actor=SYSTEM, request=request, certificate_passed=True)
    assert again.pk == first.pk and AdapterVersion.objects.count() == 1
    assert len(_audit("adapter.registered")) == 1 and ActivationEvent.objects.count() == 1


def test_another_unit_with_a_taken_id_is_refused(store, make_unit):
    adapter_register(unit_dir=make_unit("same-id"), actor=SYSTEM)
    twin = make_unit("same-id-twin")  # a different unit whose manifest claims the same id
    manifest = json.loads((twin / "manifest.json").read_text())
    manifest["unit_id"] = "same-id"
    (twin / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Conflict) as refused:
        adapter_register(unit_dir=twin, actor=SYSTEM)
    assert refused.value.code == "unit_already_registered" and AdapterVersion.objects.count() == 1


def test_versions_count_per_request(register, erasure):
    request, other = erasure("evaluating"), erasure("evaluating")
    assert [register(request=request).version, register(request=request).version, register(request=other).version] == [1, 2, 1]


def test_only_the_system_or_an_admin_registers(store, make_unit, staff, actor_of):
    with pytest.raises(PermissionDenied):
        adapter_register(unit_dir=make_unit(), actor=actor_of(staff("reviewer")))
    assert adapter_register(unit_dir=make_unit(), actor=actor_of(staff("admin"))).status == "candidate"


def test_a_missing_directory_is_a_clear_refusal(store, tmp_path):
    with pytest.raises(ApplicationError, match="No unit directory") as refused:
        adapter_register(unit_dir=tmp_path / "nothing-here", actor=SYSTEM)
    assert refused.value.code == "unit_not_found" and not _audit("adapter.integrity_failed")


# --- activation policy ----------------------------------------------------------------------------


def test_a_passed_certificate_activates_automatically_by_default(register, erasure):
    before = registry_generation()
    version = register(request=erasure("evaluating"), passed=True)
    assert version.status == "active" and list(active_versions()) == [version]
    assert registry_generation() == before + 1
    [event] = version.events.all()
    assert event.action == "activated" and event.actor_label == "system" and "certificate passed" in event.reason
    assert _audit("adapter.activated")[-1].data["policy"] == "auto_activate"


def test_a_failed_certificate_stays_a_candidate_and_cannot_be_activated(register, staff, actor_of):
    version = register(passed=False)
    assert version.status == "candidate" and registry_generation() == 0
    with pytest.raises(Conflict) as refused:
        adapter_activate(version_id=version.pk, actor=actor_of(staff("reviewer")))
    assert refused.value.code == "certificate_not_passed"
    assert AdapterVersion.objects.get(pk=version.pk).status == "candidate" and registry_generation() == 0


def test_two_person_policy_the_approver_cannot_activate(settings, register, erasure, staff, actor_of):
    settings.FORGET = {**settings.FORGET, "AUTO_ACTIVATE": False}
    approver, second = staff("reviewer"), staff("reviewer")
    version = register(request=erasure("staged", approver=approver), passed=True)
    assert version.status == "candidate"  # no automatic activation under this policy

    with pytest.raises(PermissionDenied) as refused:
        adapter_activate(version_id=version.pk, actor=actor_of(approver))
    assert refused.value.code == "second_approver_required"
    assert AdapterVersion.objects.get(pk=version.pk).status == "candidate"

    activated = adapter_activate(version_id=version.pk, actor=actor_of(second))
    assert activated.status == "active"
    event = _audit("adapter.activated")[-1]
    assert event.actor_label == second.username and event.data["policy"] == "second_approval"


def test_auditors_cannot_change_the_registry(register, staff, actor_of):
    version = register(passed=False)
    auditor = actor_of(staff("auditor"))
    for call in (lambda: adapter_activate(version_id=version.pk, actor=auditor), lambda: adapter_revoke(version_id=version.pk, actor=auditor, reason="x")):
        with pytest.raises(PermissionDenied):
            call()


def test_units_of_a_closed_request_are_not_activated(register, erasure, staff, actor_of):
    request = erasure("cancelled")
    version = register(request=request, passed=True)
    assert version.status == "candidate"
    with pytest.raises(Conflict) as refused:
        adapter_activate(version_id=version.pk, actor=actor_of(staff("reviewer")))
    assert refused.value.code == "request_closed"


# --- transitions ----------------------------------------------------------------------------------


def test_deactivate_reactivate_and_revoke_each_bump_the_generation(register, staff, actor_of):
    reviewer = actor_of(staff("reviewer"))
    version = register(passed=True)
    assert version.status == "active" and registry_generation() == 1

    adapter_deactivate(version_id=version.pk, actor=reviewer, reason="answers unrelated questions badly")
    assert AdapterVersion.objects.get(pk=version.pk).status == "inactive" and registry_generation() == 2
    adapter_activate(version_id=version.pk, actor=reviewer)
    assert registry_generation() == 3
    adapter_revoke(version_id=version.pk, actor=reviewer, reason="trained on the wrong forget set")
    assert AdapterVersion.objects.get(pk=version.pk).status == "revoked" and registry_generation() == 4

    history = [(e.action, e.generation, e.actor_label) for e in version.events.order_by("generation")]
    assert history == [("activated", 1, "system"), ("deactivated", 2, reviewer.label), ("activated", 3, reviewer.label), ("revoked", 4, reviewer.label)]
    assert [e.data["reason"] for e in _audit("adapter.revoked")] == ["trained on the wrong forget set"]


@pytest.mark.parametrize(
    "setup, operation",
    [
        ("candidate", "deactivate"),  # never live: nothing to deactivate
        ("active", "activate"),  # already live
        ("revoked", "activate"),  # revoked is final
        ("revoked", "deactivate"),
        ("revoked", "revoke"),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(register, staff, actor_of, setup, operation):
    reviewer = actor_of(staff("reviewer"))
    version = register(passed=setup != "candidate")  # a passed certificate activates it at once
    if setup == "revoked":
        adapter_revoke(version_id=version.pk, actor=reviewer, reason="setup")
    generation, events = registry_generation(), ActivationEvent.objects.count()
    calls = {
        "activate": lambda: adapter_activate(version_id=version.pk, actor=reviewer),
        "deactivate": lambda: adapter_deactivate(version_id=version.pk, actor=reviewer, reason="test"),
        "revoke": lambda: adapter_revoke(version_id=version.pk, actor=reviewer, reason="test"),
    }
    with pytest.raises(InvalidTransition) as refused:
        calls[operation]()
    assert refused.value.extra["current_status"] == setup
    assert AdapterVersion.objects.get(pk=version.pk).status == setup
    assert registry_generation() == generation and ActivationEvent.objects.count() == events


@pytest.mark.parametrize("reason", ["", "   "])
def test_deactivating_and_revoking_need_a_reason(register, staff, actor_of, reason):
    reviewer = actor_of(staff("reviewer"))
    version = register(passed=True)
    for call in (adapter_deactivate, adapter_revoke):
        with pytest.raises(ApplicationError) as refused:
            call(version_id=version.pk, actor=reviewer, reason=reason)
        assert refused.value.code == "reason_required"
    assert AdapterVersion.objects.get(pk=version.pk).status == "active"


def test_a_new_version_supersedes_the_live_one_of_its_request(register, erasure):
    request = erasure("active")
    first = register(request=request, passed=True)
    second = register(request=request, passed=True)
    assert AdapterVersion.objects.get(pk=first.pk).status == "inactive" and second.status == "active"
    superseded = first.events.order_by("generation").last()
    assert superseded.action == "deactivated" and superseded.reason == f"superseded by {second.unit_id}"
    assert superseded.generation == second.events.get().generation == registry_generation()  # one change, one generation


def test_rollback_deactivates_the_live_unit_and_rolls_the_request_back(register, erasure, staff, actor_of):
    reviewer = actor_of(staff("reviewer"))
    request = erasure("active")
    version = register(request=request, passed=True)
    adapter_rollback(request_id=request.pk, actor=reviewer, reason="the subject withdrew the request")
    assert AdapterVersion.objects.get(pk=version.pk).status == "inactive"
    assert version.events.order_by("generation").last().action == "rolled_back"
    request.refresh_from_db()
    assert request.status == Status.ROLLED_BACK
    assert _audit("request.rolled_back")[-1].data["reason"] == "the subject withdrew the request"
    with pytest.raises(Conflict) as refused:
        adapter_rollback(request_id=request.pk, actor=reviewer, reason="again")
    assert refused.value.code == "nothing_live"


def test_activation_events_are_append_only(register):
    event = register(passed=True).events.get()
    event.reason = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        ActivationEvent.objects.all().update(reason="rewritten")
    with pytest.raises(AppendOnlyError):
        ActivationEvent.objects.all().delete()


# --- before a gateway loads -----------------------------------------------------------------------


def test_verify_stored_hands_over_a_verified_copy(register, tmp_path):
    version = register(passed=True)
    verified = adapter_verify_stored(version=version, dest_dir=tmp_path / "gateway" / version.unit_id)
    assert verified.path == tmp_path / "gateway" / version.unit_id
    assert sha256_file(verified.path / "adapter" / "adapter_model.safetensors") == version.adapter_sha256
    assert verified.manifest.digest == version.manifest_sha256
    assert adapter_verify_stored(version=version.pk).path is None  # a check without a copy


@pytest.mark.parametrize("path", ["adapter/adapter_model.safetensors", "detector/calibration/quantiles.json", "manifest.json"])
def test_a_unit_tampered_in_storage_is_refused_before_loading(register, store, tmp_path, caplog, path):
    version = register(passed=True)
    _flip_a_byte(store / version.unit_id / path)
    dest = tmp_path / "gateway" / version.unit_id
    with caplog.at_level(logging.ERROR, logger="adapters_store.alerts"), pytest.raises(UnitIntegrityError, match=path):
        adapter_verify_stored(version=version, dest_dir=dest)
    assert not dest.exists()  # nothing is left for the gateway to load by mistake
    [event] = _audit("adapter.integrity_failed")
    assert event.target_id == version.unit_id and event.data["file"] == path and event.data["stage"] == "load"
    assert event.data["location"] == version.storage_uri
    assert any(version.unit_id in record.getMessage() for record in caplog.records if record.name == "adapters_store.alerts")


def test_a_manifest_rewritten_to_match_tampered_files_is_still_refused(register, store, tmp_path):
    """Whoever rewrites a file and its digest in manifest.json cannot rewrite the registry's digest."""
    version = register(passed=True)
    stored = store / version.unit_id
    weights = stored / "adapter" / "adapter_model.safetensors"
    _flip_a_byte(weights)
    os.chmod(stored / "manifest.json", 0o644)
    manifest = json.loads((stored / "manifest.json").read_text())
    manifest["files"]["adapter/adapter_model.safetensors"] = sha256_file(weights)
    (stored / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UnitIntegrityError, match="registered digest"):
        adapter_verify_stored(version=version, dest_dir=tmp_path / "copy")


def test_a_unit_gone_from_storage_is_refused(register, store, tmp_path):
    version = register(passed=True)
    FilesystemStorage(store).delete(version.storage_uri)
    with pytest.raises(UnitIntegrityError, match="missing from storage"):
        adapter_verify_stored(version=version, dest_dir=tmp_path / "copy")
    assert _audit("adapter.integrity_failed")[0].data["stage"] == "load"


# --- gateway reports ------------------------------------------------------------------------------


def test_gateway_reports_are_recorded_once_and_checked_against_the_registry(register):
    live, other = register(passed=True), register(passed=True)
    generation = registry_generation()

    report = gateway_report_loaded(gateway_id="gw-1", generation=generation, unit_ids=[other.unit_id, live.unit_id])
    assert report.unit_ids == sorted([live.unit_id, other.unit_id])
    assert gateway_report_loaded(gateway_id="gw-1", generation=generation, unit_ids=[live.unit_id, other.unit_id]).pk == report.pk
    assert GatewayReport.objects.count() == 1 and len(_audit("gateway.loaded")) == 1
    assert _audit("gateway.loaded")[0].description == f"Gateway loaded 2 units (generation {generation})"
    check = gateway_report_check(report)
    assert check.consistent and check.current

    # A gateway that refused a tampered unit reports one unit short: the check names it.
    partial = gateway_report_loaded(gateway_id="gw-2", generation=generation, unit_ids=[live.unit_id])
    assert gateway_report_check(partial).missing == [other.unit_id]


def test_a_report_for_an_old_generation_is_not_current(register, staff, actor_of):
    version = register(passed=True)
    report = gateway_report_loaded(gateway_id="gw-1", generation=registry_generation(), unit_ids=[version.unit_id])
    adapter_deactivate(version_id=version.pk, actor=actor_of(staff("reviewer")), reason="maintenance")
    check = gateway_report_check(report)
    assert not check.current and check.consistent  # right for its generation, behind the registry


@pytest.mark.parametrize("gateway_id, generation", [("", 1), ("x" * 129, 1), ("gw", -1), ("gw", "3")])
def test_malformed_reports_are_refused(gateway_id, generation):
    with pytest.raises(ApplicationError):
        gateway_report_loaded(gateway_id=gateway_id, generation=generation, unit_ids=[])
