"""The live-history page (/registry/history/: an inline SVG timeline and the table of changes) and
its API (GET /api/v1/registry/history)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from adapters_store.history_chart import axis_ticks
from adapters_store.services import adapter_deactivate, gateway_report_loaded

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
PROBLEM = "application/problem+json"
API = "/api/v1/registry/history"


@pytest.fixture
def story(register, erasure, staff, actor_of):
    """unit-a: live, then deactivated (both confirmed by gw-1); unit-b: a request's unit, live now."""
    reviewer = actor_of(staff("reviewer", username="rita"))
    a = register("unit-a", passed=True)
    live = gateway_report_loaded(gateway_id="gw-1", generation=1, unit_ids=["unit-a"])
    adapter_deactivate(version_id=a.pk, actor=reviewer, reason="refuses <everything>")
    dropped = gateway_report_loaded(gateway_id="gw-1", generation=2, unit_ids=[])
    request = erasure("staged")
    register("unit-b", request=request, passed=True)
    return {"request": request, "live": live, "dropped": dropped}


def _chart(html: str) -> ET.Element:
    """The inline <svg>, parsed: it must be well-formed XML."""
    match = re.search(r"<svg\b.*?</svg>", html, re.S)
    assert match, "no inline SVG on the page"
    return ET.fromstring(match.group(0))


def test_page_draws_a_lane_and_a_bar_per_unit_with_tooltips(staff_client, story):
    page = staff_client("auditor").get(reverse("registry-history"))
    assert page.status_code == 200
    html = page.content.decode()
    chart = _chart(html)
    lanes = {lane.get("data-unit"): lane for lane in chart.iter(f"{SVG}g") if lane.get("class") == "lane"}
    assert set(lanes) == {"unit-a", "unit-b"}
    for unit_id, lane in lanes.items():
        bars = [rect for rect in lane.iter(f"{SVG}rect") if "bar" in (rect.get("class") or "")]
        assert len(bars) == 1, unit_id
        assert float(bars[0].get("width")) > 0
        tooltip = bars[0].find(f"{SVG}title").text
        assert unit_id in tooltip and "UTC" in tooltip
    a_bar = next(rect for rect in lanes["unit-a"].iter(f"{SVG}rect") if "bar" in (rect.get("class") or ""))
    assert a_bar.get("class") == "bar confirmed" and "gateway confirmed" in a_bar.find(f"{SVG}title").text
    b_bar = next(rect for rect in lanes["unit-b"].iter(f"{SVG}rect") if "bar" in (rect.get("class") or ""))
    assert b_bar.get("class") == "bar registry" and "still live" in b_bar.find(f"{SVG}title").text  # no gateway reported it
    assert story["request"].reference in "".join(lanes["unit-b"].itertext())
    # The axis: the window's ends, dated.
    dates = [text.text for text in chart.iter(f"{SVG}text") if re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}( UTC)?", text.text or "")]
    assert len(dates) == 2 and dates[1].endswith("UTC")


