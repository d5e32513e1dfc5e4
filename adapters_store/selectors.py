"""Reads of the adapter registry.

What was live at a time T is answered from the activation events alone: for each unit, its last
event at or before T (events are ordered by the generation they produced, which is the order their
transactions committed in); the unit was live at T when that event is an activation.

The gateway's reads (registry_generation, active_versions) take no actor: the gateway is the
system. Staff reads take the actor and need the READ_ALL_REQUESTS capability (reviewers, auditors,
admins).
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from service.accounts.roles import Actor, Capability
from service.common.errors import ApplicationError, NotFound

from .models import ActivationEvent, AdapterVersion, GatewayReport, RegistryGeneration
from .orthogonality import BaseModelRoom, base_model_rooms, untrained_against
from .states import EventAction, VersionStatus


@dataclass(frozen=True)
class LiveUnit:
    version: AdapterVersion
    since: ActivationEvent  # the activation that made it live (and kept it live at T)


@dataclass(frozen=True)
class LiveSet:
    at: datetime
    generation: int  # the registry generation in force at `at` (0: nothing ever changed)
    units: list[LiveUnit]
    gateway_report: GatewayReport | None  # the last gateway confirmation at or before `at`


@dataclass(frozen=True)
class GatewayCheck:
    report: GatewayReport
    expected: list[str]  # the units live at the report's generation
    missing: list[str] = field(default_factory=list)  # live in the registry, not loaded by the gateway
    unexpected: list[str] = field(default_factory=list)  # loaded by the gateway, not live in the registry
    current: bool = True  # the report is for the registry's present generation

    @property
    def consistent(self) -> bool:
        return not self.missing and not self.unexpected


# --- for the gateway -----------------------------------------------------------------------------


def registry_generation() -> int:
    """The counter bumped by every change of the live set (one indexed row read: poll it)."""
    return RegistryGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0


def active_versions() -> QuerySet[AdapterVersion]:
    """The units live now, oldest activation first."""
    return AdapterVersion.objects.filter(status=VersionStatus.ACTIVE).select_related("request").order_by("created_at", "id")


def orthogonal_rooms() -> list[BaseModelRoom]:
    """Per base model, how much orthogonal room the live units leave a new one (orthogonality.py)."""
    return base_model_rooms(active_versions())


def units_untrained_against(version: AdapterVersion) -> list[str] | None:
    """The live units `version` was not trained against (orthogonality.untrained_against)."""
    return untrained_against(version, active_versions())


# --- live at a time T ----------------------------------------------------------------------------


def _live_units(event_filter: Q) -> list[LiveUnit]:
    last_event = ActivationEvent.objects.filter(event_filter, version=OuterRef("version")).order_by("-generation", "-id").values("pk")[:1]
    events = (
        ActivationEvent.objects.filter(event_filter, pk=Subquery(last_event), action=EventAction.ACTIVATED)
        .select_related("version", "version__request")
        .order_by("generation", "id")
    )
    return [LiveUnit(event.version, event) for event in events]


def live_units(*, at: datetime | None = None) -> list[LiveUnit]:
    """The units live at `at` (default: now), each with the activation event behind it."""
    return _live_units(Q(at__lte=at or timezone.now()))


def live_units_at_generation(generation: int) -> list[LiveUnit]:
    """The units live once the registry reached `generation`."""
    return _live_units(Q(generation__lte=generation))


def live_set(*, actor: Actor, at: datetime | None = None) -> LiveSet:
    """What was live at `at`, the generation then in force, and the gateway's last report by then."""
    actor.require(Capability.READ_ALL_REQUESTS)
    at = at or timezone.now()
    generation = ActivationEvent.objects.filter(at__lte=at).aggregate(top=Max("generation"))["top"] or 0
    report = GatewayReport.objects.filter(at__lte=at).order_by("-at", "-id").first()
    return LiveSet(at=at, generation=generation, units=live_units(at=at), gateway_report=report)


