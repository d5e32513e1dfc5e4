"""The report's charts as inline SVG (service.common.svg): grouped bar charts, one bar per figure
and regulation, each with a <title> tooltip and its value written above it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from service.common import svg

from .selectors import RequestFigures, RequestReport

WIDTH, HEIGHT = 720.0, 320.0
LEFT, RIGHT, TOP, BOTTOM = 56.0, 16.0, 44.0, 36.0


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    value: Callable[[RequestFigures], float | None]


OUTCOMES = [
    Series("received", svg.ACCENT, lambda row: row.received),
    Series("completed", svg.GOOD, lambda row: row.completed),
    Series("rejected", svg.BAD, lambda row: row.rejected),
    Series("cancelled", svg.MUTED, lambda row: row.cancelled),
    Series("overdue", svg.WARN, lambda row: row.overdue),
]
DURATIONS = [
    Series("median days", svg.ACCENT, lambda row: row.median_days),
    Series("95th percentile days", svg.ACCENT_LIGHT, lambda row: row.p95_days),
]


def nice_step(top: float, *, ticks: int = 5, whole: bool = False) -> float:
    """A step of 1, 2 or 5 times a power of ten giving at most `ticks` steps up to `top`
    (at least 1 when `whole`: counts have no fractional ticks)."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(factor * power for factor in (1, 2, 5, 10) if factor * power >= raw)
    return max(step, 1.0) if whole else step


def _label(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}".rstrip("0").rstrip(".")


def duration_unit(top_days: float) -> tuple[str, float]:
    """(unit, factor from days) for durations whose largest is `top_days`: days from one day up,
    hours or minutes below (a demo completes in minutes: 0.00088 days says nothing)."""
    if top_days >= 1:
        return "days", 1.0
    if top_days * 24 >= 1:
        return "hours", 24.0
    return "minutes", 24.0 * 60


def grouped_bar_chart(*, title: str, rows: list[RequestFigures], series: list[Series], unit: str, whole: bool = False, scale: float = 1.0) -> str:
    values = [[None if (v := item.value(row)) is None else v * scale for item in series] for row in rows]
    top = max([v for group in values for v in group if v is not None] or [0])
    step = nice_step(top, whole=whole)
    axis_top = max(step, math.ceil(top / step) * step)
    plot_height = HEIGHT - TOP - BOTTOM
    plot_width = WIDTH - LEFT - RIGHT
    group_width = plot_width / max(len(rows), 1)
    bar_width = min(28.0, group_width * 0.8 / max(len(series), 1))

    def y_of(value: float) -> float:
        return TOP + plot_height * (1 - value / axis_top)

    body: list[str] = []
    # Legend, top left.
    x = LEFT
    for item in series:
        body.append(svg.rect(x, 10, 12, 12, fill=item.color))
        body.append(svg.text(x + 16, 20, item.name, fill=svg.FG))
        x += 28 + 7 * len(item.name)
    # Y axis with grid lines.
    for index in range(round(axis_top / step) + 1):
        y = y_of(index * step)
        body.append(svg.line(LEFT, y, WIDTH - RIGHT, y, stroke=svg.LINE))
        body.append(svg.text(LEFT - 6, y + 4, _label(round(index * step, 10)), text_anchor="end", fill=svg.MUTED))
    body.append(svg.text(14, TOP + plot_height / 2, unit, fill=svg.MUTED, transform=f"rotate(-90 14 {svg.num(TOP + plot_height / 2)})", text_anchor="middle"))
    # Bars, one group per row.
    for index, (row, group) in enumerate(zip(rows, values)):
        left = LEFT + group_width * index + (group_width - bar_width * len(series)) / 2
        body.append(f'<g class="group" data-group="{svg.esc(row.regulation)}">')
        for position, (item, value) in enumerate(zip(series, group)):
            x = left + bar_width * position
            if value is None:
                body.append(svg.text(x + bar_width / 2, y_of(0) - 4, "–", text_anchor="middle", fill=svg.MUTED))
                continue
            y = y_of(value)
            body.append(svg.rect(x + 1, y, bar_width - 2, y_of(0) - y, title=f"{row.label}: {item.name} {_label(value)}", fill=item.color, class_="bar"))
            body.append(svg.text(x + bar_width / 2, y - 4, _label(value), text_anchor="middle", fill=svg.FG, font_size=10))
        body.append("</g>")
        body.append(svg.text(LEFT + group_width * (index + 0.5), HEIGHT - BOTTOM + 18, row.label, text_anchor="middle", fill=svg.FG))
    body.append(svg.line(LEFT, y_of(0), WIDTH - RIGHT, y_of(0), stroke=svg.MUTED))
    return svg.document(WIDTH, HEIGHT, body, title=title, css_class="chart report")


def report_charts(report: RequestReport) -> dict[str, str]:
    """The report's two charts: outcomes per regulation, and days to completion (with the total)."""
    return {
        "outcomes": grouped_bar_chart(
            title=f"Requests received {report.period}, by outcome and regulation", rows=report.rows, series=OUTCOMES, unit="requests", whole=True
        ),
        "durations": _durations_chart(report),
    }


def _durations_chart(report: RequestReport) -> str:
    rows = [*report.rows, report.total]
    top = max([v for row in rows for item in DURATIONS if (v := item.value(row)) is not None] or [0])
    unit, factor = duration_unit(top)
    title = f"Time from receipt to completion ({unit}), requests received {report.period}"
    return grouped_bar_chart(
        title=title, rows=rows, series=[Series(item.name.replace("days", unit), item.color, item.value) for item in DURATIONS], unit=unit, scale=factor
    )
