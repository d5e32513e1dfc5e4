"""Making a report is itself on the record: each one shown, downloaded or fetched from the API is an
audit event (`report.generated` / `report.downloaded`) with its period and headline figures."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from service.accounts.roles import Actor
from service.audit.services import audit_record

from .selectors import Period, RequestReport, request_report

# What a report is delivered as, and the audit event each delivery writes.
FORMATS = {"html": "report.generated", "json": "report.generated", "csv": "report.downloaded"}


def request_report_generate(*, actor: Actor, period: Period, export_format: str, as_of: datetime | None = None) -> RequestReport:
    """Computes the request report (request_report checks the role) and audits its delivery."""
    if export_format not in FORMATS:
        raise ValueError(f"unknown report format {export_format!r}")
    report = request_report(actor=actor, period=period, as_of=as_of)
    with transaction.atomic():
        audit_record(
            action=FORMATS[export_format],
            actor=actor,
            target_type="report",
            target_id="requests",
            data={
                "report": "requests",
                "format": export_format,
                "period_from": period.start.isoformat(),
                "period_to": period.end.isoformat(),
                "as_of": report.as_of.isoformat(),
                "received": report.total.received,
                "completed": report.total.completed,
                "overdue": report.total.overdue,
            },
        )
    return report
