"""The periodic report on erasure requests: the figures an annual (CCPA-style) disclosure needs, per
regulation and in total, for the requests *received* in a period.

Definitions (docs/reports.md):

- A period is whole days in UTC, both ends included.
- Every request received in the period falls in exactly one outcome, by where it is when the report
  is made (`as_of`): completed (a gateway confirmed its unit: it has an effective erasure time; this
  includes requests rolled back since, also counted apart), rejected, cancelled, expired (never
  verified) or open (any other status, including failed). So received = completed + rejected +
  cancelled + expired + open.
- Days to completion: the time from receipt to the effective erasure time, in days of 24 hours
  (the clock the legal deadlines run on, service/requests/deadlines.py), not rounded.
- Median: the middle value (the mean of the two middle ones for an even count). 95th percentile:
  nearest rank, the smallest duration that at least 95% of the durations do not exceed
  (sorted[ceil(0.95 n) - 1]): always a duration that occurred.
- Overdue: open requests whose deadline (with any extension) has passed at `as_of`, plus completed
  requests confirmed after their deadline.

The counts are one grouped query; the durations are read as two timestamps per completed request
and summarised in Python.
"""

from __future__ import annotations

import enum
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, F, Q
from django.utils import timezone

from service.accounts.roles import Actor, Capability
from service.common.errors import ApplicationError
from service.requests.deadlines import Regulation, add_months
from service.requests.models import ErasureRequest
from service.requests.states import OPEN, Status

P95 = 95
MAX_PERIOD_DAYS = 3660  # ten years: a period longer than that is a typo
YEARS = (1970, 9000)  # so are dates outside these years (and they would overflow date arithmetic)


class Preset(str, enum.Enum):
    LAST_YEAR = "last_year"
    LAST_12_MONTHS = "last_12_months"
    THIS_YEAR = "this_year"
    LAST_30_DAYS = "last_30_days"

    @property
    def label(self) -> str:
        return PRESET_LABELS[self]


PRESET_LABELS = {
    Preset.LAST_YEAR: "Last calendar year",
    Preset.LAST_12_MONTHS: "Last 12 months",
    Preset.THIS_YEAR: "This year so far",
    Preset.LAST_30_DAYS: "Last 30 days",
}
DEFAULT_PRESET = Preset.LAST_YEAR  # the period a CCPA disclosure covers


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # included

    def __post_init__(self):
        _check_day(self.start, "from")
        _check_day(self.end, "to")
        if self.end < self.start:
            raise _invalid("to", "The end date is before the start date.")
        if (self.end - self.start).days >= MAX_PERIOD_DAYS:
            raise _invalid("to", f"A period is at most {MAX_PERIOD_DAYS} days.")

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """[start of the first day, start of the day after the last) in UTC."""
        return (datetime.combine(self.start, time.min, tzinfo=UTC), datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def _check_day(day: date | None, field: str) -> None:
    if day is not None and not YEARS[0] <= day.year <= YEARS[1]:
        raise _invalid(field, f"Years {YEARS[0]} to {YEARS[1]} only.")


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="validation_error", extra={"errors": [{"field": field, "message": message, "code": "invalid"}]})


# The web page's default when no period is asked for: the first of these with a request received in
# it (a fresh deployment has none last calendar year, and a page of zeros says nothing).
PAGE_DEFAULT_ORDER = (Preset.LAST_YEAR, Preset.LAST_12_MONTHS, Preset.LAST_30_DAYS)


def preset_with_data(*, today: date | None = None) -> Preset:
    """The first preset of PAGE_DEFAULT_ORDER in which a request was received; else the last one."""
    for preset in PAGE_DEFAULT_ORDER:
        start, end = preset_period(preset, today=today).bounds
        if ErasureRequest.objects.filter(received_at__gte=start, received_at__lt=end).exists():
            return preset
    return PAGE_DEFAULT_ORDER[-1]


def preset_period(preset: Preset | str, *, today: date | None = None) -> Period:
    today = today or timezone.now().astimezone(UTC).date()
    preset = Preset(preset)
    if preset is Preset.LAST_YEAR:
        return Period(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))
    if preset is Preset.LAST_12_MONTHS:
        return Period(add_months(datetime.combine(today, time.min), -12).date() + timedelta(days=1), today)
    if preset is Preset.THIS_YEAR:
        return Period(date(today.year, 1, 1), today)
    return Period(today - timedelta(days=29), today)


