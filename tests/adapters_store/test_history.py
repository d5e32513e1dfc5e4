"""The live history (selectors.live_history): intervals per unit, built from real activation events
(through the registry services) and the gateways' reports of what they loaded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from adapters_store.models import ActivationEvent
from adapters_store.selectors import history_window, live_history
from adapters_store.services import adapter_activate, adapter_deactivate, adapter_revoke, adapter_rollback, gateway_report_loaded
from service.common.errors import ApplicationError, PermissionDenied

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer(staff, actor_of):
    return actor_of(staff("reviewer"))


@pytest.fixture
def auditor(staff, actor_of):
    return actor_of(staff("auditor"))


def _lane(history, unit_id: str):
    [lane] = [lane for lane in history.lanes if lane.version.unit_id == unit_id]
    return lane


def _event(unit_id: str, action: str, nth: int = 0) -> ActivationEvent:
    return list(ActivationEvent.objects.filter(version__unit_id=unit_id, action=action).order_by("generation"))[nth]


def test_activated_deactivated_reactivated_revoked(register, reviewer, auditor):
    since = timezone.now()
    a = register("unit-a", passed=True)  # activated automatically (the certificate passed)
    adapter_deactivate(version_id=a.pk, actor=reviewer, reason="too many refusals")
    adapter_activate(version_id=a.pk, actor=reviewer)
    adapter_revoke(version_id=a.pk, actor=reviewer, reason="wrong forget set")
    never = register("unit-never", passed=False)  # a candidate, revoked without ever being live
    adapter_revoke(version_id=never.pk, actor=reviewer, reason="failed certificate")
    until = timezone.now()

    history = live_history(actor=auditor, since=since, until=until)
    first, second = _lane(history, "unit-a").intervals
    assert (first.opened_by, first.closed_by) == (_event("unit-a", "activated"), _event("unit-a", "deactivated"))
    assert (second.opened_by, second.closed_by) == (_event("unit-a", "activated", 1), _event("unit-a", "revoked"))
    # No gateway reported: the registry's times, and the intervals say so.
    assert (first.start, first.end) == (first.opened_by.at, first.closed_by.at)
    assert not first.start_confirmed and not first.end_confirmed and not history.gateway_reports_recorded
    assert first.end <= second.start and second.end <= until
    assert _lane(history, "unit-never").intervals == []

    events = [(item.event.version.unit_id, item.event.action, item.changed_live_set) for item in history.events]
    assert events == [
        ("unit-a", "activated", True),
        ("unit-a", "deactivated", True),
        ("unit-a", "activated", True),
        ("unit-a", "revoked", True),
        ("unit-never", "revoked", False),  # nothing changed on the gateways
    ]
    assert history.events[1].event.reason == "too many refusals" and history.events[1].event.actor_label == reviewer.label


def test_a_newer_version_supersedes_and_a_roll_back_ends_the_interval(register, erasure, reviewer, auditor):
    since = timezone.now()
    request = erasure("active")
    register("req-v1", request=request, passed=True)
    register("req-v2", request=request, passed=True)  # activating v2 deactivates v1 in the same change
    adapter_rollback(request_id=request.reference, actor=reviewer, reason="withdrawn")
    history = live_history(actor=auditor, since=since, until=timezone.now())

    [v1] = _lane(history, "req-v1").intervals
    [v2] = _lane(history, "req-v2").intervals
    assert v1.closed_by.action == "deactivated" and v1.closed_by.reason == "superseded by req-v2"
    assert v1.closed_by.generation == v2.opened_by.generation  # one change of the live set
    assert v2.closed_by.action == "rolled_back" and v2.closed_by.reason == "withdrawn"
    assert [lane.version.unit_id for lane in history.lanes] == ["req-v1", "req-v2"]  # by when they went live


def test_gateway_confirmations_set_the_times_where_recorded(register, reviewer, auditor):
    since = timezone.now()
    a = register("unit-a", passed=True)  # generation 1
    register("unit-b", passed=True)  # generation 2
    first = gateway_report_loaded(gateway_id="gw-1", generation=2, unit_ids=["unit-a"])  # refused unit-b
    late = gateway_report_loaded(gateway_id="gw-2", generation=2, unit_ids=["unit-a", "unit-b"])
    adapter_deactivate(version_id=a.pk, actor=reviewer, reason="maintenance")  # generation 3
    dropped_1 = gateway_report_loaded(gateway_id="gw-1", generation=3, unit_ids=[])
    dropped_2 = gateway_report_loaded(gateway_id="gw-2", generation=3, unit_ids=["unit-b"])
    history = live_history(actor=auditor, since=since, until=timezone.now())

    [interval_a] = _lane(history, "unit-a").intervals
    assert interval_a.confirmed_from == first.at and interval_a.start == first.at  # the first gateway to serve it
    assert interval_a.confirmed_until == dropped_2.at and interval_a.end == dropped_2.at  # the last gateway to drop it
    assert interval_a.start_confirmed and interval_a.end_confirmed and history.gateway_reports_recorded
    assert dropped_1.at <= dropped_2.at

    [interval_b] = _lane(history, "unit-b").intervals  # gw-1 refused it, gw-2 serves it
    assert interval_b.confirmed_from == late.at and interval_b.end is None

    confirmations = {(item.event.version.unit_id, item.event.action): item.gateway_confirmed_at for item in history.events}
    assert confirmations == {("unit-a", "activated"): first.at, ("unit-b", "activated"): late.at, ("unit-a", "deactivated"): dropped_2.at}


def test_an_activation_no_gateway_confirmed_keeps_the_registry_time(register, auditor):
    since = timezone.now()
    version = register("unit-refused", passed=True)
    gateway_report_loaded(gateway_id="gw-1", generation=1, unit_ids=[])  # e.g. refused as tampered
    [interval] = _lane(live_history(actor=auditor, since=since, until=timezone.now()), "unit-refused").intervals
    assert interval.confirmed_from is None and interval.start == _event(version.unit_id, "activated").at


def test_the_window_keeps_units_live_across_it_and_leaves_out_older_ones(register, reviewer, auditor):
    old = register("unit-old", passed=True)
    adapter_deactivate(version_id=old.pk, actor=reviewer, reason="replaced")
    register("unit-long", passed=True)
    since = timezone.now()
    late = register("unit-late", passed=True)
    until = timezone.now()
    adapter_deactivate(version_id=late.pk, actor=reviewer, reason="after the window")

    history = live_history(actor=auditor, since=since, until=until)
    assert [lane.version.unit_id for lane in history.lanes] == ["unit-long", "unit-late"]
    [long] = _lane(history, "unit-long").intervals
    assert long.start < since and long.end is None  # began before the window: not clipped
    [late_interval] = _lane(history, "unit-late").intervals
    assert late_interval.end > until  # ends after the window: its true end
    assert [(item.event.version.unit_id, item.event.action) for item in history.events] == [("unit-late", "activated")]  # only events inside


def test_default_window_is_thirty_days_or_since_the_first_event(register):
    now = timezone.now()
    since, until = history_window(now=now)
    assert (since, until) == (now - timedelta(days=30), now)  # no history yet

    register("unit-a", passed=True)
    first = ActivationEvent.objects.get().at
    since, until = history_window()
    assert since == first.replace(second=0, microsecond=0) and until >= first  # its minute


def test_a_window_that_ends_before_it_starts_is_refused(auditor):
    now = timezone.now()
    with pytest.raises(ApplicationError) as refused:
        live_history(actor=auditor, since=now, until=now - timedelta(days=1))
    assert refused.value.code == "validation_error"


def test_api_clients_may_not_read_the_history(api_client_key, actor_of):
    client, _ = api_client_key(("read",))
    with pytest.raises(PermissionDenied):
        live_history(actor=actor_of(client))
