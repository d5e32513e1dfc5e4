"""Legal deadlines per regulation.

GDPR art. 12(3): one month from receipt, extendable by two further months with a reason. A month
is a calendar month; when the target month has no such day (31 January + 1 month) the period ends
on the month's last day (EU Regulation 1182/71, art. 3). CCPA: 45 days, extendable once by 45.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from django.db import models


class Regulation(models.TextChoices):
    GDPR = "gdpr", "GDPR (EU/UK)"
    CCPA = "ccpa", "CCPA (California)"
    OTHER = "other", "Other"


def add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def legal_deadline(regulation: str, received_at: datetime) -> datetime:
    if regulation == Regulation.CCPA:
        return received_at + timedelta(days=45)
    return add_months(received_at, 1)  # GDPR, and a month for other regimes unless configured


def extended_deadline(regulation: str, current_deadline: datetime) -> datetime:
    if regulation == Regulation.CCPA:
        return current_deadline + timedelta(days=45)
    if regulation == Regulation.GDPR:
        return add_months(current_deadline, 2)
    return add_months(current_deadline, 1)


def days_left(deadline: datetime, now: datetime) -> int:
    """Whole days until the deadline; negative when overdue (ceil, so 'due today' is 0 only after it)."""
    seconds = (deadline - now).total_seconds()
    return int(seconds // 86400) if seconds < 0 else -int(-seconds // 86400)
