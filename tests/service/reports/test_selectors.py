"""The request report's figures on a known set of requests, its periods and its percentile."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from service.common.errors import ApplicationError, PermissionDenied
from service.reports.selectors import Period, Preset, percentile_nearest_rank, preset_period, report_period, request_report

from .conftest import AS_OF, KNOWN


def _period() -> Period:
    return Period(date(2025, 1, 1), date(2025, 12, 31))


@pytest.mark.django_db
def test_figures_per_regulation_and_in_total(file_requests, staff, actor_of):
    file_requests(KNOWN)
    report = request_report(actor=actor_of(staff("auditor")), period=_period(), as_of=AS_OF)
    gdpr, ccpa, other = report.rows
    assert [row.regulation for row in report.rows] == ["gdpr", "ccpa", "other"]

    # GDPR: 5 received in 2025 (one more on 2024-12-31 is outside the period).
    assert (gdpr.received, gdpr.completed, gdpr.rolled_back, gdpr.rejected, gdpr.cancelled, gdpr.expired, gdpr.open) == (5, 3, 1, 1, 0, 0, 1)
    assert (gdpr.open_overdue, gdpr.completed_late, gdpr.overdue) == (1, 1, 2)  # the open one from September; the 40-day one
    assert gdpr.median_days == pytest.approx(20) and gdpr.p95_days == pytest.approx(40) and gdpr.mean_days == pytest.approx(70 / 3)

    # CCPA: the extended open request's deadline (2026-03-31) has not passed on AS_OF.
    assert (ccpa.received, ccpa.completed, ccpa.cancelled, ccpa.open, ccpa.extended, ccpa.overdue) == (3, 1, 1, 1, 1, 0)
    assert ccpa.median_days == pytest.approx(30) and ccpa.p95_days == pytest.approx(30)

    # Other: one expired; the one received on 2026-01-01 is after the period. No completion: no durations.
    assert (other.received, other.expired, other.open, other.completed) == (1, 1, 0, 0)
    assert other.median_days is None and other.p95_days is None and other.mean_days is None

    total = report.total
    assert (total.received, total.completed, total.rejected, total.cancelled, total.expired, total.open, total.overdue) == (9, 4, 1, 1, 1, 2, 2)
    assert total.received == total.completed + total.rejected + total.cancelled + total.expired + total.open
    assert total.median_days == pytest.approx(25)  # 10, 20, 30, 40: the mean of the middle two
    assert total.p95_days == pytest.approx(40)  # nearest rank: ceil(0.95 * 4) = 4th


@pytest.mark.django_db
def test_overdue_depends_on_when_the_report_is_made(file_requests, staff, actor_of):
    file_requests([item for item in KNOWN if item.outcome == "open" and item.regulation == "gdpr"])  # received 2025-09-01, due 2025-10-01
    auditor = actor_of(staff("auditor"))
    assert request_report(actor=auditor, period=_period(), as_of=datetime(2025, 9, 30, tzinfo=UTC)).total.overdue == 0
    assert request_report(actor=auditor, period=_period(), as_of=datetime(2025, 10, 2, tzinfo=UTC)).total.overdue == 1


@pytest.mark.django_db
def test_an_empty_period_has_zeros_and_no_durations(staff, actor_of):
    report = request_report(actor=actor_of(staff("reviewer")), period=_period())
    assert report.total.received == 0 and report.total.median_days is None and len(report.rows) == 3


@pytest.mark.django_db
def test_api_clients_may_not_read_reports(api_client_key, actor_of):
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    with pytest.raises(PermissionDenied):
        request_report(actor=actor_of(client), period=_period())


def test_nearest_rank_percentile():
    assert percentile_nearest_rank([], 95) is None
    assert percentile_nearest_rank([7.0], 95) == 7.0
    assert percentile_nearest_rank([float(v) for v in range(1, 101)], 95) == 95.0
    assert percentile_nearest_rank([float(v) for v in range(20, 0, -1)], 95) == 19.0  # unsorted input; ceil(19.0) = 19th
    assert percentile_nearest_rank([1.0, 2.0, 3.0], 50) == 2.0


@pytest.mark.parametrize(
    "preset, expected",
    [
        (Preset.LAST_YEAR, (date(2025, 1, 1), date(2025, 12, 31))),
        (Preset.LAST_12_MONTHS, (date(2025, 5, 11), date(2026, 5, 10))),
        (Preset.THIS_YEAR, (date(2026, 1, 1), date(2026, 5, 10))),
        (Preset.LAST_30_DAYS, (date(2026, 4, 11), date(2026, 5, 10))),
    ],
)
def test_presets(preset, expected):
    period = preset_period(preset, today=date(2026, 5, 10))
    assert (period.start, period.end) == expected
    if preset is Preset.LAST_30_DAYS:
        assert period.days == 30


def test_explicit_dates_win_and_bad_periods_are_refused():
    today = date(2026, 5, 10)
    assert report_period(today=today) == Period(date(2025, 1, 1), date(2025, 12, 31))  # the default: last calendar year
    assert report_period(start=date(2026, 2, 1), preset="last_year", today=today) == Period(date(2026, 2, 1), today)
    assert report_period(start=date(2026, 2, 1), end=date(2026, 2, 28), today=today).days == 28
    with pytest.raises(ApplicationError) as reversed_dates:
        report_period(start=date(2026, 2, 2), end=date(2026, 2, 1), today=today)
    assert reversed_dates.value.code == "validation_error" and reversed_dates.value.extra["errors"][0]["field"] == "to"
    with pytest.raises(ApplicationError):
        Period(date(2000, 1, 1), date(2026, 1, 1))  # longer than ten years