# --- staff reads ---------------------------------------------------------------------------------


def version_list(*, actor: Actor, status: str = "", request=None) -> QuerySet[AdapterVersion]:
    """All versions, newest first; `status` one or several comma-separated; `request` an id or reference."""
    actor.require(Capability.READ_ALL_REQUESTS)
    versions = AdapterVersion.objects.select_related("request").order_by("-created_at", "-id")
    if status:
        versions = versions.filter(status__in=[part for part in status.split(",") if part])
    if request:
        try:
            versions = versions.filter(request_id=uuid.UUID(str(request)))
        except ValueError:
            versions = versions.filter(request__reference=str(request).strip().upper())
    return versions


def version_for_unit(unit_id: str) -> AdapterVersion | None:
    """The registered version of a unit id, or None (the worker asks whether a resumed job already
    registered its unit before its previous worker died)."""
    return AdapterVersion.objects.filter(unit_id=unit_id).first()


def version_get(*, actor: Actor, unit_id: str) -> AdapterVersion:
    actor.require(Capability.READ_ALL_REQUESTS)
    version = AdapterVersion.objects.select_related("request").filter(unit_id=unit_id).first()
    if version is None:
        raise NotFound(f"No unit {unit_id}.")
    return version


def version_events(*, version: AdapterVersion) -> QuerySet[ActivationEvent]:
    """A unit's activation history, oldest first (callers check that the viewer may see the unit)."""
    return version.events.order_by("generation", "id")


def request_versions(*, actor: Actor, request) -> list[AdapterVersion]:
    """A request's unit versions, newest first, with their events: its history in the registry."""
    return list(version_list(actor=actor, request=request).prefetch_related("events"))


def gateway_reports_latest() -> list[GatewayReport]:
    """Each gateway's latest report, most recent first."""
    latest = GatewayReport.objects.filter(gateway_id=OuterRef("gateway_id")).order_by("-at", "-id").values("pk")[:1]
    return list(GatewayReport.objects.filter(pk=Subquery(latest)).order_by("-at", "-id"))


def gateway_report_check(report: GatewayReport, *, generation: int | None = None) -> GatewayCheck:
    """Compares what a gateway says it loaded with what was live at that generation. `generation`:
    the registry's current one, when the caller has read it already (else it is read here)."""
    expected = sorted(unit.version.unit_id for unit in live_units_at_generation(report.generation))
    loaded = set(report.unit_ids)
    return GatewayCheck(
        report=report,
        expected=expected,
        missing=sorted(set(expected) - loaded),
        unexpected=sorted(loaded - set(expected)),
        current=report.generation == (registry_generation() if generation is None else generation),
    )


# --- live history: intervals per unit over a window ----------------------------------------------
#
# The registry's intervals come from the activation events (an activation opens one, the unit's next
# deactivation, roll-back or revocation closes it). Where a gateway confirmed the change
# (GatewayReport), the interval runs on the gateway's clock instead: it starts at the first report
# that lists the unit at a generation inside the interval, and ends, for each gateway that served
# it, at that gateway's first report at or after the closing generation that no longer lists it
# (the latest of those: the last gateway to stop serving it). Without a report the registry's time
# stands, and the interval says so (`start_confirmed` / `end_confirmed`).

HISTORY_DEFAULT_DAYS = 30
HISTORY_YEARS = (1970, 9000)  # a window outside these years is a typo (and would overflow date arithmetic)


@dataclass(frozen=True)
class LiveInterval:
    version: AdapterVersion
    opened_by: ActivationEvent  # the activation
    closed_by: ActivationEvent | None  # the deactivation, roll-back or revocation; None: still live
    confirmed_from: datetime | None  # the first gateway report serving it in this interval
    confirmed_until: datetime | None  # the last gateway's first report without it after closed_by

    @property
    def start_confirmed(self) -> bool:
        return self.confirmed_from is not None

    @property
    def end_confirmed(self) -> bool:
        return self.confirmed_until is not None

    @property
    def start(self) -> datetime:
        """When it went live: the gateway's confirmation where recorded, else the registry's event."""
        return self.confirmed_from or self.opened_by.at

    @property
    def end(self) -> datetime | None:
        """When it stopped being live (same rule); None while it is live."""
        if self.closed_by is None:
            return None
        return max(self.confirmed_until or self.closed_by.at, self.start)


