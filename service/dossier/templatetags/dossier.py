"""Template filters of the dossier and the certificate document."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def metric(value, digits: int = 3) -> str:
    """A number with `digits` decimals; an em dash for a value the certificate does not have."""
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def lookup(mapping, key):
    """mapping[key] in a template (dict keys such as "F<t" are not valid template identifiers)."""
    return (mapping or {}).get(key) if hasattr(mapping, "get") else None
