"""The reports page (/reports/), its CSV download and its API (GET /api/v1/reports/requests): what
staff see, what is audited, who is refused."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from service.audit.models import AuditEvent

from .conftest import KNOWN, PERIOD

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
PROBLEM = "application/problem+json"
QUERY = {"from": PERIOD[0], "to": PERIOD[1]}
API = "/api/v1/reports/requests"


def _charts(html: str) -> list[ET.Element]:
    return [ET.fromstring(match) for match in re.findall(r"<svg\b.*?</svg>", html, re.S)]


def test_page_shows_the_figures_and_two_charts_with_a_bar_per_figure(staff_client, file_requests):
    file_requests(KNOWN)
    page = staff_client("auditor").get(reverse("reports"), QUERY)
    assert page.status_code == 200
    html = page.content.decode()
    total = html.split('class="total"')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num">([^<]*)</td>', total)
    assert cells[:8] == ["9", "4", "1", "1", "1", "1", "2", "1"]  # received, completed, rolled back, rejected, cancelled, expired, open, extended
    assert cells[8:10] == ["25.00", "40.00"]  # median, p95 days

    outcomes, durations = _charts(html)
    groups = {group.get("data-group"): group for group in outcomes.iter(f"{SVG}g") if group.get("class") == "group"}
    assert set(groups) == {"gdpr", "ccpa", "other"}
    gdpr_bars = {rect.find(f"{SVG}title").text for rect in groups["gdpr"].iter(f"{SVG}rect")}
    assert {"GDPR (EU/UK): received 5", "GDPR (EU/UK): completed 3", "GDPR (EU/UK): rejected 1", "GDPR (EU/UK): overdue 2"} <= gdpr_bars
    heights = {
        rect.find(f"{SVG}title").text.split(": ")[1]: float(rect.get("height")) for rect in groups["gdpr"].iter(f"{SVG}rect") if rect.get("class") == "bar"
    }
    assert heights["received 5"] == pytest.approx(heights["completed 3"] * 5 / 3) and heights["cancelled 0"] == 0  # to scale
    duration_titles = {rect.find(f"{SVG}title").text for rect in durations.iter(f"{SVG}rect") if rect.get("class") == "bar"}
    assert {"GDPR (EU/UK): median days 20", "All regulations: 95th percentile days 40", "CCPA (California): median days 30"} <= duration_titles
    assert not any(title.startswith("Other") for title in duration_titles)  # nothing completed: no bar


def test_viewing_and_downloading_are_audited(staff_client, file_requests):
    file_requests(KNOWN)
    auditor = staff_client("auditor")
    auditor.get(reverse("reports"), QUERY)
    auditor.get(reverse("reports-csv"), QUERY)
    shown = AuditEvent.objects.get(action="report.generated")
    downloaded = AuditEvent.objects.get(action="report.downloaded")
    assert shown.data["format"] == "html" and downloaded.data["format"] == "csv"
    assert (downloaded.data["period_from"], downloaded.data["period_to"], downloaded.data["received"]) == ("2025-01-01", "2025-12-31", 9)
    assert downloaded.actor_label.startswith("auditor") and "downloaded as csv" in downloaded.description


def test_csv_holds_the_same_figures(staff_client, file_requests):
    file_requests(KNOWN)
    response = staff_client("auditor").get(reverse("reports-csv"), QUERY)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="requests-report-20250101-20251231.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["regulation"] for row in rows] == ["gdpr", "ccpa", "other", "total"]
    gdpr, ccpa, other, total = rows
    assert (gdpr["received"], gdpr["completed"], gdpr["completed_then_rolled_back"], gdpr["rejected"], gdpr["open_overdue"], gdpr["completed_late"]) == (
        "5",
        "3",
        "1",
        "1",
        "1",
        "1",
    )
    assert (gdpr["median_days_to_completion"], gdpr["p95_days_to_completion"], gdpr["mean_days_to_completion"]) == ("20.00", "40.00", "23.33")
    assert (ccpa["cancelled"], ccpa["deadline_extended"]) == ("1", "1")
    assert other["expired"] == "1" and other["median_days_to_completion"] == ""
    assert (total["received"], total["median_days_to_completion"], total["period_from"], total["period_to"]) == ("9", "25.00", "2025-01-01", "2025-12-31")


def test_presets_and_bad_periods(staff_client):
    auditor = staff_client("reviewer")  # reviewers read reports too: they may see every request already
    page = auditor.get(reverse("reports"))
    assert page.status_code == 200 and 'aria-current="true">Last 30 days' in page.content.decode()  # no request anywhere: the shortest preset
    assert auditor.get(reverse("reports"), {"preset": "last_30_days"}).status_code == 200
    for query in ({"from": "2025-02-01", "to": "2025-01-01"}, {"from": "2025-02-30"}, {"preset": "forever"}):
        refused = auditor.get(reverse("reports"), query)
        assert refused.status_code == 400 and "errorlist" in refused.content.decode(), query
        assert auditor.get(reverse("reports-csv"), query).status_code == 400
    assert not AuditEvent.objects.filter(action__startswith="report.", data__format="csv").exists()  # nothing was downloaded


def test_nav_links_to_reports_for_staff_only(staff_client, client):
    assert 'href="/reports/"' in staff_client("auditor").get(reverse("registry")).content.decode()
    assert 'href="/reports/"' not in client.get(reverse("home")).content.decode()


def test_anonymous_and_api_clients_cannot_see_reports(client, api_client_key):
    assert client.get(reverse("reports"), QUERY)["Location"].startswith("/accounts/login/")
    assert client.get(reverse("reports-csv"), QUERY)["Location"].startswith("/accounts/login/")
    _, key = api_client_key(("create", "read", "trusted_identity"))
    assert client.get(reverse("reports"), QUERY, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 302  # a key is no login on pages
    refused = client.get(API, QUERY, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert refused.status_code == 403 and refused["Content-Type"] == PROBLEM and refused.json()["code"] == "forbidden"
    assert client.get(API, QUERY).status_code == 401
    assert not AuditEvent.objects.filter(action__startswith="report.").exists()


# --- the API -------------------------------------------------------------------------------------


def test_api_gives_the_figures_as_json_and_is_audited(staff_client, file_requests):
    file_requests(KNOWN)
    body = staff_client("auditor").get(API, QUERY).json()
    assert (body["period_from"], body["period_to"]) == ("2025-01-01", "2025-12-31")
    gdpr = next(row for row in body["regulations"] if row["regulation"] == "gdpr")
    assert (gdpr["received"], gdpr["overdue"], gdpr["median_days"], gdpr["p95_days"]) == (5, 2, 20.0, 40.0)
    assert body["total"]["received"] == 9 and body["total"]["median_days"] == 25.0
    assert AuditEvent.objects.get(action="report.generated").data["format"] == "json"


@pytest.mark.parametrize(
    "query, field",
    [
        ({"from": "2025-13-01"}, "from"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "to"),
        ({"preset": "forever"}, "preset"),
        ({"since": "2025-01-01"}, "since"),
    ],
)
def test_api_refuses_bad_periods_with_400_problem(staff_client, query, field):
    answer = staff_client("auditor").get(API, query)
    assert answer.status_code == 400 and answer["Content-Type"] == PROBLEM
    assert answer.json()["code"] == "validation_error" and answer.json()["errors"][0]["field"] == field


def test_schema_documents_the_report(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/reports/requests"]["get"]
    assert {"from", "to", "preset"} == {p["name"] for p in operation["parameters"]}
    assert "application/problem+json" in operation["responses"]["403"]["content"]


GARBAGE_QUERIES = [
    "from=%00",
    "from=0001-01-01",
    "to=0001-01-01",
    "to=9999-12-31",
    "from=2025-01-01&to=8999-12-31",
    "preset=%00",
    "from[]=x",
    "from=" + "9" * 4000,
]  # longer URLs are 414 (FORGET_MAX_URL_BYTES)


def test_garbage_queries_never_produce_a_5xx(staff_client):
    auditor = staff_client("auditor")
    for query in GARBAGE_QUERIES:
        api = auditor.get(f"{API}?{query}")
        assert api.status_code == 400 and api["Content-Type"] == PROBLEM, (query, api.status_code)
        for name in ("reports", "reports-csv"):  # pages ignore unknown parameters (from[]): 200 or 400
            assert auditor.get(f"{reverse(name)}?{query}").status_code == (200 if "[]" in query else 400), (name, query)
    assert auditor.get(f"{API}?from=1970-01-01&to=1979-12-31").status_code == 200  # ten years is the most


def test_the_page_opens_on_a_period_that_has_requests(staff_client, settings):
    """A fresh deployment has no request last calendar year: the page opens on the last 12 months
    (where the requests are) instead of a table of zeros; with last year's requests, on last year."""
    from datetime import timedelta

    from django.utils import timezone

    from service.requests.models import ErasureRequest
    from service.requests.services import request_submit_web

    reviewer = staff_client("reviewer")
    request = request_submit_web(name="Al", email="al@example.com", regulation="gdpr", facts=["Al is 40"], evidence_prompts=[], attested=True)
    html = reviewer.get(reverse("reports")).content.decode()
    assert 'aria-current="true">Last 12 months' in html and "All regulations" in html
    ErasureRequest.objects.filter(pk=request.pk).update(received_at=timezone.now().replace(month=6, day=15) - timedelta(days=366))
    assert 'aria-current="true">Last calendar year' in reviewer.get(reverse("reports")).content.decode()


def test_durations_are_drawn_in_a_unit_that_reads(staff_client):
    from service.reports.charts import _label, duration_unit

    assert duration_unit(12.5) == ("days", 1.0) and duration_unit(0.5) == ("hours", 24.0) and duration_unit(0.00088) == ("minutes", 1440.0)
    assert [_label(v) for v in (0, 2, 0.5, 1.25, 12.5)] == ["0", "2", "0.5", "1.2", "12.5"]
