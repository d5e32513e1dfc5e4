"""A few helpers to write charts as inline SVG on the server: no JavaScript, no CDN, no plotting
library in the web process. Every text and attribute value goes through `esc`, so data (unit ids,
labels) cannot break out of the markup.

Charts built from these are plain strings; the views mark them safe once, where they are made.
"""

from __future__ import annotations

from xml.sax.saxutils import escape as _escape

# Colours of the base template (service/templates/base.html), so charts match the pages.
ACCENT = "#0b5cad"
ACCENT_LIGHT = "#9cc3ea"
GOOD = "#1a7f37"
BAD = "#b42318"
WARN = "#9a6700"
MUTED = "#57606a"
LINE = "#d0d7de"
FG = "#1b1f24"
BG = "#f6f8fa"
FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"


def esc(value: object) -> str:
    """Text and attribute values (quotes included) escaped for XML."""
    return _escape(str(value), {'"': "&quot;", "'": "&#x27;"})


def num(value: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def attrs(**values: object) -> str:
    """`fill_opacity=0.5` -> ` fill-opacity="0.5"`; None values are left out."""
    parts = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = num(value)
        parts.append(f' {name.rstrip("_").replace("_", "-")}="{esc(value)}"')
    return "".join(parts)


def text(x: float, y: float, content: object, **more: object) -> str:
    return f"<text{attrs(x=float(x), y=float(y), **more)}>{esc(content)}</text>"


def rect(x: float, y: float, width: float, height: float, *, title: str | None = None, **more: object) -> str:
    """A rectangle; `title` becomes its tooltip (an SVG <title> child)."""
    body = f"<title>{esc(title)}</title>" if title else ""
    return f"<rect{attrs(x=float(x), y=float(y), width=float(max(width, 0.0)), height=float(max(height, 0.0)), **more)}>{body}</rect>"


def line(x1: float, y1: float, x2: float, y2: float, **more: object) -> str:
    return f"<line{attrs(x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2), **more)}/>"


def document(width: float, height: float, body: list[str], *, title: str, description: str = "", css_class: str = "chart") -> str:
    """The <svg> element: scales to its container's width, announced to screen readers as an image."""
    desc = f"<desc>{esc(description)}</desc>" if description else ""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'role="img"{attrs(class_=css_class, viewBox=f"0 0 {num(width)} {num(height)}", width="100%", font_family=FONT, font_size=12)}'
        f' preserveAspectRatio="xMinYMin meet"><title>{esc(title)}</title>{desc}{"".join(body)}</svg>'
    )