def test_page_lists_the_changes_with_who_why_and_the_gateway_confirmation(staff_client, story):
    html = staff_client("auditor").get(reverse("registry-history")).content.decode()
    table = html.split('id="h-changes"')[1].split("<tbody>")[1].split("</tbody>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    assert len(rows) == 3  # activated a, deactivated a, activated b
    deactivated = next(row for row in rows if "deactivated" in row)
    assert "rita" in deactivated and "refuses &lt;everything&gt;" in deactivated  # escaped
    assert story["dropped"].at.strftime("%Y-%m-%d %H:%M:%S") in deactivated
    activated_b = next(row for row in rows if "unit-b" in row)
    assert story["request"].reference in activated_b and "not recorded" in activated_b


def test_page_is_linked_from_the_nav_and_the_registry(staff_client):
    auditor = staff_client("auditor")
    nav = '<a href="/registry/history/">Live history</a>'
    index = auditor.get(reverse("registry")).content.decode()
    assert nav in index and '<a href="/registry/history/">Live history (timeline of every change)</a>' in index
    assert '<a href="/registry/history/">Live history over a period</a>' in auditor.get(reverse("registry-live")).content.decode()


def test_page_takes_a_period_and_refuses_a_bad_one(staff_client, story):
    auditor = staff_client("auditor")
    today = timezone.now().date()
    empty = auditor.get(reverse("registry-history"), {"since": (today - timedelta(days=400)).isoformat(), "until": (today - timedelta(days=300)).isoformat()})
    assert empty.status_code == 200 and "No unit was live in this period." in empty.content.decode()
    assert 'class="lane"' not in empty.content.decode()

    backwards = auditor.get(reverse("registry-history"), {"since": today.isoformat(), "until": (today - timedelta(days=1)).isoformat()})
    assert backwards.status_code == 400 and "The end date is before the start date." in backwards.content.decode()
    garbage = auditor.get(reverse("registry-history"), {"since": "31/12/2025"})
    assert garbage.status_code == 400 and "errorlist" in garbage.content.decode()
    future = auditor.get(reverse("registry-history"), {"since": (today + timedelta(days=5)).isoformat()})
    assert future.status_code == 400 and "must be before its end" in future.content.decode()


def test_axis_ticks_fit_the_window():
    now = timezone.now()
    for span in (timedelta(hours=5), timedelta(days=3), timedelta(days=30), timedelta(days=365), timedelta(days=3000)):
        ticks = axis_ticks(now - span, now)
        assert 1 <= len(ticks) <= 8, span
        assert all(now - span <= tick <= now for tick, _ in ticks)
        assert [tick for tick, _ in ticks] == sorted(tick for tick, _ in ticks)


# --- the API -------------------------------------------------------------------------------------


def test_api_gives_intervals_per_unit_and_the_events(staff_client, story):
    body = staff_client("auditor").get(API).json()
    units = {unit["unit_id"]: unit for unit in body["units"]}
    assert set(units) == {"unit-a", "unit-b"} and body["gateway_reports_recorded"] is True
    [a] = units["unit-a"]["intervals"]
    assert a["start_source"] == "gateway" and a["end_source"] == "gateway"
    assert a["gateway_confirmed_from"] == a["start"] and a["ended"]["action"] == "deactivated" and a["ended"]["reason"] == "refuses <everything>"
    [b] = units["unit-b"]["intervals"]
    assert b["start_source"] == "registry" and b["end"] is None and b["end_source"] is None
    assert units["unit-b"]["request"]["reference"] == story["request"].reference and units["unit-a"]["request"] is None
    assert [(e["unit_id"], e["action"]) for e in body["events"]] == [("unit-a", "activated"), ("unit-a", "deactivated"), ("unit-b", "activated")]
    assert body["events"][1]["actor"] == "rita" and body["events"][1]["gateway_confirmed_at"] is not None


def test_api_takes_dates_or_date_times(staff_client, story):
    auditor = staff_client("auditor")
    today = timezone.now().date()
    by_dates = auditor.get(API, {"since": today.isoformat(), "until": today.isoformat()}).json()
    assert by_dates["since"].startswith(today.isoformat()) and by_dates["until"].startswith((today + timedelta(days=1)).isoformat())
    assert len(by_dates["units"]) == 2
    before = (timezone.now() - timedelta(days=2)).replace(tzinfo=None).isoformat(timespec="seconds")  # no offset: UTC
    empty = auditor.get(API, {"since": before, "until": (timezone.now() - timedelta(days=1)).isoformat()}).json()
    assert empty["units"] == [] and empty["events"] == []


@pytest.mark.parametrize(
    "query, field",
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-02-30"}, "until"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "until"),
        ({"at": "2026-01-01"}, "at"),
    ],
)
def test_api_refuses_bad_dates_with_400_problem(staff_client, query, field):
    answer = staff_client("auditor").get(API, query)
    assert answer.status_code == 400 and answer["Content-Type"] == PROBLEM
    assert answer.json()["code"] == "validation_error" and answer.json()["errors"][0]["field"] == field


def test_api_is_for_staff_only(api_client_key):
    _, key = api_client_key(("create", "read", "trusted_identity"))
    refused = Client().get(API, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert refused.status_code == 403 and refused["Content-Type"] == PROBLEM
    assert Client().get(API).status_code == 401


def test_schema_documents_the_history(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/registry/history"]["get"]
    assert {"since", "until"} == {p["name"] for p in operation["parameters"]}
    assert "application/problem+json" in operation["responses"]["400"]["content"]


GARBAGE_QUERIES = [
    "since=%00",
    "since=9999-99-99",
    "until=9999-12-31",
    "until=0001-01-01",
    "since=0001-01-01",
    "since=1970-01-01&until=8999-12-31",
    "since=2026-01-01T25:00",
    "since=" + "9" * 4000,  # longer URLs are 414 (FORGET_MAX_URL_BYTES)
    "since[]=x",
    "since=2026-01-01&since=2026-01-02",
    "until=1970-01-01",
]


def test_garbage_queries_never_produce_a_5xx(staff_client, story):
    auditor = staff_client("auditor")
    for query in GARBAGE_QUERIES:
        api = auditor.get(f"{API}?{query}")
        assert api.status_code < 500, (query, api.status_code)
        if api.status_code >= 400:
            assert api["Content-Type"] == PROBLEM, query
        page = auditor.get(f"{reverse('registry-history')}?{query}")
        assert page.status_code in (200, 400), (query, page.status_code)
    assert auditor.get(f"{API}?until=0001-01-01").status_code == 400