@dataclass(frozen=True)
class UnitLane:
    version: AdapterVersion
    intervals: list[LiveInterval]  # oldest first; the ones that overlap the window


@dataclass(frozen=True)
class HistoryEvent:
    event: ActivationEvent
    # For an activation, when a gateway first served the unit; for a closing event, when the last
    # gateway stopped serving it; None when no gateway confirmed it (or nothing changed on them).
    gateway_confirmed_at: datetime | None
    changed_live_set: bool  # False for the revocation of a unit that was not live


@dataclass(frozen=True)
class LiveHistory:
    since: datetime
    until: datetime
    lanes: list[UnitLane]  # units live at some time in the window or with an event in it, by first start
    events: list[HistoryEvent]  # the events in the window, oldest first
    gateway_reports_recorded: bool  # False: no gateway ever reported; every time is the registry's


def history_window(*, since: datetime | None = None, until: datetime | None = None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The window a history covers: `until` defaults to now; `since` to 30 days before `until`, or to
    the minute of the first activation event when the history is younger than that."""
    until = until or now or timezone.now()
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and not HISTORY_YEARS[0] <= moment.year <= HISTORY_YEARS[1]:
            raise ApplicationError(
                f"'{name}' must lie between the years {HISTORY_YEARS[0]} and {HISTORY_YEARS[1]}.",
                code="validation_error",
                extra={"errors": [{"field": name, "message": f"Years {HISTORY_YEARS[0]} to {HISTORY_YEARS[1]} only.", "code": "invalid"}]},
            )
    if since is None:
        since = until - timedelta(days=HISTORY_DEFAULT_DAYS)
        first = ActivationEvent.objects.order_by("at", "id").values_list("at", flat=True).first()
        if first is not None and since < first <= until:
            since = first.replace(second=0, microsecond=0)  # its minute: a young history fills the chart
    if since >= until:
        raise ApplicationError(
            "The start of the window must be before its end.",
            code="validation_error",
            extra={"errors": [{"field": "until", "message": "Must be after 'since'.", "code": "invalid"}]},
        )
    return since, until


class _GatewayLog:
    """One gateway's reports, by generation (a gateway's generation only grows), for bisecting."""

    def __init__(self) -> None:
        self.generations: list[int] = []
        self.reports: list[tuple[datetime, frozenset[str]]] = []

    def first_serving(self, unit_id: str, low: int, high: int | None) -> datetime | None:
        """The first report at a generation in [low, high) that lists the unit."""
        for index in range(bisect_left(self.generations, low), len(self.generations)):
            if high is not None and self.generations[index] >= high:
                return None
            at, units = self.reports[index]
            if unit_id in units:
                return at
        return None

    def first_without(self, unit_id: str, generation: int) -> datetime | None:
        """When this gateway stopped serving the unit, once the registry reached `generation`: its
        first report from then on, if that report no longer lists the unit (if it still does, the
        unit was live again before the gateway reloaded: it never stopped)."""
        index = bisect_left(self.generations, generation)
        if index == len(self.generations):
            return None
        at, units = self.reports[index]
        return None if unit_id in units else at


def _gateway_logs(min_generation: int) -> dict[str, _GatewayLog]:
    logs: dict[str, _GatewayLog] = {}
    reports = (
        GatewayReport.objects.filter(generation__gte=min_generation)
        .order_by("gateway_id", "generation", "at", "id")
        .values_list("gateway_id", "generation", "at", "unit_ids")
    )
    for gateway_id, generation, at, unit_ids in reports.iterator(chunk_size=500):
        log = logs.setdefault(gateway_id, _GatewayLog())
        log.generations.append(generation)
        log.reports.append((at, frozenset(unit_ids or ())))
    return logs


def _intervals(version: AdapterVersion, events: list[ActivationEvent], logs: dict[str, _GatewayLog]) -> list[LiveInterval]:
    intervals: list[LiveInterval] = []
    opened: ActivationEvent | None = None
    for event in events:  # oldest first
        if event.action == EventAction.ACTIVATED:
            if opened is None:
                opened = event
            continue
        if opened is not None:
            intervals.append(_confirmed(version, opened, event, logs))
            opened = None
    if opened is not None:
        intervals.append(_confirmed(version, opened, None, logs))
    return intervals


def _confirmed(version: AdapterVersion, opened: ActivationEvent, closed: ActivationEvent | None, logs: dict[str, _GatewayLog]) -> LiveInterval:
    unit_id, high = version.unit_id, closed.generation if closed else None
    starts = {gateway: at for gateway, log in logs.items() if (at := log.first_serving(unit_id, opened.generation, high)) is not None}
    confirmed_until = None
    if closed is not None and starts:
        ends = [at for gateway in starts if (at := logs[gateway].first_without(unit_id, closed.generation)) is not None]
        confirmed_until = max(ends) if ends else None
    return LiveInterval(version, opened, closed, min(starts.values()) if starts else None, confirmed_until)


def live_history(*, actor: Actor, since: datetime | None = None, until: datetime | None = None) -> LiveHistory:
    """Which units were live when between `since` and `until` (defaults: history_window), with the
    events behind each change. Reviewers, auditors and admins."""
    actor.require(Capability.READ_ALL_REQUESTS)
    since, until = history_window(since=since, until=until)
    # The units that matter: live when the window opens, or changed inside it.
    changed = ActivationEvent.objects.filter(at__gte=since, at__lte=until).values_list("version_id", flat=True)
    version_ids = set(changed) | {unit.version.pk for unit in live_units(at=since)}
    versions = {version.pk: version for version in AdapterVersion.objects.filter(pk__in=version_ids).select_related("request")}
    events_by_version: dict[int, list[ActivationEvent]] = {pk: [] for pk in versions}
    for event in ActivationEvent.objects.filter(version_id__in=version_ids).order_by("generation", "id"):
        event.version = versions[event.version_id]
        events_by_version[event.version_id].append(event)
    first_activation = min((e.generation for events in events_by_version.values() for e in events if e.action == EventAction.ACTIVATED), default=0)
    logs = _gateway_logs(first_activation)

    lanes: list[UnitLane] = []
    confirmations: dict[int, datetime | None] = {}  # event id -> the gateway's confirmation of it
    closing: set[int] = set()
    for pk, version in versions.items():
        intervals = _intervals(version, events_by_version[pk], logs)
        for interval in intervals:
            confirmations[interval.opened_by.pk] = interval.confirmed_from
            if interval.closed_by is not None:
                confirmations[interval.closed_by.pk] = interval.confirmed_until
                closing.add(interval.closed_by.pk)
        overlapping = [i for i in intervals if i.start <= until and (i.end is None or i.end >= since)]
        lanes.append(UnitLane(version, overlapping))
    lanes.sort(key=lambda lane: (lane.intervals[0].start if lane.intervals else until, lane.version.unit_id))

    events = [
        HistoryEvent(event, confirmations.get(event.pk), event.action == EventAction.ACTIVATED or event.pk in closing)
        for pk in versions
        for event in events_by_version[pk]
        if since <= event.at <= until
    ]
    events.sort(key=lambda item: (item.event.generation, item.event.pk))
    return LiveHistory(since=since, until=until, lanes=lanes, events=events, gateway_reports_recorded=GatewayReport.objects.exists())
