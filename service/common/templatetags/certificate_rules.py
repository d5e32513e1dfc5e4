"""Filters of the shared certificate rule table (templates/common/certificate_rules.html).

Rules carry name, metric, value, upper95, n, threshold, comparison and status; a rule may carry
more (a `lower95`, keys added later): the table shows a column for each, and an unknown status
(e.g. "inconclusive") as a neutral badge with its name."""

from __future__ import annotations

from django import template

register = template.Library()

KNOWN = ("name", "family", "metric", "note", "value", "lower95", "upper95", "n", "threshold", "comparison", "status")
BADGES = {"pass": "good", "fail": "bad", "inconclusive": "warn"}


@register.filter
def metric(value, digits: int = 3) -> str:
    """A number with `digits` decimals; an em dash for a value the certificate does not have."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def rule_columns(rules) -> dict:
    """Which optional columns the rules need: lower95 when any rule has one; other unknown keys."""
    rules = [r for r in (rules or []) if isinstance(r, dict)]
    extra = sorted({key for rule in rules for key in rule} - set(KNOWN))
    return {"lower95": any(rule.get("lower95") is not None for rule in rules), "extra": extra}


@register.filter
def rule_badge(status) -> str:
    return BADGES.get(str(status or "").lower(), "")


@register.filter
def rule_value(rule, key):
    return rule.get(key) if isinstance(rule, dict) else None
