"""The live-history timeline as an inline SVG: one lane per unit, one bar per interval it was live.

Solid bars: both ends confirmed by a gateway (GatewayReport). Light, dashed bars: at least one end
is the registry's event time, because no gateway confirmed it. Each bar's <title> is its tooltip;
the lane label links to the unit's page. Pure rendering: it reads the LiveHistory it is given.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.urls import reverse

from service.common import svg
from service.requests.deadlines import add_months

from .selectors import LiveHistory, LiveInterval, UnitLane

WIDTH = 960.0
LABEL_WIDTH = 230.0
RIGHT = 20.0
AXIS_HEIGHT = 30.0
LANE_HEIGHT = 24.0
BAR_HEIGHT = 14.0
MAX_LANES = 200  # the chart stops there (the page says so); the table and the API have every unit
MAX_TICKS = 8

_MINUTE, _HOUR, _DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
# (step, label format): the first that yields at most MAX_TICKS ticks over the window is used.
_STEPS: list[tuple[str, int, str]] = [
    ("minutes", 1, "%H:%M"),
    ("minutes", 5, "%H:%M"),
    ("minutes", 15, "%H:%M"),
    ("minutes", 30, "%H:%M"),
    ("hours", 1, "%m-%d %H:00"),
    ("hours", 3, "%m-%d %H:00"),
    ("hours", 6, "%m-%d %H:00"),
    ("hours", 12, "%m-%d %H:00"),
    ("days", 1, "%Y-%m-%d"),
    ("days", 2, "%Y-%m-%d"),
    ("days", 7, "%Y-%m-%d"),
    ("days", 14, "%Y-%m-%d"),
    ("months", 1, "%Y-%m-%d"),
    ("months", 3, "%Y-%m-%d"),
    ("months", 6, "%Y-%m"),
    ("months", 12, "%Y"),
]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _stamp(moment: datetime) -> str:
    return f"{_utc(moment):%Y-%m-%d %H:%M:%S} UTC"


def _ticks_for(since: datetime, until: datetime, unit: str, step: int) -> list[datetime]:
    since, until = _utc(since), _utc(until)
    if unit == "minutes":
        tick = since.replace(second=0, microsecond=0)
        tick += _MINUTE * (-tick.minute % step)
        advance = lambda t: t + _MINUTE * step  # noqa: E731
    elif unit == "hours":
        tick = since.replace(minute=0, second=0, microsecond=0)
        tick += _HOUR * (-tick.hour % step)
        advance = lambda t: t + _HOUR * step  # noqa: E731
    elif unit == "days":
        tick = since.replace(hour=0, minute=0, second=0, microsecond=0)
        if step == 7:
            tick += _DAY * (-tick.weekday() % 7)  # Mondays
        advance = lambda t: t + _DAY * step  # noqa: E731
    else:
        tick = since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        tick = add_months(tick, -((tick.month - 1) % step))  # months 1, 4, 7, 10 for quarters, ...
        advance = lambda t: add_months(t, step)  # noqa: E731 - firsts of months: no day to clamp
    ticks = []
    while tick <= until:
        if tick >= since:
            ticks.append(tick)
        tick = advance(tick)
        if len(ticks) > MAX_TICKS:
            break
    return ticks


def axis_ticks(since: datetime, until: datetime) -> list[tuple[datetime, str]]:
    """Round-numbered instants across the window, with their labels (UTC)."""
    for unit, step, label in _STEPS:
        ticks = _ticks_for(since, until, unit, step)
        if len(ticks) <= MAX_TICKS:
            return [(tick, tick.strftime(label)) for tick in ticks]
    years = max(1, (until.year - since.year) // MAX_TICKS + 1)
    return [(tick, tick.strftime("%Y")) for tick in _ticks_for(since, until, "months", 12 * years)]


def _bar_title(lane: UnitLane, interval: LiveInterval) -> str:
    version = lane.version
    who = f"{version.unit_id}" + (f" ({version.request.reference})" if version.request_id else "")
    if interval.confirmed_from:
        start = f"from {_stamp(interval.start)} (gateway confirmed; activated {_stamp(interval.opened_by.at)} by {interval.opened_by.actor_label})"
    else:
        start = f"from {_stamp(interval.start)} (activated by {interval.opened_by.actor_label}; no gateway confirmation recorded)"
    if interval.closed_by is None:
        end = "still live"
    elif interval.confirmed_until:
        end = (
            f"until {_stamp(interval.end)} (gateway confirmed; {interval.closed_by.get_action_display().lower()} {_stamp(interval.closed_by.at)} "
            f"by {interval.closed_by.actor_label})"
        )
    else:
        end = (
            f"until {_stamp(interval.end)} ({interval.closed_by.get_action_display().lower()} by {interval.closed_by.actor_label}; "
            "no gateway confirmation recorded)"
        )
    return f"{who} live {start} {end}"


def _short(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def render_history_svg(history: LiveHistory, *, now: datetime) -> str:
    """The timeline of `history` as an <svg> element (a string; every value in it is escaped)."""
    lanes = history.lanes[:MAX_LANES]
    since, until = history.since, history.until
    span = (until - since).total_seconds() or 1.0
    plot_width = WIDTH - LABEL_WIDTH - RIGHT
    height = AXIS_HEIGHT * 2 + LANE_HEIGHT * max(len(lanes), 1)

    def x_of(moment: datetime) -> float:
        seconds = min(max((moment - since).total_seconds(), 0.0), span)
        return LABEL_WIDTH + plot_width * seconds / span

    bottom = AXIS_HEIGHT + LANE_HEIGHT * max(len(lanes), 1)
    body: list[str] = []
    for index in range(1, len(lanes), 2):  # every other lane shaded, under the grid
        body.append(svg.rect(0, AXIS_HEIGHT + LANE_HEIGHT * index, WIDTH, LANE_HEIGHT, fill=svg.BG))
    # Axis: a grid line and a label at each tick above the lanes; the window's ends below them.
    for tick, label in axis_ticks(since, until):
        x = x_of(tick)
        body.append(svg.line(x, AXIS_HEIGHT - 4, x, bottom + 4, stroke=svg.LINE))
        body.append(svg.text(x, AXIS_HEIGHT - 10, label, text_anchor="middle", fill=svg.MUTED))
    body.append(svg.text(LABEL_WIDTH, bottom + 20, f"{_utc(since):%Y-%m-%d %H:%M:%S}", text_anchor="start", fill=svg.MUTED))
    body.append(svg.text(WIDTH - RIGHT, bottom + 20, f"{_utc(until):%Y-%m-%d %H:%M:%S} UTC", text_anchor="end", fill=svg.MUTED))
    body.append(svg.line(LABEL_WIDTH, AXIS_HEIGHT, LABEL_WIDTH, bottom, stroke=svg.MUTED))
    body.append(svg.line(WIDTH - RIGHT, AXIS_HEIGHT, WIDTH - RIGHT, bottom, stroke=svg.MUTED))
    if since <= now <= until:
        x = x_of(now)
        body.append(
            f'<g class="now">{svg.line(x, AXIS_HEIGHT - 4, x, bottom + 4, stroke=svg.BAD, stroke_dasharray="4 3")}<title>now: '
            f"{svg.esc(_stamp(now))}</title></g>"
        )

    if not lanes:
        body.append(
            svg.text(LABEL_WIDTH + plot_width / 2, AXIS_HEIGHT + LANE_HEIGHT * 0.65, "No unit was live in this period.", text_anchor="middle", fill=svg.MUTED)
        )
    for index, lane in enumerate(lanes):
        top = AXIS_HEIGHT + LANE_HEIGHT * index
        version = lane.version
        body.append(f'<g class="lane" data-unit="{svg.esc(version.unit_id)}">')
        label = _short(version.unit_id, 26) + (f" · {version.request.reference}" if version.request_id else "")
        href = reverse("registry-unit", args=[version.unit_id])
        body.append(f'<a href="{svg.esc(href)}">{svg.text(6, top + LANE_HEIGHT * 0.68, label, fill=svg.ACCENT)}<title>{svg.esc(version.unit_id)}</title></a>')
        for interval in lane.intervals:
            start = x_of(interval.start)
            end = x_of(interval.end or until)
            confirmed = interval.start_confirmed and (interval.closed_by is None or interval.end_confirmed)
            style = {"fill": svg.ACCENT} if confirmed else {"fill": svg.ACCENT_LIGHT, "stroke": svg.ACCENT, "stroke_dasharray": "3 2"}
            css = "bar confirmed" if confirmed else "bar registry"
            body.append(
                svg.rect(
                    start, top + (LANE_HEIGHT - BAR_HEIGHT) / 2, max(end - start, 2.0), BAR_HEIGHT, title=_bar_title(lane, interval), class_=css, rx=2, **style
                )
            )
        body.append("</g>")

    description = f"Units live from {_stamp(since)} to {_stamp(until)}: {len(history.lanes)} unit{'s' if len(history.lanes) != 1 else ''}."
    return svg.document(WIDTH, height, body, title="Live history: when each unit was live", description=description, css_class="chart history")
