"""What was live when: the answer comes from the activation history alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from adapters_store.models import AdapterVersion
from adapters_store.selectors import active_versions, live_set, live_units, live_units_at_generation, request_versions, version_list
from adapters_store.services import adapter_activate, adapter_deactivate, adapter_revoke, adapter_rollback
from service.accounts.roles import Actor
from service.common.errors import PermissionDenied

pytestmark = pytest.mark.django_db


def _ids(units) -> set[str]:
    return {unit.version.unit_id for unit in units}


def test_live_at_t_across_a_sequence_of_changes(register, erasure, staff, actor_of):
    reviewer = actor_of(staff("reviewer"))
    t0 = timezone.now()
    a = register("unit-a", passed=True)  # activated automatically
    t1 = timezone.now()
    b = register("unit-b", passed=False)
    t2 = timezone.now()  # b is a candidate: not live
    AdapterVersion.objects.filter(pk=b.pk).update(certificate_passed=True)  # re-evaluated: now it may go live
    adapter_activate(version_id=b.pk, actor=reviewer)
    t3 = timezone.now()
    adapter_deactivate(version_id=a.pk, actor=reviewer, reason="complaint about refusals")
    t4 = timezone.now()
    adapter_activate(version_id=a.pk, actor=reviewer)
    t5 = timezone.now()
    adapter_revoke(version_id=b.pk, actor=reviewer, reason="wrong forget set")
    t6 = timezone.now()

    expected = {t0: set(), t1: {"unit-a"}, t2: {"unit-a"}, t3: {"unit-a", "unit-b"}, t4: {"unit-b"}, t5: {"unit-a", "unit-b"}, t6: {"unit-a"}}
    for at, units in expected.items():
        assert _ids(live_units(at=at)) == units, at
    assert _ids(live_units()) == {v.unit_id for v in active_versions()} == {"unit-a"}

    # The activation behind each answer: unit-a at t4 was live by its *second* activation.
    [since] = [unit.since for unit in live_units(at=t5) if unit.version.unit_id == "unit-a"]
    assert since.action == "activated" and since.actor_label == reviewer.label and t4 <= since.at <= t5

    # Generations give the same answers as times.
    assert _ids(live_units_at_generation(1)) == {"unit-a"}
    assert _ids(live_units_at_generation(3)) == {"unit-b"}
    assert _ids(live_units_at_generation(5)) == {"unit-a"}


def test_live_set_names_the_generation_and_the_gateway_report_by_then(register, staff, actor_of):
    from adapters_store.services import gateway_report_loaded

    auditor = actor_of(staff("auditor"))
    before = timezone.now()
    version = register(passed=True)
    gateway_report_loaded(gateway_id="gw-1", generation=1, unit_ids=[version.unit_id])
    after = timezone.now()

    empty = live_set(actor=auditor, at=before)
    assert empty.units == [] and empty.generation == 0 and empty.gateway_report is None
    now = live_set(actor=auditor, at=after)
    assert _ids(now.units) == {version.unit_id} and now.generation == 1 and now.gateway_report.gateway_id == "gw-1"
    assert _ids(live_set(actor=auditor, at=after + timedelta(days=365)).units) == {version.unit_id}


def test_rolled_back_units_are_not_live_afterwards(register, erasure, staff, actor_of):
    request = erasure("active")
    version = register(request=request, passed=True)
    between = timezone.now()
    adapter_rollback(request_id=request.reference, actor=actor_of(staff("reviewer")), reason="withdrawn")
    assert _ids(live_units(at=between)) == {version.unit_id} and live_units() == []


def test_staff_reads_need_the_read_capability(register, api_client_key, actor_of):
    client, _ = api_client_key(("read",))
    for call in (lambda a: version_list(actor=a), lambda a: live_set(actor=a)):
        with pytest.raises(PermissionDenied):
            call(actor_of(client))
        with pytest.raises(PermissionDenied):
            call(Actor(kind="user", id="0", label="nobody"))


def test_version_list_filters_by_status_and_request(register, erasure, staff, actor_of):
    reviewer = actor_of(staff("reviewer"))
    request = erasure("evaluating")
    live = register(request=request, passed=True)
    candidate = register(passed=False)
    assert list(version_list(actor=reviewer, status="candidate")) == [candidate]
    assert list(version_list(actor=reviewer, status="active,candidate")) == [candidate, live]  # newest first
    assert list(version_list(actor=reviewer, request=request.reference)) == [live]
    assert list(version_list(actor=reviewer, request=str(request.pk))) == [live]
    assert [v.unit_id for v in request_versions(actor=reviewer, request=request.pk)] == [live.unit_id]
