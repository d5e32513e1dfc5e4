"""Registry pages: what is live now and what the gateways confirmed, each unit's history, what
was live at a chosen time, and the live history over a period (a timeline and its changes).
Reviewers, auditors and admins read; reviewers and admins change.

Thin views: reads through selectors, writes through services (which check the role again).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from service.accounts.roles import Actor, Capability
from service.accounts.staff_access import staff_view
from service.common.errors import ApplicationError, NotFound, PermissionDenied

from . import selectors, services
from .history_chart import MAX_LANES, render_history_svg
from .states import VersionStatus, can_transition

PAGE_SIZE = 50


class StatusFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status")] + list(VersionStatus.choices), label="Status")


class LiveAtForm(forms.Form):
    at = forms.DateTimeField(
        label="Time (UTC)",
        help_text="Date and time, in UTC; ISO 8601 such as 2026-11-23T10:15:00Z works too.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1", "aria-describedby": "id_at-help"}, format="%Y-%m-%dT%H:%M:%S"),
    )


def _actions(actor: Actor, version) -> dict[str, bool]:
    """Which buttons to show (a courtesy; the services decide)."""
    review = actor.can(Capability.REVIEW)
    return {
        "can_activate": review and version.certificate_passed and can_transition(version.status, VersionStatus.ACTIVE),
        "can_deactivate": review and can_transition(version.status, VersionStatus.INACTIVE),
        "can_revoke": review and can_transition(version.status, VersionStatus.REVOKED),
        "can_rollback": review and version.request_id is not None and version.status == VersionStatus.ACTIVE,
    }


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def registry_index(request, actor: Actor):
    form = StatusFilterForm(request.GET or None)
    status = form.cleaned_data.get("status", "") if form.is_bound and form.is_valid() else ""
    page = Paginator(selectors.version_list(actor=actor, status=status), PAGE_SIZE).get_page(request.GET.get("page"))
    generation = selectors.registry_generation()  # once: the page's figure and each check's "current"
    return render(
        request,
        "adapters_store/index.html",
        {
            "live": selectors.live_units(),
            "rooms": selectors.orthogonal_rooms(),
            "generation": generation,
            "checks": [selectors.gateway_report_check(report, generation=generation) for report in selectors.gateway_reports_latest()],
            "form": form,
            "page": page,
            "status": status,
            "can_review": actor.can(Capability.REVIEW),
        },
    )


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def unit_detail(request, actor: Actor, unit_id: str):
    version = selectors.version_get(actor=actor, unit_id=unit_id)
    return render(
        request,
        "adapters_store/unit.html",
        {
            "version": version,
            "events": selectors.version_events(version=version),
            "untrained_against": selectors.units_untrained_against(version) if version.status != "active" else None,
            "scalar_metrics": _scalar_metrics(version.certificate_metrics),
            **_actions(actor, version),
        },
    )


def _scalar_metrics(metrics) -> list[tuple[str, object]]:
    """The certificate's top-level figures that are plain values (its rules have their own table;
    nested sections are in the request's dossier)."""
    if not isinstance(metrics, dict):
        return []
    skip = {"passed", "rules", "verdict"}
    return [(name, value) for name, value in metrics.items() if name not in skip and (value is None or isinstance(value, (str, int, float, bool)))]


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def registry_live(request, actor: Actor):
    form = LiveAtForm(request.GET if "at" in request.GET else None, initial={"at": timezone.now().replace(microsecond=0)})
    if form.is_bound and not form.is_valid():
        return render(request, "adapters_store/live.html", {"form": form, "live": None}, status=400)
    at = form.cleaned_data["at"] if form.is_bound else None
    return render(request, "adapters_store/live.html", {"form": form, "live": selectors.live_set(actor=actor, at=at)})


def _activate(actor, version, reason):
    services.adapter_activate(version_id=version.pk, actor=actor)
    return "Unit {unit} activated; the gateways load it within seconds."


def _deactivate(actor, version, reason):
    services.adapter_deactivate(version_id=version.pk, actor=actor, reason=reason)
    return "Unit {unit} deactivated."


def _revoke(actor, version, reason):
    services.adapter_revoke(version_id=version.pk, actor=actor, reason=reason)
    return "Unit {unit} revoked; it will never be served again."


def _rollback(actor, version, reason):
    if version.request_id is None:
        raise ApplicationError("This unit serves no request; deactivate it instead.", code="no_request")
    services.adapter_rollback(request_id=version.request_id, actor=actor, reason=reason)
    return "Request " + version.request.reference + " rolled back: unit {unit} is no longer live."


ACTIONS = {"activate": _activate, "deactivate": _deactivate, "revoke": _revoke, "rollback": _rollback}


@require_POST
@staff_view(Capability.REVIEW)
def unit_action(request, actor: Actor, unit_id: str, action: str):
    """activate / deactivate / revoke / rollback: one service call, its outcome as a message."""
    version = selectors.version_get(actor=actor, unit_id=unit_id)
    try:
        message = ACTIONS[action](actor, version, request.POST.get("reason", ""))
    except PermissionDenied as exc:
        if exc.code != "second_approver_required":
            raise
        messages.error(request, exc.detail)  # a reviewer may act, just not on this one: say why
    except NotFound:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, message.format(unit=version.unit_id))
    return redirect("registry-unit", unit_id=version.unit_id)


class HistoryForm(forms.Form):
    """The live history's window, as whole days in UTC (both inclusive); empty: the default window."""

    since = forms.DateField(required=False, label="From date (UTC)", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To date (UTC, inclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            self.add_error("until", "The end date is before the start date.")
        low, high = selectors.HISTORY_YEARS
        for name in ("since", "until"):
            if data.get(name) and not low <= data[name].year <= high:
                self.add_error(name, f"Years {low} to {high} only.")
        return data

    def window(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """since: the start of its day; until: the end of its day, or now if that is sooner."""
        data = self.cleaned_data
        since = datetime.combine(data["since"], time.min, tzinfo=UTC) if data.get("since") else None
        until = None
        if data.get("until"):
            until = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=UTC)
            if until > now and (since is None or since < now):
                until = now
        return since, until


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def registry_history(request, actor: Actor):
    """The timeline of what was live, and the table of the changes behind it."""
    form = HistoryForm(request.GET if ("since" in request.GET or "until" in request.GET) else None)
    if form.is_bound and not form.is_valid():
        return render(request, "adapters_store/history.html", {"form": form, "history": None}, status=400)
    now = timezone.now()
    since, until = form.window(now) if form.is_bound else (None, None)
    try:
        history = selectors.live_history(actor=actor, since=since, until=until)
    except ApplicationError as exc:
        if exc.code != "validation_error":
            raise
        form.add_error(None, exc.detail)  # a window that ends before it starts (a start in the future)
        return render(request, "adapters_store/history.html", {"form": form, "history": None}, status=400)
    if not form.is_bound:
        form = HistoryForm(initial={"since": history.since.date(), "until": history.until.date()})
    return render(
        request,
        "adapters_store/history.html",
        {
            "form": form,
            "history": history,
            "chart": mark_safe(render_history_svg(history, now=now)),  # built from escaped values only (service.common.svg)
            "truncated": len(history.lanes) > MAX_LANES,
            "max_lanes": MAX_LANES,
            "api_query": urlencode({"since": history.since.isoformat(), "until": history.until.isoformat()}),
        },
    )
