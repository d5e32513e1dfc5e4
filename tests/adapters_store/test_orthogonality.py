"""The orthogonality budget in the registry: each unit's record from its manifest, and the room the
live units leave per base model (adapters_store/orthogonality.py), on the registry and unit pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from adapters_store.selectors import orthogonal_rooms
from adapters_store.services import adapter_deactivate, adapter_register
from service.accounts.roles import SYSTEM

from .units import lora_adapter, save_detector

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_store(store):
    """Units stored in this test's own store (conftest.py): stored units are immutable."""


def _register_stream(tmp_path, count: int, *, start: int = 0, trained_against=None):
    """`count` units registered in turn, each with the room the earlier ones left it, as train_unit records it
    (test units: rank 2 in layers 8 wide, so four fill a layer)."""
    from workers.engine.artifacts import hash_forget_set, write_unit
    from workers.engine.config import UnlearnConfig
    from workers.engine.orthogonal_room import measure
    from workers.engine.pipeline import adapter_orthogonality

    adapters, versions = [], []
    for index in range(start, start + count):
        adapter = lora_adapter(seed=100 + index)
        extra = {
            "orthogonality_room": measure(adapters, adapter).as_dict(),
            "orthogonality_penalty": adapter_orthogonality(adapter, adapters),
            "previous_units": [v.unit_id for v in versions] if trained_against is None else trained_against,
        }
        directory = tmp_path / f"unit-{index}"
        write_unit(
            directory,
            adapter,
            config=UnlearnConfig(rank=2),
            detector_saver=save_detector,
            detector_config={"backbone": "test"},
            forget_set_hash=hash_forget_set([(f"q{index}", "a")]),
            manifest_extra=extra,
        )
        versions.append(adapter_register(unit_dir=directory, actor=SYSTEM, certificate_passed=True))
        adapters.append(adapter)
    return versions


def test_each_unit_keeps_its_record_and_the_registry_counts_the_room_left(tmp_path):
    versions = _register_stream(tmp_path, 3)
    assert versions[0].orthogonality["fits"] is True and versions[0].orthogonality["previous_units"] == 0
    assert versions[2].orthogonality["tightest"] == {"module": "model.layers.0.self_attn.q_proj", "width": 8, "used": 4, "free": 4}
    assert versions[2].orthogonality["penalty"] > 0  # random test adapters: not trained apart

    (room,) = orthogonal_rooms()
    assert (room.live_units, room.tightest_used, room.tightest_width, room.units_left, room.relaxed_units) == (3, 6, 8, 1, [])


def test_a_unit_without_room_is_marked_relaxed_and_deactivating_units_gives_room_back(tmp_path, staff_client, staff, actor_of):
    versions = _register_stream(tmp_path, 5)
    last = versions[-1]
    assert last.orthogonality["fits"] is False and last.orthogonality["policy"] == "relax"

    (room,) = orthogonal_rooms()
    assert (room.tightest_used, room.units_left, room.relaxed_units) == (8, 0, [last.unit_id])
    registry = staff_client("auditor").get(reverse("registry")).content.decode()
    section = registry.split('id="h-room"')[1].split('id="h-gateways"')[0]
    assert "8 of 8 (100%)" in section and "none: new units are relaxed" in section and last.unit_id in section
    unit_page = staff_client("auditor").get(reverse("registry-unit", args=[last.unit_id])).content.decode()
    assert "no orthogonal room: relaxed" in unit_page and "4 live units already used" in unit_page

    reviewer = actor_of(staff("reviewer"))
    for version in versions[:3]:
        adapter_deactivate(version_id=version.pk, actor=reviewer, reason="making room")
    (room,) = orthogonal_rooms()
    assert (room.live_units, room.tightest_used, room.units_left) == (2, 4, 2)
    first = staff_client("auditor").get(reverse("registry-unit", args=[versions[0].unit_id])).content.decode()
    assert "orthogonal room</span> When it trained, the 0 live units left" in first


def test_a_unit_activated_beside_live_units_it_never_saw_says_so(tmp_path, staff_client, staff, actor_of):
    from adapters_store.services import adapter_activate
    from service.audit.models import AuditEvent

    first, second = _register_stream(tmp_path, 2)
    assert second.orthogonality["trained_against"] == [first.unit_id]
    (late,) = _register_stream(tmp_path, 1, start=2, trained_against=[])  # trained before the others went live
    activated = AuditEvent.objects.filter(action="adapter.activated", target_id=late.unit_id).get()
    assert activated.data["untrained_against"] == [first.unit_id, second.unit_id]
    assert "untrained_against" not in AuditEvent.objects.filter(action="adapter.activated", target_id=second.unit_id).get().data

    reviewer = actor_of(staff("reviewer"))
    adapter_deactivate(version_id=late.pk, actor=reviewer, reason="checking")
    page = staff_client("auditor").get(reverse("registry-unit", args=[late.unit_id])).content.decode()
    assert "Live units it never saw" in page and f"{first.unit_id}, {second.unit_id}" in page
    adapter_deactivate(version_id=first.pk, actor=reviewer, reason="gone")
    adapter_activate(version_id=late.pk, actor=reviewer)
    again = AuditEvent.objects.filter(action="adapter.activated", target_id=late.unit_id).order_by("-id").first()
    assert again.data["untrained_against"] == [second.unit_id]