def report_period(*, start: date | None = None, end: date | None = None, preset: Preset | str | None = None, today: date | None = None) -> Period:
    """Explicit dates win (a missing one comes from the preset, or the default preset); then the preset."""
    _check_day(start, "from")
    _check_day(end, "to")
    base = preset_period(preset or DEFAULT_PRESET, today=today)
    if start is None and end is None:
        return base
    if start is None:
        return Period(end - timedelta(days=base.days - 1), end)  # the preset's length, ending there
    return Period(start, end or max(start, today or timezone.now().astimezone(UTC).date()))


@dataclass(frozen=True)
class RequestFigures:
    regulation: str  # a Regulation value, or "total"
    label: str
    received: int = 0
    completed: int = 0
    rolled_back: int = 0  # of the completed ones, rolled back since
    rejected: int = 0
    cancelled: int = 0
    expired: int = 0
    open: int = 0
    extended: int = 0  # deadline extended (once, with a reason)
    open_overdue: int = 0
    completed_late: int = 0
    median_days: float | None = None
    p95_days: float | None = None
    mean_days: float | None = None

    @property
    def overdue(self) -> int:
        return self.open_overdue + self.completed_late


@dataclass(frozen=True)
class RequestReport:
    period: Period
    as_of: datetime
    rows: list[RequestFigures]  # one per regulation, in Regulation's order
    total: RequestFigures


def percentile_nearest_rank(values: list[float], percent: float) -> float | None:
    """The smallest value that at least `percent`% of the values do not exceed; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _summary(durations: list[float]) -> dict[str, float | None]:
    if not durations:
        return {"median_days": None, "p95_days": None, "mean_days": None}
    return {"median_days": statistics.median(durations), "p95_days": percentile_nearest_rank(durations, P95), "mean_days": statistics.fmean(durations)}


def request_report(*, actor: Actor, period: Period, as_of: datetime | None = None) -> RequestReport:
    """The figures for the requests received in `period`, as they stand at `as_of` (default: now).

    Reviewers, auditors and admins (READ_ALL_REQUESTS): the report adds up requests they may each see.
    """
    actor.require(Capability.READ_ALL_REQUESTS)
    as_of = as_of or timezone.now()
    start, end = period.bounds
    received = ErasureRequest.objects.filter(received_at__gte=start, received_at__lt=end)
    completed = Q(effective_at__isnull=False)
    open_statuses = [status.value for status in OPEN]
    counts = {
        row["regulation"]: row
        for row in received.order_by()
        .values("regulation")
        .annotate(
            received=Count("pk"),
            completed=Count("pk", filter=completed),
            rolled_back=Count("pk", filter=completed & Q(status=Status.ROLLED_BACK)),
            rejected=Count("pk", filter=Q(status=Status.REJECTED)),
            cancelled=Count("pk", filter=Q(status=Status.CANCELLED)),
            expired=Count("pk", filter=Q(status=Status.EXPIRED)),
            open=Count("pk", filter=Q(status__in=open_statuses) & ~completed),
            extended=Count("pk", filter=Q(deadline_extended=True)),
            open_overdue=Count("pk", filter=Q(status__in=open_statuses, deadline_at__lt=as_of) & ~completed),
            completed_late=Count("pk", filter=completed & Q(effective_at__gt=F("deadline_at"))),
        )
    }
    durations: dict[str, list[float]] = {}
    for regulation, received_at, effective_at in received.filter(completed).order_by().values_list("regulation", "received_at", "effective_at"):
        durations.setdefault(regulation, []).append((effective_at - received_at).total_seconds() / 86400)

    fields = ("received", "completed", "rolled_back", "rejected", "cancelled", "expired", "open", "extended", "open_overdue", "completed_late")
    rows = []
    for regulation in Regulation:
        row = counts.get(regulation.value, {})
        rows.append(
            RequestFigures(regulation.value, regulation.label, **{name: row.get(name, 0) for name in fields}, **_summary(durations.get(regulation.value, [])))
        )
    everything = [value for values in durations.values() for value in values]
    total = RequestFigures("total", "All regulations", **{name: sum(getattr(row, name) for row in rows) for name in fields}, **_summary(everything))
    return RequestReport(period=period, as_of=as_of, rows=rows, total=total)
