"""The auditor's pages: the audit log with filters and the chain status, and its CSV export.

Thin: the filter form turns the query string into audit_events() keyword filters; the selectors
check the READ_AUDIT capability and the services record each export in the log itself.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from functools import wraps
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as PagePermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from service.accounts.roles import Actor, actor_for_request
from service.common.errors import NotFound, PermissionDenied
from service.common.hashing import canonical_json

from .events import EVENTS
from .selectors import audit_chain_verify, audit_events
from .services import audit_export_record

PAGE_SIZE = 50
CSV_COLUMNS = ["seq", "created_at", "actor_kind", "actor_id", "actor_label", "action", "target_type", "target_id", "description", "data", "request_id", "prev_hash", "hash"]


class AuditFilterForm(forms.Form):
    request = forms.CharField(required=False, max_length=64, label="Request", help_text="Reference (RTBF-…), request id, or any target id.")
    actor = forms.CharField(required=False, max_length=150, label="Actor contains", help_text="Part of a username or API client name.")
    action = forms.CharField(required=False, max_length=64, label="Action", help_text="A code or its start, e.g. request. or request.approved", widget=forms.TextInput(attrs={"list": "action-codes"}))
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
        data = self.cleaned_data
        tz = timezone.get_current_timezone()
        since = datetime.combine(data["since"], time.min, tzinfo=tz) if data.get("since") else None
        until = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=tz) if data.get("until") else None
        return {
            "target_id": _target_id(actor, data.get("request", "").strip()),
            "actor_label": data.get("actor", "").strip(),
            "action": data.get("action", "").strip(),
            "since": since,
            "until": until,
            "from_seq": data.get("from_seq"),
        }


def _target_id(actor: Actor, value: str) -> str:
    """Requests are audited under their public reference; accept their id (UUID) too."""
    if value.upper().startswith("RTBF-"):
        return value.upper()
    try:
        request_id = uuid.UUID(value)
    except ValueError:
        return value
    from service.requests.selectors import request_get

    try:
        return request_get(actor=actor, request_id=request_id).reference
    except NotFound:
        return value


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
    page = None
    if form.is_valid():
        events = audit_events(actor=actor, **form.criteria(actor))
        page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return _render_log(request, form, page)


def _render_log(request, form: AuditFilterForm, page, status: int = 200):
    context = {
        "form": form,
        "page": page,
        "chain": audit_chain_verify(),
        "action_codes": sorted({code.split(".")[0] + "." for code in EVENTS}) + sorted(EVENTS),
        "filtered": any(form.data.get(name) for name in form.fields),
    }
    return render(request, "audit/log.html", context, status=status)


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


# Spreadsheet programs run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_rows(events) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                event.seq,
                event.created_at.isoformat(),
                _cell(event.actor_kind),
                _cell(event.actor_id),
                _cell(event.actor_label),
                event.action,
                _cell(event.target_type),
                _cell(event.target_id),
                _cell(event.description),
                canonical_json(event.data),
                _cell(event.request_id),
                event.prev_hash,
                event.hash,
            ]
        )


@_auditor_page
def audit_export_csv(request, actor: Actor):
    audit_events(actor=actor)  # the capability check
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _render_log(request, form, None, status=400)
    criteria = form.criteria(actor)
    export = audit_export_record(actor=actor, export_format="csv", criteria=criteria)
    events = audit_events(actor=actor, **criteria, before_seq=export.seq)
    response = StreamingHttpResponse(_csv_rows(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{export.created_at:%Y%m%dT%H%M%SZ}-to-{export.seq - 1}.csv"'
    response["X-Audit-Export-Event"] = str(export.seq)
    return response

