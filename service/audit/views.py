"""The auditor's pages: the audit log with search, filters, cursor pages and the chain status, and
its exports (CSV and JSON).

Thin: the filter form turns the query string into audit_events() keyword filters; the selectors
check the READ_AUDIT capability and the services record each export in the log itself.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as PagePermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from service.accounts.roles import Actor, actor_for_request
from service.common.errors import PermissionDenied

from .cursors import LAST_PAGE, InvalidCursor
from .events import EVENTS
from .exports import csv_lines, json_chunks
from .search import MAX_SEARCH_LENGTH
from .selectors import audit_chain_status, audit_events, audit_events_page, audit_filter_criteria_from
from .services import audit_export_record

PAGE_SIZE = 50


class AuditFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=MAX_SEARCH_LENGTH,
        label="Search",
        help_text='Words in action codes and reasons: duplicate, request.rejected, "wrong person", -api.',
    )
    request = forms.CharField(required=False, max_length=64, label="Request", help_text="Reference (RTBF-…), request id, or any target id.")
    actor = forms.CharField(required=False, max_length=150, label="Actor contains", help_text="Part of a username or API client name.")
    action = forms.CharField(
        required=False,
        max_length=64,
        label="Action",
        help_text="A code or its start, e.g. request. or request.approved",
        widget=forms.TextInput(attrs={"list": "action-codes"}),
    )
    since = forms.DateField(required=False, label="From date", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To date (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    from_seq = forms.IntegerField(required=False, min_value=1, label="From event #")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if field.help_text:
                field.widget.attrs["aria-describedby"] = f"id_{name}-help"

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            self.add_error("until", "The end date is before the start date.")
        return data

    def criteria(self, actor: Actor) -> dict[str, Any]:
        """The audit_events() keyword filters for the cleaned form."""
        return audit_filter_criteria_from(actor=actor, fields=self.cleaned_data)

    def given(self) -> dict[str, Any]:
        """The filters as the auditor gave them (for the JSON export's header)."""
        return _shown(self.cleaned_data)


def _auditor_page(view):
    """Staff login first (anonymous -> login page); a role without READ_AUDIT gets the 403 page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, actor_for_request(request), *args, **kwargs)
        except PermissionDenied as exc:
            raise PagePermissionDenied(exc.detail) from exc

    return require_GET(login_required(wrapper))


@_auditor_page
def audit_log(request, actor: Actor):
    audit_events(actor=actor)  # the capability check, before anything else runs
    form = AuditFilterForm(request.GET)
    page = total = None
    cursor_error = ""
    if form.is_valid():
        criteria = form.criteria(actor)
        try:
            page = audit_events_page(actor=actor, criteria=criteria, cursor=request.GET.get("cursor", ""), size=PAGE_SIZE)
        except InvalidCursor as exc:
            cursor_error = exc.detail
        else:
            total = audit_events(actor=actor, **criteria).count()
    chain = audit_chain_status(actor=actor, full=request.GET.get("verify") == "full")
    status = 400 if cursor_error else 200
    return _render_log(request, form, page, total=total, chain=chain, cursor_error=cursor_error, status=status)


def _render_log(request, form: AuditFilterForm, page, *, chain, total: int | None = None, cursor_error: str = "", status: int = 200):
    context = {
        "form": form,
        "page": page,
        "total": total,
        "cursor_error": cursor_error,
        "last_page": LAST_PAGE.encode(),
        "chain": chain,
        "action_codes": sorted({code.split(".")[0] + "." for code in EVENTS}) + sorted(EVENTS),
        "filtered": any(form.data.get(name) for name in form.fields),
    }
    return render(request, "audit/log.html", context, status=status)


def _export(request, actor: Actor, export_format: str) -> StreamingHttpResponse:
    """An export of exactly the filtered events, recorded as `audit.exported` first; a bad date
    range (or any bad filter) is explained on the page with 400 and nothing is recorded."""
    audit_events(actor=actor)  # the capability check
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _render_log(request, form, None, chain=audit_chain_status(actor=actor), status=400)
    criteria = form.criteria(actor)
    chain = audit_chain_status(actor=actor) if export_format == "json" else None  # the status at export
    export = audit_export_record(actor=actor, export_format=export_format, criteria=criteria)
    events = audit_events(actor=actor, **criteria, before_seq=export.seq)
    if export_format == "csv":
        response = StreamingHttpResponse(csv_lines(events), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(
            json_chunks(events, export=export, criteria=_criteria_shown(form, criteria), chain=chain), content_type="application/json"
        )
    response["Content-Disposition"] = f'attachment; filename="audit-log-{export.created_at:%Y%m%dT%H%M%SZ}-to-{export.seq - 1}.{export_format}"'
    response["X-Audit-Export-Event"] = str(export.seq)
    return response


def _criteria_shown(form: AuditFilterForm, criteria: dict[str, Any]) -> dict[str, Any]:
    """What was asked (the form's fields) and what was applied (dates as UTC instants, `until` exclusive)."""
    return {"given": form.given(), "applied": _shown(criteria)}


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """The values that were set, dates and times in ISO 8601 (for the JSON export's header)."""
    return {name: value.isoformat() if hasattr(value, "isoformat") else value for name, value in values.items() if value not in ("", None)}


@_auditor_page
def audit_export_csv(request, actor: Actor):
    return _export(request, actor, "csv")


@_auditor_page
def audit_export_json(request, actor: Actor):
    return _export(request, actor, "json")
