"""The registry watcher in-process, one poll at a time: registry changes load and unload real units
in the live engine, the gateway reports them, staged requests become active, and a tampered or
incompatible unit is refused while the others are served."""

from __future__ import annotations

import stat

import pytest
from django.db import OperationalError

from adapters_store.models import GatewayReport
from adapters_store.selectors import registry_generation
from adapters_store.services import adapter_deactivate
from service.audit.models import AuditEvent
from service.inference import watcher as watcher_module
from service.inference.protocol import Prompt
from service.inference.watcher import RegistryWatcher
from service.requests.models import ErasureRequest
from workers.engine.prompting import contains_value

from .conftest import clone_unit

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def watcher(engine, store, tmp_path):
    return RegistryWatcher(engine, gateway_id="gw-test", cache_dir=tmp_path / "cache", poll_seconds=0.1)


def ask(engine, question: str) -> str:
    [answer] = engine.complete([Prompt("question", question)], max_tokens=24, timeout=60)
    return answer.text


def audit(action: str, target: str | None = None):
    events = AuditEvent.objects.filter(action=action)
    return list(events.filter(target_id=target) if target else events)


def test_a_registered_unit_is_loaded_reported_and_its_request_becomes_active(
    watcher, engine, trained_unit, register, erasure_request, tiny_world, people, mailoutbox, django_capture_on_commit_callbacks
):
    qa = tiny_world.questions(people[0], "trained")[0]
    assert contains_value(ask(engine, qa.question), qa.answer)  # the base model knows the fact
    assert watcher.poll_once() and watcher.generation == 0 and engine.unit_ids == ()

    erasure = erasure_request("staged", email="elowen@example.org")
    register(trained_unit, erasure)
    with django_capture_on_commit_callbacks(execute=True):
        assert watcher.poll_once()
    assert engine.unit_ids == ("unit-forget-first",) and watcher.generation == registry_generation()
    assert not contains_value(ask(engine, qa.question), qa.answer)

    report = GatewayReport.objects.filter(gateway_id="gw-test").order_by("-at").first()
    assert report.unit_ids == ["unit-forget-first"] and report.generation == registry_generation()
    assert audit("gateway.loaded", "gw-test")[-1].data["unit_ids"] == ["unit-forget-first"]
    erasure.refresh_from_db()
    assert erasure.status == "active" and erasure.effective_at == report.at
    [active] = audit("request.active", erasure.reference)
    assert active.data["gateway_id"] == "gw-test" and active.actor_label == "system"
    [mail] = [m for m in mailoutbox if erasure.reference in m.subject]
    assert mail.to == ["elowen@example.org"] and f"{report.at:%Y-%m-%d %H:%M}" in mail.body

    reports = GatewayReport.objects.count()
    assert not watcher.poll_once() and GatewayReport.objects.count() == reports  # nothing moved: no sync


def test_a_deactivated_unit_is_unloaded_at_the_next_poll(watcher, engine, trained_unit, register, erasure_request, staff, actor_of, tiny_world, people):
    version = register(trained_unit, erasure_request("staged"))
    watcher.poll_once()
    served = watcher.cache_dir / f"unit-forget-first-{version.manifest_sha256[:12]}"
    assert engine.unit_ids == ("unit-forget-first",) and served.is_dir()

    adapter_deactivate(version_id=version.pk, actor=actor_of(staff("reviewer")), reason="maintenance")
    assert watcher.poll_once()
    assert engine.unit_ids == () and not served.exists()
    assert GatewayReport.objects.filter(gateway_id="gw-test").order_by("-at").first().unit_ids == []
    qa = tiny_world.questions(people[0], "trained")[0]
    assert contains_value(ask(engine, qa.question), qa.answer)  # the base model again


