"""The reports page (/reports/): the request figures for a period as a table and two charts, and
the same figures as a CSV download. Reviewers, auditors and admins; each report shown or
downloaded is audited (services.request_report_generate)."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from service.accounts.roles import Actor, Capability
from service.accounts.staff_access import staff_view
from service.common.errors import ApplicationError

from .charts import report_charts
from .selectors import PRESET_LABELS, Period, RequestFigures, RequestReport, preset_with_data, report_period
from .services import request_report_generate

CSV_COLUMNS = [
    "period_from",
    "period_to",
    "as_of",
    "regulation",
    "received",
    "completed",
    "completed_then_rolled_back",
    "rejected",
    "cancelled",
    "expired",
    "open",
    "deadline_extended",
    "overdue",
    "open_overdue",
    "completed_late",
    "median_days_to_completion",
    "p95_days_to_completion",
    "mean_days_to_completion",
]


class PeriodForm(forms.Form):
    """`preset`, or `from` / `to` (dates, both included); explicit dates win over the preset."""

    preset = forms.ChoiceField(
        required=False,
        label="Period",
        choices=[("", "Default (the last calendar year, or the latest period with requests)")] + [(p.value, label) for p, label in PRESET_LABELS.items()],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `from` is a Python keyword: these two fields are added by name.
        self.fields["from"] = forms.DateField(required=False, label="From date (UTC)", widget=forms.DateInput(attrs={"type": "date"}))
        self.fields["to"] = forms.DateField(required=False, label="To date (UTC, inclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def period(self) -> Period | None:
        """The chosen period, or None with the problem added to the form's errors."""
        data = self.cleaned_data
        preset = data.get("preset") or None
        if preset is None and data.get("from") is None and data.get("to") is None:
            preset = preset_with_data()  # the page opens on a period that has data
        try:
            return report_period(start=data.get("from"), end=data.get("to"), preset=preset)
        except ApplicationError as exc:
            field = next((error["field"] for error in exc.extra.get("errors", []) if error.get("field") in self.fields), "to")
            self.add_error(field, exc.detail)
            return None


def _period_or_errors(request) -> tuple[PeriodForm, Period | None]:
    form = PeriodForm(request.GET)
    return form, (form.period() if form.is_valid() else None)


def _query(period: Period) -> str:
    return urlencode({"from": period.start.isoformat(), "to": period.end.isoformat()})


def _days(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def csv_rows(report: RequestReport) -> list[list[str]]:
    def row(figures: RequestFigures) -> list[str]:
        return [
            report.period.start.isoformat(),
            report.period.end.isoformat(),
            report.as_of.isoformat(),
            figures.regulation,
            *(
                str(value)
                for value in (
                    figures.received,
                    figures.completed,
                    figures.rolled_back,
                    figures.rejected,
                    figures.cancelled,
                    figures.expired,
                    figures.open,
                    figures.extended,
                    figures.overdue,
                    figures.open_overdue,
                    figures.completed_late,
                )
            ),
            _days(figures.median_days),
            _days(figures.p95_days),
            _days(figures.mean_days),
        ]

    return [CSV_COLUMNS, *(row(figures) for figures in report.rows), row(report.total)]


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def reports_index(request, actor: Actor):
    form, period = _period_or_errors(request)
    if period is None:
        return _refused(request, form)
    report = request_report_generate(actor=actor, period=period, export_format="html")
    charts = report_charts(report)
    return render(
        request,
        "reports/requests.html",
        {
            "form": form,
            "report": report,
            "presets": _presets(period),
            # Built from escaped values only (service.common.svg).
            "outcomes_chart": mark_safe(charts["outcomes"]),
            "durations_chart": mark_safe(charts["durations"]),
            "csv_url": f"{reverse('reports-csv')}?{_query(period)}",
            "api_url": f"{reverse('api-reports-requests')}?{_query(period)}",
        },
    )


def _refused(request, form: PeriodForm) -> HttpResponse:
    """The page with the form's errors (a bad or reversed period): 400, no report made."""
    return render(request, "reports/requests.html", {"form": form, "report": None, "presets": _presets(None)}, status=400)


def _presets(current: Period | None) -> list[tuple[str, str, bool]]:
    """(label, query string, whether it is the period shown) for each preset."""
    presets = []
    for preset, label in PRESET_LABELS.items():
        period = report_period(preset=preset)
        presets.append((label, _query(period), period == current))
    return presets


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def reports_csv(request, actor: Actor):
    form, period = _period_or_errors(request)
    if period is None:
        return _refused(request, form)
    report = request_report_generate(actor=actor, period=period, export_format="csv")
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv_rows(report))
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="requests-report-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"'
    return response
