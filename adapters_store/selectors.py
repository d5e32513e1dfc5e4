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
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from service.accounts.roles import Actor, Capability
from service.common.errors import NotFound

from .models import ActivationEvent, AdapterVersion, GatewayReport, RegistryGeneration
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


def gateway_report_check(report: GatewayReport) -> GatewayCheck:
    """Compares what a gateway says it loaded with what was live at that generation."""
    expected = sorted(unit.version.unit_id for unit in live_units_at_generation(report.generation))
    loaded = set(report.unit_ids)
    return GatewayCheck(
        report=report,
        expected=expected,
        missing=sorted(set(expected) - loaded),
        unexpected=sorted(loaded - set(expected)),
        current=report.generation == registry_generation(),
    )