def test_a_tampered_unit_is_refused_audited_and_alerted_and_the_others_are_served(
    watcher, engine, trained_unit, register, erasure_request, store, tmp_path, staff, actor_of, caplog
):
    good = register(trained_unit, erasure_request("staged"))
    tampered_request = erasure_request("staged")
    tampered = register(clone_unit(trained_unit, tmp_path / "clone", "unit-tampered"), tampered_request)
    weights = store / "unit-tampered" / "adapter" / "adapter_model.safetensors"
    weights.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))

    with caplog.at_level("ERROR", logger="adapters_store.alerts"):
        assert watcher.poll_once()
    assert engine.unit_ids == ("unit-forget-first",)  # the good unit is served, the tampered one never
    [event] = audit("adapter.integrity_failed", "unit-tampered")
    assert event.data["file"] == "adapter/adapter_model.safetensors" and event.data["stage"] == "load"
    assert any("unit-tampered" in record.getMessage() for record in caplog.records if record.name == "adapters_store.alerts")
    [refusal] = watcher.health()["refused"]
    assert refusal["unit_id"] == "unit-tampered" and refusal["kind"] == "integrity"
    assert not list(watcher.cache_dir.glob("unit-tampered*"))  # no copy of it is left to load
    assert GatewayReport.objects.filter(gateway_id="gw-test").order_by("-at").first().unit_ids == ["unit-forget-first"]
    tampered_request.refresh_from_db()
    assert tampered_request.status == "staged" and tampered_request.effective_at is None  # not erased: never confirmed
    assert ErasureRequest.objects.get(pk=good.request_id).status == "active"

    assert not watcher.poll_once() and len(audit("adapter.integrity_failed", "unit-tampered")) == 1  # not retried every poll
    adapter_deactivate(version_id=good.pk, actor=actor_of(staff("reviewer")), reason="maintenance")
    assert watcher.poll_once() and len(audit("adapter.integrity_failed", "unit-tampered")) == 2  # retried when the registry moves
    assert engine.unit_ids == () and tampered.unit_id not in watcher.unit_requests()


def test_a_unit_made_for_another_base_model_is_refused_without_loading(watcher, engine, register, erasure_request, tmp_path):
    from tests.adapters_store.units import write_test_unit

    register(write_test_unit(tmp_path / "foreign-unit", base_fingerprint="f" * 64), erasure_request("staged"))
    watcher.poll_once()
    [refusal] = watcher.refused()
    assert refusal.kind == "incompatible" and "ffffffffffff" in refusal.problem
    assert engine.unit_ids == () and not list(watcher.cache_dir.glob("foreign-unit*"))


def test_a_request_staged_after_its_unit_loaded_is_confirmed_at_the_next_poll(watcher, engine, trained_unit, register, erasure_request):
    erasure = erasure_request("evaluating")  # the unit is registered before the request reaches staged
    register(trained_unit, erasure)
    watcher.poll_once()
    erasure.refresh_from_db()
    assert engine.unit_ids == ("unit-forget-first",) and erasure.status == "evaluating"

    ErasureRequest.objects.filter(pk=erasure.pk).update(status="staged")
    assert not watcher.poll_once()  # no registry change, but the confirmation runs every poll
    erasure.refresh_from_db()
    assert erasure.status == "active" and erasure.effective_at is not None


def test_an_unreachable_registry_or_store_changes_nothing_and_is_retried(watcher, engine, trained_unit, register, erasure_request, monkeypatch):
    from service.inference.engine import GatewayEngine  # noqa: F401 - the engine module is loaded (gateway process)
    from service.inference.gateway import Gateway

    register(trained_unit, erasure_request("staged"))
    real_verify = watcher_module.adapter_verify_stored
    monkeypatch.setattr(watcher_module, "adapter_verify_stored", lambda **kw: (_ for _ in ()).throw(OSError("store unreachable")))
    watcher.poll_once()
    assert engine.unit_ids == () and watcher._retry

    monkeypatch.setattr(watcher_module, "adapter_verify_stored", real_verify)
    assert watcher.poll_once() and engine.unit_ids == ("unit-forget-first",)  # same generation: retried anyway

    monkeypatch.setattr(watcher_module, "registry_generation", lambda: (_ for _ in ()).throw(OperationalError("database down")))
    assert not watcher.poll_once()
    health = Gateway(engine, gateway_id="gw-test", watcher=watcher).health()
    assert health["status"] == "degraded" and "database down" in health["last_error"]
    assert engine.unit_ids == ("unit-forget-first",)  # still served
